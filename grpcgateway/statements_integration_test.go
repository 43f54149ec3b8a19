package grpcgateway_test

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors/authorizer"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// clock is a settable clock for the authorizer, which stamps authorization times. Like a real
// one it moves on: each reading is a microsecond after the one before.
type clock struct{ t atomic.Int64 }

func (c *clock) now() time.Time    { return time.UnixMicro(c.t.Add(1)) }
func (c *clock) set(at time.Time)  { c.t.Store(at.UnixMicro()) }
func newClock(at time.Time) *clock { c := &clock{}; c.set(at); return c }

// statementLines fetches every line of a month, page by page.
func statementLines(t *testing.T, s codebankv1.StatementServiceClient, cardID, month string, pageSize int32) (*codebankv1.GetStatementResponse, []*codebankv1.StatementLine) {
	t.Helper()
	req := &codebankv1.GetStatementRequest{CardId: cardID, Month: month, PageSize: pageSize}
	var first *codebankv1.GetStatementResponse
	var lines []*codebankv1.StatementLine
	for {
		resp, err := s.GetStatement(ctxT(t), req)
		if err != nil {
			t.Fatalf("GetStatement(%s): %v", month, err)
		}
		if !resp.GetUpToDate() {
			t.Fatalf("GetStatement(%s) is not up to date", month)
		}
		if first == nil {
			first = resp
		}
		lines = append(lines, resp.GetLines()...)
		if resp.GetNextPageToken() == "" {
			return first, lines
		}
		req.PageToken = resp.GetNextPageToken()
	}
}

