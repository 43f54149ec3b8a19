package authorizer

import (
	"time"

	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// DefaultKeep is how many of a card's latest outcomes its account remembers, so that a
// redelivered or retried request with the same transaction id is answered with its original
// outcome instead of being charged again.
const DefaultKeep = 128

// DefaultKeepFor is how long outcomes are remembered at most.
const DefaultKeepFor = 24 * time.Hour

// Decide returns the bank's decision on a payment request for an account, which is nil when
// the card does not exist. It changes nothing. When the account already holds an outcome for
// the request's transaction id, Decide returns that outcome and duplicate is true.
//
// The checks run in this order: unknown card, blocked card, expiry not the card's, card
// expired at the time of the request, CVV, holder name, available credit.
func Decide(a *eventsv1.Account, r *eventsv1.PaymentRequested, now time.Time) (out *eventsv1.Outcome, duplicate bool) {
	if prev, ok := findRecent(a, r.GetTransactionId()); ok {
		return prev.outcome(r.GetTransactionId()), true
	}
	out = &eventsv1.Outcome{
		TransactionId:   r.GetTransactionId(),
		Status:          codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED,
		AmountCents:     r.GetAmountCents(),
		AvailableCents:  Available(a),
		DecidedAtUnixUs: now.UnixMicro(),
	}
	requestedAt := time.UnixMicro(r.GetRequestedAtUnixUs())
	exp := card.Expiry{Month: int(a.GetExpiryMonth()), Year: int(a.GetExpiryYear())}
	switch {
	case a == nil:
		out.Reason = codebankv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND
	case a.GetStatus() == codebankv1.CardStatus_CARD_STATUS_BLOCKED:
		out.Reason = codebankv1.RejectReason_REJECT_REASON_CARD_BLOCKED
	case r.GetExpiryMonth() != a.GetExpiryMonth() || r.GetExpiryYear() != a.GetExpiryYear():
		out.Reason = codebankv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH
	case exp.Expired(requestedAt):
		out.Reason = codebankv1.RejectReason_REJECT_REASON_CARD_EXPIRED
	case !r.GetCvvMatch():
		out.Reason = codebankv1.RejectReason_REJECT_REASON_CVV_MISMATCH
	case !card.SameHolder(r.GetHolderName(), a.GetHolderName()):
		out.Reason = codebankv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH
	case r.GetAmountCents() <= 0 || r.GetAmountCents() > Available(a):
		out.Reason = codebankv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT
	default:
		out.Status = codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED
		out.AvailableCents = Available(a) - r.GetAmountCents()
	}
	return out, false
}

// Record applies a new outcome to its account: an approved amount is charged, and the outcome
// is remembered, keeping at most keep outcomes and none older than keepFor.
func Record(a *eventsv1.Account, out *eventsv1.Outcome, keep int, keepFor time.Duration) {
	if out.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		a.UsedCents += out.GetAmountCents()
	}
	a.Recent = appendRecent(a.Recent, out, keep, out.GetDecidedAtUnixUs()-keepFor.Microseconds())
}

// Available returns the credit left on an account; 0 for nil.
func Available(a *eventsv1.Account) int64 {
	if a == nil {
		return 0
	}
	return a.GetLimitCents() - a.GetUsedCents()
}
