package grpcgateway

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/paymentid"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestRefundByPaymentID: Authorize answers with a payment id; a refund or reversal with it
// reaches the card's partition (its token) with the purchase's transaction id, amount and time
// from the id, the merchant from the key, and no card data.
func TestRefundByPaymentID(t *testing.T) {
	s, bank, keys := newTestServer(t)
	const number = "4111111111111111"
	cvv, _ := keys.CVV("k1", number, card.Expiry{Month: 1, Year: 2031})
	payments := paymentService{Server: s}
	resp, err := payments.Authorize(merchantCtx(), &codebankv1.AuthorizeRequest{TransactionId: "order-7",
		Card: &codebankv1.CardDetails{Number: number, HolderName: "Ana", ExpiryMonth: 1, ExpiryYear: 2031, Cvv: cvv}, AmountCents: 10000, Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetPaymentId() == "" || strings.Contains(resp.GetPaymentId(), keys.Token(number)) {
		t.Fatalf("payment id %q", resp.GetPaymentId())
	}
	if _, err := payments.Refund(merchantCtx(), &codebankv1.RefundRequest{PaymentId: resp.GetPaymentId(), RefundId: "r-1", AmountCents: 2500}); err != nil {
		t.Fatal(err)
	}
	if _, err := payments.Reverse(merchantCtx(), &codebankv1.ReverseRequest{PaymentId: resp.GetPaymentId(), ReversalId: "v-1", AmountCents: 100}); err != nil {
		t.Fatal(err)
	}
	if len(bank.operations) != 2 || bank.tokens[1] != keys.Token(number) || bank.tokens[2] != keys.Token(number) {
		t.Fatalf("operations %v under %v, want two under the card's token", bank.operations, bank.tokens)
	}
	got := bank.operations[0]
	if got.GetKind() != eventsv1.OperationKind_OPERATION_KIND_REFUND || got.GetOperationId() != "r-1" || got.GetAmountCents() != 2500 ||
		got.GetMerchantId() != "code-store" || got.GetMerchantName() != "Code Store" || got.GetTransactionId() != "order-7" ||
		got.GetPurchaseAmountCents() != 10000 || got.GetPurchaseDecidedAtUnixUs() != 1795602454530123 {
		t.Errorf("refund sent as %v", got)
	}
	if bank.operations[1].GetKind() != eventsv1.OperationKind_OPERATION_KIND_REVERSAL {
		t.Errorf("reversal sent as %v", bank.operations[1])
	}
}

// TestUnknownPaymentsAlike: a payment id that is unknown, altered, another merchant's or a
// rejected payment's gets the same NOT_FOUND, and nothing reaches the bank; bad fields get
// INVALID_ARGUMENT naming them.
func TestUnknownPaymentsAlike(t *testing.T) {
	s, bank, keys := newTestServer(t)
	payments := paymentService{Server: s}
	sealer, _ := paymentid.ForKeys(keys)
	approved := paymentid.Payment{CardToken: knownCard, TransactionID: "order-1", AmountCents: 100, DecidedAtUnixUs: 1, Approved: true}
	rejected := approved
	rejected.Approved = false
	mine, _ := sealer.Seal("code-store", approved)
	ofRejected, _ := sealer.Seal("code-store", rejected)
	theirs, _ := sealer.Seal("other-shop", approved)
	otherKeys, _ := card.NewKeys([]byte("another bank's tokenization key, 32 bytes"))
	otherBank, _ := paymentid.ForKeys(otherKeys)
	forged, _ := otherBank.Seal("code-store", approved)
	var messages []string
	for name, id := range map[string]string{"unknown": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAhIiMkJSYnKCkqKywtLi8w", "rejected": ofRejected,
		"another merchant's": theirs, "under another key": forged, "altered": altered(mine)} {
		_, err := payments.Refund(merchantCtx(), &codebankv1.RefundRequest{PaymentId: id, RefundId: "r-1", AmountCents: 1})
		if status.Code(err) != codes.NotFound {
			t.Errorf("%s: %v, want NOT_FOUND", name, err)
		}
		messages = append(messages, status.Convert(err).Message())
	}
	for _, m := range messages[1:] {
		if m != messages[0] {
			t.Errorf("NOT_FOUND messages differ: %q and %q", m, messages[0])
		}
	}
	for _, tc := range []struct {
		name  string
		req   *codebankv1.ReverseRequest
		field string
	}{
		{"no payment id", &codebankv1.ReverseRequest{ReversalId: "v", AmountCents: 1}, "payment_id"},
		{"a payment id with a slash", &codebankv1.ReverseRequest{PaymentId: "a/b", ReversalId: "v", AmountCents: 1}, "payment_id"},
		{"no reversal id", &codebankv1.ReverseRequest{PaymentId: mine, AmountCents: 1}, "reversal_id"},
		{"a reversal id with a slash", &codebankv1.ReverseRequest{PaymentId: mine, ReversalId: "v/1", AmountCents: 1}, "reversal_id"},
		{"no amount", &codebankv1.ReverseRequest{PaymentId: mine, ReversalId: "v"}, "amount_cents"},
		{"a negative amount", &codebankv1.ReverseRequest{PaymentId: mine, ReversalId: "v", AmountCents: -5}, "amount_cents"},
	} {
		_, err := payments.Reverse(merchantCtx(), tc.req)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.field+":") {
			t.Errorf("%s: %v, want INVALID_ARGUMENT naming %s", tc.name, err, tc.field)
		}
	}
	if _, err := (cardService{Server: s}).PayBill(context.WithValue(context.Background(), principalKey{}, apikey.Principal{KeyID: "ops-1", Role: apikey.Admin}),
		&codebankv1.PayBillRequest{CardId: "nope", AmountCents: 0}); status.Code(err) != codes.InvalidArgument ||
		!strings.Contains(err.Error(), "card_id:") || !strings.Contains(err.Error(), "bill_payment_id:") || !strings.Contains(err.Error(), "amount_cents:") {
		t.Errorf("a bad bill payment: %v", err)
	}
	if len(bank.operations) != 0 {
		t.Fatalf("%d operations reached the bank", len(bank.operations))
	}
	if _, err := payments.Refund(merchantCtx(), &codebankv1.RefundRequest{PaymentId: mine, RefundId: "r-1", AmountCents: 1}); err != nil || len(bank.operations) != 1 {
		t.Fatalf("a refund of one's own payment: %v", err)
	}
}

// altered returns id with its 41st character changed.
func altered(id string) string {
	c := "A"
	if id[40] == 'A' {
		c = "B"
	}
	return id[:40] + c + id[41:]
}
