package authorizer

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

var testKeys = func() card.Keys {
	k, err := card.NewKeys([]byte("a test tokenization key of the bank"))
	if err != nil {
		panic(err)
	}
	return k
}()

func fp(r *eventsv1.PaymentRequested) Fingerprint { return FingerprintOf(testKeys, r) }

func testAccount() *eventsv1.Account {
	return &eventsv1.Account{HolderName: "Maria Silva", LimitCents: 10000, UsedCents: 2000, Currency: "BRL",
		ExpiryMonth: 11, ExpiryYear: 2030, Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE, MaskedNumber: "411111******1111", CardKeyId: "k1"}
}

func testRequest() *eventsv1.PaymentRequested {
	return &eventsv1.PaymentRequested{TransactionId: "tx-1", HolderName: "MARIA SILVA", ExpiryMonth: 11, ExpiryYear: 2030,
		CvvKeyIds: []string{"k1"}, AmountCents: 5000, Store: "Centro", Description: "book", RequestedAtUnixUs: now.UnixMicro(),
		MaskedNumber: "411111******1111", MerchantId: "code-store", MerchantName: "Code Store"}
}

func TestDecide(t *testing.T) {
	const (
		approved = eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED
		rejected = eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED
	)
	tests := []struct {
		name          string
		account       func(*eventsv1.Account) *eventsv1.Account
		request       func(*eventsv1.PaymentRequested)
		wantStatus    eventsv1.PaymentStatus
		wantReason    eventsv1.RejectReason
		wantAvailable int64
	}{
		{"within limit", nil, nil, approved, 0, 3000},
		{"exactly the available credit", nil, func(r *eventsv1.PaymentRequested) { r.AmountCents = 8000 }, approved, 0, 0},
		{"one cent over", nil, func(r *eventsv1.PaymentRequested) { r.AmountCents = 8001 }, rejected, eventsv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT, 8000},
		{"zero amount", nil, func(r *eventsv1.PaymentRequested) { r.AmountCents = 0 }, rejected, eventsv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT, 8000},
		{"unknown card", func(*eventsv1.Account) *eventsv1.Account { return nil }, nil, rejected, eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND, 0},
		{"blocked", func(a *eventsv1.Account) *eventsv1.Account {
			a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
			return a
		}, nil, rejected, eventsv1.RejectReason_REJECT_REASON_CARD_BLOCKED, 8000},
		{"wrong expiry month", nil, func(r *eventsv1.PaymentRequested) { r.ExpiryMonth = 10 }, rejected, eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH, 8000},
		{"wrong expiry year", nil, func(r *eventsv1.PaymentRequested) { r.ExpiryYear = 2031 }, rejected, eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH, 8000},
		{"expired", func(a *eventsv1.Account) *eventsv1.Account { a.ExpiryMonth, a.ExpiryYear = 10, 2026; return a },
			func(r *eventsv1.PaymentRequested) { r.ExpiryMonth, r.ExpiryYear = 10, 2026 }, rejected, eventsv1.RejectReason_REJECT_REASON_CARD_EXPIRED, 8000},
		{"valid through its expiry month", func(a *eventsv1.Account) *eventsv1.Account { a.ExpiryMonth, a.ExpiryYear = 11, 2026; return a },
			func(r *eventsv1.PaymentRequested) { r.ExpiryMonth, r.ExpiryYear = 11, 2026 }, approved, 0, 3000},
		{"cvv mismatch", nil, func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = nil }, rejected, eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, 8000},
		{"cvv of another card key", nil, func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = []string{"k0", "k2"} }, rejected, eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, 8000},
		{"cvv matching under the card's key among others", nil, func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = []string{"k2", "k1"} }, approved, 0, 3000},
		{"holder mismatch", nil, func(r *eventsv1.PaymentRequested) { r.HolderName = "Mario Silva" }, rejected, eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH, 8000},
		{"holder case and spaces do not matter", nil, func(r *eventsv1.PaymentRequested) { r.HolderName = "  maria   silva " }, approved, 0, 3000},
		{"blocked wins over insufficient credit", func(a *eventsv1.Account) *eventsv1.Account {
			a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
			return a
		},
			func(r *eventsv1.PaymentRequested) { r.AmountCents = 1e6 }, rejected, eventsv1.RejectReason_REJECT_REASON_CARD_BLOCKED, 8000},
		// A blocked or expired card says so only to whoever proves its data: to anyone else it is
		// a wrong CVV, expiry or holder like any other (DO_NOT_HONOR to merchants).
		{"blocked, wrong CVV", func(a *eventsv1.Account) *eventsv1.Account {
			a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
			return a
		}, func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = nil }, rejected, eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, 8000},
		{"blocked, wrong expiry", func(a *eventsv1.Account) *eventsv1.Account {
			a.Status, a.BlockReason = eventsv1.CardStatus_CARD_STATUS_BLOCKED, eventsv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES
			return a
		}, func(r *eventsv1.PaymentRequested) { r.ExpiryYear = 2031 }, rejected, eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH, 8000},
		{"blocked, wrong holder", func(a *eventsv1.Account) *eventsv1.Account {
			a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
			return a
		}, func(r *eventsv1.PaymentRequested) { r.HolderName = "Mario Silva" }, rejected, eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH, 8000},
		{"expired, wrong CVV", func(a *eventsv1.Account) *eventsv1.Account { a.ExpiryMonth, a.ExpiryYear = 10, 2026; return a },
			func(r *eventsv1.PaymentRequested) { r.ExpiryMonth, r.ExpiryYear, r.CvvKeyIds = 10, 2026, nil }, rejected, eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, 8000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := testAccount()
			if tt.account != nil {
				a = tt.account(a)
			}
			r := testRequest()
			if tt.request != nil {
				tt.request(r)
			}
			before := fmt.Sprint(a)
			out, kind := Decide(a, r, fp(r), now)
			if kind != Fresh {
				t.Fatalf("kind = %v, want Fresh", kind)
			}
			if out.GetStatus() != tt.wantStatus || out.GetReason() != tt.wantReason || out.GetAvailableCents() != tt.wantAvailable {
				t.Errorf("Decide() = %v %v available %d; want %v %v available %d", out.GetStatus(), out.GetReason(), out.GetAvailableCents(), tt.wantStatus, tt.wantReason, tt.wantAvailable)
			}
			if out.GetTransactionId() != r.GetTransactionId() || out.GetAmountCents() != r.GetAmountCents() || out.GetDecidedAtUnixUs() != now.UnixMicro() {
				t.Errorf("Decide() = %v, want it to carry the request's id, amount and the decision time", out)
			}
			if after := fmt.Sprint(a); after != before {
				t.Errorf("Decide changed the account: %s, was %s", after, before)
			}
		})
	}
}

