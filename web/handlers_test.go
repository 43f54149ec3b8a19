package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// The handler tests run against a fake bank and store.Memory; integration_test.go runs the
// same pages against the real bank on Kafka, in a browser.

var testNow = time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC)

const (
	goodNumber = "5454540687568555" // Luhn-valid
	goodHolder = "Maria Silva"
)

// fakeBank implements the bank's gRPC clients. Authorize is idempotent per transaction id,
// like the real bank: the first answer is kept and replayed.
type fakeBank struct {
	mu        sync.Mutex
	calls     []*codebankv1.AuthorizeRequest
	decided   map[string]*codebankv1.AuthorizeResponse
	charged   int64
	decide    func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error)
	statement func(*codebankv1.GetStatementRequest) (*codebankv1.GetStatementResponse, error)
	delay     time.Duration
	// verifications counts VerifyCard calls.
	verifications int
	// credits are the reversals and refunds carried out, "kind id payment_id amount", once
	// each; creditErr, when set, fails them.
	credits   []string
	creditErr error
}

func approveAll(req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
	return &codebankv1.AuthorizeResponse{TransactionId: req.GetTransactionId(), Status: codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED, AmountCents: req.GetAmountCents(),
		PaymentId: "pid-" + req.GetTransactionId()}, nil
}

// credit carries out a reversal or refund once per kind and id, like the real bank.
func (f *fakeBank) credit(kind, id, paymentID string, amount int64) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.creditErr != nil {
		return false, f.creditErr
	}
	c := fmt.Sprintf("%s %s %s %d", kind, id, paymentID, amount)
	if slices.Contains(f.credits, c) {
		return true, nil
	}
	f.credits = append(f.credits, c)
	return false, nil
}

func (f *fakeBank) Reverse(_ context.Context, req *codebankv1.ReverseRequest, _ ...grpc.CallOption) (*codebankv1.ReverseResponse, error) {
	dup, err := f.credit("reversal", req.GetReversalId(), req.GetPaymentId(), req.GetAmountCents())
	if err != nil {
		return nil, err
	}
	return &codebankv1.ReverseResponse{ReversalId: req.GetReversalId(), AmountCents: req.GetAmountCents(), Duplicate: dup}, nil
}

func (f *fakeBank) Refund(_ context.Context, req *codebankv1.RefundRequest, _ ...grpc.CallOption) (*codebankv1.RefundResponse, error) {
	dup, err := f.credit("refund", req.GetRefundId(), req.GetPaymentId(), req.GetAmountCents())
	if err != nil {
		return nil, err
	}
	return &codebankv1.RefundResponse{RefundId: req.GetRefundId(), AmountCents: req.GetAmountCents(), Duplicate: dup}, nil
}

func (f *fakeBank) PayBill(context.Context, *codebankv1.PayBillRequest, ...grpc.CallOption) (*codebankv1.PayBillResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not record bill payments")
}

func (f *fakeBank) Authorize(ctx context.Context, req *codebankv1.AuthorizeRequest, _ ...grpc.CallOption) (*codebankv1.AuthorizeResponse, error) {
	time.Sleep(f.delay)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, req)
	if r, ok := f.decided[req.GetTransactionId()]; ok {
		dup := proto.Clone(r).(*codebankv1.AuthorizeResponse)
		dup.Duplicate = true
		return dup, nil
	}
	decide := f.decide
	if decide == nil {
		decide = approveAll
	}
	resp, err := decide(req)
	if err != nil {
		return nil, err
	}
	if resp.MaskedNumber == "" { // as the real bank answers
		resp.MaskedNumber = card.Mask(card.NormalizeNumber(req.GetCard().GetNumber()))
	}
	if f.decided == nil {
		f.decided = map[string]*codebankv1.AuthorizeResponse{}
	}
	f.decided[req.GetTransactionId()] = resp
	if resp.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		f.charged += req.GetAmountCents()
	}
	return resp, nil
}

func (f *fakeBank) GetStatement(ctx context.Context, req *codebankv1.GetStatementRequest, _ ...grpc.CallOption) (*codebankv1.GetStatementResponse, error) {
	if f.statement == nil {
		return nil, status.Error(codes.Unimplemented, "no statements")
	}
	return f.statement(req)
}

func (f *fakeBank) ListStatements(context.Context, *codebankv1.ListStatementsRequest, ...grpc.CallOption) (*codebankv1.ListStatementsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "no statements")
}

// goodCardID is the card id of goodNumber at the fake bank.
const goodCardID = "good-card-id-000000000"

// VerifyCard proves goodNumber with expiry 11/31 and CVV 755, counting the calls; it says no
// to anything else, as the real bank does, without saying why.
func (f *fakeBank) VerifyCard(_ context.Context, req *codebankv1.VerifyCardRequest, _ ...grpc.CallOption) (*codebankv1.VerifyCardResponse, error) {
	f.mu.Lock()
	f.verifications++
	f.mu.Unlock()
	if f.statement == nil {
		return nil, status.Error(codes.Unavailable, "down")
	}
	if req.GetNumber() == goodNumber && req.GetExpiryMonth() == 11 && req.GetExpiryYear() == 2031 && req.GetCvv() == "755" {
		return &codebankv1.VerifyCardResponse{Verified: true, CardId: goodCardID, MaskedNumber: "545454******8555"}, nil
	}
	return &codebankv1.VerifyCardResponse{}, nil
}

func (f *fakeBank) IssueCard(context.Context, *codebankv1.IssueCardRequest, ...grpc.CallOption) (*codebankv1.IssueCardResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not issue cards")
}
func (f *fakeBank) GetCard(context.Context, *codebankv1.GetCardRequest, ...grpc.CallOption) (*codebankv1.GetCardResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not read cards")
}
func (f *fakeBank) LookupCard(context.Context, *codebankv1.LookupCardRequest, ...grpc.CallOption) (*codebankv1.LookupCardResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not look cards up")
}
func (f *fakeBank) BlockCard(context.Context, *codebankv1.BlockCardRequest, ...grpc.CallOption) (*codebankv1.BlockCardResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not block cards")
}
func (f *fakeBank) UnblockCard(context.Context, *codebankv1.UnblockCardRequest, ...grpc.CallOption) (*codebankv1.UnblockCardResponse, error) {
	return nil, status.Error(codes.PermissionDenied, "the pages may not unblock cards")
}

