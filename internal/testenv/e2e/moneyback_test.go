package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/olivere/elastic/v7"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// crediter is a merchant's client giving money back: one reversal or refund under its own id,
// sent again with that id after every error that is not a final answer (a timeout, the bank
// unavailable), until the bank says it was carried out (OK) or refused it
// (FAILED_PRECONDITION: more than is left).
type crediter struct {
	mu       sync.Mutex
	ok       map[string]map[string]bool // payment id -> ids carried out
	refused  map[string]int
	retries  int
	dups     int
	longest  time.Duration
	finished int
	failed   error
}

func (c *crediter) give(ctx context.Context, p codebankv1.PaymentServiceClient, paymentID, id string, reverse bool, amount int64) {
	start := time.Now()
	for {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var err error
		var dup bool
		if reverse {
			var r *codebankv1.ReverseResponse
			r, err = p.Reverse(callCtx, &codebankv1.ReverseRequest{PaymentId: paymentID, ReversalId: id, AmountCents: amount})
			dup = r.GetDuplicate()
		} else {
			var r *codebankv1.RefundResponse
			r, err = p.Refund(callCtx, &codebankv1.RefundRequest{PaymentId: paymentID, RefundId: id, AmountCents: amount})
			dup = r.GetDuplicate()
		}
		cancel()
		code := status.Code(err)
		if code == codes.OK || code == codes.FailedPrecondition {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.finished++
			c.longest = max(c.longest, time.Since(start))
			if code == codes.OK {
				c.ok[paymentID][id] = true
				if dup {
					c.dups++
				}
			} else {
				c.refused[paymentID]++
			}
			return
		}
		c.mu.Lock()
		c.retries++
		if time.Since(start) > 2*time.Minute || ctx.Err() != nil {
			c.failed = fmt.Errorf("%s: no final answer in 2 minutes: %v", id, err)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// done returns how many operations got a final answer, and the error of one that never will.
func (c *crediter) done() (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished, c.failed
}

// TestMoneyBackSurvivesKill9 runs the authorizer and the ingress as processes and gives money
// back on four purchases of 100.00 of one card: 50 reversals and refunds of 10.00 each per
// purchase, all at once, each client retrying with its id until a final answer. The authorizer
// is killed with SIGKILL after the first answers, with operations of every purchase answered,
// in flight and still to come. Exactly 10 per purchase are carried out, the
// card's used credit comes back to what it was before the purchases, and the results topic
// holds, per purchase, operations of distinct keys summing to exactly 100.00: nothing credited
// twice.
func TestMoneyBackSurvivesKill9(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	prefix := kafkatest.Name(t) + "-"
	common := []string{"--brokers", servers.Broker, "--topic-prefix", prefix, "--partitions", "3", "--reply-partitions", "2"}
	setup := exec.Command(binary, append([]string{"setup"}, common...)...)
	setup.Env = append(setup.Environ(), banktest.Env(t)...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	authOps, inHTTP, inGRPC, inOps := addr(), addr(), addr(), addr()
	auth := startRole(t, "authorizer", "http://"+authOps+"/readyz",
		append([]string{"authorizer", "--storage-dir", t.TempDir(), "--ops-addr", authOps}, common...)...)
	in := startRole(t, "ingress", "http://"+inOps+"/readyz",
		append([]string{"ingress", "--grpc-addr", inGRPC, "--http-addr", inHTTP, "--ops-addr", inOps, "--reply-partition", "0", "--request-timeout", "2s"}, common...)...)
	auth.waitReady(t, time.Minute)
	in.waitReady(t, time.Minute)
	conn, err := grpc.NewClient(inGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cards, payments := codebankv1.NewCardServiceClient(conn), codebankv1.NewPaymentServiceClient(conn)
	c := issue(t, cards, "Maria Silva", 1_000_000)
	var ids []string
	for i := range 4 {
		r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: fmt.Sprint("order-", i), Card: details(c), AmountCents: 10_000,
			Store: "Code Store", Description: "Produtos: caneca"})
		if err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			t.Fatalf("purchase %d: %v, %v", i, r, err)
		}
		ids = append(ids, r.GetPaymentId())
	}
	if u := used(t, cards, c); u != 40_000 {
		t.Fatalf("used %d after the purchases, want 40000", u)
	}

	cr := &crediter{ok: map[string]map[string]bool{}, refused: map[string]int{}}
	for _, id := range ids {
		cr.ok[id] = map[string]bool{}
	}
	// The first 5 operations of every purchase are sent at once; at their first answer the
	// authorizer is killed, with the others decided or in flight, and the other 45 of every
	// purchase are sent while it is down: their requests, and their clients' retries after
	// each timeout, wait for it, and are decided after its restart.
	var wg sync.WaitGroup
	send := func(from, to int) {
		for purchase := range ids {
			for j := from; j < to; j++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cr.give(ctx, payments, ids[purchase], fmt.Sprintf("p%d-op%d", purchase, j), j%2 == 0, 1_000)
				}()
			}
		}
	}
	send(0, 5)
	wait.For(t, time.Minute, "a first answer", func() error {
		if n, err := cr.done(); err != nil {
			t.Fatal(err)
		} else if n < 1 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	before, _ := cr.done()
	auth.kill9(t)
	send(5, 50)
	ready := auth.waitReady(t, 2*time.Minute)
	wg.Wait()
	if _, err := cr.done(); err != nil {
		t.Fatal(err)
	}

	total := 0
	for i, id := range ids {
		if len(cr.ok[id]) != 10 || cr.refused[id] != 40 {
			t.Errorf("purchase %d: %d operations carried out, %d refused; want 10 and 40", i, len(cr.ok[id]), cr.refused[id])
		}
		total += len(cr.ok[id])
	}
	if u := used(t, cards, c); u != 0 {
		t.Errorf("used %d after every purchase was given back, want 0", u)
	}
	t.Logf("200 reversals and refunds of 10.00 on 4 purchases of 100.00, authorizer killed after %d final answers (ready again after %v): "+
		"%d carried out, %d refused, %d answered as duplicates, %d retries; longest wait for a final answer %v; authorizer started %d times",
		before, ready.Round(time.Millisecond), total, 200-total, cr.dups, cr.retries, cr.longest.Round(time.Millisecond), auth.starts)

	// The results: per purchase, operations of distinct keys summing to its amount, and no
	// key with two different records.
	client, err := sarama.NewClient([]string{servers.Broker}, kafkaconf.Config{Brokers: []string{servers.Broker}, ClientID: "test"}.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topo := processors.Topology{Prefix: prefix}
	var (
		credited map[string]int64
		seen     map[string]*codecs.Result
		records  []*sarama.ConsumerMessage
	)
	// The results of operations answered may still be on their way (a result waits for the
	// account's write; a reply does not): read until every purchase and operation is there.
	wait.For(t, 30*time.Second, "the results of the 4 purchases and 40 operations", func() error {
		credited, seen, records = map[string]int64{}, map[string]*codecs.Result{}, readAll(t, client, topo.Results().Name)
		for _, m := range records {
			v, err := codecs.ResultCodec{}.Decode(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			r := v.(*codecs.Result)
			if prev, ok := seen[r.PaymentKey]; ok {
				if *prev != *r {
					t.Fatalf("%s: two different records:\n%+v\n%+v", r.PaymentKey, prev, r)
				}
				continue
			}
			seen[r.PaymentKey] = r
			if !r.Purchase() {
				credited[r.PurchaseKey] += r.AmountCents
			}
		}
		if len(seen) < 44 {
			return fmt.Errorf("%d distinct keys so far", len(seen))
		}
		return nil
	})
	if len(credited) != 4 {
		t.Errorf("operations on %d purchases in the results, want 4", len(credited))
	}
	for key, cents := range credited {
		if cents != 10_000 {
			t.Errorf("purchase %s: %d given back in the results, want 10000", key, cents)
		}
	}
	t.Logf("results topic: %d records, %d distinct keys", len(records), len(seen))
}

// TestCLIMoneyBack runs the codebank binary as a merchant and an operator would: pay prints the
// payment id, reverse and refund give part of it back, pay-bill records a payment (and refuses
// one of more than is owed), cards get shows the credit balance, and statement prints the month
// as a bill.
func TestCLIMoneyBack(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, servers.Broker, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	st := banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: st.Reader})
	c := issue(t, codebankv1.NewCardServiceClient(in.Conn), "Maria Silva", 100_000)
	cli := func(args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(binary, append(args, "--addr", in.GRPCAddr)...)
		cmd.Dir = t.TempDir() // no credentials file: the keys come from the environment
		cmd.Env = append(cmd.Environ(), banktest.Env(t)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	must := func(want string, args ...string) string {
		t.Helper()
		out, err := cli(args...)
		if err != nil || !strings.Contains(out, want) {
			t.Fatalf("codebank %s = %v:\n%s\nwant %q", card.Redact(strings.Join(args, " ")), err, out, want)
		}
		return out
	}
	number := c.GetCard().GetNumber()
	exp := fmt.Sprintf("%02d/%02d", c.GetCard().GetExpiryMonth(), c.GetCard().GetExpiryYear()%100)
	paid := must("APPROVED  200.00", "pay", "--card", number, "--holder", "Maria Silva", "--exp", exp, "--cvv", c.GetCvv(), "--amount", "200.00",
		"--tx", "order-1", "--description", "Produtos: mochila")
	var paymentID string
	for _, l := range strings.Split(paid, "\n") {
		if id, ok := strings.CutPrefix(l, "Payment id:  "); ok {
			paymentID = strings.TrimSpace(id)
		}
	}
	if paymentID == "" {
		t.Fatalf("pay printed no payment id:\n%s", paid)
	}
	must("REVERSED  50.00 of transaction order-1", "reverse", paymentID, "--amount", "50.00", "--id", "order-1-void")
	must("Left:       120.00 to reverse or refund", "refund", paymentID, "--amount", "30.00", "--id", "order-1-r1")
	must("(already carried out earlier", "refund", paymentID, "--amount", "30.00", "--id", "order-1-r1")
	if out, err := cli("refund", paymentID, "--amount", "120.01", "--id", "order-1-r2"); err == nil || !strings.Contains(out, "FAILED_PRECONDITION") {
		t.Errorf("a refund of more than is left = %v:\n%s", err, out)
	}
	if out, err := cli("pay-bill", number, "--amount", "120.01"); err == nil || !strings.Contains(out, "more than the card owes") {
		t.Errorf("a bill payment of more than is owed = %v:\n%s", err, out)
	}
	must("Used:       BRL 0.00", "pay-bill", number, "--amount", "120.00", "--id", "boleto-1")
	must("REFUNDED  40.00 of transaction order-1", "refund", paymentID, "--amount", "40.00", "--id", "order-1-r2")
	got := must("Credit balance      BRL        40.00", "statement", c.GetCard().GetCardId())
	for _, want := range []string{"Reversal of order-1", "-50.00", "Refund of order-1", "-30.00", "Bill payment boleto-1", "-120.00",
		"Purchases           BRL       200.00", "Minimum payment     BRL         0.00", "(nothing due)", "1 purchase, total BRL 200.00; 4 reversals, refunds and bill payments"} {
		if !strings.Contains(got, want) {
			t.Errorf("statement lacks %q:\n%s", want, got)
		}
	}
	if out, _ := cli("cards", "get", c.GetCard().GetCardId()); !strings.Contains(out, "credit balance of 40.00") {
		t.Errorf("cards get:\n%s", out)
	}
	t.Logf("codebank statement:\n%s", got)
}

// TestAuditFindsCorruptedMoneyBack: `codebank audit` checks the books of money back, and its
// negative controls are caught: a refund above its purchase (a results record as a broken
// authorizer would write it) and a bill payment missing from the statement (its line deleted).
// Before them, the books of purchases, a refund and a bill payment balance.
func TestAuditFindsCorruptedMoneyBack(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, servers.Broker, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	maria, joao := issue(t, cards, "Maria Silva", 100_000), issue(t, cards, "Joao Souza", 100_000)
	pay := func(c *codebankv1.IssueCardResponse, tx string, amount int64) *codebankv1.AuthorizeResponse {
		t.Helper()
		r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: tx, Card: details(c), AmountCents: amount, Store: "Code Store", Description: "x"})
		if err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			t.Fatalf("pay %s: %v %v", tx, r, err)
		}
		return r
	}
	book := pay(maria, "order-1", 10_000)
	if _, err := payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: book.GetPaymentId(), RefundId: "order-1-r1", AmountCents: 2_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := cards.PayBill(ctxT(t), &codebankv1.PayBillRequest{CardId: maria.GetCard().GetCardId(), BillPaymentId: "boleto-1", AmountCents: 3_000}); err != nil {
		t.Fatal(err)
	}
	pay(joao, "order-2", 5_000)
	var out string
	var code int
	wait.For(t, 30*time.Second, "codebank audit to find the books sound", func() error {
		if out, code = codebankAudit(t, d); code != 0 {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	if !strings.Contains(out, "OK: the books balance") || !strings.Contains(out, "2 payments (2 approved, 150.00)") ||
		!strings.Contains(out, "money back: 2 reversals, refunds and bill payments (50.00)") {
		t.Fatalf("audit of sound books = exit %d:\n%s", code, out)
	}

	cfg := d.Kafka.Sarama()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	producer, err := sarama.NewSyncProducer(d.Kafka.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(topic, key string, value []byte) {
		t.Helper()
		msg := &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key)}
		if value != nil {
			msg.Value = sarama.ByteEncoder(value)
		}
		if _, _, err := producer.SendMessage(msg); err != nil {
			t.Fatal(err)
		}
	}

	// 1. A refund of 80.00 of Joao's purchase of 50.00.
	token := joao.GetCard().GetCardId()
	now := time.Now().UTC()
	over := &codecs.Result{PaymentKey: codecs.OperationKey(token, banktest.Merchant, codecs.KindRefund, "order-2-r9"), Kind: codecs.KindRefund,
		TransactionID: "order-2", OperationID: "order-2-r9", PurchaseKey: codecs.PaymentKey(token, banktest.Merchant, "order-2"), CardToken: token,
		CardMasked: joao.GetCard().GetMaskedNumber(), Status: codecs.StatusApproved, AmountCents: 8_000, Amount: "80.00", Merchant: banktest.Merchant,
		Store: banktest.MerchantName, Channel: "api", RequestedAt: now.Format(codecs.TimeFormat), AuthorizedAt: now.Format(codecs.TimeFormat)}
	raw, _ := codecs.ResultCodec{}.Encode(over)
	send(d.Topo.Results().Name, token, raw)

	// 2. Maria's bill payment deleted from her statement.
	client, err := sarama.NewClient(d.Kafka.Brokers, d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var billLine string
	for _, m := range readAtLeast(t, client, d.Topo.StatementLines().Name, 4, 20*time.Second) {
		v, _ := codecs.StatementLine.Decode(m.Value)
		if v.(*eventsv1.StatementLine).GetOperationId() == "boleto-1" {
			billLine = string(m.Key)
		}
	}
	if billLine == "" {
		t.Fatal("no statement line of the bill payment")
	}
	send(d.Topo.StatementLines().Name, billLine, nil)
	_, billAt, _ := statements.ParseLineKey(billLine)
	month := statements.MonthOf(billAt)

	wait.For(t, 30*time.Second, "codebank audit to find both", func() error {
		out, code = codebankAudit(t, d)
		for _, want := range []string{
			"purchase " + over.PurchaseKey + " (card " + joao.GetCard().GetMaskedNumber() + "): 80.00 reversed or refunded of 50.00 approved",
			"card " + maria.GetCard().GetMaskedNumber() + ": statement of " + month + ": the line of bill payment boleto-1 (30.00) is missing",
			"card " + maria.GetCard().GetMaskedNumber() + ": statement of " + month + " closes at 80.00, but the card's used credit at the month's end was 50.00",
		} {
			if code != 3 || !strings.Contains(out, want) {
				return fmt.Errorf("exit %d, the output lacks %q:\n%s", code, want, out)
			}
		}
		return nil
	})
	t.Logf("codebank audit on corrupted money back, exit %d:\n%s", code, out)
}

// TestMoneyBackIndexed runs the whole bank with its analytics: a purchase, a reversal and two
// refunds of it, and a bill payment are each a document of their own in the index, with their
// kind, and the purchase's document is still the purchase's; the books, statements and index
// balance.
func TestMoneyBackIndexed(t *testing.T) {
	t.Parallel()
	b := startWholeBank(t, grpcgateway.Config{})
	c := issue(t, b.cards, "Maria Silva", 100_000)
	r, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "order-1", Card: details(c), AmountCents: 10_000,
		Store: "Centro", Description: "Produtos: mochila"})
	if err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("purchase: %v %v", r, err)
	}
	if _, err := b.payments.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: r.GetPaymentId(), ReversalId: "v1", AmountCents: 1_000}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if _, err := b.payments.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: r.GetPaymentId(), RefundId: id, AmountCents: 2_000}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.cards.PayBill(ctxT(t), &codebankv1.PayBillRequest{CardId: c.GetCard().GetCardId(), BillPaymentId: "b1", AmountCents: 5_000}); err != nil {
		t.Fatal(err)
	}
	rep := b.balanced(t)
	if rep.Payments != 1 || rep.Operations != 4 || rep.Documents != 5 || rep.CreditedCents != 10_000 {
		t.Errorf("audit: %d payments, %d operations (%d cents), %d documents; want 1, 4 (10000), 5", rep.Payments, rep.Operations, rep.CreditedCents, rep.Documents)
	}
	ctx := context.Background()
	for kind, want := range map[string]int64{codecs.KindPurchase: 1, codecs.KindReversal: 1, codecs.KindRefund: 2, codecs.KindBillPayment: 1} {
		if n, err := b.search.Count(b.index).Query(elastic.NewTermQuery("kind", kind)).Do(ctx); err != nil || n != want {
			t.Errorf("documents of kind %s = %d, %v; want %d", kind, n, err, want)
		}
	}
	token := c.GetCard().GetCardId()
	doc, err := b.search.Get().Index(b.index).Id(codecs.PaymentKey(token, banktest.Merchant, "order-1")).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var purchase codecs.Result
	net := func(r codecs.Result) float64 { f, _ := r.NetAmount.Float64(); return f } // the sink writes 100.00 as 100
	if err := json.Unmarshal(doc.Source, &purchase); err != nil || purchase.Kind != codecs.KindPurchase || purchase.AmountCents != 10_000 || net(purchase) != 100 {
		t.Errorf("the purchase's document = %+v, %v", purchase, err)
	}
	doc, err = b.search.Get().Index(b.index).Id(codecs.OperationKey(token, banktest.Merchant, codecs.KindRefund, "r2")).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var refund codecs.Result
	if err := json.Unmarshal(doc.Source, &refund); err != nil || refund.PurchaseKey != purchase.PaymentKey || net(refund) != -20 {
		t.Errorf("the refund's document = %+v, %v", refund, err)
	}
	t.Logf("audit: %d payments, %d operations, %d documents", rep.Payments, rep.Operations, rep.Documents)
}
