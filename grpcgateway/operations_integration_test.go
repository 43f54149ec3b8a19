package grpcgateway_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/processors/authorizer"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// purchase pays amount with c and returns the approval, with its payment id.
func purchase(t *testing.T, p codebankv1.PaymentServiceClient, c *codebankv1.IssueCardResponse, tx string, amount int64) *codebankv1.AuthorizeResponse {
	t.Helper()
	r := authorize(t, p, &codebankv1.AuthorizeRequest{TransactionId: tx, Card: details(c), AmountCents: amount})
	if r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || r.GetPaymentId() == "" {
		t.Fatalf("purchase %s = %v", tx, r)
	}
	return r
}

// creditAll sends n reversals or refunds (reversals every second one when mixed, refunds
// otherwise) of amount each, with ids prefix-0..n-1, all at once, and counts the answers by
// code; duplicates counts the OK answers marked duplicate.
func creditAll(t *testing.T, p codebankv1.PaymentServiceClient, paymentID, prefix string, n int, amount int64, mixed bool) (byCode map[codes.Code]int, duplicates int) {
	t.Helper()
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		dup int
	)
	byCode = map[codes.Code]int{}
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("%s-%d", prefix, i)
			var err error
			var duplicate bool
			if mixed && i%2 == 0 {
				var r *codebankv1.ReverseResponse
				r, err = p.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: paymentID, ReversalId: id, AmountCents: amount})
				duplicate = r.GetDuplicate()
			} else {
				var r *codebankv1.RefundResponse
				r, err = p.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: paymentID, RefundId: id, AmountCents: amount})
				duplicate = r.GetDuplicate()
			}
			mu.Lock()
			defer mu.Unlock()
			byCode[status.Code(err)]++
			if err == nil && duplicate {
				dup++
			}
		}()
	}
	wg.Wait()
	return byCode, dup
}

// TestConcurrentRefundsCreditOnce sends 50 refunds of 10.00 of one 100.00 purchase at once, each
// with its own id: exactly 10 are carried out, the others refused as more than is left, and the
// card's used credit drops by exactly 100.00. The same with reversals and refunds mixed. Sent
// again, the 10 are answered as duplicates and nothing more is given back.
func TestConcurrentRefundsCreditOnce(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Hot Card", 100_000)
	for _, mixed := range []bool{false, true} {
		name := map[bool]string{false: "refunds", true: "reversals and refunds"}[mixed]
		before := used(t, b.cards, c)
		p := purchase(t, b.payments, c, "order-"+name[:4], 10_000)
		got, dup := creditAll(t, b.payments, p.GetPaymentId(), name[:4], 50, 1_000, mixed)
		if got[codes.OK] != 10 || got[codes.FailedPrecondition] != 40 || dup != 0 {
			t.Errorf("50 %s of 10.00 of a 100.00 purchase at once: %v; want 10 OK and 40 FAILED_PRECONDITION", name, got)
		}
		if after := used(t, b.cards, c); after != before {
			t.Errorf("%s: used %d after the purchase and its %s, want %d as before it", name, after, name, before)
		}
		again, dup := creditAll(t, b.payments, p.GetPaymentId(), name[:4], 50, 1_000, mixed)
		if again[codes.OK] != 10 || dup != 10 || again[codes.FailedPrecondition] != 40 {
			t.Errorf("the same 50 %s again: %v, %d duplicates; want the 10 answered as duplicates, the 40 refused again", name, again, dup)
		}
		if after := used(t, b.cards, c); after != before {
			t.Errorf("%s sent again: used %d, want %d", name, after, before)
		}
		t.Logf("50 %s of 10.00 of one 100.00 purchase at once: %d carried out, %d refused; again: %d duplicates, %d refused",
			name, got[codes.OK], got[codes.FailedPrecondition], dup, again[codes.FailedPrecondition])
	}
}

