package authorizer

import (
	"slices"
	"time"

	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// DefaultKeep is how many of a card's latest outcomes its account remembers, so that a
// redelivered or retried request with the same transaction id is answered with its original
// outcome instead of being charged again.
const DefaultKeep = 128

// DefaultKeepFor is how long outcomes are remembered at most.
const DefaultKeepFor = 24 * time.Hour

// DefaultLockAfter is how many failed verifications within the lockout's window
// (DefaultLockWindow) block a card.
const DefaultLockAfter = 5

// Policy is what Record keeps of a decision.
type Policy struct {
	// Keep is how many outcomes a card remembers, and KeepFor for how long at most.
	Keep    int
	KeepFor time.Duration
	// LockAfter is how many failed verifications (expiry, CVV or holder name, by payments or
	// VerifyCard) within LockWindow block the card; 0 never does. At most MaxLockAfter.
	LockAfter int
	// LockWindow is how long a failed verification counts (0: DefaultLockWindow).
	LockWindow time.Duration
}

// DefaultPolicy is the policy of New's defaults.
var DefaultPolicy = Policy{Keep: DefaultKeep, KeepFor: DefaultKeepFor, LockAfter: DefaultLockAfter, LockWindow: DefaultLockWindow}

// Kind says how a payment request relates to the outcomes its card remembers.
type Kind int

const (
	// Fresh requests are decided now.
	Fresh Kind = iota
	// Duplicate requests repeat the transaction id and the parameters of a remembered outcome:
	// that outcome is the answer, and nothing is charged again.
	Duplicate
	// Conflict requests repeat the transaction id of a remembered outcome with other parameters
	// (amount, store, description or channel): refused, nothing is decided or charged.
	Conflict
	// Unverified requests repeat the transaction id of a remembered outcome with card data that
	// is not the card's: rejected with the failed check's reason, a failure counted toward the
	// lockout (RecordUnverified), neither remembered nor published (the id's outcome stands for
	// the original payment).
	Unverified
)

// Decide returns the bank's decision on a payment request, with fingerprint fp, for an account
// which is nil when the card does not exist. It changes nothing.
//
// When the account remembers an outcome for fp.ID, the card data is checked first: data that
// is not the card's gets a rejection and Unverified, whatever the remembered outcome. Right
// data gets that outcome and Duplicate if the parameters match (even on a card blocked since),
// or a bare outcome (the request's transaction id, amount and times) and Conflict if they do
// not. Otherwise the checks run in this order: unknown card, expiry not the card's, CVV, holder
// name, then (the data proven right) blocked card, card expired at the time of the request,
// available credit: a blocked or expired card says so only to whoever proves its data.
func Decide(a *eventsv1.Account, r *eventsv1.PaymentRequested, fp Fingerprint, now time.Time) (*eventsv1.Outcome, Kind) {
	if prev, ok := findOutcome(a, fp.ID); ok {
		if reason := unverifiedPayment(a, r); reason != eventsv1.RejectReason_REJECT_REASON_UNSPECIFIED {
			return &eventsv1.Outcome{TransactionId: r.GetTransactionId(), Status: eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED, Reason: reason,
				AmountCents: r.GetAmountCents(), AvailableCents: Available(a), DecidedAtUnixUs: now.UnixMicro(), RequestedAtUnixUs: r.GetRequestedAtUnixUs()}, Unverified
		}
		if prev.fp.Params != fp.Params || prev.amountCents != r.GetAmountCents() {
			return &eventsv1.Outcome{TransactionId: r.GetTransactionId(), AmountCents: r.GetAmountCents(),
				DecidedAtUnixUs: now.UnixMicro(), RequestedAtUnixUs: r.GetRequestedAtUnixUs()}, Conflict
		}
		return prev.outcome(r.GetTransactionId()), Duplicate
	}
	out := &eventsv1.Outcome{
		TransactionId:     r.GetTransactionId(),
		Status:            eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED,
		AmountCents:       r.GetAmountCents(),
		AvailableCents:    Available(a),
		DecidedAtUnixUs:   now.UnixMicro(),
		RequestedAtUnixUs: r.GetRequestedAtUnixUs(),
	}
	requestedAt := time.UnixMicro(r.GetRequestedAtUnixUs())
	exp := card.Expiry{Month: int(a.GetExpiryMonth()), Year: int(a.GetExpiryYear())}
	var failed eventsv1.RejectReason
	if a != nil {
		failed = unverifiedPayment(a, r)
	}
	switch {
	case a == nil:
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND
	case failed != eventsv1.RejectReason_REJECT_REASON_UNSPECIFIED:
		out.Reason = failed
	case a.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED:
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_BLOCKED
	case exp.Expired(requestedAt):
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_EXPIRED
	case r.GetAmountCents() <= 0 || r.GetAmountCents() > Available(a):
		out.Reason = eventsv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT
	default:
		out.Status = eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED
		out.AvailableCents = Available(a) - r.GetAmountCents()
	}
	return out, Fresh
}

// Unavailable returns the decision on a payment request for a card whose account cannot be
// read: rejected, charging nothing. The card fails closed until its account is repaired.
func Unavailable(r *eventsv1.PaymentRequested, now time.Time) *eventsv1.Outcome {
	return &eventsv1.Outcome{
		TransactionId: r.GetTransactionId(), Status: eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED,
		Reason: eventsv1.RejectReason_REJECT_REASON_ACCOUNT_UNAVAILABLE, AmountCents: r.GetAmountCents(),
		DecidedAtUnixUs: now.UnixMicro(), RequestedAtUnixUs: r.GetRequestedAtUnixUs(),
	}
}

// Record applies a fresh outcome of a request with fingerprint fp to its account: an approved
// amount is charged and counted; a failed verification is counted, and blocks the card at
// p.LockAfter within p.LockWindow (lockout.go); and the outcome is remembered, keeping at most
// p.Keep outcomes and none decided more than p.KeepFor before it.
func Record(a *eventsv1.Account, out *eventsv1.Outcome, fp Fingerprint, p Policy) {
	switch {
	case out.GetStatus() == eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED:
		a.UsedCents += out.GetAmountCents()
		a.Approvals++
	case VerificationFailed(out.GetReason()):
		recordFailure(a, out.GetDecidedAtUnixUs(), p)
	}
	a.Outcomes = appendOutcome(a.Outcomes, out, fp, p.Keep, out.GetDecidedAtUnixUs()-p.KeepFor.Microseconds())
}

// VerificationFailed reports whether a rejection says that the card data given is not the
// card's: the failures that count toward the lockout, and that merchants are told only as
// REJECT_REASON_DO_NOT_HONOR.
func VerificationFailed(r eventsv1.RejectReason) bool {
	switch r {
	case eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH, eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH,
		eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH:
		return true
	}
	return false
}

// RecordUnverified applies an Unverified outcome to its account: the failed verification is
// counted toward the lockout; nothing is remembered or charged.
func RecordUnverified(a *eventsv1.Account, out *eventsv1.Outcome, p Policy) {
	recordFailure(a, out.GetDecidedAtUnixUs(), p)
}

// Verify returns whether a verify command proves the card (an active card, its expiry, not
// expired at now, and a CVV that matched under the card's own key), and applies the answer to
// the account as a payment's verification would be: data that is not the card's counts toward
// the lockout. A blocked card is never proven, and its count is left as it is.
func Verify(a *eventsv1.Account, v *eventsv1.VerifyCard, now time.Time, p Policy) bool {
	if a.GetStatus() != eventsv1.CardStatus_CARD_STATUS_ACTIVE {
		return false
	}
	if v.GetExpiryMonth() != a.GetExpiryMonth() || v.GetExpiryYear() != a.GetExpiryYear() ||
		!slices.Contains(v.GetCvvKeyIds(), a.GetCardKeyId()) {
		recordFailure(a, now.UnixMicro(), p)
		return false
	}
	exp := card.Expiry{Month: int(a.GetExpiryMonth()), Year: int(a.GetExpiryYear())}
	return !exp.Expired(now)
}

// Available returns the credit left on an account; 0 for nil.
func Available(a *eventsv1.Account) int64 {
	if a == nil {
		return 0
	}
	return a.GetLimitCents() - a.GetUsedCents()
}
