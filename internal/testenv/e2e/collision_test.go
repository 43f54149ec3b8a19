package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// collisionPairs is how many pairs of payments share a transaction id.
const collisionPairs = 60

// TestSharedTransactionIDs: many pairs of concurrent payments, each pair sharing one
// transaction id on two cards, with different amounts and outcomes. Every caller gets the answer
// to its own request, each card is charged exactly its approvals, and the index holds one
// document per payment.
func TestSharedTransactionIDs(t *testing.T) {
	t.Parallel()
	b := startWholeBank(t, grpcgateway.Config{})
	a, c := issue(t, b.cards, "Maria Silva", 100_000), issue(t, b.cards, "Joao Souza", 50_000)

	type call struct {
		card   *codebankv1.IssueCardResponse
		amount int64
		want   codebankv1.PaymentStatus
		resp   *codebankv1.AuthorizeResponse
		err    error
	}
	approved, rejected := codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED, codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED
	var calls []*call
	var wantA, wantC int64
	for i := range collisionPairs {
		// Card A's payment always fits; card C's is over its limit on even pairs. The approvals
		// of each card fit its limit together, so every outcome is known whatever the order.
		ca := &call{card: a, amount: int64(100 + i), want: approved}
		cc := &call{card: c, amount: 99_999_999, want: rejected}
		if i%2 == 1 {
			cc.amount, cc.want = int64(50+i), approved
			wantC += cc.amount
		}
		wantA += ca.amount
		calls = append(calls, ca, cc)
	}
	var wg sync.WaitGroup
	for i, cl := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl.resp, cl.err = b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: fmt.Sprintf("order-%d", i/2),
				Card: details(cl.card), AmountCents: cl.amount, Store: "Code Store", Description: "Produtos: caneca"})
		}()
	}
	wg.Wait()
	for i, cl := range calls {
		tx, masked := fmt.Sprintf("order-%d", i/2), card.Mask(cl.card.GetCard().GetNumber())
		if cl.err != nil {
			t.Fatalf("%s on %s: %v", tx, masked, cl.err)
		}
		if r := cl.resp; r.GetTransactionId() != tx || r.GetAmountCents() != cl.amount || r.GetMaskedNumber() != masked || r.GetStatus() != cl.want || r.GetDuplicate() {
			t.Errorf("%s of %d on %s: got %v, want %v for its own request", tx, cl.amount, masked, r, cl.want)
		}
	}
	if got := used(t, b.cards, a); got != wantA {
		t.Errorf("card A used %d, its approvals sum to %d", got, wantA)
	}
	if got := used(t, b.cards, c); got != wantC {
		t.Errorf("card C used %d, its approvals sum to %d", got, wantC)
	}

	// The same id with the same parameters again: the original outcome, charged once.
	again, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "order-1",
		Card: details(a), AmountCents: 101, Store: "Code Store", Description: "Produtos: caneca"})
	if err != nil || !again.GetDuplicate() || again.GetStatus() != approved || again.GetAmountCents() != 101 {
		t.Errorf("order-1 again = %v, %v; want the original approval, marked duplicate", again, err)
	}
	// The same id with another amount: ALREADY_EXISTS naming the id, nothing charged; over REST
	// too, as 409.
	_, err = b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "order-1",
		Card: details(a), AmountCents: 102, Store: "Code Store", Description: "Produtos: caneca"})
	if st := status.Convert(err); st.Code() != codes.AlreadyExists || !strings.Contains(st.Message(), `"order-1"`) {
		t.Errorf("order-1 for another amount = %v, want ALREADY_EXISTS naming order-1", err)
	}
	d := details(a)
	body := fmt.Sprintf(`{"transaction_id":"order-2","card":{"number":%q,"holder_name":%q,"expiry_month":%d,"expiry_year":%d,"cvv":%q},`+
		`"amount_cents":1,"store":"Another Store","description":"x"}`, d.GetNumber(), d.GetHolderName(), d.GetExpiryMonth(), d.GetExpiryYear(), d.GetCvv())
	post, _ := http.NewRequest(http.MethodPost, b.in.HTTPURL+"/v1/payments", strings.NewReader(body))
	post.Header.Set("Authorization", "Bearer "+banktest.MerchantKey)
	resp, err := http.DefaultClient.Do(post)
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(msg), "order-2") {
		t.Errorf("REST order-2 for another amount and store = %d %s, want 409 naming order-2", resp.StatusCode, msg)
	}
	if got := used(t, b.cards, a); got != wantA {
		t.Errorf("card A used %d after the conflicts, want %d", got, wantA)
	}

	// Another store reusing the Code Store's order id, with the same amount, on the same card:
	// its own payment, decided and charged, neither the Code Store's outcome nor a conflict with
	// it. Its own retry is its duplicate; its own reuse with another amount, its conflict.
	other := codebankv1.NewPaymentServiceClient(dialWith(t, b.in.GRPCAddr, banktest.OtherMerchantKey))
	order1 := func(amount int64) (*codebankv1.AuthorizeResponse, error) {
		return other.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "order-1", Card: details(a), AmountCents: amount,
			Store: "Code Store", Description: "Produtos: caneca"})
	}
	if r, err := order1(101); err != nil || r.GetStatus() != approved || r.GetDuplicate() {
		t.Fatalf("another merchant's order-1 = %v, %v; want its own approval", r, err)
	}
	wantA += 101
	if r, err := order1(101); err != nil || !r.GetDuplicate() {
		t.Errorf("another merchant's order-1 again = %v, %v; want its own outcome, duplicate", r, err)
	}
	if _, err := order1(102); status.Code(err) != codes.AlreadyExists {
		t.Errorf("another merchant's order-1 for another amount = %v, want ALREADY_EXISTS", err)
	}
	if got := used(t, b.cards, a); got != wantA {
		t.Errorf("card A used %d after another merchant's payment, want %d", got, wantA)
	}

	rep := b.balanced(t)
	if rep.Payments != 2*collisionPairs+1 || rep.Documents != 2*collisionPairs+1 || rep.Refused != 0 {
		t.Errorf("audit: %d payments, %d documents, %d refused; want %d, %d, 0", rep.Payments, rep.Documents, rep.Refused, 2*collisionPairs+1, 2*collisionPairs+1)
	}
	// Both payments of a pair have their own document; so has the other merchant's order-1.
	n, err := b.search.Count(b.index).Query(elastic.NewTermQuery("transaction_id", "order-7")).Do(context.Background())
	if err != nil || n != 2 {
		t.Errorf("documents of order-7 = %d, %v; want 2, one per card", n, err)
	}
	n, err = b.search.Count(b.index).Query(elastic.NewTermQuery("transaction_id", "order-1")).Do(context.Background())
	if err != nil || n != 3 {
		t.Errorf("documents of order-1 = %d, %v; want 3: one per card for the Code Store, one for the other merchant", n, err)
	}
	t.Logf("%d pairs sharing a transaction id: every answer its own; audit: %d payments, %d documents", collisionPairs, rep.Payments, rep.Documents)
}