func TestRecordAndDuplicates(t *testing.T) {
	a := testAccount()
	r := testRequest()
	out, _ := Decide(a, r, fp(r), now)
	Record(a, out, fp(r), DefaultPolicy)
	if a.GetUsedCents() != 7000 || a.GetApprovals() != 1 {
		t.Fatalf("used = %d, approvals = %d after approval, want 7000, 1", a.GetUsedCents(), a.GetApprovals())
	}
	again, kind := Decide(a, r, fp(r), now.Add(time.Second))
	if kind != Duplicate || !proto.Equal(again, out) {
		t.Fatalf("Decide(same tx) = %v, %v; want the original outcome, Duplicate", again, kind)
	}
	// A rejected outcome is remembered too and changes no balance.
	r2 := testRequest()
	r2.TransactionId, r2.AmountCents = "tx-2", 999999
	out2, _ := Decide(a, r2, fp(r2), now)
	Record(a, out2, fp(r2), DefaultPolicy)
	if a.GetUsedCents() != 7000 || a.GetApprovals() != 1 {
		t.Fatalf("used = %d, approvals = %d after rejection, want 7000, 1", a.GetUsedCents(), a.GetApprovals())
	}
	if got, kind := Decide(a, r2, fp(r2), now); kind != Duplicate || got.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		t.Fatalf("retry of a rejected tx = %v, %v; want the rejection replayed", got, kind)
	}
}

