package grpcgateway

import (
	"context"
	"math"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// recordingBank approves everything and records what reached it.
type recordingBank struct {
	payments []*eventsv1.PaymentRequested
	numbers  []string
}

func (b *recordingBank) Pay(_ context.Context, number string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	b.payments = append(b.payments, req)
	b.numbers = append(b.numbers, number)
	return &eventsv1.PaymentReply{Outcome: &eventsv1.Outcome{TransactionId: req.GetTransactionId(), Status: eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED, AmountCents: req.GetAmountCents()}}, nil
}

func (b *recordingBank) Command(_ context.Context, number string, _ *eventsv1.CardCommand) (*eventsv1.CardReply, error) {
	if number == knownCard {
		return &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_OK, Account: &eventsv1.Account{HolderName: "Ana", LimitCents: 100}}, nil
	}
	return &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_NOT_FOUND}, nil
}

// knownCard is the one card recordingBank has.
const knownCard = "4111111111111111"

func (b *recordingBank) Ready() bool { return true }

func newTestServer(t *testing.T) (*Server, *recordingBank, card.Keys) {
	keys, err := card.NewKeys("unit test secret of the bank")
	if err != nil {
		t.Fatal(err)
	}
	bank := &recordingBank{}
	return New(Config{}, Deps{Bank: bank, Keys: keys}), bank, keys
}

func TestLegacyValidation(t *testing.T) {
	s, bank, keys := newTestServer(t)
	legacy := legacyService{Server: s}
	const number = "4111111111111111"
	exp := card.Expiry{Month: 7, Year: 2030}
	cvv := keys.CVV(number, exp)
	good := func() *paymentpb.PaymentRequest {
		return &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{Name: "Maria", Number: number,
			ExpirationMonth: 7, ExpirationYear: 30, Cvv: int32(atoi(cvv))}, Amount: 12.345, Store: "Code Store", Description: "x"}
	}
	tests := []struct {
		name   string
		mutate func(*paymentpb.PaymentRequest)
		field  string
	}{
		{"NaN", func(r *paymentpb.PaymentRequest) { r.Amount = math.NaN() }, "amount"},
		{"Inf", func(r *paymentpb.PaymentRequest) { r.Amount = math.Inf(1) }, "amount"},
		{"negative", func(r *paymentpb.PaymentRequest) { r.Amount = -3 }, "amount"},
		{"rounds to zero", func(r *paymentpb.PaymentRequest) { r.Amount = 0.004 }, "amount"},
		{"absurd", func(r *paymentpb.PaymentRequest) { r.Amount = 1e12 }, "amount"},
		{"no card", func(r *paymentpb.PaymentRequest) { r.CreditCard = nil }, "creditCard"},
		{"bad luhn", func(r *paymentpb.PaymentRequest) { r.CreditCard.Number = "4111111111111121" }, "creditCard.number"},
		{"month 13", func(r *paymentpb.PaymentRequest) { r.CreditCard.ExpirationMonth = 13 }, "creditCard.expirationMonth"},
		{"cvv 1000", func(r *paymentpb.PaymentRequest) { r.CreditCard.Cvv = 1000 }, "creditCard.cvv"},
		{"long store", func(r *paymentpb.PaymentRequest) { r.Store = strings.Repeat("s", MaxStoreLen+1) }, "store"},
		{"control chars", func(r *paymentpb.PaymentRequest) { r.Description = "a\x00b" }, "description"},
	}
	for _, tt := range tests {
		r := good()
		tt.mutate(r)
		_, err := legacy.Payment(context.Background(), r)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.field+":") {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT naming %s", tt.name, err, tt.field)
		}
	}
	if len(bank.payments) != 0 {
		t.Fatalf("%d invalid requests reached the bank", len(bank.payments))
	}
	if _, err := legacy.Payment(context.Background(), good()); err != nil {
		t.Fatalf("valid legacy payment: %v", err)
	}
	got := bank.payments[0]
	if got.GetAmountCents() != 1235 || !got.GetCvvMatch() || got.GetExpiryYear() != 2030 || got.GetChannel() != eventsv1.Channel_CHANNEL_LEGACY || got.GetTransactionId() == "" {
		t.Errorf("legacy request sent as %v; want 1235 cents, CVV matched, year 2030, legacy channel, an id", got)
	}
}

func TestAuthorizeChecksCVVAtTheIngress(t *testing.T) {
	s, bank, keys := newTestServer(t)
	const number = "4111111111111111"
	cvv := keys.CVV(number, card.Expiry{Month: 1, Year: 2031})
	_, err := paymentService{Server: s}.Authorize(context.Background(), &codebankv1.AuthorizeRequest{
		Card:        &codebankv1.CardDetails{Number: "4111 1111 1111 1111", HolderName: "Ana", ExpiryMonth: 1, ExpiryYear: 2031, Cvv: cvv},
		AmountCents: 5, Store: "s", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	got := bank.payments[0]
	// PaymentRequested has no CVV field: only whether it matched reaches Kafka.
	if !got.GetCvvMatch() {
		t.Errorf("request %v: want cvv_match", got)
	}
	if got.GetTransactionId() == "" || got.GetRequestedAtUnixUs() == 0 {
		t.Errorf("request %v: want a generated id and a time", got)
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}
