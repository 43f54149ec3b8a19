package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// TestGrowPartitionsUnderLoad runs the bank as processes on a broker of its own, under a
// steady load of careful clients, and moves it from 6 to 12 partitions (codebank partitions
// grow), back (rollback, with payments approved in between) and deletes the newer generation
// (cleanup). Every call gets its one final answer; the books balance between the moves; every
// account arrives in the new generation exactly as it was in the old one, and goes back with
// what was decided meanwhile; every approval the clients were told of is on the card. What a
// card remembers of its reversals and refunds moves with it both ways: what is left of a
// purchase, and the ids of the operations carried out.
func TestGrowPartitionsUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	broker, err := localkafka.Start(ctx, localkafka.Options{DataDir: t.TempDir(), Port: banktest.FreePort(), ControllerPort: banktest.FreePort()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Stop() })
	prefix := kafkatest.Name(t) + "-"
	common := []string{"--brokers", broker.Addr(), "--topic-prefix", prefix, "--partitions", "6", "--reply-partitions", "2"}
	if out, err := exec.Command(binary, append([]string{"setup"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	authOps, stmtHTTP, stmtGRPC, stmtOps, inHTTP, inGRPC, inOps := addr(), addr(), addr(), addr(), addr(), addr(), addr()
	auth := startRole(t, "authorizer", "http://"+authOps+"/readyz",
		append([]string{"authorizer", "--storage-dir", t.TempDir(), "--ops-addr", authOps}, common...)...)
	stmts := startRole(t, "statements", "http://"+stmtOps+"/readyz",
		append([]string{"statements", "--storage-dir", t.TempDir(), "--grpc-addr", stmtGRPC, "--http-addr", stmtHTTP, "--ops-addr", stmtOps, "--reply-partition", "1"}, common...)...)
	in := startRole(t, "ingress", "http://"+inOps+"/readyz",
		append([]string{"ingress", "--grpc-addr", inGRPC, "--http-addr", inHTTP, "--ops-addr", inOps, "--reply-partition", "0", "--request-timeout", "3s"}, common...)...)
	for _, r := range []*role{auth, stmts, in} {
		r.waitReady(t, time.Minute)
	}
	conn, err := grpc.NewClient(inGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cardsClient := codebankv1.NewCardServiceClient(conn)
	var cards []*codebankv1.IssueCardResponse
	for i := range 24 {
		cards = append(cards, issue(t, cardsClient, fmt.Sprintf("Holder %c", 'A'+i), 1_000_000_000))
	}

	// A card of its own for money back, out of the load: a purchase of 100.00, 30.00 refunded
	// and 20.00 reversed before the move.
	mb := issue(t, cardsClient, "Money Back", 1_000_000)
	paymentsClient := codebankv1.NewPaymentServiceClient(conn)
	bought, err := paymentsClient.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "mb-order", Card: details(mb), AmountCents: 10_000,
		Store: "Code Store", Description: "Produtos: mochila"})
	if err != nil || bought.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("money-back purchase: %v, %v", bought, err)
	}
	refund := func(id string, amount int64) (*codebankv1.RefundResponse, error) {
		return paymentsClient.Refund(ctxT(t), &codebankv1.RefundRequest{PaymentId: bought.GetPaymentId(), RefundId: id, AmountCents: amount})
	}
	moneyBack := func(when string, again string, againAmount, over, fits, left int64) {
		t.Helper()
		if r, err := refund(again, againAmount); err != nil || !r.GetDuplicate() {
			t.Errorf("%s: refund %s again = %v, %v; want its original outcome", when, again, r, err)
		}
		if _, err := refund("mb-over-"+when, over); status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: a refund of %d, a cent more than is left = %v, want FAILED_PRECONDITION", when, over, err)
		}
		if r, err := refund("mb-"+when, fits); err != nil || r.GetLeftCents() != left {
			t.Errorf("%s: a refund of %d = %v, %v; want %d left", when, fits, r, err, left)
		}
	}
	if _, err := refund("mb-r1", 3_000); err != nil {
		t.Fatal(err)
	}
	if _, err := paymentsClient.Reverse(ctxT(t), &codebankv1.ReverseRequest{PaymentId: bought.GetPaymentId(), ReversalId: "mb-v1", AmountCents: 2_000}); err != nil {
		t.Fatal(err)
	}

	kc := kafkaconf.Config{Brokers: []string{broker.Addr()}, ClientID: "test"}
	base := processors.Topology{Prefix: prefix, Partitions: 6, ReplyPartitions: 2}
	auditCfg := audit.Config{Kafka: kc, Topo: base, Consumers: store.Topology{Prefix: prefix}.Consumers()}
	p := newPayer("")
	round := 0
	// load runs 4 clients, each round with transaction ids of its own, until the function it
	// returns is called.
	load := func(phase string) (stop func()) {
		p.setPhase(phase)
		round++
		return p.start(ctx, t, 4, round*10, []*grpc.ClientConn{conn}, cards)
	}
	partitions := func(args ...string) string {
		t.Helper()
		full := append(append([]string{"partitions"}, args...), "--brokers", broker.Addr(), "--topic-prefix", prefix, "--partitions", "6")
		out, err := exec.Command(binary, full...).CombinedOutput()
		if err != nil {
			t.Fatalf("codebank partitions %v: %v\n%s", args, err, out)
		}
		t.Logf("codebank partitions %v:\n%s", args, out)
		return string(out)
	}
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	gen1, gen2 := base.At(1, 6).AuthorizerTable().Name, base.At(2, 12).AuthorizerTable().Name

	stop := load("steady")
	p.decide(t, 300)
	stop()
	balanced(t, auditCfg)

	// Grow under load.
	stop = load("grow 6 -> 12")
	p.decide(t, 200)
	if out := partitions("grow", "--to", "12", "--dry-run"); !regexp.MustCompile(`create .*payment-requests-g2 +12 partitions`).MatchString(out) {
		t.Fatalf("the dry run does not plan the new generation")
	}
	if got := partitionCount(t, client, base.At(2, 12).PaymentRequests().Name); got != 0 {
		t.Fatalf("the dry run created topics (%d partitions)", got)
	}
	// With Strimzi: the command writes the KafkaTopics and waits; the test plays the topic
	// operator, creating each topic as its manifest says.
	manifests := t.TempDir()
	operator := make(chan error, 1)
	go func() { operator <- playTopicOperator(ctx, kc, filepath.Join(manifests, "generation-2.yaml")) }()
	grow := partitions("grow", "--to", "12", "--strimzi-dir", manifests, "--strimzi-namespace", "bank")
	if err := <-operator; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(grow, "kubectl -n bank apply -f "+filepath.Join(manifests, "generation-2.yaml")) ||
		!strings.Contains(grow, `patch scaledobject authorizer --type json -p '[{"op":"replace","path":"/spec/maxReplicaCount","value":12},`) ||
		!strings.Contains(grow, `"value":"`+prefix+`authorizer-g2"`) {
		t.Errorf("grow with Strimzi does not say what to apply")
	}
	p.decide(t, 300)
	stop()
	rep := balanced(t, auditCfg)
	t.Logf("after grow: %d payments, %d approved; longest wait for an answer while growing %v (%s)", rep.Payments, rep.Approved,
		p.longest["grow 6 -> 12"].Round(time.Millisecond), pauseOf(grow))
	for _, name := range []string{base.At(2, 12).PaymentRequests().Name, base.At(2, 12).CardCommands().Name, gen2} {
		if got := partitionCount(t, client, name); got != 12 {
			t.Errorf("%s has %d partitions, want 12", name, got)
		}
	}
	// Every account arrived as it was: the records of each card in the new table start with
	// all of its records in the old one, in order, the last being its account at the move.
	old, moved := byKey(readAll(t, client, gen1)), byKey(readAll(t, client, gen2))
	if len(old) != len(cards)+1 {
		t.Errorf("%d accounts in the old table, want %d", len(old), len(cards)+1)
	}
	for token, vs := range old {
		if len(moved[token]) < len(vs) || !slices.EqualFunc(vs, moved[token][:len(vs)], bytes.Equal) {
			t.Errorf("card token %s: its %d records in %s do not start with its %d in %s", token, len(moved[token]), gen2, len(vs), gen1)
		}
	}

	// The money back moved: 50.00 was left, and the refund before the move is remembered.
	moneyBack("grown", "mb-r1", 3_000, 5_001, 4_000, 1_000)

	// Rollback under load, with payments approved on the new generation meanwhile.
	stop = load("rollback 12 -> 6")
	p.decide(t, 200)
	back := partitions("rollback")
	p.decide(t, 300)
	stop()
	rep = balanced(t, auditCfg)
	t.Logf("after rollback: %d payments, %d approved; longest wait while rolling back %v (%s)", rep.Payments, rep.Approved,
		p.longest["rollback 12 -> 6"].Round(time.Millisecond), pauseOf(back))
	// Every account went back with what the new generation decided: its last record there is
	// one of its records in the old table, after the grow.
	newest, returned := latest(readAll(t, client, gen2)), byKey(readAll(t, client, gen1))
	for token, v := range newest {
		found := false
		for _, r := range returned[token] {
			found = found || bytes.Equal(r, v)
		}
		if !found {
			t.Errorf("card token %s: its account in %s did not go back to %s", token, gen2, gen1)
		}
	}

	// And back, with what the new generation gave back: 10.00 left.
	moneyBack("rolled-back", "mb-grown", 4_000, 1_001, 1_000, 0)
	if u := used(t, cardsClient, mb); u != 0 {
		t.Errorf("the money-back card's used credit is %d after its purchase was given back in full, want 0", u)
	}

	// Cleanup: the newer generation goes, the bank goes on.
	partitions("cleanup")
	if got := partitionCount(t, client, gen2); got != 0 {
		t.Errorf("%s still exists after cleanup", gen2)
	}
	stop = load("after cleanup")
	p.decide(t, 200)
	stop()
	rep = balanced(t, auditCfg)
	t.Logf("after cleanup: %d payments, %d approved, %d replays; %d calls, %d retries", rep.Payments, rep.Approved, rep.Replays, p.calls, p.retries)
	for _, c := range cards {
		n := c.GetCard().GetNumber()
		if got := used(t, cardsClient, c); got != p.cents[n] {
			t.Errorf("card %s: used %d, the clients were told of approvals for %d", card.Mask(n), got, p.cents[n])
		}
	}
}

