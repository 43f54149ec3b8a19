package statements

import (
	"testing"
	"time"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func TestMinimumPayment(t *testing.T) {
	for _, tc := range []struct{ closing, want int64 }{
		{-500, 0}, {0, 0}, {1, 1}, {4999, 4999}, {5000, 5000}, {20000, 5000}, {33334, 5001}, {33333, 5000},
		{100000, 15000}, {100001, 15001},
	} {
		if got := MinimumPayment(tc.closing); got != tc.want {
			t.Errorf("MinimumPayment(%d) = %d, want %d", tc.closing, got, tc.want)
		}
	}
}

func TestDueDate(t *testing.T) {
	for month, want := range map[string]string{"2026-11": "2026-12-10", "2026-12": "2027-01-10", "2027-01": "2027-02-10"} {
		if got := DueDate(month).Format("2006-01-02"); got != want {
			t.Errorf("DueDate(%s) = %s, want %s", month, got, want)
		}
	}
}

// at returns a time of 2026 in UTC.
func at(month time.Month, day, hour int) time.Time {
	return time.Date(2026, month, day, hour, 0, 0, 0, time.UTC)
}

// line returns a statement line of kind for amount.
func line(kind eventsv1.OperationKind, amount int64) *eventsv1.StatementLine {
	return &eventsv1.StatementLine{Kind: kind, AmountCents: amount}
}

// TestBills adds up three months of lines: each month opens with the previous closing balance,
// credits and payments take from it, a payment on the 1st-10th pays the previous bill on time,
// and a refund after the bill was paid leaves a credit balance with nothing due.
func TestBills(t *testing.T) {
	const (
		purchase = eventsv1.OperationKind_OPERATION_KIND_PURCHASE
		old      = eventsv1.OperationKind_OPERATION_KIND_UNSPECIFIED // a line written before kinds
		reversal = eventsv1.OperationKind_OPERATION_KIND_REVERSAL
		refund   = eventsv1.OperationKind_OPERATION_KIND_REFUND
		payment  = eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT
	)
	var s Summaries
	s.Add(at(9, 3, 12), line(old, 20000))
	s.Add(at(9, 20, 12), line(purchase, 50000))
	s.Add(at(9, 21, 12), line(reversal, 10000))
	s.Add(at(10, 5, 12), line(payment, 40000))  // September's 60,000 part-paid on time
	s.Add(at(10, 10, 23), line(payment, 20000)) // the rest, on the due day
	s.Add(at(10, 12, 12), line(purchase, 8000))
	s.Add(at(10, 15, 12), line(refund, 3000))
	s.Add(at(11, 11, 12), line(payment, 5000)) // October's 5,000, a day late
	s.Add(at(11, 20, 12), line(refund, 5000))  // a credit balance
	bills := Bills(s.Months(), at(11, 25, 0))
	want := []Bill{
		{Month: "2026-09", Opening: 0, Purchases: 70000, Reversals: 10000, Closing: 60000, Due: at(10, 10, 0), Minimum: 9000, PaidByDue: 60000, Status: Paid},
		{Month: "2026-10", Opening: 60000, Purchases: 8000, Refunds: 3000, Payments: 60000, Closing: 5000, Due: at(11, 10, 0), Minimum: 5000, Status: Overdue},
		{Month: "2026-11", Opening: 5000, Refunds: 5000, Payments: 5000, Closing: -5000, Due: at(12, 10, 0), Minimum: 0, Status: NothingDue},
	}
	if len(bills) != len(want) {
		t.Fatalf("%d bills, want %d", len(bills), len(want))
	}
	for i := range want {
		if bills[i] != want[i] {
			t.Errorf("bill %d:\n got %+v\nwant %+v", i, bills[i], want[i])
		}
	}
	if m := s.Months()[0]; m.GetCount() != 3 || m.GetPurchases() != 2 || m.GetTotalCents() != 70000 {
		t.Errorf("September: %v", m)
	}
	// Before its due date, an unpaid bill is open; a month without lines inherits the balance.
	if b := BillOf(s.Months(), "2026-10", at(11, 10, 23)); b.Status != Open {
		t.Errorf("October's bill on its due day = %+v, want open", b)
	}
	if b := BillOf(s.Months(), "2026-12", at(12, 1, 0)); b.Opening != -5000 || b.Closing != -5000 || b.Status != NothingDue {
		t.Errorf("December, no lines yet = %+v", b)
	}
	if b := BillOf(s.Months(), "2026-08", at(12, 1, 0)); b.Opening != 0 || b.Closing != 0 || b.Status != NothingDue {
		t.Errorf("August, before the first line = %+v", b)
	}
}

// TestOperationLines: reversals, refunds and bill payments become lines of their own kind, under
// keys of their own (never their purchase's), naming the purchase they credit.
func TestOperationLines(t *testing.T) {
	tt, topo := start(t)
	lines := tt.NewQueueTracker(topo.StatementLines().Name)
	results := topo.Results().Name
	purchase := result("a", "approved", "2026-11-02T10:00:00.000000Z", 10000)
	refund := &codecs.Result{PaymentKey: codecs.OperationKey("tok", "code-store", codecs.KindRefund, "r1"), Kind: codecs.KindRefund, TransactionID: "a",
		OperationID: "r1", PurchaseKey: purchase.PaymentKey, CardToken: "tok", Merchant: "code-store", Status: codecs.StatusApproved, AmountCents: 2500,
		Store: "Code Store", AuthorizedAt: "2026-11-02T10:00:00.000000Z"}
	bill := &codecs.Result{PaymentKey: codecs.OperationKey("tok", "", codecs.KindBillPayment, "b1"), Kind: codecs.KindBillPayment, OperationID: "b1",
		CardToken: "tok", Status: codecs.StatusApproved, AmountCents: 7500, AuthorizedAt: "2026-11-03T10:00:00.000000Z"}
	for _, r := range []*codecs.Result{purchase, refund, bill} {
		tt.Consume(results, "tok", r)
	}
	got := drain(t, lines)
	if len(got) != 3 || got[0].key == got[1].key {
		t.Fatalf("lines = %v; want three, the refund's under a key of its own at its purchase's very time", got)
	}
	if l := got[1].line; l.GetKind() != eventsv1.OperationKind_OPERATION_KIND_REFUND || l.GetTransactionId() != "a" || l.GetOperationId() != "r1" || l.GetAmountCents() != 2500 {
		t.Errorf("refund's line = %v", l)
	}
	if l := got[2].line; l.GetKind() != eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT || l.GetOperationId() != "b1" {
		t.Errorf("bill payment's line = %v", l)
	}
	var s Summaries
	for _, w := range got {
		_, when, _ := ParseLineKey(w.key)
		s.Add(when, w.line)
	}
	if b := Bills(s.Months(), at(11, 4, 0))[0]; b.Purchases != 10000 || b.Refunds != 2500 || b.Payments != 7500 || b.Closing != 0 || b.Status != NothingDue {
		t.Errorf("the month's bill = %+v", b)
	}
}
