package grpcgateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

var brokerAddr string

func TestMain(m *testing.M) { os.Exit(kafkatest.Run(m, &brokerAddr)) }

// bank is one deployment with one authorizer and one ingress.
type bank struct {
	d        banktest.Deployment
	in       *banktest.Ingress
	cards    codebankv1.CardServiceClient
	payments codebankv1.PaymentServiceClient
	legacy   paymentpb.PaymentServiceClient
}

func startBank(t *testing.T) *bank {
	t.Helper()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	return &bank{d: d, in: in, cards: codebankv1.NewCardServiceClient(in.Conn),
		payments: codebankv1.NewPaymentServiceClient(in.Conn), legacy: paymentpb.NewPaymentServiceClient(in.Conn)}
}

func authorize(t *testing.T, p codebankv1.PaymentServiceClient, req *codebankv1.AuthorizeRequest) *codebankv1.AuthorizeResponse {
	t.Helper()
	if req.Store == "" {
		req.Store, req.Description = "Code Store", "Produtos: caneca"
	}
	resp, err := p.Authorize(ctxT(t), req)
	if err != nil {
		t.Fatalf("Authorize: %v", err)
	}
	return resp
}

func TestIssueAndPay(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 10_000)
	number := c.GetCard().GetNumber()
	if err := card.ValidateNumber(number); err != nil {
		t.Fatalf("issued number %q: %v", number, err)
	}
	if c.GetCard().GetAvailableCents() != 10_000 || c.GetCard().GetStatus() != codebankv1.CardStatus_CARD_STATUS_ACTIVE || len(c.GetCvv()) != 3 {
		t.Fatalf("issued card = %v", c)
	}
	if c.GetCard().GetExpiryYear() <= int32(time.Now().Year()) {
		t.Errorf("expiry year %d is not years ahead", c.GetCard().GetExpiryYear())
	}

	if !card.ValidToken(c.GetCard().GetCardId()) || c.GetCard().GetMaskedNumber() != card.Mask(number) {
		t.Fatalf("issued card id %q, masked %q", c.GetCard().GetCardId(), c.GetCard().GetMaskedNumber())
	}

	r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 6_000})
	if r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || r.GetTransactionId() == "" {
		t.Fatalf("pay 60.00 of 100.00 = %v, want approved", r)
	}
	r = authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 4_001})
	if r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED || r.GetReason() != codebankv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT {
		t.Fatalf("pay 40.01 with 40.00 left = %v, want rejected for insufficient credit", r)
	}
	if got := used(t, b.cards, c); got != 6_000 {
		t.Fatalf("used = %d after a rejection, want 6000", got)
	}

	wrong := []struct {
		name   string
		mutate func(*codebankv1.CardDetails)
		want   codebankv1.RejectReason
	}{
		// Merchants learn only that the card data did not verify, never which part.
		{"cvv", func(d *codebankv1.CardDetails) { d.Cvv = fmt.Sprintf("%03d", (atoi(d.Cvv)+1)%1000) }, codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR},
		{"expiry", func(d *codebankv1.CardDetails) { d.ExpiryYear++ }, codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR},
		{"holder", func(d *codebankv1.CardDetails) { d.HolderName = "Someone Else" }, codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR},
		{"unknown card", func(d *codebankv1.CardDetails) { d.Number = "4111111111111111" }, codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR},
	}
	for _, w := range wrong {
		d := details(c)
		w.mutate(d)
		r := authorize(t, b.payments, &codebankv1.AuthorizeRequest{Card: d, AmountCents: 100})
		if r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED || r.GetReason() != w.want {
			t.Errorf("wrong %s: got %v %v, want rejected %v", w.name, r.GetStatus(), r.GetReason(), w.want)
		}
	}
	if got := used(t, b.cards, c); got != 6_000 {
		t.Fatalf("used = %d after rejections, want 6000", got)
	}
	if _, err := b.cards.LookupCard(ctxT(t), &codebankv1.LookupCardRequest{Number: "4111111111111111"}); status.Code(err) != codes.NotFound {
		t.Errorf("LookupCard(unknown) = %v, want NOT_FOUND", err)
	}
	if got, err := b.cards.LookupCard(ctxT(t), &codebankv1.LookupCardRequest{Number: number}); err != nil || got.GetCard().GetCardId() != c.GetCard().GetCardId() ||
		got.GetCard().GetNumber() != "" {
		t.Errorf("LookupCard = %v, %v; want the card by its id, without its number", got, err)
	}
}