func TestReusedTransactionID(t *testing.T) {
	a := testAccount()
	r := testRequest()
	out, _ := Decide(a, r, fp(r), now)
	Record(a, out, fp(r), DefaultPolicy)
	tests := []struct {
		name   string
		change func(*eventsv1.PaymentRequested)
		want   Kind
	}{
		{"same parameters", func(*eventsv1.PaymentRequested) {}, Duplicate},
		{"same parameters, a CVV not the card's", func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = nil }, Unverified},
		{"same parameters, a holder not the card's", func(r *eventsv1.PaymentRequested) { r.HolderName = "x" }, Unverified},
		{"same parameters, an expiry not the card's", func(r *eventsv1.PaymentRequested) { r.ExpiryYear++ }, Unverified},
		{"another amount and a CVV not the card's", func(r *eventsv1.PaymentRequested) { r.AmountCents++; r.CvvKeyIds = nil }, Unverified},
		{"same parameters, the holder's name written otherwise", func(r *eventsv1.PaymentRequested) { r.HolderName = " maria  SILVA" }, Duplicate},
		{"same id from another merchant", func(r *eventsv1.PaymentRequested) { r.MerchantId = "other-shop" }, Fresh},
		{"same merchant renamed", func(r *eventsv1.PaymentRequested) { r.MerchantName = "Code Store Ltda" }, Duplicate},
		{"another amount", func(r *eventsv1.PaymentRequested) { r.AmountCents++ }, Conflict},
		{"another store", func(r *eventsv1.PaymentRequested) { r.Store = "Other Store" }, Conflict},
		{"another description", func(r *eventsv1.PaymentRequested) { r.Description = "two books" }, Conflict},
		{"another channel", func(r *eventsv1.PaymentRequested) { r.Channel = eventsv1.Channel_CHANNEL_LEGACY }, Conflict},
		{"another id", func(r *eventsv1.PaymentRequested) { r.TransactionId = "tx-other" }, Fresh},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := testRequest()
			tt.change(r)
			before := fmt.Sprint(a)
			got, kind := Decide(a, r, fp(r), now.Add(time.Minute))
			if kind != tt.want {
				t.Fatalf("kind = %v, want %v", kind, tt.want)
			}
			if kind == Conflict && (got.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED ||
				got.GetTransactionId() != r.GetTransactionId() || got.GetAmountCents() != r.GetAmountCents()) {
				t.Errorf("conflict outcome = %v, want the request's id and amount and no decision", got)
			}
			if kind == Unverified && (got.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED || !VerificationFailed(got.GetReason()) ||
				got.GetTransactionId() != r.GetTransactionId() || got.GetAmountCents() != r.GetAmountCents()) {
				t.Errorf("unverified outcome = %v, want the request's id and amount, rejected for the data", got)
			}
			if after := fmt.Sprint(a); after != before {
				t.Errorf("Decide changed the account")
			}
		})
	}
	// The same id on another card's account is another payment.
	other := testAccount()
	if _, kind := Decide(other, r, fp(r), now); kind != Fresh {
		t.Errorf("same id on another card: kind = %v, want Fresh", kind)
	}
}

func TestFingerprintIsKeyed(t *testing.T) {
	r := testRequest()
	other, err := card.NewKeys([]byte("another tokenization key of another bank"))
	if err != nil {
		t.Fatal(err)
	}
	if FingerprintOf(testKeys, r) == FingerprintOf(other, r) {
		t.Error("two secrets give one fingerprint")
	}
	r2 := testRequest()
	r2.Store = "Other"
	if a, b := FingerprintOf(testKeys, r), FingerprintOf(testKeys, r2); a.ID != b.ID || a.Params == b.Params {
		t.Errorf("fingerprints of one id with two stores: %v, %v; want one ID, two Params", a, b)
	}
}