func TestStatementsAcrossMonths(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	clk := newClock(time.Date(2026, 10, 15, 12, 0, 0, 0, time.UTC))
	banktest.StartAuthorizerWith(t, d, "", authorizer.Deps{Now: clk.now})
	st := banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: st.Reader})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	stmts := codebankv1.NewStatementServiceClient(in.Conn)
	c := issue(t, cards, "Maria Silva", 10_000)
	id := c.GetCard().GetCardId()

	pay := func(amount int64, store string) *codebankv1.AuthorizeResponse {
		return authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: amount, Store: store, Description: "Produtos: " + store})
	}
	badCVV := details(c)
	badCVV.Cvv = fmt.Sprintf("%03d", (atoi(badCVV.Cvv)+1)%1000)

	october := []*codebankv1.AuthorizeResponse{pay(1000, "Livraria"), pay(2000, "Padaria"), pay(3000, "Mercado")}
	if r := authorize(t, payments, &codebankv1.AuthorizeRequest{Card: badCVV, AmountCents: 50, Store: "Fraude", Description: "x"}); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		t.Fatalf("bad CVV approved: %v", r)
	}
	if r := pay(9000, "Joalheria"); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		t.Fatalf("over limit approved: %v", r)
	}
	clk.set(time.Date(2026, 11, 3, 9, 30, 0, 0, time.UTC))
	november := []*codebankv1.AuthorizeResponse{pay(500, "Farmacia"), pay(700, "Cinema")}
	if r := pay(5000, "Joalheria"); r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		t.Fatalf("over limit approved: %v", r)
	}

	check := func(month string, want []*codebankv1.AuthorizeResponse, pageSize int32) int64 {
		t.Helper()
		head, lines := statementLines(t, stmts, id, month, pageSize)
		var total int64
		for _, w := range want {
			total += w.GetAmountCents()
		}
		if head.GetCount() != int64(len(want)) || head.GetTotalCents() != total || len(lines) != len(want) {
			t.Fatalf("%s: count %d total %d with %d lines, want %d lines totalling %d", month, head.GetCount(), head.GetTotalCents(), len(lines), len(want), total)
		}
		for i, l := range lines {
			if l.GetTransactionId() != want[i].GetTransactionId() || l.GetAmountCents() != want[i].GetAmountCents() ||
				time.UnixMilli(l.GetAuthorizedAtUnixMs()).UTC().Format("2006-01") != month {
				t.Errorf("%s line %d = %v, want transaction %s of %d", month, i, l, want[i].GetTransactionId(), want[i].GetAmountCents())
			}
		}
		if head.GetMaskedNumber() != c.GetCard().GetMaskedNumber() || head.GetHolderName() != "Maria Silva" || head.GetAvailableCents() != 10_000-7_200 {
			t.Errorf("%s header = %v", month, head)
		}
		return total
	}
	sum := check("2026-10", october, 2) + check("2026-11", november, 0)
	if u := used(t, cards, c); sum != u {
		t.Errorf("statements total %d, card used %d", sum, u)
	}

	list, err := stmts.ListStatements(ctxT(t), &codebankv1.ListStatementsRequest{CardId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetStatements(); len(got) != 2 || got[0].GetMonth() != "2026-11" || got[0].GetTotalCents() != 1200 || got[1].GetMonth() != "2026-10" || got[1].GetCount() != 3 {
		t.Errorf("ListStatements = %v", got)
	}
	empty, err := stmts.GetStatement(ctxT(t), &codebankv1.GetStatementRequest{CardId: id, Month: "2026-09"})
	if err != nil || len(empty.GetLines()) != 0 || empty.GetCount() != 0 {
		t.Errorf("month without purchases = %v, %v; want an empty statement", empty, err)
	}
	if _, err := stmts.GetStatement(ctxT(t), &codebankv1.GetStatementRequest{CardId: "gzNcUY7KgaoXOFX_qNg2gQ", Month: "2026-10"}); status.Code(err) != codes.NotFound {
		t.Errorf("unknown card = %v, want NOT_FOUND", err)
	}
	for _, m := range []string{"2026-13", "26-10", "2026-1", "october"} {
		if _, err := stmts.GetStatement(ctxT(t), &codebankv1.GetStatementRequest{CardId: id, Month: m}); !violates(err, "month") {
			t.Errorf("month %q = %v, want INVALID_ARGUMENT", m, err)
		}
	}
}

// TestStatementsRestartMidStream stops and restarts the statements processor while payments
// flow: every approved payment is on its statement exactly once.
func TestStatementsRestartMidStream(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	dir := t.TempDir()
	sp := banktest.StartStatements(t, d, dir)
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: banktest.StartStatementsView(t, d)})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	stmts := codebankv1.NewStatementServiceClient(in.Conn)
	var issued []*codebankv1.IssueCardResponse
	for i := 0; i < 3; i++ {
		issued = append(issued, issue(t, cards, fmt.Sprintf("Holder %d", i), 1_000_000))
	}
	// Payments flow on every card until the processor has been stopped and started three times.
	approved := make([][]string, len(issued))
	var (
		wg    sync.WaitGroup
		stop  atomic.Bool
		count atomic.Int64
	)
	for i := range issued {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; !stop.Load(); j++ {
				r := authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(issued[i]), AmountCents: int64(100 + j%50)})
				approved[i] = append(approved[i], r.GetTransactionId())
				count.Add(1)
			}
		}()
	}
	// Each step waits for 30 more payments: some are approved while the processor is down,
	// some while it recovers, some while it runs.
	progress := func(what string) {
		t.Helper()
		from := count.Load()
		wait.Until(t, 30*time.Second, "30 payments "+what, func() bool { return count.Load() >= from+30 })
	}
	progress("before the first stop")
	sp.Stop(t)
	progress("while the processor is stopped")
	sp = banktest.StartStatements(t, d, dir)
	progress("after its restart")
	sp.Stop(t)
	progress("while it is stopped again")
	banktest.StartStatements(t, d, t.TempDir()) // and once more, on empty storage
	progress("after it started on empty storage")
	stop.Store(true)
	wg.Wait()
	month := time.Now().UTC().Format("2006-01")
	for i, c := range issued {
		_, lines := statementLines(t, stmts, c.GetCard().GetCardId(), month, 1000)
		var got []string
		for _, l := range lines {
			got = append(got, l.GetTransactionId())
		}
		if !slices.Equal(got, approved[i]) {
			t.Errorf("card %d: statement has %d lines, want the %d approved, in order", i, len(got), len(approved[i]))
		}
		t.Logf("card %d: %d payments, all on the statement once", i, len(got))
	}
}