// atoi reads a CVV such as "090" (fmt.Sscan would take the leading 0 for octal).
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

func TestLegacyPayment(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Jose Souza", 5_000)
	cc := func(number string) *paymentpb.PaymentRequest_CreditCard {
		return &paymentpb.PaymentRequest_CreditCard{Name: "Jose Souza", Number: number, ExpirationMonth: c.GetCard().GetExpiryMonth(),
			ExpirationYear: c.GetCard().GetExpiryYear(), Cvv: int32(atoi(c.GetCvv()))}
	}
	_, err := b.legacy.Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: cc(c.GetCard().GetNumber()), Amount: 12.5, Store: "Code Store", Description: "Produtos: livro"})
	if err != nil {
		t.Fatalf("legacy Payment within limit = %v, want OK", err)
	}
	if got := used(t, b.cards, c); got != 1250 {
		t.Fatalf("used = %d after a legacy payment of 12.5, want 1250", got)
	}
	_, err = b.legacy.Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: cc(c.GetCard().GetNumber()), Amount: 100, Store: "Code Store", Description: "x"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "transaction rejected by the bank" {
		t.Errorf("legacy Payment over limit = %v, want FAILED_PRECONDITION %q", err, "transaction rejected by the bank")
	}
	_, err = b.legacy.Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: cc("4111111111111111"), Amount: 1, Store: "Code Store", Description: "x"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "credit card does not exists" {
		t.Errorf("legacy Payment unknown card = %v, want FAILED_PRECONDITION %q", err, "credit card does not exists")
	}
	_, err = b.legacy.Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: cc(c.GetCard().GetNumber()), Amount: 1e300, Store: "Code Store", Description: "x"})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "amount") {
		t.Errorf("legacy Payment 1e300 = %v, want INVALID_ARGUMENT naming amount", err)
	}
}

func TestREST(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	call := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, b.in.HTTPURL+path, strings.NewReader(body))
		key := banktest.AdminKey
		if path == "/v1/payments" {
			key = banktest.MerchantKey
		}
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: %d %s is not JSON", method, path, resp.StatusCode, raw)
		}
		return resp.StatusCode, m
	}
	post := func(path, body string) (int, map[string]any) { t.Helper(); return call("POST", path, body) }
	get := func(path string) (int, map[string]any) { t.Helper(); return call("GET", path, "") }
	code, issued := post("/v1/cards", `{"holder_name":"Ana Costa","limit_cents":20000}`)
	if code != 200 {
		t.Fatalf("POST /v1/cards = %d %v", code, issued)
	}
	c := issued["card"].(map[string]any)
	number, id := c["number"].(string), c["card_id"].(string)
	body := fmt.Sprintf(`{"transaction_id":"rest-1","card":{"number":%q,"holder_name":"Ana Costa","expiry_month":%v,"expiry_year":%v,"cvv":%q},"amount_cents":1999,"store":"Centro","description":"Produtos: mochila"}`,
		number, c["expiry_month"], c["expiry_year"], issued["cvv"])
	code, paid := post("/v1/payments", body)
	if code != 200 || paid["status"] != "PAYMENT_STATUS_APPROVED" || paid["transaction_id"] != "rest-1" {
		t.Fatalf("POST /v1/payments = %d %v", code, paid)
	}
	if _, ok := paid["available_cents"]; ok {
		t.Errorf("POST /v1/payments told the merchant the available credit: %v", paid)
	}
	code, got := get("/v1/cards/" + id)
	if code != 200 || got["card"].(map[string]any)["used_cents"] != "1999" || got["card"].(map[string]any)["number"] != "" {
		t.Fatalf("GET /v1/cards/ID = %d %v", code, got)
	}
	if _, ok := got["cvv"]; ok {
		t.Error("GET /v1/cards/ID returned a CVV")
	}
	if code, found := post("/v1/cards:lookup", fmt.Sprintf(`{"number":%q}`, number)); code != 200 || found["card"].(map[string]any)["card_id"] != id {
		t.Errorf("POST /v1/cards:lookup = %d %v", code, found)
	}
	if code, _ := get("/v1/cards/" + number); code != 400 {
		t.Errorf("GET /v1/cards/NUMBER = %d, want 400: a card is named by its id in URLs", code)
	}

	// Bad input: 400 naming the field; malformed JSON: 400; unknown route: 404.
	code, bad := post("/v1/payments", `{"card":{"number":"4111111111111112"},"amount_cents":0}`)
	if code != 400 || !strings.Contains(bad["message"].(string), "card.number") || !strings.Contains(bad["message"].(string), "amount_cents") {
		t.Errorf("POST bad payment = %d %v, want 400 naming card.number and amount_cents", code, bad)
	}
	if code, _ := post("/v1/payments", `{"card":`); code != 400 {
		t.Errorf("POST malformed JSON = %d, want 400", code)
	}
	if code, _ := post("/v1/nothing-here", `{}`); code != 404 {
		t.Errorf("POST unknown route = %d, want 404", code)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		resp, err := http.Get(b.in.OpsURL + path)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("GET %s = %v %v", path, resp.StatusCode, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if path != "/metrics" {
			continue
		}
		// The payments above went through both legs, each observed once per decided payment.
		for _, leg := range []string{"request", "reply"} {
			m := regexp.MustCompile(`codebank_ingress_payment_leg_seconds_count\{leg="` + leg + `"\} (\d+)`).FindSubmatch(body)
			if m == nil || string(m[1]) == "0" {
				t.Errorf("/metrics has no %s leg observations: %q", leg, m)
			}
		}
	}
}

