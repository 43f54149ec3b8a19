package e2e_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// poison is a record no consumer of its topic can use.
type poison struct {
	key   string
	value []byte
	what  string
}

// TestPoisonNeverStopsTheBank produces, under steady load, a record that does not decode and one
// that breaks its contract to every input topic of every consumer the topology declares. Every
// call still gets its final answer; each poison record lands in each of its consumers'
// dead-letter topics with headers naming its source and error, the metric counts it, and the
// books balance.
func TestPoisonNeverStopsTheBank(t *testing.T) {
	t.Parallel()
	b := startWholeBank(t, grpcgateway.Config{})
	topo := b.d.Topo
	var issued []*codebankv1.IssueCardResponse
	for _, h := range []string{"Maria Silva", "Joao Souza", "Ana Costa"} {
		issued = append(issued, issue(t, b.cards, h, 10_000_000))
	}
	token := issued[0].GetCard().GetCardId()
	replyKey, err := grpcgateway.ReplyKey(topo.Replies().Name, 0, topo.Replies().Partitions) // the partition the ingress reads
	if err != nil {
		t.Fatal(err)
	}
	encode := func(c goka.Codec, v any) []byte {
		raw, err := c.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	undecodableProto := []byte{0xff, 0xff, 0xff, 0x07}
	poisons := map[string][]poison{
		topo.PaymentRequests().Name: {
			{token, undecodableProto, "undecodable"},
			{token, encode(topo.PaymentRequests().Codec, &eventsv1.PaymentRequested{TransactionId: "poison-1", HolderName: "x",
				ExpiryMonth: 1, ExpiryYear: 2030, Store: "x", Description: "x", RequestedAtUnixUs: 1}), "no amount"},
		},
		topo.CardCommands().Name: {
			{token, undecodableProto, "undecodable"},
			{token, encode(topo.CardCommands().Codec, &eventsv1.CardCommand{CommandId: "poison-2"}), "no command"},
		},
		topo.Results().Name: {
			{token, []byte(`{"transaction_id":"poison-3",`), "not JSON"},
			{token, []byte(`{"transaction_id":"poison-4","card_token":"` + token + `","status":"approved","amount_cents":1}`), "no payment key"},
		},
		topo.Replies().Name: {
			{replyKey, undecodableProto, "undecodable"},
			{replyKey, encode(topo.Replies().Codec, &eventsv1.Reply{CorrelationId: "poison-5"}), "no body"},
		},
		b.d.Store.Events().Name: {
			{"order-poison-1", []byte("{not json"), "not JSON"},
			{"order-poison-2", []byte(`{"kind":"shipped","at":"2026-11-25T10:00:00Z"}`), "unknown kind"},
		},
	}
	consumers := append(topo.Consumers(), b.d.Store.Consumers()...)
	registries := map[string]prometheus.Gatherer{
		processors.ConsumerAuthorizer: b.auth.Registry, processors.ConsumerStatements: b.stmts.Registry,
		processors.ConsumerIngress: b.in.Registry, processors.ConsumerDashboard: b.web.Registry, store.ConsumerOrders: b.web.Registry,
	}
	for _, c := range consumers {
		for _, in := range c.Inputs {
			if in.DeadLetters.Name == "" {
				t.Errorf("consumer %s has no dead-letter topic for %s", c.Name, in.Topic.Name)
			}
			if len(poisons[in.Topic.Name]) == 0 {
				t.Errorf("no poison for %s, an input of %s: the test must cover every input", in.Topic.Name, c.Name)
			}
		}
		if registries[c.Name] == nil && c.Name != processors.ConsumerConnect {
			t.Errorf("consumer %s is not running in this test", c.Name)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	// Steady load: every call must end in a decision.
	var (
		calls, failed atomic.Int64
		firstErr      atomic.Value
		stop          = make(chan struct{})
		wg            sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := issued[(w+i)%len(issued)]
				_, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: fmt.Sprintf("load-%d-%d", w, i),
					Card: details(c), AmountCents: int64(100 + i%50), Store: "Code Store", Description: "Produtos: caneca"})
				calls.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wait.Until(t, 30*time.Second, "the load to run", func() bool { return calls.Load() >= 50 })
	produced := 0
	for topic, ps := range poisons {
		e, err := goka.NewEmitter(b.d.Kafka.Brokers, goka.Stream(topic), codecs.Bytes{}, b.d.Kafka.EmitterOptions(banktest.Logger())...)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if err := e.EmitSync(p.key, p.value); err != nil {
				t.Fatal(err)
			}
			produced++
		}
		e.Finish()
	}
	// A malformed request from a call that waits gets an error reply, not a timeout: only the
	// authorizer's error reply makes ErrRefused (a wait would end with the context's error).
	_, err = b.in.Bank.Pay(ctxT(t), token, &eventsv1.PaymentRequested{TransactionId: "poison-6", HolderName: "Maria Silva",
		ExpiryMonth: 1, ExpiryYear: 2030, Store: "x", Description: "x", RequestedAtUnixUs: time.Now().UnixMicro()})
	if !errors.Is(err, grpcgateway.ErrRefused) {
		t.Errorf("malformed request = %v, want refused by the authorizer", err)
	}
	// The bank goes on deciding past the poison, on every partition.
	after := calls.Load()
	wait.Until(t, time.Minute, "300 more calls after the poison", func() bool { return calls.Load() >= after+300 })
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d of %d calls under poison got no decision; first: %v", n, calls.Load(), firstErr.Load())
	}

	// Every poison record, in every dead-letter topic of its consumers, with its headers; and
	// counted.
	client, err := sarama.NewClient(b.d.Kafka.Brokers, b.d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(time.Minute) // for all of them: the copies are made at once
	for _, c := range consumers {
		for _, in := range c.Inputs {
			want := poisons[in.Topic.Name]
			if c.Name == processors.ConsumerAuthorizer && in.Topic.Name == topo.PaymentRequests().Name {
				want = append(want, poison{token, nil, "the malformed call"})
			}
			got := readAtLeast(t, client, in.DeadLetters.Name, len(want), time.Until(deadline))
			for _, p := range want {
				if !hasDeadLetter(got, c.Name, in.Topic.Name, p) {
					t.Errorf("%s: the %s record of %s is not in %s with its headers", c.Name, p.what, in.Topic.Name, in.DeadLetters.Name)
				}
			}
			if r := registries[c.Name]; r != nil {
				labels := map[string]string{"group": c.Name, "topic": in.Topic.Name}
				if n := banktest.Value(t, r, "codebank_dead_letters_total", labels); n < float64(len(want)) {
					t.Errorf("codebank_dead_letters_total%v = %v, want %d", labels, n, len(want))
				}
			}
		}
	}
	rep := b.balanced(t)
	if rep.Refused != 2 {
		t.Errorf("audit refused %d results, want the 2 poison ones", rep.Refused)
	}
	t.Logf("%d poison records to %d topics read by %d consumers under %d calls, none without a decision; dead letters %v",
		produced, len(poisons), len(consumers), calls.Load(), rep.DeadLetters)
}

// hasDeadLetter reports whether msgs hold poison p copied by consumer from topic, with the
// headers that say so (Kafka Connect's own for its sink).
func hasDeadLetter(msgs []*sarama.ConsumerMessage, consumer, topic string, p poison) bool {
	for _, m := range msgs {
		if string(m.Key) != p.key || (p.value != nil && !bytes.Equal(m.Value, p.value)) {
			continue
		}
		h := map[string]string{}
		for _, rh := range m.Headers {
			h[string(rh.Key)] = string(rh.Value)
		}
		if consumer == processors.ConsumerConnect {
			if h["__connect.errors.topic"] == topic && h["__connect.errors.exception.message"] != "" {
				return true
			}
			continue
		}
		if h[stream.HeaderSourceTopic] == topic && h[stream.HeaderConsumer] == consumer && h[stream.HeaderError] != "" &&
			h[stream.HeaderSourcePartition] != "" && h[stream.HeaderSourceOffset] != "" && !strings.Contains(h[stream.HeaderError], p.key) {
			return true
		}
	}
	return false
}

// readAtLeast reads a topic from the start until it holds n records or more, for at most within.
func readAtLeast(t *testing.T, client sarama.Client, topic string, n int, within time.Duration) []*sarama.ConsumerMessage {
	t.Helper()
	var out []*sarama.ConsumerMessage
	wait.For(t, within, fmt.Sprintf("%d records on %s", n, topic), func() error {
		out = readAll(t, client, topic)
		if len(out) < n {
			return fmt.Errorf("it holds %d", len(out))
		}
		return nil
	})
	return out
}

// readAll reads every record a topic holds now.
func readAll(t *testing.T, client sarama.Client, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("partitions of %s: %v", topic, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var out []*sarama.ConsumerMessage
	for _, p := range parts {
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if newest == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for m := range pc.Messages() {
			out = append(out, m)
			if m.Offset >= newest-1 {
				break
			}
		}
		pc.Close()
	}
	return out
}