// TestForgedRepliesNeverReachTheCaller writes replies to the replies topic that name a waiting
// call (its correlation id, read from the request) but not its card or amount: the call is
// never handed them, and gets its own answer once the authorizer is back.
func TestForgedRepliesNeverReachTheCaller(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, servers.Broker, kafkatest.Name(t), 3, 2)
	auth := banktest.StartAuthorizer(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Config: grpcgateway.Config{RequestTimeout: 30 * time.Second}})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	victim, other := issue(t, cards, "Maria Silva", 100_000), issue(t, cards, "Joao Souza", 100_000)
	auth.Stop(t)

	type answer struct {
		r   *codebankv1.AuthorizeResponse
		err error
	}
	answered := make(chan answer, 1)
	go func() {
		r, err := payments.Authorize(context.Background(), &codebankv1.AuthorizeRequest{TransactionId: "order-77", Card: details(victim),
			AmountCents: 2_500, Store: "Code Store", Description: "x"})
		answered <- answer{r, err}
	}()

	// The request as the authorizer would read it: its correlation id and reply key.
	req := waitForRequest(t, d, victim.GetCard().GetCardId(), "order-77")
	forge := func(token string, amount int64) *eventsv1.Reply {
		return &eventsv1.Reply{CorrelationId: req.GetCorrelationId(), Body: &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{
			CardToken: token, Outcome: &eventsv1.Outcome{TransactionId: "order-77", AmountCents: amount,
				Status: eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED, DecidedAtUnixUs: time.Now().UnixMicro()}}}}
	}
	forged := []*eventsv1.Reply{
		forge(other.GetCard().GetCardId(), 2_500), // another card
		forge(victim.GetCard().GetCardId(), 1),    // another amount
		{CorrelationId: req.GetCorrelationId(), Body: &eventsv1.Reply_Error{Error: &eventsv1.ReplyError{Message: "forged", CardToken: "x"}}},
	}
	emitter, err := goka.NewEmitter(d.Kafka.Brokers, goka.Stream(d.Topo.Replies().Name), d.Topo.Replies().Codec, d.Kafka.EmitterOptions(banktest.Logger())...)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range forged {
		if err := emitter.EmitSync(req.GetReplyKey(), r); err != nil {
			t.Fatal(err)
		}
	}
	emitter.Finish()
	in2 := d.Topo.Input(processors.ConsumerIngress, d.Topo.Replies())
	wait.Until(t, 20*time.Second, "the forged replies to be dead-lettered", func() bool {
		return banktest.Value(t, in.Registry, "codebank_dead_letters_total", map[string]string{"group": "ingress", "topic": in2.Topic.Name}) == float64(len(forged))
	})
	select {
	case a := <-answered:
		t.Fatalf("the caller got a forged reply: %v, %v", a.r, a.err)
	default:
	}

	banktest.StartAuthorizer(t, d, "")
	select {
	case a := <-answered:
		if a.err != nil || a.r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || a.r.GetAmountCents() != 2_500 ||
			a.r.GetMaskedNumber() != card.Mask(victim.GetCard().GetNumber()) {
			t.Fatalf("answer = %v, %v; want its own approval", a.r, a.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no answer after the authorizer came back")
	}
	if got := used(t, cards, victim); got != 2_500 {
		t.Errorf("used %d, want 2500", got)
	}
	if got := used(t, cards, other); got != 0 {
		t.Errorf("the other card used %d, want 0", got)
	}
}

// waitForRequest reads the payment requests topic until it holds the request of tx on a card.
func waitForRequest(t *testing.T, d banktest.Deployment, token, tx string) *eventsv1.PaymentRequested {
	t.Helper()
	consumer, err := sarama.NewConsumer(d.Kafka.Brokers, d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	topic := d.Topo.PaymentRequests().Name
	p, err := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(topic).Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(token)},
		int32(d.Topo.PaymentRequests().Partitions))
	if err != nil {
		t.Fatal(err)
	}
	pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	timeout := time.After(20 * time.Second)
	for {
		select {
		case m := <-pc.Messages():
			v, err := codecs.PaymentRequested.Decode(m.Value)
			if err == nil && string(m.Key) == token && v.(*eventsv1.PaymentRequested).GetTransactionId() == tx {
				return v.(*eventsv1.PaymentRequested)
			}
		case <-timeout:
			t.Fatalf("request %s not in %s", tx, topic)
		}
	}
}

// dialWith connects to an ingress with one API key for every call.
func dialWith(t *testing.T, addr, key string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(grpcgateway.CallerKeys{Merchant: key, Admin: key, Pages: key, Insecure: true}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}