func (f *fakeBank) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type fixture struct {
	bank   *fakeBank
	orders *store.Memory
	feed   *Feed
	h      http.Handler
	// later moves the pages' clock ahead of testNow.
	later time.Duration
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{}
	bank := &fakeBank{}
	mem := store.NewMemory(func() time.Time { return testNow })
	feed := NewFeed(FeedConfig{Kafka: kafkaTestConfig, Topology: processors.Topology{Prefix: "unused-"}}, FeedDeps{Log: quietLog()})
	feed.now = func() time.Time { return testNow }
	srv := New(Config{
		DemoCards:      []DemoCard{{Number: goodNumber, Holder: goodHolder, Expiry: "11/31", CVV: "755"}},
		RequestTimeout: 2 * time.Second,
		OrderSecret:    testOrderSecret,
		// The handler tests post many forms from one address: the limits have a test of
		// their own (TestPostsLimitedPerAddress).
		AttemptsPerMinute: 1_000_000, ReadsPerMinute: 1_000_000,
	}, Deps{Payments: bank, Cards: bank, Statements: bank, Orders: mem, Dashboard: feed, Now: func() time.Time { return testNow.Add(f.later) }, Log: quietLog()})
	srv.orderWait = 100 * time.Millisecond
	f.bank, f.orders, f.feed, f.h = bank, mem, feed, srv.Handler()
	return f
}

func (f *fixture) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Result(), rec.Body.String()
}

func (f *fixture) post(t *testing.T, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	f.h.ServeHTTP(rec, req)
	return rec.Result(), rec.Body.String()
}

// testOrderSecret signs the order ids of the handler tests' store.
var testOrderSecret = []byte("order secret of the store tests")

// newOrderID returns an order id the handler tests' store issued.
func newOrderID() string { return (&Server{orderKey: testOrderSecret}).newOrderID() }

func checkoutForm0(orderID string) url.Values {
	return url.Values{"order_id": {orderID}, "product": {"stoneware-mug"}, "quantity": {"2"},
		"holder": {goodHolder}, "number": {"5454 5406 8756 8555"}, "expiry": {"11/31"}, "cvv": {"755"}}
}

var hiddenOrderID = regexp.MustCompile(`name="order_id" value="(order-[a-z2-7]{16}-[a-z2-7]{16})"`)

// fieldError returns the error shown next to a field, or "".
func fieldError(body, field string) string {
	m := regexp.MustCompile(`id="` + field + `-error"><span aria-hidden="true">⚠ </span>([^<]*)</p>`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return htmlUnescape(m[1])
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&#39;", "'", "&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`).Replace(s)
}

func TestCatalog(t *testing.T) {
	f := newFixture(t)
	resp, body := f.get(t, "/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, p := range Catalog() {
		for _, want := range []string{p.Name, "/products/" + p.Slug, "R$ " + fmtCents(p.PriceCents), "/static/" + p.Image} {
			if !strings.Contains(body, htmlEscape(want)) {
				t.Errorf("catalog lacks %q", want)
			}
		}
	}
	if len(Catalog()) != 6 {
		t.Errorf("catalog has %d products, want 6", len(Catalog()))
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", csp)
	}
}

func fmtCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }

func htmlEscape(s string) string {
	return strings.NewReplacer("'", "&#39;", `"`, "&#34;").Replace(s)
}

func TestProductPage(t *testing.T) {
	f := newFixture(t)
	resp, body := f.get(t, "/products/wireless-headphones")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET product = %d", resp.StatusCode)
	}
	for _, want := range []string{"Wireless Headphones", "R$ 499.00", `action="/checkout"`, `<label for="holder">`, `<label for="number">`,
		`<label for="expiry">`, `<label for="cvv">`, `<label for="quantity">`, "5454 5406 8756 8555", `autocomplete="cc-number"`} {
		if !strings.Contains(body, want) {
			t.Errorf("product page lacks %q", want)
		}
	}
	if !hiddenOrderID.MatchString(body) {
		t.Error("product page has no order id in its form")
	}
	_, again := f.get(t, "/products/wireless-headphones")
	if hiddenOrderID.FindStringSubmatch(body)[1] == hiddenOrderID.FindStringSubmatch(again)[1] {
		t.Error("two visits of the product page got the same order id")
	}
	if resp, _ := f.get(t, "/products/no-such-thing"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown product = %d, want 404", resp.StatusCode)
	}
}

