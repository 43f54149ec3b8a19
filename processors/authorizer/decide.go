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

// DefaultLockAfter is how many failed verifications in a row block a card.
const DefaultLockAfter = 5

// Policy is what Record keeps of a decision.
type Policy struct {
	// Keep is how many outcomes a card remembers, and KeepFor for how long at most.
	Keep    int
	KeepFor time.Duration
	// LockAfter is how many failed verifications in a row (expiry, CVV or holder name, by
	// payments or VerifyCard) block the card; 0 never does.
	LockAfter int
}

// DefaultPolicy is the policy of New's defaults.
var DefaultPolicy = Policy{Keep: DefaultKeep, KeepFor: DefaultKeepFor, LockAfter: DefaultLockAfter}

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
)

// Decide returns the bank's decision on a payment request, with fingerprint fp, for an account
// which is nil when the card does not exist. It changes nothing.
//
// When the account remembers an outcome for fp.ID, Decide returns that outcome and Duplicate if
// the parameters match, or a bare outcome (the request's transaction id, amount and times) and
// Conflict if they do not. Otherwise the checks run in this order: unknown card, blocked card,
// expiry not the card's, card expired at the time of the request, CVV, holder name, available
// credit.
func Decide(a *eventsv1.Account, r *eventsv1.PaymentRequested, fp Fingerprint, now time.Time) (*eventsv1.Outcome, Kind) {
	if prev, ok := findOutcome(a, fp.ID); ok {
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
	switch {
	case a == nil:
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND
	case a.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED:
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_BLOCKED
	case r.GetExpiryMonth() != a.GetExpiryMonth() || r.GetExpiryYear() != a.GetExpiryYear():
		out.Reason = eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH
	case exp.Expired(requestedAt):
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CARD_EXPIRED
	case !slices.Contains(r.GetCvvKeyIds(), a.GetCardKeyId()):
		out.Reason = eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH
	case !card.SameHolder(r.GetHolderName(), a.GetHolderName()):
		out.Reason = eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH
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
// p.LockAfter in a row, while one that passed (approved, or short of credit) clears the count;
// and the outcome is remembered, keeping at most p.Keep outcomes and none decided more than
// p.KeepFor before it.
func Record(a *eventsv1.Account, out *eventsv1.Outcome, fp Fingerprint, p Policy) {
	switch {
	case out.GetStatus() == eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED:
		a.UsedCents += out.GetAmountCents()
		a.Approvals++
		a.VerifyFailures = 0
	case out.GetReason() == eventsv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT:
		a.VerifyFailures = 0
	case VerificationFailed(out.GetReason()):
		recordFailure(a, p)
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

// recordFailure counts a failed verification and blocks the card when it reaches p.LockAfter.
func recordFailure(a *eventsv1.Account, p Policy) {
	a.VerifyFailures++
	if p.LockAfter > 0 && a.VerifyFailures >= int32(p.LockAfter) && a.GetStatus() == eventsv1.CardStatus_CARD_STATUS_ACTIVE {
		a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
		a.BlockReason = eventsv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES
	}
}

// Verify returns whether a verify command proves the card (an active card, its expiry, not
// expired at now, and a CVV that matched under the card's own key), and applies the answer to
// the account as a payment's verification would be: data that is not the card's counts toward
// the lockout, data that is clears the count. A blocked card is never proven, and its count is
// left as it is.
func Verify(a *eventsv1.Account, v *eventsv1.VerifyCard, now time.Time, p Policy) bool {
	if a.GetStatus() != eventsv1.CardStatus_CARD_STATUS_ACTIVE {
		return false
	}
	if v.GetExpiryMonth() != a.GetExpiryMonth() || v.GetExpiryYear() != a.GetExpiryYear() ||
		!slices.Contains(v.GetCvvKeyIds(), a.GetCardKeyId()) {
		recordFailure(a, p)
		return false
	}
	a.VerifyFailures = 0
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
