package grpcgateway

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/paymentid"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// refusedWell reports whether err is INVALID_ARGUMENT naming at least one field, in its message
// and its details.
func refusedWell(err error) bool {
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		return false
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 && br.GetFieldViolations()[0].GetField() != "" {
			return true
		}
	}
	return false
}

// accepted checks what an accepted request sent to the bank: it must pass the contract the
// authorizer holds it to, or the authorizer would refuse what the ingress accepted.
func accepted(t *testing.T, bank *recordingBank) {
	t.Helper()
	if len(bank.payments) != 1 {
		t.Fatalf("an accepted request sent %d payments", len(bank.payments))
	}
	if err := codecs.CheckPaymentRequested(bank.tokens[0], bank.payments[0]); err != nil {
		t.Fatalf("the ingress accepted a request the authorizer refuses: %v (%v)", err, bank.payments[0])
	}
}

// FuzzAuthorize: an Authorize request is refused with INVALID_ARGUMENT naming its fields, or
// sent on as a request the authorizer's contract accepts.
func FuzzAuthorize(f *testing.F) {
	f.Add("order-1", "4111 1111 1111 1111", "Maria Silva", int32(11), int32(31), "123", int64(1234), "Code Store", "Produtos: livro")
	f.Add("", "4111111111111111", "  ", int32(0), int32(2101), "12a", int64(0), "", "")
	f.Add("a b", "4111-1111-1111-1112", "x\x00y", int32(13), int32(-1), "1234", int64(-5), "s\xff", "d")
	f.Add("x", "4111111111111111", "José", int32(1), int32(99), "000", int64(100_000_000_001), "s", "d")
	f.Fuzz(func(t *testing.T, tx, number, holder string, month, year int32, cvv string, amount int64, store, desc string) {
		s, bank, _ := newTestServer(t)
		_, err := paymentService{Server: s}.Authorize(merchantCtx(), &codebankv1.AuthorizeRequest{TransactionId: tx,
			Card:        &codebankv1.CardDetails{Number: number, HolderName: holder, ExpiryMonth: month, ExpiryYear: year, Cvv: cvv},
			AmountCents: amount, Store: store, Description: desc})
		if err != nil {
			if !refusedWell(err) || len(bank.payments) != 0 {
				t.Fatalf("refusal = %v with %d payments sent; want INVALID_ARGUMENT naming fields, nothing sent", err, len(bank.payments))
			}
			return
		}
		accepted(t, bank)
	})
}