func TestCheckoutValidation(t *testing.T) {
	tests := []struct {
		name  string
		set   map[string]string
		field string
		want  string
	}{
		{"no holder", map[string]string{"holder": ""}, "holder", "Enter the name on the card"},
		{"long holder", map[string]string{"holder": strings.Repeat("A", 65)}, "holder", "at most 64 characters"},
		{"no number", map[string]string{"number": ""}, "number", "Enter the card number"},
		{"bad Luhn", map[string]string{"number": "5454540687568556"}, "number", "This card number is not valid: check the digits"},
		{"letters", map[string]string{"number": "5454-5406-8756-855a"}, "number", "Use digits only"},
		{"short number", map[string]string{"number": "545454068756855"}, "number", "A card number has 16 digits"},
		{"no expiry", map[string]string{"expiry": ""}, "expiry", "Enter the expiry date"},
		{"month 13", map[string]string{"expiry": "13/31"}, "expiry", "The month must be from 01 to 12"},
		{"expiry format", map[string]string{"expiry": "11-2031"}, "expiry", "Use MM/YY"},
		{"expired", map[string]string{"expiry": "10/26"}, "expiry", "This card has expired"},
		{"no cvv", map[string]string{"cvv": ""}, "cvv", "Enter the CVV"},
		{"cvv 2 digits", map[string]string{"cvv": "75"}, "cvv", "The CVV is the 3 digits on the back of the card"},
		{"cvv 4 digits", map[string]string{"cvv": "7555"}, "cvv", "The CVV is the 3 digits on the back of the card"},
		{"cvv letters", map[string]string{"cvv": "7a5"}, "cvv", "The CVV is the 3 digits on the back of the card"},
		{"quantity 0", map[string]string{"quantity": "0"}, "quantity", "Choose at least 1"},
		{"quantity negative", map[string]string{"quantity": "-3"}, "quantity", "Choose at least 1"},
		{"quantity 11", map[string]string{"quantity": "11"}, "quantity", "You can buy at most 10 at a time"},
		{"quantity huge", map[string]string{"quantity": "99999999999999999999999"}, "quantity", "You can buy at most 10 at a time"},
		{"quantity decimal", map[string]string{"quantity": "1.5"}, "quantity", "Enter a whole number"},
		{"no quantity", map[string]string{"quantity": ""}, "quantity", "Choose a quantity"},
	}
	f := newFixture(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			form := checkoutForm0(newOrderID())
			for k, v := range tt.set {
				form.Set(k, v)
			}
			resp, body := f.post(t, "/checkout", form)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status = %d, want 422", resp.StatusCode)
			}
			if got := fieldError(body, tt.field); !strings.Contains(got, tt.want) {
				t.Errorf("error next to %s = %q, want %q", tt.field, got, tt.want)
			}
			if !strings.Contains(body, `id="`+tt.field+`"`) || !regexp.MustCompile(`id="`+tt.field+`"[^>]*aria-invalid="true"[^>]*autofocus`).MatchString(body) {
				t.Errorf("field %s is not marked invalid and focused", tt.field)
			}
			if strings.Contains(body, `value="755"`) {
				t.Error("the CVV was sent back in the page")
			}
			if tt.field != "holder" && !strings.Contains(body, `value="Maria Silva"`) {
				t.Error("the holder typed was not kept")
			}
			if !strings.Contains(body, `name="order_id" value="`+form.Get("order_id")+`"`) {
				t.Error("the form lost its order id")
			}
		})
	}
	t.Run("everything empty", func(t *testing.T) {
		resp, body := f.post(t, "/checkout", url.Values{"product": {"stoneware-mug"}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("status = %d", resp.StatusCode)
		}
		for _, field := range []string{"quantity", "holder", "number", "expiry", "cvv"} {
			if fieldError(body, field) == "" {
				t.Errorf("no error next to %s", field)
			}
		}
		if !strings.Contains(body, "Please correct the 5 fields marked below.") {
			t.Error("no error summary")
		}
	})
	if n := f.bank.callCount(); n != 0 {
		t.Errorf("the bank was called %d times for invalid forms", n)
	}
	if resp, _ := f.post(t, "/checkout", url.Values{"product": {"nope"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown product = %d, want 404", resp.StatusCode)
	}
}

func TestCheckoutApproved(t *testing.T) {
	f := newFixture(t)
	id := newOrderID()
	resp, _ := f.post(t, "/checkout", checkoutForm0(id))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders/"+id {
		t.Fatalf("checkout = %d to %q, want 303 to /orders/%s", resp.StatusCode, resp.Header.Get("Location"), id)
	}
	req := f.bank.calls[0]
	if req.GetTransactionId() != id || req.GetAmountCents() != 2*5990 || req.GetStore() != "Code Store" || req.GetDescription() != "Produtos: 2x Stoneware Mug" {
		t.Errorf("Authorize(%v)", req)
	}
	if c := req.GetCard(); c.GetNumber() != goodNumber || c.GetHolderName() != goodHolder || c.GetExpiryMonth() != 11 || c.GetExpiryYear() != 2031 || c.GetCvv() != "755" {
		t.Errorf("card sent = %v", c)
	}
	o, err := f.orders.Get(context.Background(), id)
	if err != nil || o.Status != store.StatusApproved || o.CardMasked != "545454******8555" || o.TotalCents != 11980 || o.TransactionID != id {
		t.Fatalf("order = %+v, %v", o, err)
	}
	stored, _ := json.Marshal(o)
	if strings.Contains(string(stored), goodNumber) || strings.Contains(string(stored), "755") {
		t.Errorf("the order keeps the card number or the CVV: %s", stored)
	}
	resp, body := f.get(t, "/orders/"+id)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("order page = %d", resp.StatusCode)
	}
	for _, want := range []string{`id="order-status">Approved<`, "545454******8555", "R$ 119.80", "Stoneware Mug", "R$ 59.90"} {
		if !strings.Contains(body, want) {
			t.Errorf("order page lacks %q", want)
		}
	}
	if strings.Contains(body, goodNumber) || strings.Contains(body, `action="/orders/`+id+`/pay"`) {
		t.Error("approved order page shows the full number or a retry form")
	}
}

// TestCheckoutRefusesOrderIDsItDidNotIssue posts checkout forms whose order id the store did
// not sign: none is paid, and the form comes back with an id the store did issue.
func TestCheckoutRefusesOrderIDsItDidNotIssue(t *testing.T) {
	f := newFixture(t)
	other := (&Server{orderKey: []byte("another store's order secret")}).newOrderID()
	genuine := newOrderID()
	for name, id := range map[string]string{
		"forged signature":         genuine[:len(genuine)-16] + strings.Repeat("a", 16),
		"signed by another secret": other,
		"an id of the old format":  "order-" + strings.Repeat("a", 16),
		"a client's own id":        "order-1",
		"no id":                    "",
	} {
		t.Run(name, func(t *testing.T) {
			resp, body := f.post(t, "/checkout", checkoutForm0(id))
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, htmlEscape(msgNotIssued)) {
				t.Fatalf("checkout = %d, want 400 saying %q", resp.StatusCode, msgNotIssued)
			}
			m := hiddenOrderID.FindStringSubmatch(body)
			if m == nil || m[1] == id || !(&Server{orderKey: testOrderSecret}).issued(m[1]) {
				t.Errorf("the form came back with order id %v, want a new one the store issued", m)
			}
		})
	}
	if n := f.bank.callCount(); n != 0 {
		t.Errorf("the bank was called %d times for orders the store did not issue", n)
	}
}