// TestStatementsTwoInstances runs two statements processors and two API replicas, each with
// its own view: both answer for every card.
func TestStatementsTwoInstances(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 4, 2)
	banktest.StartAuthorizer(t, d, "")
	sts := []*banktest.Statements{banktest.StartStatements(t, d, ""), banktest.StartStatements(t, d, "")}
	ins := []*banktest.Ingress{
		banktest.StartIngress(t, d, banktest.IngressOptions{Statements: sts[0].Reader}),
		banktest.StartIngress(t, d, banktest.IngressOptions{ReplyPartition: 1, Statements: sts[1].Reader}),
	}
	cards, payments := codebankv1.NewCardServiceClient(ins[0].Conn), codebankv1.NewPaymentServiceClient(ins[0].Conn)
	month := time.Now().UTC().Format("2006-01")
	for i := 0; i < 8; i++ {
		c := issue(t, cards, fmt.Sprintf("Holder %d", i), 100_000)
		var want int64
		for j := 0; j <= i%3; j++ {
			want += authorize(t, payments, &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 250}).GetAmountCents()
		}
		for k, in := range ins {
			head, lines := statementLines(t, codebankv1.NewStatementServiceClient(in.Conn), c.GetCard().GetCardId(), month, 0)
			if head.GetTotalCents() != want || len(lines) != i%3+1 {
				t.Errorf("replica %d, card %d: total %d with %d lines, want %d with %d", k, i, head.GetTotalCents(), len(lines), want, i%3+1)
			}
		}
	}
}