// TestBadInputWritesNothing checks that every invalid request is refused with
// INVALID_ARGUMENT naming the field, before anything reaches Kafka.
func TestBadInputWritesNothing(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 10_000)
	before := banktest.EndOffsets(t, b.d.Kafka, b.d.Topo.PaymentRequests().Name) + banktest.EndOffsets(t, b.d.Kafka, b.d.Topo.CardCommands().Name)
	good := func() *codebankv1.AuthorizeRequest {
		return &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100, Store: "Code Store", Description: "x"}
	}
	long := strings.Repeat("x", 501)
	tests := []struct {
		field  string
		mutate func(*codebankv1.AuthorizeRequest)
	}{
		{"card.number", func(r *codebankv1.AuthorizeRequest) { r.Card.Number = "123" }},
		{"card.number", func(r *codebankv1.AuthorizeRequest) { r.Card.Number = "4111111111111112" }},
		{"card.number", func(r *codebankv1.AuthorizeRequest) { r.Card.Number = "41111111111a1111" }},
		{"card.holder_name", func(r *codebankv1.AuthorizeRequest) { r.Card.HolderName = " " }},
		{"card.expiry_month", func(r *codebankv1.AuthorizeRequest) { r.Card.ExpiryMonth = 0 }},
		{"card.cvv", func(r *codebankv1.AuthorizeRequest) { r.Card.Cvv = "12" }},
		{"card", func(r *codebankv1.AuthorizeRequest) { r.Card = nil }},
		{"amount_cents", func(r *codebankv1.AuthorizeRequest) { r.AmountCents = 0 }},
		{"amount_cents", func(r *codebankv1.AuthorizeRequest) { r.AmountCents = -1 }},
		{"amount_cents", func(r *codebankv1.AuthorizeRequest) { r.AmountCents = 1 << 62 }},
		{"store", func(r *codebankv1.AuthorizeRequest) { r.Store = strings.Repeat("s", 101) }},
		{"description", func(r *codebankv1.AuthorizeRequest) { r.Description = long }},
		{"transaction_id", func(r *codebankv1.AuthorizeRequest) { r.TransactionId = "has spaces" }},
	}
	for _, tt := range tests {
		r := good()
		tt.mutate(r)
		_, err := b.payments.Authorize(ctxT(t), r)
		if !violates(err, tt.field) {
			t.Errorf("Authorize with bad %s = %v, want INVALID_ARGUMENT naming it", tt.field, err)
		}
	}
	_, err := b.cards.IssueCard(ctxT(t), &codebankv1.IssueCardRequest{HolderName: "", LimitCents: 0})
	if !violates(err, "holder_name") || !violates(err, "limit_cents") {
		t.Errorf("IssueCard with no holder and no limit = %v", err)
	}
	_, err = b.cards.GetCard(ctxT(t), &codebankv1.GetCardRequest{CardId: "12"})
	if !violates(err, "card_id") {
		t.Errorf("GetCard(12) = %v", err)
	}
	_, err = b.cards.LookupCard(ctxT(t), &codebankv1.LookupCardRequest{Number: "12"})
	if !violates(err, "number") {
		t.Errorf("LookupCard(12) = %v", err)
	}
	_, err = b.legacy.Payment(ctxT(t), &paymentpb.PaymentRequest{Amount: -1})
	if !violates(err, "creditCard") || !violates(err, "amount") || !violates(err, "description") {
		t.Errorf("legacy Payment with nothing = %v", err)
	}
	after := banktest.EndOffsets(t, b.d.Kafka, b.d.Topo.PaymentRequests().Name) + banktest.EndOffsets(t, b.d.Kafka, b.d.Topo.CardCommands().Name)
	if after != before {
		t.Errorf("invalid requests wrote %d records to Kafka, want 0", after-before)
	}
}

