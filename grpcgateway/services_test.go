package grpcgateway

import (
	"context"
	"math"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// recordingBank approves everything and records what reached it.
type recordingBank struct {
	payments   []*eventsv1.PaymentRequested
	operations []*eventsv1.Operation
	tokens     []string
	commands   []*eventsv1.CardCommand
}

func (b *recordingBank) Pay(_ context.Context, token string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	b.payments = append(b.payments, req)
	b.tokens = append(b.tokens, token)
	return &eventsv1.PaymentReply{CardToken: token, Outcome: &eventsv1.Outcome{TransactionId: req.GetTransactionId(), Status: eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED,
		AmountCents: req.GetAmountCents(), DecidedAtUnixUs: 1795602454530123}}, nil
}

func (b *recordingBank) Command(_ context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.CardReply, error) {
	b.commands = append(b.commands, cmd)
	if token == knownCard {
		return &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_OK, Account: &eventsv1.Account{HolderName: "Ana", LimitCents: 100}}, nil
	}
	return &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_NOT_FOUND}, nil
}

func (b *recordingBank) Operate(_ context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.OperationReply, error) {
	b.operations = append(b.operations, cmd.GetOperation())
	b.tokens = append(b.tokens, token)
	op := cmd.GetOperation()
	return &eventsv1.OperationReply{CardToken: token, Result: eventsv1.OperationResult_OPERATION_RESULT_OK, OperationId: op.GetOperationId(),
		AmountCents: op.GetAmountCents(), Account: &eventsv1.Account{LimitCents: 100}}, nil
}

// knownCard is the token of the one card recordingBank has.
const knownCard = "gzNcUY7KgaoXOFX_qNg2gQ"

func (b *recordingBank) Ready() bool { return true }

func newTestServer(t testing.TB) (*Server, *recordingBank, card.Keys) {
	keys, err := card.NewKeys([]byte("unit tests' tokenization key, 32 bytes"), card.CardKey{ID: "k1", Secret: []byte("unit tests' card key k1, 32 bytes!")})
	if err != nil {
		t.Fatal(err)
	}
	bank := &recordingBank{}
	s := New(Config{Legacy: &Legacy{Merchant: "code-store", MerchantName: "Code Store"}}, Deps{Bank: bank, Keys: keys, APIKeys: unitKeys,
		Statements: emptyStatements{}})
	// REST reaches the services through the gRPC server in process.
	go s.inprocGRPC.Serve(s.inproc)
	t.Cleanup(func() { s.inprocConn.Close(); s.inprocGRPC.Stop() })
	return s, bank, keys
}

// The unit tests' API keys: a merchant's and an admin's.
var unitMerchantKey, unitAdminKey, unitKeys = func() (string, string, *apikey.Set) {
	m, _ := apikey.New("store-1")
	a, _ := apikey.New("ops-1")
	set, err := apikey.Parse(strings.NewReader(apikey.Line(apikey.Principal{KeyID: "store-1", Role: apikey.Merchant, Merchant: "code-store", MerchantName: "Code Store"}, m) + "\n" +
		apikey.Line(apikey.Principal{KeyID: "ops-1", Role: apikey.Admin}, a)))
	if err != nil {
		panic(err)
	}
	return m, a, set
}()

// merchantCtx is the context of a call made with the Code Store's key.
func merchantCtx() context.Context {
	return context.WithValue(context.Background(), principalKey{}, apikey.Principal{KeyID: "store-1", Role: apikey.Merchant, Merchant: "code-store", MerchantName: "Code Store"})
}

func TestLegacyValidation(t *testing.T) {
	s, bank, keys := newTestServer(t)
	legacy := legacyService{Server: s}
	const number = "4111111111111111"
	exp := card.Expiry{Month: 7, Year: 2030}
	cvv, _ := keys.CVV("k1", number, exp)
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
		_, err := legacy.Payment(merchantCtx(), r)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tt.field+":") {
			t.Errorf("%s: got %v, want INVALID_ARGUMENT naming %s", tt.name, err, tt.field)
		}
	}
	if len(bank.payments) != 0 {
		t.Fatalf("%d invalid requests reached the bank", len(bank.payments))
	}
	if _, err := legacy.Payment(merchantCtx(), good()); err != nil {
		t.Fatalf("valid legacy payment: %v", err)
	}
	got := bank.payments[0]
	if got.GetAmountCents() != 1235 || len(got.GetCvvKeyIds()) != 1 || got.GetExpiryYear() != 2030 || got.GetChannel() != eventsv1.Channel_CHANNEL_LEGACY || got.GetTransactionId() == "" {
		t.Errorf("legacy request sent as %v; want 1235 cents, CVV matched, year 2030, legacy channel, an id", got)
	}
}