// TestCheckoutChecksTheBanksAnswer makes the bank answer for another payment: the order is
// never marked paid, and its page says so without offering to pay again.
func TestCheckoutChecksTheBanksAnswer(t *testing.T) {
	approve := func(change func(*codebankv1.AuthorizeResponse)) func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
		return func(req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
			resp, _ := approveAll(req)
			resp.MaskedNumber = card.Mask(card.NormalizeNumber(req.GetCard().GetNumber()))
			change(resp)
			return resp, nil
		}
	}
	tests := map[string]func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error){
		"another amount":                    approve(func(r *codebankv1.AuthorizeResponse) { r.AmountCents++ }),
		"another transaction":               approve(func(r *codebankv1.AuthorizeResponse) { r.TransactionId = "order-other" }),
		"another card":                      approve(func(r *codebankv1.AuthorizeResponse) { r.MaskedNumber = "411111******1111" }),
		"a replay of an attempt never made": approve(func(r *codebankv1.AuthorizeResponse) { r.Duplicate = true }),
		"the id used for another payment": func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
			return nil, status.Error(codes.AlreadyExists, "transaction_id: another payment")
		},
	}
	for name, decide := range tests {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t)
			f.bank.decide = decide
			id := newOrderID()
			if resp, _ := f.post(t, "/checkout", checkoutForm0(id)); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("checkout = %d", resp.StatusCode)
			}
			o, _ := f.orders.Get(context.Background(), id)
			if o.Decided() || o.LastError != store.ErrorMismatch {
				t.Fatalf("order = %+v, want pending with %s", o, store.ErrorMismatch)
			}
			_, body := f.get(t, "/orders/"+id)
			if !strings.Contains(body, "did not match this order") || strings.Contains(body, `action="/orders/`+id+`/pay"`) {
				t.Errorf("order page does not say the answer did not match, or offers to pay again")
			}
		})
	}
}

func TestCheckoutRejected(t *testing.T) {
	reasons := map[codebankv1.RejectReason]string{
		codebankv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT: "Insufficient credit on this card",
		codebankv1.RejectReason_REJECT_REASON_CVV_MISMATCH:        "Check the CVV",
		codebankv1.RejectReason_REJECT_REASON_EXPIRY_MISMATCH:     "Check the expiry date",
		codebankv1.RejectReason_REJECT_REASON_CARD_EXPIRED:        "This card has expired",
		codebankv1.RejectReason_REJECT_REASON_HOLDER_MISMATCH:     "Check the name on the card",
		codebankv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND:      "Card not recognised",
		codebankv1.RejectReason_REJECT_REASON_CARD_BLOCKED:        "This card is blocked",
	}
	for reason, words := range reasons {
		t.Run(reason.String(), func(t *testing.T) {
			f := newFixture(t)
			f.bank.decide = func(req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
				return &codebankv1.AuthorizeResponse{TransactionId: req.GetTransactionId(), Status: codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED, Reason: reason,
					AmountCents: req.GetAmountCents()}, nil
			}
			id := newOrderID()
			if resp, _ := f.post(t, "/checkout", checkoutForm0(id)); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("checkout = %d", resp.StatusCode)
			}
			o, _ := f.orders.Get(context.Background(), id)
			if o.Status != store.StatusRejected || o.Reason != strings.ToLower(strings.TrimPrefix(reason.String(), "REJECT_REASON_")) {
				t.Errorf("order = %+v", o)
			}
			_, body := f.get(t, "/orders/"+id)
			if !strings.Contains(body, `id="order-status">Rejected<`) || !strings.Contains(body, `id="order-message">`+htmlEscape(words)+`<`) {
				t.Errorf("order page does not say %q", words)
			}
		})
	}
}

// TestCheckoutAccountUnavailable: the bank could not read the card's account and decided
// nothing: the order stays pending, to be paid again, not rejected.
func TestCheckoutAccountUnavailable(t *testing.T) {
	f := newFixture(t)
	f.bank.decide = func(req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
		return &codebankv1.AuthorizeResponse{TransactionId: req.GetTransactionId(), Status: codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED,
			Reason: codebankv1.RejectReason_REJECT_REASON_ACCOUNT_UNAVAILABLE, AmountCents: req.GetAmountCents()}, nil
	}
	id := newOrderID()
	if resp, _ := f.post(t, "/checkout", checkoutForm0(id)); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("checkout = %d", resp.StatusCode)
	}
	if o, _ := f.orders.Get(context.Background(), id); o.Decided() || o.LastError != store.ErrorUnreachable {
		t.Fatalf("order = %+v, want pending, to be paid again", o)
	}
	if _, body := f.get(t, "/orders/"+id); !strings.Contains(body, `action="/orders/`+id+`/pay"`) {
		t.Error("the order page offers no retry")
	}
}

