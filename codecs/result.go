package codecs

import "encoding/json"

// Result is one record of the results topic (documented for every consumer in
// docs/results-topic.md): the bank's decision on one payment attempt,
// approved or rejected. It is JSON, read by the statements processor, by Kafka Connect (which
// indexes it for analysts) and by any other team; fields are only ever added, never renamed.
// Its key is CardToken. The full card number never appears in it.
//
// A payment redelivered or retried with the same transaction id yields the same record again,
// identical field for field: consumers dedupe by TransactionID.
type Result struct {
	// TransactionID is the payment's idempotency key, unique per card.
	TransactionID string `json:"transaction_id"`
	// CardToken identifies the card without revealing its number (HMAC under the bank secret).
	CardToken string `json:"card_token"`
	// CardMasked is the card number with its middle six digits hidden: 545454******1234.
	CardMasked string `json:"card_masked"`
	// CardBIN is the issuer prefix, the first six digits.
	CardBIN string `json:"card_bin"`
	// Status is "approved" or "rejected".
	Status string `json:"status"`
	// Reason is why a payment was rejected, empty when approved: card_not_found, card_expired,
	// expiry_mismatch, cvv_mismatch, holder_mismatch, card_blocked, insufficient_credit.
	Reason string `json:"reason,omitempty"`
	// AmountCents is the amount asked for, in minor units.
	AmountCents int64 `json:"amount_cents"`
	// Amount is AmountCents as a decimal number of currency units (12.34), for charts.
	Amount json.Number `json:"amount"`
	// Currency is the ISO 4217 code of the amounts.
	Currency string `json:"currency,omitempty"`
	// Store is the merchant's name.
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

// ResultCodec is the goka codec of *Result.
type ResultCodec = JSON[Result]