// violates reports whether err is INVALID_ARGUMENT with a BadRequest detail for field.
func violates(err error, field string) bool {
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		return false
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				if v.GetField() == field {
					return strings.Contains(st.Message(), field)
				}
			}
		}
	}
	return false
}

// TestConcurrentPaymentsNeverOverspend sends 500 payments on one card at once.
func TestConcurrentPaymentsNeverOverspend(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	const limit, amount, n = 100_000, 317, 500 // room for 315 of 500
	c := issue(t, b.cards, "Hot Card", limit)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		approved int64
		errs     []error
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: amount, Store: "Code Store", Description: "x"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			if r.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
				approved += r.GetAmountCents()
			} else if r.GetReason() != codebankv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT {
				errs = append(errs, fmt.Errorf("rejected for %v", r.GetReason()))
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatalf("%d of %d payments failed, first: %v", len(errs), n, errs[0])
	}
	u := used(t, b.cards, c)
	if u > limit {
		t.Fatalf("used %d past the limit %d", u, limit)
	}
	if approved != u {
		t.Fatalf("approved sum %d != used %d", approved, u)
	}
	if want := int64(limit / amount * amount); u != want {
		t.Errorf("used %d, want %d: every payment that fitted should be approved", u, want)
	}
}

// TestSameTransactionChargesOnce retries a payment with the same id, sequentially and at once.
func TestSameTransactionChargesOnce(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 10_000)
	req := &codebankv1.AuthorizeRequest{TransactionId: "order-42", Card: details(c), AmountCents: 2_500}
	first := authorize(t, b.payments, req)
	second := authorize(t, b.payments, req)
	if first.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || second.GetStatus() != first.GetStatus() ||
		second.GetAuthorizedAtUnixMs() != first.GetAuthorizedAtUnixMs() || !second.GetDuplicate() || first.GetDuplicate() {
		t.Fatalf("first = %v, second = %v; want the same approval, the second marked duplicate", first, second)
	}
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			authorize(t, b.payments, &codebankv1.AuthorizeRequest{TransactionId: "order-43", Card: details(c), AmountCents: 1_000})
		}()
	}
	wg.Wait()
	if got := used(t, b.cards, c); got != 3_500 {
		t.Fatalf("used = %d, want 3500 (each transaction id charged once)", got)
	}
}

// TestTimeoutThenRetry: with no authorizer running, a payment times out with its transaction
// id; once the authorizer is back, asking again with that id gives the final outcome, once.
func TestTimeoutThenRetry(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	dir := t.TempDir()
	a := banktest.StartAuthorizer(t, d, dir)
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Config: grpcgateway.Config{RequestTimeout: 2 * time.Second}})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	c := issue(t, cards, "Maria Silva", 10_000)
	a.Stop(t)

	req := &codebankv1.AuthorizeRequest{TransactionId: "slow-1", Card: details(c), AmountCents: 700, Store: "Code Store", Description: "x"}
	_, err := payments.Authorize(ctxT(t), req)
	if st := status.Convert(err); st.Code() != codes.DeadlineExceeded || !strings.Contains(st.Message(), "slow-1") {
		t.Fatalf("Authorize with no authorizer = %v, want DEADLINE_EXCEEDED naming slow-1", err)
	}
	banktest.StartAuthorizer(t, d, dir)
	r := authorize(t, payments, req)
	if r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || r.GetTransactionId() != "slow-1" {
		t.Fatalf("retry = %v, want approved", r)
	}
	if got := used(t, cards, c); got != 700 {
		t.Fatalf("used = %d, want 700 (charged once)", got)
	}
}