// TestMoneyBackRules: only the payment's merchant can credit it, and an unknown, rejected or
// another merchant's payment id gets the same NOT_FOUND; an id reused with another amount gets
// ALREADY_EXISTS; a bill payment of more than is owed FAILED_PRECONDITION; a refund after the
// bill was paid leaves a credit balance the card spends; neither touches the lockout; a
// purchase approved more than 30 days ago FAILED_PRECONDITION. Over REST as well.
func TestMoneyBackRules(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	var days atomic.Int64 // the authorizer's clock runs this many days ahead
	banktest.StartAuthorizerWith(t, d, "", authorizer.Deps{Now: func() time.Time { return time.Now().Add(time.Duration(days.Load()) * 24 * time.Hour) }})
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	other := codebankv1.NewPaymentServiceClient(dial(t, in, grpcgateway.CallerKeys{Merchant: banktest.OtherMerchantKey, Insecure: true}))

	c := issue(t, cards, "Maria Silva", 10_000)
	p := purchase(t, payments, c, "order-1", 6_000)
	rejected := authorize(t, payments, &codebankv1.AuthorizeRequest{TransactionId: "order-big", Card: details(c), AmountCents: 9_000})
	if rejected.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED || rejected.GetPaymentId() == "" {
		t.Fatalf("a payment over the limit = %v, want rejected with a payment id", rejected)
	}
	// A failed verification: the operations below leave its count alone.
	wrong := details(c)
	wrong.HolderName = "Someone Else"
	authorize(t, payments, &codebankv1.AuthorizeRequest{Card: wrong, AmountCents: 100})

	notFound := map[string]error{}
	_, notFound["another merchant's key"] = other.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: p.GetPaymentId(), RefundId: "r-1", AmountCents: 100})
	_, notFound["a rejected payment"] = payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: rejected.GetPaymentId(), RefundId: "r-1", AmountCents: 100})
	_, notFound["an unknown id"] = payments.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: strings.Repeat("Q", 120), ReversalId: "v-1", AmountCents: 100})
	for what, err := range notFound {
		if status.Code(err) != codes.NotFound || status.Convert(err).Message() != status.Convert(notFound["an unknown id"]).Message() {
			t.Errorf("%s: %v, want the same NOT_FOUND as an unknown id", what, err)
		}
	}

	r, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: p.GetPaymentId(), RefundId: "r-1", AmountCents: 1_000})
	if err != nil || r.GetLeftCents() != 5_000 || r.GetTransactionId() != "order-1" || r.GetDuplicate() {
		t.Fatalf("refund of 10.00 = %v, %v", r, err)
	}
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: p.GetPaymentId(), RefundId: "r-1", AmountCents: 2_000}); status.Code(err) != codes.AlreadyExists {
		t.Errorf("refund r-1 again for another amount = %v, want ALREADY_EXISTS", err)
	}
	// The bill: 50.00 owed; paying more is refused, paying it all frees the credit.
	if _, err := cards.PayBill(ctxT(t), &codebankv1.PayBillRequest{CardId: c.GetCard().GetCardId(), BillPaymentId: "bill-1", AmountCents: 5_001}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("paying 50.01 of 50.00 owed = %v, want FAILED_PRECONDITION", err)
	}
	paid, err := cards.PayBill(ctxT(t), &codebankv1.PayBillRequest{CardId: c.GetCard().GetCardId(), BillPaymentId: "bill-1", AmountCents: 5_000})
	if err != nil || paid.GetCard().GetUsedCents() != 0 || paid.GetCard().GetAvailableCents() != 10_000 {
		t.Fatalf("paying the 50.00 owed = %v, %v", paid, err)
	}
	// A refund after the bill was paid: a credit balance, shown as such and spent.
	if _, err := payments.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: p.GetPaymentId(), ReversalId: "v-1", AmountCents: 2_000}); err != nil {
		t.Fatal(err)
	}
	got, err := cards.GetCard(ctxT(t), &codebankv1.GetCardRequest{CardId: c.GetCard().GetCardId()})
	if err != nil || got.GetCard().GetUsedCents() != -2_000 || got.GetCard().GetAvailableCents() != 12_000 || got.GetCard().GetVerificationFailures() != 1 {
		t.Fatalf("card after a refund of a paid bill = %v, %v; want used -20.00, 120.00 available, the failure still counted", got, err)
	}
	purchase(t, payments, c, "order-2", 12_000)

	// Over REST: the merchant's refund, the operator's bill payment.
	call := func(path, key, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, in.HTTPURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var m map[string]any
		json.Unmarshal(raw, &m)
		return resp.StatusCode, m
	}
	if code, m := call("/v1/payments/"+p.GetPaymentId()+":refund", banktest.MerchantKey, `{"refund_id":"r-2","amount_cents":500}`); code != 200 || m["left_cents"] != "2500" {
		t.Errorf("POST :refund = %d %v", code, m)
	}
	if code, m := call("/v1/payments/"+p.GetPaymentId()+":refund", banktest.OtherMerchantKey, `{"refund_id":"r-2","amount_cents":500}`); code != 404 {
		t.Errorf("POST :refund with another merchant's key = %d %v, want 404", code, m)
	}
	if code, m := call("/v1/payments/"+p.GetPaymentId()+":reverse", banktest.MerchantKey, `{"reversal_id":"v-2","amount_cents":2501}`); code != 400 ||
		!strings.Contains(fmt.Sprint(m["message"]), "more than is left") {
		t.Errorf("POST :reverse of more than is left = %d %v, want 400 saying so", code, m)
	}
	if code, m := call("/v1/cards/"+c.GetCard().GetCardId()+":pay", banktest.AdminKey, `{"bill_payment_id":"bill-2","amount_cents":9500}`); code != 200 ||
		m["card"].(map[string]any)["used_cents"] != "0" {
		t.Errorf("POST :pay = %d %v", code, m)
	}
	if code, m := call("/v1/cards/"+c.GetCard().GetCardId()+":pay", banktest.AdminKey, `{"bill_payment_id":"bill-3","amount_cents":1}`); code != 400 ||
		!strings.Contains(fmt.Sprint(m["message"]), "more than the card owes") {
		t.Errorf("POST :pay with nothing owed = %d %v, want 400 saying so", code, m)
	}

	// 30 days after its approval, a purchase can no longer be credited.
	days.Store(31)
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: p.GetPaymentId(), RefundId: "r-late", AmountCents: 100}); status.Code(err) != codes.FailedPrecondition ||
		!strings.Contains(err.Error(), "30 days") {
		t.Errorf("a refund 31 days after the purchase = %v, want FAILED_PRECONDITION", err)
	}
}

// dial connects to the ingress with other keys.
func dial(t *testing.T, in *banktest.Ingress, keys grpcgateway.CallerKeys) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(keys))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
