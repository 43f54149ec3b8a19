package authorizer

import (
	"encoding/binary"
	"time"

	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// DefaultCreditWindow is how long after its approval a purchase can be reversed or refunded:
// what is left of it is remembered that long.
const DefaultCreditWindow = 30 * 24 * time.Hour

// DefaultCreditKeep is how many credited purchases a card remembers at most (Account.credits,
// 25 bytes each): a card's account is read and written for every payment, so the book of its
// credits is bounded. A card with more credited purchases in the window loses the entries of
// its oldest ones, and those purchases can no longer be credited (Account.credit_floor_unix_s).
const DefaultCreditKeep = 128

// CreditPolicy is what a card remembers of its credits.
type CreditPolicy struct {
	// Window is how long after its approval a purchase can be credited (default
	// DefaultCreditWindow).
	Window time.Duration
	// Keep is how many credited purchases a card remembers at most (default
	// DefaultCreditKeep).
	Keep int
}

// DefaultCreditPolicy is the credit policy of New's defaults.
var DefaultCreditPolicy = CreditPolicy{Window: DefaultCreditWindow, Keep: DefaultCreditKeep}

// OperationFingerprint identifies an operation within its card: Op is its idempotency key
// (kind, merchant and operation id) with the parameters a retry must repeat (the purchase it
// credits; the amount is compared as it is), and Purchase names the purchase it credits (the
// purchase's own Fingerprint.ID), zero for a bill payment.
type OperationFingerprint struct {
	Op       Fingerprint
	Purchase [16]byte
}

// OperationFingerprintOf returns the fingerprint of an operation. Its digests are keyed
// (card.Keys.Digest) like a payment's, in domains of their own.
func OperationFingerprintOf(keys card.Keys, op *eventsv1.Operation) OperationFingerprint {
	kind := op.GetKind().String()
	params := keys.Digest("operation-params", kind, op.GetTransactionId())
	fp := OperationFingerprint{Op: Fingerprint{ID: keys.Digest("operation-id", kind, op.GetMerchantId(), op.GetOperationId()),
		Params: binary.BigEndian.Uint32(params[:4])}}
	if isCredit(op.GetKind()) {
		fp.Purchase = keys.Digest("payment-id", op.GetMerchantId(), op.GetTransactionId())
	}
	return fp
}

// isCredit reports whether an operation kind credits a purchase (a reversal or a refund).
func isCredit(k eventsv1.OperationKind) bool {
	return k == eventsv1.OperationKind_OPERATION_KIND_REVERSAL || k == eventsv1.OperationKind_OPERATION_KIND_REFUND
}

// OperationOutcome is the decision on an operation.
type OperationOutcome struct {
	// Result says whether it is carried out.
	Result eventsv1.OperationResult
	// AmountCents is the operation's amount.
	AmountCents int64
	// LeftCents is what is left of the purchase to credit (reversals, refunds) or what the
	// card owes (bill payments), after the operation when it is carried out.
	LeftCents int64
	// AvailableCents is the card's available credit right after the operation.
	AvailableCents int64
	// DecidedAtUnixUs and RequestedAtUnixUs are when it was decided and when the ingress
	// accepted it.
	DecidedAtUnixUs, RequestedAtUnixUs int64
}

// DecideOperation returns the bank's decision on an operation with fingerprint fp, requested
// at requestedAtUnixUs, for an account which is nil when the card does not exist. It changes
// nothing.
//
// An operation whose id the account remembers is a Duplicate (its original outcome) when its
// parameters match, and a Conflict when they do not. Otherwise a reversal or refund is refused
// when its purchase is beyond the window (approved more than cp.Window before now, or at or
// before the card's credit floor with no entry kept) or when its amount is more than is left of
// the purchase; a bill payment is refused when its amount is more than the card owes. Neither
// needs card data, and neither counts toward the lockout; a blocked or expired card still
// takes credit back.
func DecideOperation(a *eventsv1.Account, op *eventsv1.Operation, fp OperationFingerprint, requestedAtUnixUs int64, now time.Time, cp CreditPolicy) (OperationOutcome, Kind) {
	out := OperationOutcome{Result: eventsv1.OperationResult_OPERATION_RESULT_OK, AmountCents: op.GetAmountCents(),
		AvailableCents: Available(a), DecidedAtUnixUs: now.UnixMicro(), RequestedAtUnixUs: requestedAtUnixUs}
	if a == nil {
		out.Result = eventsv1.OperationResult_OPERATION_RESULT_NOT_FOUND
		return out, Fresh
	}
	left := leftOf(a, op, fp)
	if prev, ok := findOutcome(a, fp.Op.ID); ok {
		if prev.fp.Params != fp.Op.Params || prev.amountCents != op.GetAmountCents() {
			out.Result = eventsv1.OperationResult_OPERATION_RESULT_CONFLICT
			return out, Conflict
		}
		return OperationOutcome{Result: eventsv1.OperationResult_OPERATION_RESULT_OK, AmountCents: prev.amountCents, LeftCents: left,
			AvailableCents: prev.availableCents, DecidedAtUnixUs: prev.decidedAtUnixUs, RequestedAtUnixUs: prev.requestedAtUnixUs}, Duplicate
	}
	out.LeftCents = left
	if isCredit(op.GetKind()) && expired(a, op, fp, now, cp) {
		out.Result = eventsv1.OperationResult_OPERATION_RESULT_EXPIRED
		return out, Fresh
	}
	if op.GetAmountCents() <= 0 || op.GetAmountCents() > left {
		out.Result = eventsv1.OperationResult_OPERATION_RESULT_EXCEEDS
		return out, Fresh
	}
	out.LeftCents = left - op.GetAmountCents()
	out.AvailableCents = Available(a) + op.GetAmountCents()
	return out, Fresh
}

// leftOf returns what is left of an operation's purchase to credit, or what the card owes for a
// bill payment (never below zero).
func leftOf(a *eventsv1.Account, op *eventsv1.Operation, fp OperationFingerprint) int64 {
	if !isCredit(op.GetKind()) {
		return max(a.GetUsedCents(), 0)
	}
	done, _ := credited(a.GetCredits(), fp.Purchase)
	return max(op.GetPurchaseAmountCents()-done, 0)
}

// expired reports whether a reversal's or refund's purchase is beyond what the card remembers
// of its credits: approved before the window, or at or before the credit floor without an
// entry of its own.
func expired(a *eventsv1.Account, op *eventsv1.Operation, fp OperationFingerprint, now time.Time, cp CreditPolicy) bool {
	approved := op.GetPurchaseDecidedAtUnixUs() / 1e6
	if approved < now.Add(-cp.Window).Unix() {
		return true
	}
	_, kept := credited(a.GetCredits(), fp.Purchase)
	return !kept && approved <= a.GetCreditFloorUnixS()
}

// RecordOperation applies an operation carried out (a Fresh outcome with result OK) to its
// account: the credit comes back (used credit goes down, below zero when a refund follows the
// bill's payment: a credit balance), a reversal or refund is added to its purchase's credits,
// the operation is counted, and its outcome is remembered under its fingerprint like a
// payment's (p.Keep, p.KeepFor).
func RecordOperation(a *eventsv1.Account, op *eventsv1.Operation, out OperationOutcome, fp OperationFingerprint, p Policy, cp CreditPolicy) {
	a.UsedCents -= out.AmountCents
	a.Operations++
	if isCredit(op.GetKind()) {
		now := time.UnixMicro(out.DecidedAtUnixUs)
		a.Credits, a.CreditFloorUnixS = addCredit(a.GetCredits(), a.GetCreditFloorUnixS(), fp.Purchase, op.GetPurchaseDecidedAtUnixUs()/1e6,
			out.AmountCents, cp.Keep, now.Add(-cp.Window).Unix())
	}
	a.Outcomes = appendOutcome(a.Outcomes, out.remembered(op.GetOperationId()), fp.Op, p.Keep, out.DecidedAtUnixUs-p.KeepFor.Microseconds())
}

// remembered is the outcome of an operation as the account's remembered outcomes keep it: an
// approval of its amount.
func (o OperationOutcome) remembered(id string) *eventsv1.Outcome {
	return &eventsv1.Outcome{TransactionId: id, Status: eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED, AmountCents: o.AmountCents,
		AvailableCents: o.AvailableCents, DecidedAtUnixUs: o.DecidedAtUnixUs, RequestedAtUnixUs: o.RequestedAtUnixUs}
}
