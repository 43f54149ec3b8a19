package authorizer

import (
	"slices"
	"time"

	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// The lockout counts a card's failed verifications in a sliding window: Policy.LockAfter
// failures within Policy.LockWindow block the card (BLOCK_REASON_VERIFICATION_FAILURES). A
// success does not take a failure back, so that right data interleaved with guesses (a
// guesser's own approvals) never resets the count; only an operator's unblock clears it. The
// account keeps the times of its latest failures (Account.verify_failure_times), at most
// LockAfter of them, 4 bytes each.

// DefaultLockWindow is how long a failed verification counts toward the lockout.
const DefaultLockWindow = 24 * time.Hour

// MaxLockAfter bounds Policy.LockAfter, and so the failure times an account keeps.
const MaxLockAfter = 100

// unverified returns the reason why card data given with a request is not the card's (expiry,
// CVV under the card's own key, holder name, checked in this order), or
// REJECT_REASON_UNSPECIFIED when it proves right. The account must exist.
func unverified(a *eventsv1.Account, expiryMonth, expiryYear int32, cvvKeyIDs []string, holder string) eventsv1.RejectReason {
	switch {
	case expiryMonth != a.GetExpiryMonth() || expiryYear != a.GetExpiryYear():
		return eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH
	case !slices.Contains(cvvKeyIDs, a.GetCardKeyId()):
		return eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH
	case !card.SameHolder(holder, a.GetHolderName()):
		return eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH
	}
	return eventsv1.RejectReason_REJECT_REASON_UNSPECIFIED
}

// unverifiedPayment is unverified for a payment request's card data.
func unverifiedPayment(a *eventsv1.Account, r *eventsv1.PaymentRequested) eventsv1.RejectReason {
	return unverified(a, r.GetExpiryMonth(), r.GetExpiryYear(), r.GetCvvKeyIds(), r.GetHolderName())
}

// keptFailures is how many failure times an account keeps under p: LockAfter, or
// DefaultLockAfter when the lockout is off (GetCard still shows them).
func (p Policy) keptFailures() int {
	if p.LockAfter > 0 {
		return min(p.LockAfter, MaxLockAfter)
	}
	return DefaultLockAfter
}

func (p Policy) lockWindow() time.Duration {
	if p.LockWindow > 0 {
		return p.LockWindow
	}
	return DefaultLockWindow
}

// recordFailure counts a failed verification at atUs (µs since the epoch) and blocks an active
// card when p.LockAfter failures fall within p.LockWindow up to it.
func recordFailure(a *eventsv1.Account, atUs int64, p Policy) {
	at := time.UnixMicro(atUs)
	times := inWindow(a.GetVerifyFailureTimes(), at, p)
	times = append(times, uint32(max(at.Unix(), 0)))
	if keep := p.keptFailures(); len(times) > keep {
		times = times[len(times)-keep:]
	}
	a.VerifyFailureTimes = times
	if p.LockAfter > 0 && len(times) >= p.LockAfter && a.GetStatus() == eventsv1.CardStatus_CARD_STATUS_ACTIVE {
		a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
		a.BlockReason = eventsv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES
	}
}

// inWindow returns the failure times that still count at t, in a new slice.
func inWindow(times []uint32, t time.Time, p Policy) []uint32 {
	since := t.Add(-p.lockWindow()).Unix()
	out := make([]uint32, 0, len(times)+1)
	for _, s := range times {
		if int64(s) > since {
			out = append(out, s)
		}
	}
	return out
}

// Failures returns how many of the account's failed verifications count toward the lockout at
// now.
func Failures(a *eventsv1.Account, now time.Time, p Policy) int {
	return len(inWindow(a.GetVerifyFailureTimes(), now, p))
}

// clearFailures forgets the account's failed verifications: an operator's unblock.
func clearFailures(a *eventsv1.Account) {
	a.VerifyFailureTimes, a.VerifyFailures = nil, 0
}