// playTopicOperator waits for the KafkaTopic manifest at path and creates its topics as it
// says, as Strimzi's topic operator would once it is applied.
func playTopicOperator(ctx context.Context, kc kafkaconf.Config, path string) error {
	var b []byte
	for {
		var err error
		if b, err = os.ReadFile(path); err == nil {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no manifest at %s", path)
		case <-time.After(50 * time.Millisecond):
		}
	}
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		return err
	}
	defer admin.Close()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	created := 0
	for {
		var topic struct {
			APIVersion string `yaml:"apiVersion"`
			Kind       string `yaml:"kind"`
			Metadata   struct {
				Name   string            `yaml:"name"`
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec struct {
				TopicName  string            `yaml:"topicName"`
				Partitions int32             `yaml:"partitions"`
				Replicas   int16             `yaml:"replicas"`
				Config     map[string]string `yaml:"config"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&topic); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if topic.Kind != "KafkaTopic" || topic.APIVersion != "kafka.strimzi.io/v1" || topic.Metadata.Labels["strimzi.io/cluster"] == "" ||
			topic.Metadata.Name != strings.ToLower(topic.Metadata.Name) {
			return fmt.Errorf("%s: not a KafkaTopic Strimzi would take: %+v", path, topic)
		}
		config := map[string]*string{}
		for k, v := range topic.Spec.Config {
			config[k] = &v
		}
		if err := admin.CreateTopic(topic.Spec.TopicName, &sarama.TopicDetail{NumPartitions: topic.Spec.Partitions, ReplicationFactor: topic.Spec.Replicas, ConfigEntries: config}, false); err != nil {
			return fmt.Errorf("create %s: %w", topic.Spec.TopicName, err)
		}
		created++
	}
	if created != 5 {
		return fmt.Errorf("%s holds %d KafkaTopics, want the generation's 5", path, created)
	}
	return nil
}

// pauseOf returns the pause a partitions command reported.
func pauseOf(out string) string {
	return regexp.MustCompile(`authorizations paused for \S+`).FindString(out)
}

// partitionCount returns a topic's partition count, 0 when it does not exist. (Not from
// client metadata: asking a broker for an unknown topic's metadata may create it.)
func partitionCount(t *testing.T, client sarama.Client, topic string) int {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	topics, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	return int(topics[topic].NumPartitions)
}

// latest returns each key's last value among msgs.
func latest(msgs []*sarama.ConsumerMessage) map[string][]byte {
	out := map[string][]byte{}
	for _, m := range msgs {
		out[string(m.Key)] = m.Value
	}
	return out
}

// byKey returns each key's values among msgs, in order.
func byKey(msgs []*sarama.ConsumerMessage) map[string][][]byte {
	out := map[string][][]byte{}
	for _, m := range msgs {
		out[string(m.Key)] = append(out[string(m.Key)], m.Value)
	}
	return out
}
