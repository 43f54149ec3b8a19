package codecs

import (
	"encoding/json"
	"strings"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Result is one record of the results topic (documented for every consumer in
// docs/results-topic.md): the bank's decision on one payment attempt, approved or rejected, or
// one operation that gave credit back to a card (a reversal, a refund, a bill payment; Kind).
// It is JSON, read by the statements processor, by Kafka Connect (which indexes it for
// analysts) and by any other team; fields are only ever added, never renamed. Its key is
// CardToken. The full card number never appears in it.
//
// A payment or operation redelivered or retried with the same id yields the same record again,
// identical field for field: consumers dedupe by PaymentKey.
type Result struct {
	// PaymentKey identifies the record's payment or operation everywhere downstream (see
	// PaymentKey and OperationKey): statements dedupe by it, the search index uses it as the
	// document id, the audit counts by it.
	PaymentKey string `json:"payment_key"`
	// Kind is what the record is: KindPurchase, a payment attempt, or an operation that gives
	// credit back: KindReversal, KindRefund, KindBillPayment. Amounts are always positive: the
	// kind gives the direction. Records written before operations existed have none: they are
	// purchases (KindOf).
	Kind string `json:"kind,omitempty"`
	// TransactionID is the payment's idempotency key, chosen by the client, unique per merchant
	// and card (the same id on two cards, or from two merchants, is two payments). For a
	// reversal or refund, the transaction id of the purchase it credits; empty for a bill
	// payment.
	TransactionID string `json:"transaction_id"`
	// OperationID is an operation's own idempotency key (its reversal_id, refund_id or
	// bill_payment_id); empty for a purchase.
	OperationID string `json:"operation_id,omitempty"`
	// PurchaseKey is the PaymentKey of the purchase a reversal or refund credits; empty
	// otherwise.
	PurchaseKey string `json:"purchase_key,omitempty"`
	// CardToken identifies the card without revealing its number (HMAC under the bank's
	// tokenization key): the public API's card id.
	CardToken string `json:"card_token"`
	// CardMasked is the card number with its middle six digits hidden: 545454******1234.
	CardMasked string `json:"card_masked"`
	// CardBIN is the issuer prefix, the first six digits.
	CardBIN string `json:"card_bin"`
	// Status is StatusApproved or StatusRejected.
	Status string `json:"status"`
	// Reason is why a payment was rejected, empty when approved: card_not_found, card_expired,
	// expiry_mismatch, cvv_mismatch, holder_mismatch, card_blocked, insufficient_credit
	// (ReasonName).
	Reason string `json:"reason,omitempty"`
	// AmountCents is the amount asked for, in minor units.
	AmountCents int64 `json:"amount_cents"`
	// Amount is AmountCents as a decimal number of currency units (12.34), for charts.
	Amount json.Number `json:"amount"`
	// NetAmount is what the record adds to its merchant's sales, in currency units, for
	// charts of net sales: Amount for an approved purchase, minus Amount for a reversal or
	// refund, 0.00 for a rejection or a bill payment (NetCents). Absent in records written
	// before operations existed.
	NetAmount json.Number `json:"net_amount,omitempty"`
	// Currency is the ISO 4217 code of the amounts.
	Currency string `json:"currency,omitempty"`
	// Merchant is the id of the merchant whose API key asked for the payment.
	Merchant string `json:"merchant"`
	// Store is the merchant's name, with the sub-name its checkout gave in parentheses
	// (StoreName).
	Store string `json:"store"`
	// Description says what was bought.
	Description string `json:"description"`
	// Channel is the API the payment came in through: "api" or "legacy".
	Channel string `json:"channel"`
	// RequestedAt is when the ingress accepted the payment (RFC 3339, UTC, microseconds).
	RequestedAt string `json:"requested_at"`
	// AuthorizedAt is when the authorizer decided (RFC 3339, UTC, microseconds); the time field
	// of dashboards and the date of statement lines.
	AuthorizedAt string `json:"authorized_at"`
	// ProcessingMs is AuthorizedAt - RequestedAt in milliseconds: time spent inside the bank
	// between the ingress and the decision.
	ProcessingMs float64 `json:"processing_ms"`
	// AvailableCents is the card's available credit right after the decision.
	AvailableCents int64 `json:"available_cents"`
	// LimitCents is the card's credit limit (0 for an unknown card).
	LimitCents int64 `json:"limit_cents"`
}

// The kinds of results records (Result.Kind).
const (
	KindPurchase    = "purchase"
	KindReversal    = "reversal"
	KindRefund      = "refund"
	KindBillPayment = "bill_payment"
)

// KindOf returns the record's kind: KindPurchase for a record written before kinds existed.
func (r *Result) KindOf() string {
	if r.Kind == "" {
		return KindPurchase
	}
	return r.Kind
}

// NetCents returns what the record adds to its merchant's sales: its amount for an approved
// purchase, minus its amount for a reversal or refund, 0 otherwise.
func (r *Result) NetCents() int64 {
	switch {
	case r.Status != StatusApproved:
		return 0
	case r.KindOf() == KindPurchase:
		return r.AmountCents
	case r.Kind == KindReversal || r.Kind == KindRefund:
		return -r.AmountCents
	}
	return 0
}

// Purchase reports whether the record is a payment attempt, not an operation.
func (r *Result) Purchase() bool { return r.KindOf() == KindPurchase }

// KindName is the name of an operation kind in results and metrics: KindRefund.
func KindName(k eventsv1.OperationKind) string {
	switch k {
	case eventsv1.OperationKind_OPERATION_KIND_REVERSAL:
		return KindReversal
	case eventsv1.OperationKind_OPERATION_KIND_REFUND:
		return KindRefund
	case eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT:
		return KindBillPayment
	}
	return KindPurchase
}

// ResultCodec is the goka codec of *Result.
type ResultCodec = JSON[Result]

// PaymentKey returns the key that identifies a payment everywhere downstream of the authorizer:
// the card token, the merchant and the transaction id, "TOKEN:MERCHANT:TRANSACTION_ID". Neither
// a card token nor a merchant id holds a colon, so the key splits back unambiguously at the
// first two.
func PaymentKey(cardToken, merchant, transactionID string) string {
	return cardToken + ":" + merchant + ":" + transactionID
}

// OperationKey returns the key that identifies an operation downstream, as PaymentKey does a
// payment: "TOKEN:MERCHANT:KIND/OPERATION_ID" (MERCHANT empty for a bill payment). A transaction
// id holds no "/", so an operation's key is never a payment's.
func OperationKey(cardToken, merchant, kind, operationID string) string {
	return cardToken + ":" + merchant + ":" + kind + "/" + operationID
}

// StoreName is the store shown on statements and in analytics: the merchant's name (from its
// API key), with the sub-name its checkout gave in parentheses when there is one that differs.
func StoreName(merchantName, sub string) string {
	sub = strings.TrimSpace(sub)
	switch {
	case merchantName == "":
		return sub
	case sub == "" || strings.EqualFold(sub, merchantName):
		return merchantName
	}
	return merchantName + " (" + sub + ")"
}

// The statuses of results.
const (
	StatusApproved = "approved"
	StatusRejected = "rejected"
)

// TimeFormat is the layout of the times in results: RFC 3339 in UTC with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// enum is a protobuf enum: the stored records' (eventsv1) or the public API's (codebankv1),
// which share names and numbers.
type enum interface {
	~int32
	String() string
}

// StatusName is the name of a payment status in results and metrics: StatusApproved.
func StatusName[S enum](s S) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PAYMENT_STATUS_"))
}

// ReasonName is the lower-case name of a reject reason in results and metrics:
// "insufficient_credit"; empty for none.
func ReasonName[R enum](r R) string {
	if r == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "REJECT_REASON_"))
}

// ChannelName is the name of a channel in results and metrics: "api" or "legacy".
func ChannelName(c eventsv1.Channel) string {
	if c == eventsv1.Channel_CHANNEL_LEGACY {
		return "legacy"
	}
	return "api"
}
