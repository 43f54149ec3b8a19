package codecs

import (
	"strings"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Reason is a reject reason as the results record names it (Result.Reason), with the words the
// bank's people and a customer read for it: the one place the pages, the dashboard and the
// terminal's figures take them from.
type Reason struct {
	// Code is the reason in results and metrics: "insufficient_credit" (ReasonName).
	Code string
	// Label names it for people watching the bank (dashboards, analytics).
	Label string
	// Customer says it to the customer at a checkout.
	Customer string
}

var reasons = map[string]Reason{
	"insufficient_credit": {"insufficient_credit", "Insufficient credit", "Insufficient credit on this card"},
	"cvv_mismatch":        {"cvv_mismatch", "Wrong CVV", "Check the CVV"},
	"expiry_mismatch":     {"expiry_mismatch", "Wrong expiry", "Check the expiry date"},
	"card_expired":        {"card_expired", "Card expired", "This card has expired"},
	"holder_mismatch":     {"holder_mismatch", "Wrong holder name", "Check the name on the card"},
	"card_not_found":      {"card_not_found", "Unknown card", "Card not recognised"},
	"card_blocked":        {"card_blocked", "Card blocked", "This card is blocked"},
	"account_unavailable": {"account_unavailable", "Account unavailable", "The bank could not check this card now. Try again later: you will not be charged twice"},
	"do_not_honor":        {"do_not_honor", "Card data not verified", "The bank declined this card. Check the card number, the expiry date, the CVV and the name on the card"},
	"":                    {"", "Unspecified", "The bank declined this payment"},
}

// ReasonOf returns the reason named code; an unknown code is labelled as itself and told to a
// customer as a plain decline.
func ReasonOf(code string) Reason {
	if r, ok := reasons[code]; ok {
		return r
	}
	return Reason{Code: code, Label: code, Customer: reasons[""].Customer}
}

// MerchantReason is the reason merchants and the bank's public pages are told for r:
// REJECT_REASON_DO_NOT_HONOR in place of every reason that would say which card data was wrong,
// or that the number is no card of the bank's. The exact reason is for operators (the results
// topic, the index, metrics).
func MerchantReason(r eventsv1.RejectReason) eventsv1.RejectReason {
	switch r {
	case eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND, eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH,
		eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH:
		return eventsv1.RejectReason_REJECT_REASON_DO_NOT_HONOR
	}
	return r
}

// MerchantReasonCode is MerchantReason for a reason code of the results record
// ("cvv_mismatch" -> "do_not_honor"); a code it does not know is kept.
func MerchantReasonCode(code string) string {
	r, ok := eventsv1.RejectReason_value["REJECT_REASON_"+strings.ToUpper(code)]
	if !ok || code == "" {
		return code
	}
	return ReasonName(MerchantReason(eventsv1.RejectReason(r)))
}