func TestUnavailable(t *testing.T) {
	r := testRequest()
	out := Unavailable(r, now)
	if out.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED || out.GetReason() != eventsv1.RejectReason_REJECT_REASON_ACCOUNT_UNAVAILABLE ||
		out.GetAmountCents() != r.GetAmountCents() || out.GetAvailableCents() != 0 {
		t.Errorf("Unavailable() = %v", out)
	}
}

func TestRecordBounds(t *testing.T) {
	a := testAccount()
	a.LimitCents = 1e9
	for i := 0; i < 10; i++ {
		r := testRequest()
		r.TransactionId = fmt.Sprint("tx-", i)
		out, _ := Decide(a, r, fp(r), now.Add(time.Duration(i)*time.Hour))
		Record(a, out, fp(r), Policy{Keep: 4, KeepFor: 5 * time.Hour})
	}
	id := func(tx string) [16]byte { r := testRequest(); r.TransactionId = tx; return fp(r).ID }
	kept := rememberedOutcomes(a)
	if len(kept) != 4 {
		t.Fatalf("kept %d outcomes, want 4", len(kept))
	}
	if kept[0].fp.ID != id("tx-6") || kept[3].fp.ID != id("tx-9") || kept[3].amountCents != 5000 || kept[3].status != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Errorf("kept %+v, want tx-6..tx-9", kept)
	}
	// Age bound: a new outcome 10h later drops every older one but itself.
	r := testRequest()
	r.TransactionId = "late"
	out, _ := Decide(a, r, fp(r), now.Add(20*time.Hour))
	Record(a, out, fp(r), Policy{Keep: 4, KeepFor: 5 * time.Hour})
	if kept := rememberedOutcomes(a); len(kept) != 1 || kept[0].fp.ID != id("late") {
		t.Errorf("kept %+v, want only the newest", kept)
	}
	if a.GetUsedCents() != 2000+11*5000 || a.GetApprovals() != 11 {
		t.Errorf("used = %d, approvals = %d; want %d, 11", a.GetUsedCents(), a.GetApprovals(), 2000+11*5000)
	}
}

// TestOutcomesAtTheirBounds: an outcome of the largest amount the bank takes, on an account of
// the largest limit, is remembered and replayed exactly.
func TestOutcomesAtTheirBounds(t *testing.T) {
	a := testAccount()
	a.LimitCents, a.UsedCents = money.MaxCents, 0
	for _, amount := range []int64{money.MaxCents, 1} {
		r := testRequest()
		r.TransactionId, r.AmountCents, r.RequestedAtUnixUs = fmt.Sprint("tx-", amount), amount, 1
		out, _ := Decide(a, r, fp(r), now)
		Record(a, out, fp(r), DefaultPolicy)
		again, kind := Decide(a, r, fp(r), now.Add(time.Hour))
		if kind != Duplicate || !proto.Equal(again, out) {
			t.Errorf("replay of %v = %v, %v", out, again, kind)
		}
	}
	if a.GetUsedCents() != money.MaxCents {
		t.Errorf("used %d, want %d", a.GetUsedCents(), money.MaxCents)
	}
}