func TestCheckoutBankUnreachableThenRetry(t *testing.T) {
	f := newFixture(t)
	f.bank.decide = func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
		return nil, status.Error(codes.Unavailable, "connection refused")
	}
	id := newOrderID()
	resp, _ := f.post(t, "/checkout", checkoutForm0(id))
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders/"+id {
		t.Fatalf("checkout with the bank down = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	o, _ := f.orders.Get(context.Background(), id)
	if o.Status != store.StatusPending || o.LastError != store.ErrorUnreachable || o.TotalCents != 11980 {
		t.Fatalf("order = %+v, want pending, bank unreachable", o)
	}
	_, body := f.get(t, "/orders/"+id)
	for _, want := range []string{"We could not reach the bank, try again.", `action="/orders/` + id + `/pay"`, "Try again", "8555"} {
		if !strings.Contains(body, want) {
			t.Errorf("pending order page lacks %q", want)
		}
	}

	// Another card for the same order: refused, the bank is not called.
	other := checkoutForm0("")
	other.Set("number", "4111111111111111")
	calls := f.bank.callCount()
	resp, body = f.post(t, "/orders/"+id+"/pay", other)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(fieldError(body, "number"), "ending in 8555") {
		t.Errorf("retry with another card = %d, error %q", resp.StatusCode, fieldError(body, "number"))
	}
	// A bad CVV on the retry form: shown next to the field.
	bad := checkoutForm0("")
	bad.Set("cvv", "1")
	if resp, body := f.post(t, "/orders/"+id+"/pay", bad); resp.StatusCode != http.StatusUnprocessableEntity || fieldError(body, "cvv") == "" {
		t.Errorf("retry with a bad CVV = %d, error %q", resp.StatusCode, fieldError(body, "cvv"))
	}
	if f.bank.callCount() != calls {
		t.Error("the bank was called for a refused retry")
	}

	// The bank is back: the retry pays the same order, under the same transaction id.
	f.bank.decide = approveAll
	resp, _ = f.post(t, "/orders/"+id+"/pay", checkoutForm0(""))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry = %d", resp.StatusCode)
	}
	o, _ = f.orders.Get(context.Background(), id)
	if o.Status != store.StatusApproved || o.Attempts != 2 || o.LastError != "" {
		t.Errorf("order after retry = %+v", o)
	}
	for _, c := range f.bank.calls {
		if c.GetTransactionId() != id || c.GetAmountCents() != 11980 {
			t.Errorf("bank call %v: want transaction %s of 11980", c, id)
		}
	}
	// Retrying a decided order only shows it.
	if resp, _ := f.post(t, "/orders/"+id+"/pay", checkoutForm0("")); resp.StatusCode != http.StatusSeeOther || f.bank.callCount() != calls+1 {
		t.Errorf("retry of a decided order = %d, bank calls %d", resp.StatusCode, f.bank.callCount())
	}
}

func TestCheckoutBankTimeout(t *testing.T) {
	f := newFixture(t)
	f.bank.decide = func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
		return nil, status.Error(codes.DeadlineExceeded, "transaction order-x: no answer within 5s")
	}
	id := newOrderID()
	f.post(t, "/checkout", checkoutForm0(id))
	if o, _ := f.orders.Get(context.Background(), id); o.Status != store.StatusPending || o.LastError != store.ErrorUnreachable {
		t.Errorf("order after a timeout = %+v", o)
	}
}

func TestCheckoutBankInvalidArgument(t *testing.T) {
	f := newFixture(t)
	f.bank.decide = func(*codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
		st, _ := status.New(codes.InvalidArgument, "invalid request").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "card.number", Description: "card number fails the Luhn check"},
			{Field: "card.cvv", Description: "must be 3 digits"},
			{Field: "card.expiry_year", Description: "must be a year like 2030 or 30, got 1999"},
			{Field: "card.holder_name", Description: "must not contain control characters"},
			{Field: "amount_cents", Description: "must be at most 100000000000, got 1"},
			{Field: "store", Description: "is required"},
		}})
		return nil, st.Err()
	}
	id := newOrderID()
	resp, body := f.post(t, "/checkout", checkoutForm0(id))
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("checkout = %d, want 422", resp.StatusCode)
	}
	for field, want := range map[string]string{
		"number": "Card number fails the Luhn check", "cvv": "CVV must be 3 digits", "expiry": "Expiry year must be a year like 2030",
		"holder": "Name on card must not contain control characters", "quantity": "Amount must be at most",
	} {
		if got := fieldError(body, field); !strings.Contains(got, want) {
			t.Errorf("error next to %s = %q, want %q", field, got, want)
		}
	}
	if !strings.Contains(body, "store is required") {
		t.Error("the violation of a field the form lacks is not shown")
	}
	if o, _ := f.orders.Get(context.Background(), id); o.Status != store.StatusPending || o.LastError != store.ErrorInvalid {
		t.Errorf("order = %+v, want pending, invalid", o)
	}
}

func TestCheckoutStoreDown(t *testing.T) {
	f := newFixture(t)
	f.orders.Err = errors.New("kafka: client has run out of available brokers")
	resp, body := f.post(t, "/checkout", checkoutForm0(newOrderID()))
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "nothing was charged") {
		t.Errorf("checkout with the store down = %d", resp.StatusCode)
	}
	if f.bank.callCount() != 0 {
		t.Error("the bank was called without a recorded order")
	}
	if resp, _ := f.get(t, "/orders/"+newOrderID()); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("order page with the store down = %d, want 503", resp.StatusCode)
	}
}

// TestDoubleSubmit sends one order's form many times at once, as a double click does: one
// charge, one order.
func TestDoubleSubmit(t *testing.T) {
	f := newFixture(t)
	f.bank.delay = 20 * time.Millisecond
	id := newOrderID()
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, _ := f.post(t, "/checkout", checkoutForm0(id))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/orders/"+id {
				t.Errorf("submission = %d to %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		}()
	}
	wg.Wait()
	if f.bank.charged != 11980 {
		t.Errorf("charged %d, want 11980 once", f.bank.charged)
	}
	if o, _ := f.orders.Get(context.Background(), id); o.Status != store.StatusApproved {
		t.Errorf("order = %+v", o)
	}
	// The form submitted once more, after the answer: the bank is not asked again.
	calls := f.bank.callCount()
	f.post(t, "/checkout", checkoutForm0(id))
	if f.bank.callCount() != calls {
		t.Error("a decided order was sent to the bank again")
	}
}