// TestReplicas runs two ingress replicas and two authorizer instances: every call on either
// replica gets its own answer, and a card's records land on one partition by every path.
func TestReplicas(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 4, 2)
	banktest.StartAuthorizer(t, d, "")
	banktest.StartAuthorizer(t, d, "")
	ins := []*banktest.Ingress{banktest.StartIngress(t, d, banktest.IngressOptions{}), banktest.StartIngress(t, d, banktest.IngressOptions{ReplyPartition: 1})}
	var issued []*codebankv1.IssueCardResponse
	for i := 0; i < 8; i++ {
		issued = append(issued, issue(t, codebankv1.NewCardServiceClient(ins[i%2].Conn), fmt.Sprintf("Holder %c", 'A'+i), 100_000))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := issued[i%len(issued)]
			tx := fmt.Sprintf("rep-%d", i)
			r, err := codebankv1.NewPaymentServiceClient(ins[i%2].Conn).Authorize(ctxT(t), &codebankv1.AuthorizeRequest{
				TransactionId: tx, Card: details(c), AmountCents: 100, Store: "Code Store", Description: "x"})
			switch {
			case err != nil:
				errs <- err
			case r.GetTransactionId() != tx || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED:
				errs <- fmt.Errorf("call %s got %v", tx, r)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, c := range issued {
		if got := used(t, codebankv1.NewCardServiceClient(ins[(i+1)%2].Conn), c); got != 2500 {
			t.Errorf("card %d used = %d, want 2500", i, got)
		}
	}

	// A card's request, command and table records share one partition, the one goka computes
	// from its token.
	token := issued[0].GetCard().GetCardId()
	h := goka.DefaultHasher()()
	h.Write([]byte(token))
	wantPart := int32(h.Sum32()) % int32(d.Topo.Partitions)
	if wantPart < 0 {
		wantPart = -wantPart
	}
	for _, topic := range []string{d.Topo.PaymentRequests().Name, d.Topo.CardCommands().Name, d.Topo.AuthorizerTable().Name} {
		got := banktest.PartitionsOfKey(t, d.Kafka, topic, token)
		if len(got) != 1 || got[0] != wantPart {
			t.Errorf("%s: card on partitions %v, want only %d", topic, got, wantPart)
		}
	}
}

// TestAuthorizerRestartKeepsBalances restarts the authorizer on its own storage and on an
// empty one (recovering from the changelog): every balance survives both.
func TestAuthorizerRestartKeepsBalances(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	dir := t.TempDir()
	a := banktest.StartAuthorizer(t, d, dir)
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	want := map[string]int64{}
	var issued []*codebankv1.IssueCardResponse
	for i := 0; i < 6; i++ {
		c := issue(t, cards, fmt.Sprintf("Holder %d", i), 50_000)
		issued = append(issued, c)
		for j := 0; j <= i; j++ {
			authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: int64(100 * (j + 1))})
			want[c.GetCard().GetNumber()] += int64(100 * (j + 1))
		}
	}
	check := func(when string) {
		t.Helper()
		for _, c := range issued {
			if got := used(t, cards, c); got != want[c.GetCard().GetNumber()] {
				t.Errorf("%s: used = %d, want %d", when, got, want[c.GetCard().GetNumber()])
			}
		}
	}
	a.Stop(t)
	a = banktest.StartAuthorizer(t, d, dir)
	check("after a restart on its own storage")
	a.Stop(t)
	banktest.StartAuthorizer(t, d, t.TempDir())
	check("after a restart on empty storage")
}

// TestRedeliveryAppliesOnce makes Kafka deliver every request again, as after a crash before
// offsets were committed (here: the group's offsets are deleted): nothing is charged twice.
func TestRedeliveryAppliesOnce(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	dir := t.TempDir()
	a := banktest.StartAuthorizer(t, d, dir)
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	c := issue(t, cards, "Maria Silva", 10_000)
	var approved int64
	for i := 0; i < 20; i++ {
		r := authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 700})
		if r.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			approved += 700
		}
	}
	a.Stop(t)
	banktest.DeleteGroup(t, d.Kafka, string(d.Topo.AuthorizerGroup()))
	banktest.StartAuthorizer(t, d, dir)
	// The card's records are decided in order, so this answer comes after every redelivery.
	last := authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 1})
	if last.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("payment after redelivery = %v", last)
	}
	if got := used(t, cards, c); got != approved+1 {
		t.Fatalf("used = %d after every request was delivered twice, want %d", got, approved+1)
	}
	// Proof that the requests were delivered again: each decision was published twice.
	if got := banktest.EndOffsets(t, d.Kafka, d.Topo.Results().Name); got != 41 {
		t.Errorf("results topic holds %d records, want 20 + 20 replayed + 1", got)
	}
}

// Short names for the harness's helpers.
var (
	ctxT    = banktest.Ctx
	issue   = banktest.Issue
	details = banktest.Details
	used    = banktest.Used
)
