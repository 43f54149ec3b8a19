package paymentid

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/codebank/codebank/internal/card"
)

var keys = func() card.Keys {
	k, err := card.NewKeys([]byte("a test tokenization key of the bank"))
	if err != nil {
		panic(err)
	}
	return k
}()

func sealer(t testing.TB) *Sealer {
	s, err := ForKeys(keys)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var payment = Payment{CardToken: "gzNcUY7KgaoXOFX_qNg2gQ", TransactionID: "order-1042", AmountCents: 10000, DecidedAtUnixUs: 1795602454530123, Approved: true}

func TestSealAndOpen(t *testing.T) {
	s := sealer(t)
	id, err := s.Seal("code-store", payment)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.Open("code-store", id); err != nil || got != payment {
		t.Fatalf("Open = %+v, %v; want %+v", got, err, payment)
	}
	if strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		t.Errorf("id %q is not URL-safe", id)
	}
	if strings.Contains(id, payment.CardToken) || strings.Contains(id, payment.TransactionID) {
		t.Errorf("id %q shows the token or the transaction id", id)
	}
	again, _ := s.Seal("code-store", payment)
	if again == id || again[:20] == id[:20] {
		t.Errorf("the same payment sealed twice gave %q and %q: ids must not link", id, again)
	}
	if got, err := s.Open("code-store", again); err != nil || got != payment {
		t.Errorf("the second id = %+v, %v", got, err)
	}
	long := payment
	long.TransactionID, long.AmountCents = strings.Repeat("x", 64), 100_000_000_000
	if id, _ := s.Seal("code-store", long); len(id) > MaxLen {
		t.Errorf("the longest id has %d characters, MaxLen is %d", len(id), MaxLen)
	}
}

// TestOpenRefusesAlike: another merchant's id, an altered one, one under another key and
// garbage all get ErrUnknown, the same error.
func TestOpenRefusesAlike(t *testing.T) {
	s := sealer(t)
	id, _ := s.Seal("code-store", payment)
	otherKeys, _ := card.NewKeys([]byte("another tokenization key, of another bank"))
	other, _ := ForKeys(otherKeys)
	raw, _ := base64.RawURLEncoding.DecodeString(id)
	raw[len(raw)/2] ^= 1
	for name, open := range map[string]func() (Payment, error){
		"another merchant's":  func() (Payment, error) { return s.Open("other-shop", id) },
		"altered":             func() (Payment, error) { return s.Open("code-store", base64.RawURLEncoding.EncodeToString(raw)) },
		"under another key":   func() (Payment, error) { return other.Open("code-store", id) },
		"not base64":          func() (Payment, error) { return s.Open("code-store", "not a payment id!") },
		"empty":               func() (Payment, error) { return s.Open("code-store", "") },
		"cut short":           func() (Payment, error) { return s.Open("code-store", id[:len(id)-4]) },
		"a transaction's id":  func() (Payment, error) { return s.Open("code-store", "order-1042") },
		"too long to be one":  func() (Payment, error) { return s.Open("code-store", strings.Repeat("A", 400)) },
		"another version tag": func() (Payment, error) { return s.Open("code-store", "B"+id[1:]) },
	} {
		if p, err := open(); !errors.Is(err, ErrUnknown) || p != (Payment{}) {
			t.Errorf("%s: %+v, %v; want ErrUnknown", name, p, err)
		}
	}
}

// FuzzPaymentID: a sealed id with any one byte changed, or any string at all, either does not
// open or opens to exactly the payment sealed: an id never routes to another card.
func FuzzPaymentID(f *testing.F) {
	f.Add("gzNcUY7KgaoXOFX_qNg2gQ", "order-1", int64(100), uint(10), byte(1), "")
	f.Add("AAAAAAAAAAAAAAAAAAAAAA", "x", int64(0), uint(0), byte(0x80), "AQ")
	f.Add("gzNcUY7KgaoXOFX_qNg2gQ", strings.Repeat("z", 64), int64(100_000_000_000), uint(170), byte(0xff), "garbage")
	s := sealer(f)
	f.Fuzz(func(t *testing.T, token, tx string, amount int64, at uint, flip byte, garbage string) {
		if p, err := s.Open("code-store", garbage); err == nil {
			t.Fatalf("garbage %q opened to %+v", garbage, p)
		}
		p := Payment{CardToken: token, TransactionID: tx, AmountCents: amount, DecidedAtUnixUs: 1795602454530123, Approved: amount%2 == 0}
		id, err := s.Seal("code-store", p)
		if err != nil {
			return // not a token, or a negative amount: never sealed
		}
		raw, _ := base64.RawURLEncoding.DecodeString(id)
		raw[int(at)%len(raw)] ^= flip
		got, err := s.Open("code-store", base64.RawURLEncoding.EncodeToString(raw))
		switch {
		case flip == 0 && (err != nil || got != p):
			t.Fatalf("the id unchanged opened to %+v, %v; want %+v", got, err, p)
		case flip != 0 && err == nil:
			t.Fatalf("an altered id opened to %+v", got)
		}
	})
}

// BenchmarkPaymentID is what a payment id costs the ingress: sealed for every Authorize, opened
// for every reversal and refund.
func BenchmarkPaymentID(b *testing.B) {
	s := sealer(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		id, err := s.Seal("code-store", payment)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Open("code-store", id); err != nil {
			b.Fatal(err)
		}
	}
}