func TestOrderPage(t *testing.T) {
	f := newFixture(t)
	base := store.Order{Items: []store.Item{{Slug: "dot-grid-notebook", Name: "Dot-Grid Notebook", PriceCents: 3990, Quantity: 3}},
		TotalCents: 11970, Currency: "BRL", CardMasked: "545454******8555", PlacedAt: testNow, Attempts: 1}
	tests := []struct {
		name   string
		mutate func(*store.Order)
		want   []string
		retry  bool
	}{
		{"approved", func(o *store.Order) { o.Status = store.StatusApproved; o.DecidedAt = testNow },
			[]string{">Approved<", "The bank approved the payment", "See it on your statement"}, false},
		{"rejected", func(o *store.Order) { o.Status, o.Reason = store.StatusRejected, "insufficient_credit" },
			[]string{">Rejected<", "Insufficient credit on this card", "Try again with another card"}, false},
		{"unreachable", func(o *store.Order) { o.Status, o.LastError = store.StatusPending, store.ErrorUnreachable },
			[]string{">Not paid yet<", "We could not reach the bank, try again."}, true},
		{"in flight", func(o *store.Order) { o.Status = store.StatusPending },
			[]string{">Waiting for the bank<", `http-equiv="refresh"`}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.ID = newOrderID()
			tt.mutate(&o)
			f.orders.Put(&o)
			resp, body := f.get(t, "/orders/"+o.ID)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			for _, want := range append(tt.want, "Dot-Grid Notebook", "R$ 119.70", "545454******8555", o.ID) {
				if !strings.Contains(body, want) && !strings.Contains(body, htmlEscape(want)) {
					t.Errorf("page lacks %q", want)
				}
			}
			if got := strings.Contains(body, `/pay"`); got != tt.retry {
				t.Errorf("retry form shown = %v, want %v", got, tt.retry)
			}
		})
	}
	for _, path := range []string{"/orders/" + newOrderID(), "/orders/not-an-order-id"} {
		if resp, body := f.get(t, path); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Page not found") {
			t.Errorf("GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
}

func statementResponse(req *codebankv1.GetStatementRequest) (*codebankv1.GetStatementResponse, error) {
	if req.GetCardId() != goodCardID {
		return nil, status.Errorf(codes.NotFound, "card %s not found", req.GetCardId())
	}
	at := testNow.Add(-time.Hour).UnixMilli()
	return &codebankv1.GetStatementResponse{MaskedNumber: "545454******8555", HolderName: "MARIA SILVA", Month: req.GetMonth(),
		Lines: []*codebankv1.StatementLine{
			{TransactionId: "order-a", AuthorizedAtUnixMs: at, Store: "Code Store", Description: "Produtos: Stoneware Mug", AmountCents: 5990},
			{TransactionId: "order-b", AuthorizedAtUnixMs: at + 60_000, Store: "Code Store", Description: "Produtos: 2x Dot-Grid Notebook", AmountCents: 7980},
		},
		TotalCents: 13970, Count: 2, AvailableCents: 86030, LimitCents: 100000, Currency: "BRL", UpToDate: true}, nil
}

// proof is the statement form of goodNumber with its expiry and CVV.
func proof(month string) url.Values {
	return url.Values{"number": {"5454 5406 8756 8555"}, "expiry": {"11/31"}, "cvv": {"755"}, "month": {month}}
}

var viewField = regexp.MustCompile(`name="view" value="([^"]+)"`)

func TestStatementPage(t *testing.T) {
	f := newFixture(t)
	f.bank.statement = statementResponse
	resp, body := f.get(t, "/statement")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="2026-11"`) || !strings.Contains(body, `<label for="number">`) ||
		!strings.Contains(body, `<label for="cvv">`) || !strings.Contains(body, `<label for="expiry">`) {
		t.Fatalf("GET /statement = %d, want the form with the card's number, expiry and CVV, and this month", resp.StatusCode)
	}
	resp, body = f.post(t, "/statement", proof("2026-11"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /statement = %d", resp.StatusCode)
	}
	for _, want := range []string{"November 2026", "545454******8555", "MARIA SILVA", "Produtos: Stoneware Mug", "Produtos: 2x Dot-Grid Notebook",
		"R$ 59.90", `id="statement-total">R$ 139.70<`, "R$ 860.30", `data-refresh-ms="2000"`, "statement.js", "25 Nov 09:30"} {
		if !strings.Contains(body, want) {
			t.Errorf("statement lacks %q", want)
		}
	}
	if strings.Contains(body, goodNumber) || strings.Contains(body, "5454 5406 8756 8555") || strings.Contains(body, `value="755"`) {
		t.Error("the statement page echoes the card number or the CVV")
	}
	view := viewField.FindStringSubmatch(body)
	if view == nil {
		t.Fatal("the statement page has no view token for its refresh and other months")
	}
	// Another month with the view: no card details again, no new verification.
	before := f.bank.verifications
	if resp, body := f.post(t, "/statement", url.Values{"view": {view[1]}, "month": {"2026-10"}}); resp.StatusCode != 200 || !strings.Contains(body, "October 2026") ||
		f.bank.verifications != before {
		t.Errorf("another month with the view = %d (verifications %d -> %d)", resp.StatusCode, before, f.bank.verifications)
	}
	// A forged or expired view shows nothing.
	forged := strings.Replace(view[1], goodCardID, "other-card-id-00000000", 1)
	if resp, _ := f.post(t, "/statement", url.Values{"view": {forged}, "month": {"2026-11"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("a forged view = %d, want 403", resp.StatusCode)
	}
	f.later = viewFor + time.Minute
	if resp, _ := f.post(t, "/statement", url.Values{"view": {view[1]}, "month": {"2026-11"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("an expired view = %d, want 403", resp.StatusCode)
	}
	f.later = 0

	// What is wrong with the form is said field by field; what the bank did not verify is not
	// said at all: an unknown number and a wrong CVV read the same.
	errs := []struct {
		form  url.Values
		code  int
		field string
		want  string
	}{
		{url.Values{"number": {""}, "expiry": {"11/31"}, "cvv": {"755"}, "month": {"2026-11"}}, 422, "number", "Enter the card number"},
		{url.Values{"number": {"5454540687568556"}, "expiry": {"11/31"}, "cvv": {"755"}, "month": {"2026-11"}}, 422, "number", "not valid"},
		{url.Values{"number": {goodNumber}, "expiry": {""}, "cvv": {"755"}, "month": {"2026-11"}}, 422, "expiry", "Enter the expiry date"},
		{url.Values{"number": {goodNumber}, "expiry": {"11/31"}, "cvv": {"75"}, "month": {"2026-11"}}, 422, "cvv", "3 digits"},
		{url.Values{"number": {goodNumber}, "expiry": {"11/31"}, "cvv": {"755"}, "month": {"2026-13"}}, 422, "month", "Use YYYY-MM"},
	}
	for _, e := range errs {
		resp, body := f.post(t, "/statement", e.form)
		if resp.StatusCode != e.code || !strings.Contains(fieldError(body, e.field), e.want) {
			t.Errorf("POST /statement %v = %d, %s error %q; want %d %q", e.form, resp.StatusCode, e.field, fieldError(body, e.field), e.code, e.want)
		}
	}
	for _, form := range []url.Values{
		{"number": {"4111111111111111"}, "expiry": {"11/31"}, "cvv": {"755"}, "month": {"2026-11"}},
		{"number": {goodNumber}, "expiry": {"11/31"}, "cvv": {"756"}, "month": {"2026-11"}},
		{"number": {goodNumber}, "expiry": {"12/31"}, "cvv": {"755"}, "month": {"2026-11"}},
	} {
		resp, body := f.post(t, "/statement", form)
		if resp.StatusCode != 422 || !strings.Contains(body, msgNotVerified) || strings.Contains(body, "Card not recognised") || strings.Contains(body, "CVV is") {
			t.Errorf("POST /statement %v = %d; want 422 saying only that the card could not be verified", form, resp.StatusCode)
		}
	}
	f.bank.statement = nil // the fake bank is down
	if resp, body := f.post(t, "/statement", proof("2026-11")); resp.StatusCode != 503 || !strings.Contains(body, "Could not reach the bank, try again.") {
		t.Errorf("statement with the bank down = %d", resp.StatusCode)
	}
}

// TestStatementData: the page's refresh carries its view, never the card's details.
func TestStatementData(t *testing.T) {
	f := newFixture(t)
	f.bank.statement = statementResponse
	_, page := f.post(t, "/statement", proof("2026-11"))
	view := viewField.FindStringSubmatch(page)
	if view == nil {
		t.Fatal("no view token")
	}
	resp, body := f.post(t, "/statement/data", url.Values{"view": {view[1]}, "month": {"2026-11"}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("POST /statement/data = %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var d statementData
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	if d.Count != 2 || d.Total != "R$ 139.70" || d.TotalCents != 13970 || len(d.Lines) != 2 || d.Lines[1].Amount != "R$ 79.80" || d.MaskedNumber != "545454******8555" {
		t.Errorf("data = %+v", d)
	}
	if strings.Contains(body, goodNumber) {
		t.Error("the data echoes the full card number")
	}
	resp, body = f.post(t, "/statement/data", url.Values{"number": {"123"}})
	if resp.StatusCode != 422 || !strings.Contains(body, `"number":"A card number has 16 digits"`) {
		t.Errorf("bad number = %d %s", resp.StatusCode, body)
	}
	if resp, _ := f.get(t, "/statement/data"); resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /statement/data = %d: the card number must not travel in a URL", resp.StatusCode)
	}
}

// TestCrossSiteForms: a form posted from another site is refused: a page elsewhere cannot make a
// visitor's browser pay, or prove a card.
func TestCrossSiteForms(t *testing.T) {
	f := newFixture(t)
	f.bank.statement = statementResponse
	for _, path := range []string{"/checkout", "/statement", "/statement/data", "/orders/" + newOrderID() + "/pay"} {
		for _, h := range []map[string]string{{"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}} {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(proof("2026-11").Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			for k, v := range h {
				req.Header.Set(k, v)
			}
			f.h.ServeHTTP(rec, req)
			if rec.Code != http.StatusForbidden {
				t.Errorf("POST %s from another site (%v) = %d, want 403", path, h, rec.Code)
			}
		}
	}
	if f.bank.verifications != 0 || f.bank.callCount() != 0 {
		t.Errorf("cross-site forms reached the bank: %d verifications, %d payments", f.bank.verifications, f.bank.callCount())
	}
	// The same site's forms pass.
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/statement", strings.NewReader(proof("2026-11").Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	f.h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Errorf("POST /statement from the same site = %d", rec.Code)
	}
}

func result(tx, status, reason, store string, amount int64, at time.Time, ms float64) *codecs.Result {
	return &codecs.Result{PaymentKey: codecs.PaymentKey("tok", "code-store", tx), TransactionID: tx, CardToken: "tok", Merchant: "code-store", Status: status, Reason: reason, Store: store, AmountCents: amount,
		AuthorizedAt: at.UTC().Format(time.RFC3339Nano), ProcessingMs: ms}
}

func TestDashboardPages(t *testing.T) {
	f := newFixture(t)
	f.feed.Add(result("a", "approved", "", "Code Store", 5990, testNow.Add(-2*time.Second), 1.5))
	f.feed.Add(result("b", "approved", "", "Padaria", 1200, testNow.Add(-3*time.Second), 2.5))
	f.feed.Add(result("c", "rejected", "insufficient_credit", "Code Store", 90000, testNow.Add(-4*time.Second), 1.2))
	resp, body := f.get(t, "/dashboard")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /dashboard = %d", resp.StatusCode)
	}
	for _, want := range []string{`id="kpi-approval">66.7%<`, `id="kpi-rate">0.3<`, "Padaria", "R$ 71.90", "Insufficient credit", "dashboard.js", `id="chart-rate"`} {
		if !strings.Contains(body, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	resp, body = f.get(t, "/dashboard/data")
	var d DashboardData
	if err := json.Unmarshal([]byte(body), &d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /dashboard/data = %d %v", resp.StatusCode, err)
	}
	if d.Approved != 2 || d.Rejected != 1 || len(d.Series.Approved) != WindowSeconds || d.Stores[0].Store != "Code Store" || d.Reasons[0].Reason != "insufficient_credit" {
		t.Errorf("data = %+v", d)
	}
}

// TestDashboardTellsNoCardData: the public dashboard (no key) counts rejections by the reason
// merchants are told: an anonymous visitor who paid with a guessed card cannot read which field
// was wrong, nor that the number is a card; exact reasons stay in the results, the index and the
// metrics, for operators.
func TestDashboardTellsNoCardData(t *testing.T) {
	f := newFixture(t)
	exact := []string{"cvv_mismatch", "expiry_mismatch", "holder_mismatch", "card_not_found"}
	for i, reason := range exact {
		f.feed.Add(result(fmt.Sprint("guess-", i), "rejected", reason, "Code Store", 100, testNow.Add(-time.Second), 1))
	}
	f.feed.Add(result("blocked", "rejected", "card_blocked", "Code Store", 100, testNow.Add(-time.Second), 1))
	f.feed.Add(result("short", "rejected", "insufficient_credit", "Code Store", 100, testNow.Add(-time.Second), 1))
	_, data := f.get(t, "/dashboard/data")
	_, page := f.get(t, "/dashboard")
	var d DashboardData
	if err := json.Unmarshal([]byte(data), &d); err != nil {
		t.Fatal(err)
	}
	want := []ReasonCount{{"do_not_honor", codecs.ReasonOf("do_not_honor").Label, 4}, {"card_blocked", "Card blocked", 1}, {"insufficient_credit", "Insufficient credit", 1}}
	if !slices.Equal(d.Reasons, want) {
		t.Errorf("reasons = %+v, want %+v", d.Reasons, want)
	}
	for _, reason := range exact {
		label := codecs.ReasonOf(reason).Label
		for where, body := range map[string]string{"/dashboard/data": data, "/dashboard": page} {
			if strings.Contains(body, reason) || strings.Contains(body, label) {
				t.Errorf("%s tells %q (%s)", where, reason, label)
			}
		}
	}
}

func TestStaticAndMux(t *testing.T) {
	f := newFixture(t)
	for _, path := range []string{"/static/style.css", "/static/checkout.js", "/static/statement.js", "/static/dashboard.js", "/static/img/logo.svg", "/static/img/mug.svg"} {
		resp, body := f.get(t, path)
		if resp.StatusCode != http.StatusOK || len(body) < 100 {
			t.Errorf("GET %s = %d, %d bytes", path, resp.StatusCode, len(body))
		}
	}
	// The store shares `codebank all`'s mux with the bank's REST gateway at "/".
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "gateway") })
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "metrics") })
	New(Config{}, Deps{Orders: store.NewMemory(nil)}).Register(mux)
	for path, want := range map[string]string{"/v1/cards/1": "gateway", "/healthz": "ok", "/metrics": "metrics", "/": "Code Store", "/dashboard": "Dashboard"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("GET %s on the shared mux does not answer %q", path, want)
		}
	}
}

// TestCancelOrder: an approved order is cancelled by reversing its payment within a day of the
// approval and refunding it after, in full, under the order id, once however many times the
// button is pressed; a failed attempt says so and is tried again as the same operation.
func TestCancelOrder(t *testing.T) {
	f := newFixture(t)
	pay := func() string {
		t.Helper()
		id := newOrderID()
		if resp, _ := f.post(t, "/checkout", checkoutForm0(id)); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("checkout = %d", resp.StatusCode)
		}
		return id
	}
	first := pay()
	_, page := f.get(t, "/orders/"+first)
	if !strings.Contains(page, `action="/orders/`+first+`/cancel"`) || !strings.Contains(page, "reverses the payment") {
		t.Fatalf("an approved order's page offers no cancellation by reversal:\n%s", page)
	}
	for range 2 {
		if resp, _ := f.post(t, "/orders/"+first+"/cancel", nil); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("cancel = %d", resp.StatusCode)
		}
	}
	o, _ := f.orders.Get(context.Background(), first)
	if want := []string{"reversal " + first + " pid-" + first + " 11980"}; !slices.Equal(f.bank.credits, want) || !o.Cancelled() {
		t.Fatalf("credits %v, order %+v; want %v once, the order cancelled", f.bank.credits, o.Cancellation, want)
	}
	_, page = f.get(t, "/orders/"+first)
	if !strings.Contains(page, ">Cancelled<") || !strings.Contains(page, "Payment reversed: R$ 119.80 back on the card") || strings.Contains(page, "/cancel\"") {
		t.Errorf("a cancelled order's page:\n%s", page)
	}

	// A day later: a refund. The bank is unreachable first; the retry is the same refund.
	second := pay()
	f.later = 25 * time.Hour
	f.bank.creditErr = status.Error(codes.Unavailable, "down")
	f.post(t, "/orders/"+second+"/cancel", nil)
	if _, page := f.get(t, "/orders/"+second); !strings.Contains(page, "We could not cancel the order just now") || !strings.Contains(page, "refunds the payment") {
		t.Errorf("after a failed cancellation:\n%s", page)
	}
	f.bank.creditErr = nil
	f.post(t, "/orders/"+second+"/cancel", nil)
	if got := f.bank.credits[len(f.bank.credits)-1]; got != "refund "+second+" pid-"+second+" 11980" {
		t.Errorf("second cancellation = %q, want a refund of the whole order", got)
	}
	if _, page := f.get(t, "/orders/"+second); !strings.Contains(page, "the bank refunded the payment") {
		t.Errorf("a refunded order's page:\n%s", page)
	}
	// A rejected or unknown order has nothing to cancel.
	if resp, _ := f.post(t, "/orders/order-aaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbbb/cancel", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("cancel of no order = %d", resp.StatusCode)
	}
}