// TestStatementAsABill: purchases, a reversal, a refund and a bill payment are each a line of
// their own in the month they happen, naming the purchase they credit; the month reads as a
// bill (opening and closing balance, due date the 10th of the next month, minimum payment); a
// refund after the bill was paid is a credit balance; ListStatements says which months were
// paid by their due date. GetStatement's read-your-writes wait covers every kind: with the
// statements processor stopped, a statement read after a refund is not up to date.
func TestStatementAsABill(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	clk := newClock(time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC))
	banktest.StartAuthorizerWith(t, d, "", authorizer.Deps{Now: clk.now})
	sp := banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: banktest.StartStatementsView(t, d),
		Config: grpcgateway.Config{}, Now: clk.now})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	stmts := codebankv1.NewStatementServiceClient(in.Conn)
	c := issue(t, cards, "Maria Silva", 100_000)
	id := c.GetCard().GetCardId()

	// October: 600.00 and 150.00 of purchases; 50.00 of the first reversed, 20.00 refunded.
	book := purchase(t, payments, c, "order-1", 60_000)
	purchase(t, payments, c, "order-2", 15_000)
	if _, err := payments.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: book.GetPaymentId(), ReversalId: "order-1-void", AmountCents: 5_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: book.GetPaymentId(), RefundId: "order-1-r1", AmountCents: 2_000}); err != nil {
		t.Fatal(err)
	}
	// November: the October bill (680.00) paid on the 5th, then a refund leaves a credit.
	clk.set(time.Date(2026, 11, 5, 9, 0, 0, 0, time.UTC))
	if _, err := cards.PayBill(ctxT(t), &codebankv1.PayBillRequest{CardId: id, BillPaymentId: "boleto-2026-10", AmountCents: 68_000}); err != nil {
		t.Fatal(err)
	}
	clk.set(time.Date(2026, 11, 12, 9, 0, 0, 0, time.UTC))
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: book.GetPaymentId(), RefundId: "order-1-r2", AmountCents: 3_000}); err != nil {
		t.Fatal(err)
	}
	clk.set(time.Date(2026, 11, 20, 9, 0, 0, 0, time.UTC))

	oct, lines := statementLines(t, stmts, id, "2026-10", 0)
	kinds := func(lines []*codebankv1.StatementLine) (out []string) {
		for _, l := range lines {
			out = append(out, fmt.Sprintf("%s %s %s %d", strings.TrimPrefix(l.GetKind().String(), "LINE_KIND_"), l.GetTransactionId(), l.GetOperationId(), l.GetAmountCents()))
		}
		return out
	}
	if got, want := kinds(lines), []string{"PURCHASE order-1  60000", "PURCHASE order-2  15000", "REVERSAL order-1 order-1-void 5000", "REFUND order-1 order-1-r1 2000"}; !slices.Equal(got, want) {
		t.Errorf("October's lines = %q, want %q", got, want)
	}
	wantOct := &codebankv1.Bill{OpeningBalanceCents: 0, PurchasesCents: 75_000, ReversalsCents: 5_000, RefundsCents: 2_000, ClosingBalanceCents: 68_000,
		DueDate: "2026-11-10", MinimumPaymentCents: 10_200, PaidByDueDateCents: 68_000, Status: codebankv1.BillStatus_BILL_STATUS_PAID}
	if !proto.Equal(oct.GetBill(), wantOct) || oct.GetCount() != 4 || oct.GetTotalCents() != 75_000 {
		t.Errorf("October = %v (count %d, total %d)\nwant the bill %v", oct.GetBill(), oct.GetCount(), oct.GetTotalCents(), wantOct)
	}
	nov, lines := statementLines(t, stmts, id, "2026-11", 0)
	if got, want := kinds(lines), []string{"BILL_PAYMENT  boleto-2026-10 68000", "REFUND order-1 order-1-r2 3000"}; !slices.Equal(got, want) {
		t.Errorf("November's lines = %q, want %q", got, want)
	}
	if b := nov.GetBill(); b.GetOpeningBalanceCents() != 68_000 || b.GetClosingBalanceCents() != -3_000 || b.GetMinimumPaymentCents() != 0 ||
		b.GetStatus() != codebankv1.BillStatus_BILL_STATUS_NOTHING_DUE || b.GetDueDate() != "2026-12-10" || nov.GetAvailableCents() != 103_000 {
		t.Errorf("November = %v, available %d; want a credit balance of 30.00, nothing due", b, nov.GetAvailableCents())
	}
	if u := used(t, cards, c); u != nov.GetBill().GetClosingBalanceCents() {
		t.Errorf("used %d, the latest closing balance %d", u, nov.GetBill().GetClosingBalanceCents())
	}
	list, err := stmts.ListStatements(ctxT(t), &codebankv1.ListStatementsRequest{CardId: id})
	if err != nil {
		t.Fatal(err)
	}
	if got := list.GetStatements(); len(got) != 2 || got[1].GetClosingBalanceCents() != 68_000 || !got[1].GetPaidByDueDate() ||
		got[0].GetClosingBalanceCents() != -3_000 || !got[0].GetPaidByDueDate() {
		t.Errorf("ListStatements = %v", got)
	}

	// A month whose bill was not paid by the 10th: overdue.
	clk.set(time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC))
	purchase(t, payments, c, "order-3", 40_000)
	clk.set(time.Date(2027, 1, 11, 0, 0, 0, 0, time.UTC))
	if dec, _ := statementLines(t, stmts, id, "2026-12", 0); dec.GetBill().GetClosingBalanceCents() != 37_000 || dec.GetBill().GetMinimumPaymentCents() != 5_550 ||
		dec.GetBill().GetStatus() != codebankv1.BillStatus_BILL_STATUS_OVERDUE {
		t.Errorf("December, unpaid on 11 January = %v", dec.GetBill())
	}

	// The statements processor stopped: a statement read right after a refund waits for its
	// line, and says it is not up to date.
	recent := purchase(t, payments, c, "order-4", 1_000)
	statementLines(t, stmts, id, "2027-01", 0)
	sp.Stop(t)
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: recent.GetPaymentId(), RefundId: "order-4-r1", AmountCents: 100}); err != nil {
		t.Fatal(err)
	}
	resp, err := stmts.GetStatement(ctxT(t), &codebankv1.GetStatementRequest{CardId: id, Month: "2027-01"})
	if err != nil || resp.GetUpToDate() {
		t.Errorf("a statement read after a refund whose line is not written = %v, %v; want up_to_date false", resp, err)
	}
}