// TestLockout: failed verifications within the window block the card at the limit; nothing
// that proves the card's data takes a failure back (an approval, a rejection for credit, a
// verification), failures older than the window no longer count, and the account keeps no more
// failure times than the limit; a blocked card is not counted by VerifyCard; VerifyCard counts
// like payments.
func TestLockout(t *testing.T) {
	p := Policy{Keep: DefaultKeep, KeepFor: DefaultKeepFor, LockAfter: 3, LockWindow: time.Hour}
	a := testAccount()
	n := 0
	pay := func(at time.Time, change func(*eventsv1.PaymentRequested)) *eventsv1.Outcome {
		t.Helper()
		n++
		r := testRequest()
		r.TransactionId, r.RequestedAtUnixUs, r.AmountCents = fmt.Sprint("tx-", n), at.UnixMicro(), 1
		if change != nil {
			change(r)
		}
		out, kind := Decide(a, r, fp(r), at)
		if kind != Fresh {
			t.Fatalf("%s: kind %v", r.TransactionId, kind)
		}
		Record(a, out, fp(r), p)
		return out
	}
	badCVV := func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = nil }
	pay(now, badCVV)
	pay(now.Add(time.Minute), func(r *eventsv1.PaymentRequested) { r.ExpiryMonth = 1 })
	if got := Failures(a, now.Add(time.Minute), p); got != 2 {
		t.Fatalf("failures = %d, want 2", got)
	}
	if out := pay(now.Add(2*time.Minute), nil); out.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("the card's own data = %v, want approved", out)
	}
	pay(now.Add(3*time.Minute), func(r *eventsv1.PaymentRequested) { r.AmountCents = 1e6 }) // short of credit: the data proved right
	if got := Failures(a, now.Add(3*time.Minute), p); got != 2 {
		t.Fatalf("failures = %d after an approval and a rejection for credit, want still 2", got)
	}
	// The window slides: an hour after the first failure, it no longer counts.
	pay(now.Add(time.Hour), func(r *eventsv1.PaymentRequested) { r.HolderName = "Someone Else" })
	if a.GetStatus() != eventsv1.CardStatus_CARD_STATUS_ACTIVE || Failures(a, now.Add(time.Hour), p) != 2 {
		t.Fatalf("an hour later: %v with %d failures; want active, 2 (the first out of the window)", a.GetStatus(), Failures(a, now.Add(time.Hour), p))
	}
	pay(now.Add(time.Hour+30*time.Second), badCVV)
	if a.GetStatus() != eventsv1.CardStatus_CARD_STATUS_BLOCKED || a.GetBlockReason() != eventsv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES {
		t.Fatalf("after 3 failures within the hour: %v %v, want blocked for verification failures", a.GetStatus(), a.GetBlockReason())
	}
	if out := pay(now.Add(time.Hour+2*time.Minute), nil); out.GetReason() != eventsv1.RejectReason_REJECT_REASON_CARD_BLOCKED {
		t.Errorf("the right data on a locked card: %v; want CARD_BLOCKED", out.GetReason())
	}
	if out := pay(now.Add(time.Hour+3*time.Minute), badCVV); out.GetReason() != eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH {
		t.Errorf("a wrong CVV on a locked card: %v; want CVV_MISMATCH (DO_NOT_HONOR to merchants), never CARD_BLOCKED", out.GetReason())
	}
	if len(a.GetVerifyFailureTimes()) > p.LockAfter {
		t.Errorf("the account keeps %d failure times, want at most %d", len(a.GetVerifyFailureTimes()), p.LockAfter)
	}
	clearFailures(a)
	if Failures(a, now.Add(time.Hour+3*time.Minute), p) != 0 {
		t.Error("failures left after an unblock")
	}

	// A guesser's wrong CVVs interleaved with the card's own approvals: 32 wrong, 8 right, in
	// an hour, at the default policy. The card is blocked at the 5th wrong one.
	g := testAccount()
	g.LimitCents = 1e9
	blockedAt := 0
	for i := range 40 {
		r := testRequest()
		r.TransactionId, r.AmountCents = fmt.Sprint("g-", i), 1
		at := now.Add(time.Duration(i) * time.Minute)
		r.RequestedAtUnixUs = at.UnixMicro()
		if i%5 != 4 {
			r.CvvKeyIds = nil
		}
		out, _ := Decide(g, r, fp(r), at)
		Record(g, out, fp(r), DefaultPolicy)
		if blockedAt == 0 && g.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED {
			blockedAt = i + 1
		}
	}
	if blockedAt != 6 { // wrong, wrong, wrong, wrong, right, wrong
		t.Errorf("interleaved with approvals, the card was blocked at request %d, want 6 (the 5th wrong CVV)", blockedAt)
	}
	if len(g.GetVerifyFailureTimes()) > DefaultLockAfter {
		t.Errorf("the account keeps %d failure times, want at most %d", len(g.GetVerifyFailureTimes()), DefaultLockAfter)
	}

	// Lockout off: nothing blocks, and the account still keeps a bounded number of times.
	off := testAccount()
	for i := range 50 {
		r := testRequest()
		r.TransactionId, r.CvvKeyIds = fmt.Sprint("o-", i), nil
		out, _ := Decide(off, r, fp(r), now)
		Record(off, out, fp(r), Policy{Keep: 4, KeepFor: time.Hour})
	}
	if off.GetStatus() != eventsv1.CardStatus_CARD_STATUS_ACTIVE || len(off.GetVerifyFailureTimes()) != DefaultLockAfter {
		t.Errorf("lockout off: %v with %d failure times kept; want active, %d", off.GetStatus(), len(off.GetVerifyFailureTimes()), DefaultLockAfter)
	}

	// VerifyCard.
	b := testAccount()
	vp := Policy{LockAfter: 2}
	good := &eventsv1.VerifyCard{ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k1"}}
	if Verify(b, &eventsv1.VerifyCard{ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k2"}}, now, vp) {
		t.Error("Verify proved a CVV of another key")
	}
	if !Verify(b, good, now, vp) || Failures(b, now, vp) != 1 {
		t.Fatalf("Verify of the card's data: failures %d after it, want 1 (a success takes nothing back)", Failures(b, now, vp))
	}
	if Verify(b, &eventsv1.VerifyCard{ExpiryMonth: 12, ExpiryYear: 2030, CvvKeyIds: []string{"k1"}}, now, vp) {
		t.Error("Verify proved another expiry")
	}
	if b.GetStatus() != eventsv1.CardStatus_CARD_STATUS_BLOCKED || Verify(b, good, now, vp) {
		t.Errorf("after 2 failed verifications: %v, and the good data still proves it", b.GetStatus())
	}
	// An expired card's right data proves nothing, and counts nothing.
	c := testAccount()
	c.ExpiryMonth, c.ExpiryYear = 10, 2026
	if Verify(c, &eventsv1.VerifyCard{ExpiryMonth: 10, ExpiryYear: 2026, CvvKeyIds: []string{"k1"}}, now, vp) || Failures(c, now, vp) != 0 {
		t.Errorf("expired card: proven, or failures %d", Failures(c, now, vp))
	}
}

// TestRepeatChecksTheCardFirst: a repeated transaction id is answered with its outcome only
// when the card data proves right, even on a card blocked since; with data that is not the
// card's it is rejected for that data, counted toward the lockout, and the remembered outcome
// is left as it was.
func TestRepeatChecksTheCardFirst(t *testing.T) {
	a := testAccount()
	r := testRequest()
	out, _ := Decide(a, r, fp(r), now)
	Record(a, out, fp(r), DefaultPolicy)
	a.Status, a.BlockReason = eventsv1.CardStatus_CARD_STATUS_BLOCKED, eventsv1.BlockReason_BLOCK_REASON_OPERATOR
	if again, kind := Decide(a, r, fp(r), now.Add(time.Minute)); kind != Duplicate || !proto.Equal(again, out) {
		t.Errorf("the right data again on a card blocked since = %v, %v; want the approval replayed", again, kind)
	}
	wrong := testRequest()
	wrong.CvvKeyIds = nil
	later := now.Add(2 * time.Minute)
	got, kind := Decide(a, wrong, fp(wrong), later)
	if kind != Unverified || got.GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED || got.GetReason() != eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH {
		t.Fatalf("the same id with a wrong CVV = %v, %v; want rejected for the CVV, Unverified", got, kind)
	}
	before := proto.Clone(a).(*eventsv1.Account)
	RecordUnverified(a, got, DefaultPolicy)
	if Failures(a, later, DefaultPolicy) != 1 || !slices.Equal(a.GetOutcomes(), before.GetOutcomes()) || a.GetUsedCents() != before.GetUsedCents() {
		t.Errorf("after the unverified repeat: %d failures, outcomes changed %v, used %d; want 1 failure, nothing else", Failures(a, later, DefaultPolicy),
			!slices.Equal(a.GetOutcomes(), before.GetOutcomes()), a.GetUsedCents())
	}
	if again, kind := Decide(a, r, fp(r), later); kind != Duplicate || !proto.Equal(again, out) {
		t.Errorf("the right data after an unverified repeat = %v, %v; want the approval replayed", again, kind)
	}
}