// TestAuthorizeSendsNoCardData: the ingress checks the CVV and sends the card's token, masked
// number and the card keys the CVV matched under; neither the number nor the CVV leaves it. The
// merchant is the key's, not the request's.
func TestAuthorizeSendsNoCardData(t *testing.T) {
	s, bank, keys := newTestServer(t)
	const number = "4111111111111111"
	cvv, _ := keys.CVV("k1", number, card.Expiry{Month: 1, Year: 2031})
	_, err := paymentService{Server: s}.Authorize(merchantCtx(), &codebankv1.AuthorizeRequest{
		Card:        &codebankv1.CardDetails{Number: "4111 1111 1111 1111", HolderName: "Ana", ExpiryMonth: 1, ExpiryYear: 2031, Cvv: cvv},
		AmountCents: 5, Store: "Other Store Name", Description: "d"})
	if err != nil {
		t.Fatal(err)
	}
	got := bank.payments[0]
	if bank.tokens[0] != keys.Token(number) {
		t.Errorf("sent under %q, want the card's token", bank.tokens[0])
	}
	if !slices.Equal(got.GetCvvKeyIds(), []string{"k1"}) || got.GetMaskedNumber() != "411111******1111" {
		t.Errorf("request %v: want cvv_key_ids [k1] and the masked number", got)
	}
	raw, _ := proto.Marshal(got)
	if strings.Contains(string(raw), number) || strings.Contains(string(raw), cvv) && !strings.Contains(string(raw), "k1") {
		t.Errorf("the request written to Kafka holds the card number or CVV: %v", got)
	}
	if got.GetMerchantId() != "code-store" || got.GetMerchantName() != "Code Store" || got.GetStore() != "Other Store Name" {
		t.Errorf("request %v: want the key's merchant, the request's store as its sub-name", got)
	}
	if got.GetTransactionId() == "" || got.GetRequestedAtUnixUs() == 0 {
		t.Errorf("request %v: want a generated id and a time", got)
	}
	// Without a merchant's principal (a call that did not pass the access table) nothing is paid.
	_, err = paymentService{Server: s}.Authorize(context.Background(), &codebankv1.AuthorizeRequest{
		Card: &codebankv1.CardDetails{Number: number, HolderName: "Ana", ExpiryMonth: 1, ExpiryYear: 2031, Cvv: cvv}, AmountCents: 5, Description: "d"})
	if status.Code(err) != codes.PermissionDenied || len(bank.payments) != 1 {
		t.Errorf("a payment without a merchant: %v", err)
	}
}

// TestMerchantsAreToldNoMoreThanDoNotHonor: the reasons that would say which card data was wrong,
// or that a number is no card, all read DO_NOT_HONOR; the others as they are.
func TestMerchantsAreToldNoMoreThanDoNotHonor(t *testing.T) {
	for r := range eventsv1.RejectReason_name {
		got := merchantReason(eventsv1.RejectReason(r))
		switch eventsv1.RejectReason(r) {
		case eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND, eventsv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH,
			eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH, eventsv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH:
			if got != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
				t.Errorf("%v is told as %v", eventsv1.RejectReason(r), got)
			}
		default:
			if got != codebankv1.RejectReason(r) {
				t.Errorf("%v is told as %v", eventsv1.RejectReason(r), got)
			}
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// TestFreeTextHoldsNoCardNumber: a card number a checkout puts in a free-text field (holder
// name, store, description; the card's own or another, whole, grouped or dashed) is masked
// before the request is written, through Authorize and the original contract alike; a card
// issued to a name that is a number keeps it masked. A transaction id that holds the card's own
// number is refused, naming the field but not the number; numeric ids that are not the card's
// number are ids like any.
func TestFreeTextHoldsNoCardNumber(t *testing.T) {
	s, bank, keys := newTestServer(t)
	const number, other = "4111111111111111", "5454540687568555"
	exp := card.Expiry{Month: 1, Year: 2031}
	cvv, _ := keys.CVV("k1", number, exp)
	pay := func(txID string) error {
		_, err := paymentService{Server: s}.Authorize(merchantCtx(), &codebankv1.AuthorizeRequest{TransactionId: txID,
			Card:        &codebankv1.CardDetails{Number: number, HolderName: "Ana 4111 1111 1111 1111", ExpiryMonth: 1, ExpiryYear: 2031, Cvv: cvv},
			AmountCents: 5, Store: "Loja 5454-5406-8756-8555", Description: "pago com 4111111111111111, ok"})
		return err
	}
	if err := pay("order-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := (legacyService{Server: s}).Payment(merchantCtx(), &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{
		Name: "Ana 4111-1111-1111-1111", Number: number, ExpirationMonth: 1, ExpirationYear: 2031, Cvv: int32(atoi(cvv))},
		Amount: 1, Store: "Loja " + other, Description: "cartão 4111 1111 1111 1111"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range bank.payments {
		for field, text := range map[string]string{"holder_name": p.GetHolderName(), "store": p.GetStore(), "description": p.GetDescription()} {
			if strings.Contains(card.NormalizeNumber(text), number) || strings.Contains(card.NormalizeNumber(text), other) || !strings.Contains(text, "**") {
				t.Errorf("%s written as %q, want its card number masked", field, text)
			}
		}
	}
	if got := bank.payments[0].GetDescription(); got != "pago com 411111******1111, ok" {
		t.Errorf("description = %q, want the number masked as the masked number is shown", got)
	}
	if _, err := (cardService{Server: s}).IssueCard(context.Background(), &codebankv1.IssueCardRequest{HolderName: "4111  1111 1111 1111", LimitCents: 100}); err != nil {
		t.Fatal(err)
	}
	if got := bank.commands[len(bank.commands)-1].GetIssue().GetHolderName(); got != "4111 11** **** 1111" {
		t.Errorf("a card issued to a number is recorded for %q, want it masked", got)
	}

	sent := len(bank.payments)
	for _, txID := range []string{"4111111111111111", "order-4111111111111111", "4111-1111-1111-1111", "pedido:4111.1111.1111.1111"} {
		err := pay(txID)
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "transaction_id:") ||
			strings.Contains(st.Message(), "1111") {
			t.Errorf("transaction id %q = %v, want INVALID_ARGUMENT naming transaction_id, without the number", txID, err)
		}
	}
	if len(bank.payments) != sent {
		t.Errorf("a transaction id holding the card's number reached the bank")
	}
	for _, txID := range []string{"123456789012", "20261207000123", other, "order-" + number[:12]} {
		if err := pay(txID); err != nil {
			t.Errorf("transaction id %q = %v, want it accepted", txID, err)
		}
	}
}
