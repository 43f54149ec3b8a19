package card

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"
)

func TestValidateNumber(t *testing.T) {
	tests := []struct {
		number string
		want   error
	}{
		{"4111111111111111", nil},
		{"5454545454545454", nil},
		{"4111111111111112", ErrNumberLuhn},
		{"411111111111111", ErrNumberLength},
		{"41111111111111111", ErrNumberLength},
		{"4111a11111111111", ErrNumberDigits},
		{"", ErrNumberLength},
	}
	for _, tt := range tests {
		if got := ValidateNumber(tt.number); got != tt.want {
			t.Errorf("ValidateNumber(%q) = %v, want %v", tt.number, got, tt.want)
		}
	}
}

func TestNewNumber(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		n, err := NewNumber(DefaultBIN)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateNumber(n); err != nil {
			t.Fatalf("NewNumber() = %q: %v", n, err)
		}
		if n[:6] != DefaultBIN {
			t.Fatalf("NewNumber() = %q, want prefix %s", n, DefaultBIN)
		}
		seen[n] = true
	}
	if len(seen) < 990 {
		t.Errorf("NewNumber gave only %d distinct numbers in 1000", len(seen))
	}
	if _, err := NewNumber("12a"); err == nil {
		t.Error("NewNumber(\"12a\") succeeded, want error")
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"4111111111111111": "411111******1111",
		"12345":            "*2345",
		"123":              "***",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// testSecret is 32 bytes long; the tests derive every key from it.
const testSecret = "0123456789abcdef0123456789abcdef"

func testKeys(t testing.TB, cardKeys ...CardKey) Keys {
	t.Helper()
	if cardKeys == nil {
		cardKeys = []CardKey{{ID: "k1", Secret: []byte("card key one, 32 bytes or longer!")}}
	}
	k, err := NewKeys([]byte(testSecret), cardKeys...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestKeys(t *testing.T) {
	long := []byte(testSecret)
	for _, bad := range []struct {
		token []byte
		cards []CardKey
	}{
		{[]byte("short"), nil},
		{long, []CardKey{{ID: "k1", Secret: []byte("short")}}},
		{long, []CardKey{{ID: "", Secret: []byte("card key one, 32 bytes or longer!")}}},
		{long, []CardKey{{ID: "k 1", Secret: []byte("card key one, 32 bytes or longer!")}}},
		{long, []CardKey{{ID: "k1", Secret: []byte("card key one, 32 bytes or longer!")}, {ID: "k1", Secret: []byte("card key two, 32 bytes or longer!")}}},
		{long, []CardKey{{ID: "k1", Secret: long}}},
	} {
		if _, err := NewKeys(bad.token, bad.cards...); err == nil {
			t.Errorf("NewKeys(%q, %v) accepted bad keys", bad.token, bad.cards)
		}
	}
	k := testKeys(t)
	other, err := NewKeys([]byte("another tokenization key, 32 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	exp := Expiry{Month: 11, Year: 2031}
	cvv, ok := k.CVV("k1", "4111111111111111", exp)
	if !ok || len(cvv) != 3 {
		t.Fatalf("CVV = %q, %v, want 3 digits", cvv, ok)
	}
	if ids := k.MatchCVV("4111111111111111", exp, cvv); !slices.Equal(ids, []string{"k1"}) {
		t.Errorf("MatchCVV of the CVV it derived = %v, want [k1]", ids)
	}
	if other, _ := k.CVV("k1", "4111111111111111", Expiry{Month: 12, Year: 2031}); other != cvv && k.MatchCVV("4111111111111111", Expiry{Month: 12, Year: 2031}, cvv) != nil {
		t.Error("MatchCVV accepted a CVV for another expiry")
	}
	if _, ok := other.CVV("k1", "4111111111111111", exp); ok || other.MatchCVV("4111111111111111", exp, cvv) != nil || other.CardKeyID() != "" {
		t.Error("Keys without card keys derived a CVV")
	}
	if k.Token("4111111111111111") != k.Token("4111111111111111") || !ValidToken(k.Token("4111111111111111")) {
		t.Error("Token is not stable, or not valid")
	}
	if k.Token("4111111111111111") == other.Token("4111111111111111") {
		t.Error("Token does not depend on the tokenization key")
	}
	if k.Token("4111111111111111") == k.Token("5454545454545454") {
		t.Error("two numbers share a token")
	}
	for _, s := range []string{"", "gzNcUY7KgaoXOFX_qNg2g", "gzNcUY7KgaoXOFX_qNg2g!", "4111111111111111"} {
		if ValidToken(s) {
			t.Errorf("ValidToken(%q)", s)
		}
	}
}

// TestCardKeyRotation: cards issued under an older card key keep verifying once a new key is
// current, and only under their own key.
func TestCardKeyRotation(t *testing.T) {
	k1 := CardKey{ID: "2026-01", Secret: []byte("the first card key, 32 bytes long")}
	k2 := CardKey{ID: "2026-07", Secret: []byte("the second card key, 32 bytes long")}
	before := testKeys(t, k1)
	after := testKeys(t, k2, k1)
	if before.CardKeyID() != "2026-01" || after.CardKeyID() != "2026-07" {
		t.Fatalf("current keys %q, %q", before.CardKeyID(), after.CardKeyID())
	}
	exp := Expiry{Month: 3, Year: 2030}
	for i := range 50 {
		number, _ := NewNumber(DefaultBIN)
		old, _ := before.CVV(before.CardKeyID(), number, exp)
		if got, _ := after.CVV("2026-01", number, exp); got != old {
			t.Fatalf("card %d: the old key derives %s after the rotation, %s before", i, got, old)
		}
		if ids := after.MatchCVV(number, exp, old); !slices.Contains(ids, "2026-01") {
			t.Fatalf("card %d: its CVV under the old key matches %v after the rotation", i, ids)
		}
		cvv, _ := after.CVV(after.CardKeyID(), number, exp)
		if ids := after.MatchCVV(number, exp, cvv); !slices.Contains(ids, "2026-07") {
			t.Fatalf("card %d: a new card's CVV matches %v", i, ids)
		}
		if ids := before.MatchCVV(number, exp, cvv); len(ids) > 0 && cvv != old {
			t.Fatalf("card %d: the new key's CVV matches %v under the old keys alone", i, ids)
		}
	}
}

func TestParseCardKeys(t *testing.T) {
	got, err := ParseCardKeys("k2:second-secret, k1:first-secret\n# a comment\nk0: zeroth")
	if err != nil {
		t.Fatal(err)
	}
	want := []CardKey{{"k2", []byte("second-secret")}, {"k1", []byte("first-secret")}, {"k0", []byte("zeroth")}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseCardKeys = %q, want %q", got, want)
	}
	for _, bad := range []string{"", " , ", "no-colon"} {
		if _, err := ParseCardKeys(bad); err == nil {
			t.Errorf("ParseCardKeys(%q) accepted it", bad)
		}
	}
}

func TestExpiry(t *testing.T) {
	e := Expiry{Month: 11, Year: 2026}
	tests := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		if got := e.Expired(tt.at); got != tt.want {
			t.Errorf("%v.Expired(%v) = %v, want %v", e, tt.at, got, tt.want)
		}
	}
	if NormalizeYear(26) != 2026 || NormalizeYear(2031) != 2031 {
		t.Error("NormalizeYear")
	}
	if e.String() != "11/26" {
		t.Errorf("String() = %q", e.String())
	}
}

func TestNormalizeHolder(t *testing.T) {
	if NormalizeHolder("  maria  da Silva ") != NormalizeHolder("MARIA DA SILVA") {
		t.Error("NormalizeHolder does not fold case and spaces")
	}
	names := []string{"", " ", "MARIA DA SILVA", "  maria  da Silva ", "maria da silva", "MARIA DA SILV",
		"MARIA DASILVA", "MARIA DA SILVA X", "maria\tda\nsilva", "josé müller", "JOSÉ MÜLLER", "JOSE MULLER",
		"\u00a0ana\u2003lee\u00a0", "ANA LEE", "ana lee\xff", "ANA LEE\xfe", "A", "a ", "ǆ", "Ǆ", "ǅ", "ß", "SS"}
	for _, a := range names {
		for _, b := range names {
			if got, want := SameHolder(a, b), NormalizeHolder(a) == NormalizeHolder(b); got != want {
				t.Errorf("SameHolder(%q, %q) = %v, NormalizeHolder says %v", a, b, got, want)
			}
		}
	}
}

func FuzzSameHolder(f *testing.F) {
	f.Add("maria  da Silva", "MARIA DA SILVA")
	f.Add("ana\xff", "ANA\xfe")
	f.Fuzz(func(t *testing.T, a, b string) {
		if got, want := SameHolder(a, b), NormalizeHolder(a) == NormalizeHolder(b); got != want {
			t.Errorf("SameHolder(%q, %q) = %v, NormalizeHolder says %v", a, b, got, want)
		}
	})
}

// TestKeysDerivationIsStable pins the token and CVV derivation: cards already issued keep their
// CVV and their statements and analytics their token. The golden values were derived by the
// first implementation; the reference below is that implementation, written plainly.
func TestKeysDerivationIsStable(t *testing.T) {
	// The golden values were derived under a 20-byte secret, before 32 bytes were the least.
	secret := []byte("0123456789abcdef0123")
	k := Keys{token: newMACPool(secret), cards: []cardKey{{id: "k1", mac: newMACPool(secret)}}}
	for _, g := range []struct {
		number, token, cvvNov31, cvvJan30 string
	}{
		{"4111111111111111", "gzNcUY7KgaoXOFX_qNg2gQ", "192", "363"},
		{"5454545454545454", "JIpE73r2AbZTSYgxNyjxeA", "210", "190"},
	} {
		if got := k.Token(g.number); got != g.token {
			t.Errorf("Token(%s) = %q, want %q", g.number, got, g.token)
		}
		if got, _ := k.CVV("k1", g.number, Expiry{Month: 11, Year: 2031}); got != g.cvvNov31 {
			t.Errorf("CVV(%s, 11/2031) = %q, want %q", g.number, got, g.cvvNov31)
		}
		if got, _ := k.CVV("k1", g.number, Expiry{Month: 1, Year: 2030}); got != g.cvvJan30 {
			t.Errorf("CVV(%s, 01/2030) = %q, want %q", g.number, got, g.cvvJan30)
		}
	}

	ref := func(domain string, parts ...string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(domain))
		for _, p := range parts {
			m.Write([]byte{0})
			m.Write([]byte(p))
		}
		return m.Sum(nil)
	}
	// Concurrent callers share the pool of HMAC states; every answer must match the reference.
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				number, _ := NewNumber(DefaultBIN)
				exp := Expiry{Month: 1 + (i+w)%12, Year: 2026 + i%30}
				wantToken := base64.RawURLEncoding.EncodeToString(ref("card-token", number)[:16])
				wantCVV := fmt.Sprintf("%03d", binary.BigEndian.Uint32(ref("cvv", number, fmt.Sprintf("%02d/%04d", exp.Month, exp.Year))[:4])%1000)
				if got := k.Token(number); got != wantToken {
					t.Errorf("Token(%s) = %q, want %q", number, got, wantToken)
					return
				}
				if got, _ := k.CVV("k1", number, exp); got != wantCVV {
					t.Errorf("CVV(%s, %v) = %q, want %q", number, exp, got, wantCVV)
					return
				}
				if k.MatchCVV(number, exp, wantCVV) == nil || k.MatchCVV(number, exp, wantCVV+"0") != nil || k.MatchCVV(number, exp, "") != nil {
					t.Errorf("MatchCVV(%s, %v) disagrees with CVV %s", number, exp, wantCVV)
					return
				}
			}
		})
	}
	wg.Wait()
}