// FuzzAuthorizeREST posts arbitrary bodies to POST /v1/payments: the answer is 200, or a 4xx
// with a message, never a server error; what is accepted passes the authorizer's contract.
func FuzzAuthorizeREST(f *testing.F) {
	f.Add([]byte(`{"transaction_id":"order-1","card":{"number":"4111111111111111","holder_name":"Maria Silva","expiry_month":11,"expiry_year":2031,"cvv":"123"},"amount_cents":1234,"store":"Code Store","description":"Produtos: livro"}`))
	f.Add([]byte(`{"amount_cents":"12"}`))
	f.Add([]byte(`{"amount_cents":1e30}`))
	f.Add([]byte(`{"card":null,"unknown":1}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		s, bank, _ := newTestServer(t)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/v1/payments", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+unitMerchantKey)
		s.http.Handler.ServeHTTP(rec, req)
		switch {
		case rec.Code == http.StatusOK:
			accepted(t, bank)
		case rec.Code >= 400 && rec.Code < 500:
			if rec.Body.Len() == 0 || len(bank.payments) != 0 {
				t.Fatalf("%d with body %q and %d payments sent", rec.Code, rec.Body, len(bank.payments))
			}
		default:
			t.Fatalf("POST /v1/payments %q = %d %s", body, rec.Code, rec.Body)
		}
	})
}

// FuzzLegacyPayment: the original contract's request is refused with INVALID_ARGUMENT naming its
// fields, or sent on in cents within half a cent of its double, as a request the authorizer
// accepts.
func FuzzLegacyPayment(f *testing.F) {
	f.Add("4111111111111111", "Maria", int32(7), int32(30), int32(123), 12.345, "Code Store", "x")
	f.Add("4111111111111111", "", int32(0), int32(0), int32(-1), -0.0, "", "")
	f.Add("4111111111111111", "Maria", int32(7), int32(2030), int32(1000), 1e9+0.01, "s", "d")
	f.Fuzz(func(t *testing.T, number, name string, month, year, cvv int32, amount float64, store, desc string) {
		s, bank, _ := newTestServer(t)
		_, err := legacyService{Server: s}.Payment(merchantCtx(), &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{
			Number: number, Name: name, ExpirationMonth: month, ExpirationYear: year, Cvv: cvv}, Amount: amount, Store: store, Description: desc})
		if err != nil && status.Code(err) != codes.FailedPrecondition { // the recording bank approves
			if !refusedWell(err) || len(bank.payments) != 0 {
				t.Fatalf("refusal = %v with %d payments sent", err, len(bank.payments))
			}
			return
		}
		accepted(t, bank)
		if got := float64(bank.payments[0].GetAmountCents()); got-amount*100 > 0.5000001 || amount*100-got > 0.5000001 {
			t.Fatalf("%v sent as %v cents", amount, got)
		}
	})
}

// emptyStatements is a statement reader with nothing on any card.
type emptyStatements struct{}

func (emptyStatements) Months(string) ([]*eventsv1.MonthTotal, error) {
	return nil, nil
}
func (emptyStatements) Lines(string, string, int64, int64) ([]*eventsv1.StatementLine, error) {
	return nil, nil
}
func (emptyStatements) Await(ctx context.Context, check func() (bool, error)) error {
	if done, err := check(); done || err != nil {
		return err
	}
	<-ctx.Done() // nothing ever changes
	return ctx.Err()
}

// FuzzGetStatement: a statement request is refused with INVALID_ARGUMENT naming its fields, or
// answered for a month that is YYYY-MM with a next page token that is a line number.
func FuzzGetStatement(f *testing.F) {
	f.Add(knownCard, "2026-11", "", int32(0))
	f.Add(knownCard, "2026-13", "-1", int32(-5))
	f.Add(knownCard, "", "99999999999999999999", int32(1001))
	f.Add("4111111111111111", "2026-1", "abc", int32(1))
	f.Fuzz(func(t *testing.T, cardID, month, token string, size int32) {
		s, _, _ := newTestServer(t)
		resp, err := statementService{Server: s}.GetStatement(context.Background(), &codebankv1.GetStatementRequest{CardId: cardID, Month: month, PageToken: token, PageSize: size})
		if err != nil {
			if !refusedWell(err) && status.Code(err) != codes.NotFound {
				t.Fatalf("GetStatement(%q, %q, %q, %d) = %v; want INVALID_ARGUMENT naming fields, or NOT_FOUND", cardID, month, token, size, err)
			}
			return
		}
		if m, err := time.Parse("2006-01", resp.GetMonth()); err != nil || m.Format("2006-01") != resp.GetMonth() || month != "" && month != resp.GetMonth() {
			t.Fatalf("answered for month %q, asked %q", resp.GetMonth(), month)
		}
		if next := resp.GetNextPageToken(); next != "" {
			if n, err := strconv.ParseInt(next, 10, 64); err != nil || n < 0 {
				t.Fatalf("next page token %q", next)
			}
		}
	})
}

// FuzzMoneyBack: a reversal, refund or bill payment with arbitrary fields is refused with
// INVALID_ARGUMENT naming its fields, refused as NOT_FOUND (a payment id that does not open for
// the merchant), or sent on as an operation the authorizer's contract accepts, for the card the
// payment id was sealed for, and no other.
func FuzzMoneyBack(f *testing.F) {
	_, _, keys := newTestServer(f)
	ids, _ := paymentid.ForKeys(keys)
	good, _ := ids.Seal("code-store", paymentid.Payment{CardToken: knownCard, TransactionID: "order-1", AmountCents: 10_000, DecidedAtUnixUs: 1795602454530123, Approved: true})
	f.Add(uint8(0), good, "r-1", int64(1000), "")
	f.Add(uint8(1), good, "v/1", int64(0), "")
	f.Add(uint8(2), "", "b-1", int64(500), knownCard)
	f.Add(uint8(2), "", "", int64(-1), "nope")
	f.Add(uint8(0), good[:len(good)-2]+"AA", "r-2", int64(1), "")
	f.Fuzz(func(t *testing.T, kind uint8, paymentID, opID string, amount int64, cardID string) {
		s, bank, _ := newTestServer(t)
		var err error
		switch kind % 3 {
		case 0:
			_, err = paymentService{Server: s}.Refund(merchantCtx(), &codebankv1.RefundRequest{PaymentId: paymentID, RefundId: opID, AmountCents: amount})
		case 1:
			_, err = paymentService{Server: s}.Reverse(merchantCtx(), &codebankv1.ReverseRequest{PaymentId: paymentID, ReversalId: opID, AmountCents: amount})
		default:
			_, err = cardService{Server: s}.PayBill(adminCtx(), &codebankv1.PayBillRequest{CardId: cardID, BillPaymentId: opID, AmountCents: amount})
		}
		switch {
		case err != nil && len(bank.operations) != 0:
			t.Fatalf("refused (%v), and an operation was sent", err)
		case err != nil && !refusedWell(err) && status.Code(err) != codes.NotFound:
			t.Fatalf("refusal = %v; want INVALID_ARGUMENT naming fields, or NOT_FOUND", err)
		case err != nil:
			return
		case len(bank.operations) != 1:
			t.Fatalf("an accepted operation sent %d", len(bank.operations))
		}
		op := bank.operations[0]
		if err := codecs.CheckCardCommand(bank.tokens[0], &eventsv1.CardCommand{CommandId: "c", Command: &eventsv1.CardCommand_Operation{Operation: op}}); err != nil {
			t.Fatalf("the ingress accepted an operation the authorizer refuses: %v (%v)", err, op)
		}
		if kind%3 != 2 {
			p, err := ids.Open("code-store", paymentID)
			if err != nil || bank.tokens[0] != p.CardToken || op.GetTransactionId() != p.TransactionID || op.GetPurchaseAmountCents() != p.AmountCents {
				t.Fatalf("operation %v sent to card %q for payment id %+v, %v", op, bank.tokens[0], p, err)
			}
		} else if bank.tokens[0] != cardID {
			t.Fatalf("bill payment sent to card %q, asked for %q", bank.tokens[0], cardID)
		}
	})
}

// adminCtx is the context of a call made with an operator's key.
func adminCtx() context.Context {
	return context.WithValue(context.Background(), principalKey{}, apikey.Principal{KeyID: "ops-1", Role: apikey.Admin})
}