func BenchmarkKeys(b *testing.B) {
	k := testKeys(b)
	exp := Expiry{Month: 11, Year: 2031}
	cvv, _ := k.CVV("k1", "5454545454545454", exp)
	b.Run("Token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			k.Token("5454545454545454")
		}
	})
	b.Run("MatchCVV", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if k.MatchCVV("5454545454545454", exp, cvv) == nil {
				b.Fatal("MatchCVV rejected the card's CVV")
			}
		}
	})
}

// TestRedactFreeText: a card number in free text is masked however it is written (whole, in
// groups of spaces or dashes, inside a longer text of numbers); numbers that are no card number
// are left alone.
func TestRedactFreeText(t *testing.T) {
	for in, want := range map[string]string{
		"Pedido 4111111111111111":               "Pedido 411111******1111",
		"card 4111 1111 1111 1111 thanks":       "card 4111 11** **** 1111 thanks",
		"4111-1111-1111-1111":                   "4111-11**-****-1111",
		"4111 - 1111 - 1111 - 1111":             "4111 - 11** - **** - 1111",
		"Order 2026 4111 1111 1111 1111":        "Order 2026 4111 11** **** 1111",
		"Amex 3782 822463 10005":                "Amex 378* ****** **005",
		"19 digits 4111111111111111110":         "19 digits 4111***********1110",
		"order 2026-000123":                     "order 2026-000123",
		"numeric order id 123456789012":         "numeric order id 123456789012",
		"4111 1111 1111 1112 (Luhn fails)":      "4111 1111 1111 1112 (Luhn fails)",
		"4111    1111 1111 1111 (apart)":        "4111    1111 1111 1111 (apart)",
		"Produtos: caneca x2, livro x1":         "Produtos: caneca x2, livro x1",
		"MARIA 5454 5406 8756 8555 SILVA":       "MARIA 5454 54** **** 8555 SILVA",
		"twenty digits 12345678901234567890":    "twenty digits 12345***********7890",
		"ids 4111111111111111/5454540687568555": "ids 411111******1111/545454******8555",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
