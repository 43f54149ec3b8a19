package e2e_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// codebankAudit runs `codebank audit` on a deployment and returns its output and exit status.
func codebankAudit(t *testing.T, d banktest.Deployment, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"audit", "--brokers", d.Kafka.Brokers[0], "--topic-prefix", d.Topo.Prefix,
		"--log-level", "warn"}, args...)...)
	cmd.Env = append(os.Environ(), banktest.Env(t)...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("codebank audit: %v\n%s", err, out)
	return "", 0
}

// TestAuditFindsCorruptedBooks corrupts the books of a running bank three ways, each in a topic
// as a broken or hostile writer would: a payment applied twice (a second, different result under
// one payment key), an account over its limit, and a statement missing a line. `codebank audit`
// passes before and exits non-zero naming each after.
func TestAuditFindsCorruptedBooks(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, servers.Broker, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	var issued []*codebankv1.IssueCardResponse
	for _, h := range []string{"Maria Silva", "Joao Souza", "Ana Costa"} {
		c := issue(t, cards, h, 100_000)
		issued = append(issued, c)
		for _, amount := range []int64{1_000, 2_000} {
			if _, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: amount, Store: "Code Store", Description: "x"}); err != nil {
				t.Fatal(err)
			}
		}
	}
	var out string
	var code int
	wait.For(t, 30*time.Second, "codebank audit to find the books sound", func() error {
		if out, code = codebankAudit(t, d); code != 0 {
			return fmt.Errorf("exit %d:\n%s", code, out)
		}
		return nil
	})
	if !strings.Contains(out, "OK: the books balance") || !strings.Contains(out, "6 payments (6 approved, 90.00)") {
		t.Fatalf("audit of sound books = exit %d:\n%s", code, out)
	}

	cfg := d.Kafka.Sarama()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher()) // as goka, so each key lands where its owner reads it
	producer, err := sarama.NewSyncProducer(d.Kafka.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	send := func(topic, key string, value []byte) {
		t.Helper()
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(value)}); err != nil {
			t.Fatal(err)
		}
	}
	encode := func(v any, c interface{ Encode(any) ([]byte, error) }) []byte {
		b, err := c.Encode(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	// 1. A payment of the first card applied twice: its result again, decided a second later.
	first := issued[0].GetCard().GetNumber()
	client, err := sarama.NewClient(d.Kafka.Brokers, d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var original *codecs.Result
	for _, m := range readAtLeast(t, client, d.Topo.Results().Name, 6, 20*time.Second) {
		if string(m.Key) == issued[0].GetCard().GetCardId() {
			v, _ := codecs.ResultCodec{}.Decode(m.Value)
			original = v.(*codecs.Result)
		}
	}
	twice := *original
	at, _ := time.Parse(time.RFC3339Nano, twice.AuthorizedAt)
	twice.AuthorizedAt = at.Add(time.Second).Format(codecs.TimeFormat)
	send(d.Topo.Results().Name, twice.CardToken, encode(&twice, codecs.ResultCodec{}))

	// 2. The second card's account over its limit.
	second := issued[1].GetCard().GetNumber()
	send(d.Topo.AuthorizerTable().Name, issued[1].GetCard().GetCardId(), encode(&eventsv1.Account{HolderName: "Joao Souza", LimitCents: 100_000, UsedCents: 150_000,
		Currency: "BRL", ExpiryMonth: issued[1].GetCard().GetExpiryMonth(), ExpiryYear: issued[1].GetCard().GetExpiryYear(),
		Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE, MaskedNumber: card.Mask(second)}, codecs.Account))

	// 3. The third card's statement without its first line, and a line of a payment that
	// never was.
	third := issued[2].GetCard().GetNumber()
	token := issued[2].GetCard().GetCardId()
	start, limit := statements.CardRange(token)
	var keys []string
	var line *eventsv1.StatementLine
	for _, m := range readAtLeast(t, client, d.Topo.StatementLines().Name, 1, 20*time.Second) {
		if k := string(m.Key); k >= start && k < limit {
			keys = append(keys, k)
			v, _ := codecs.StatementLine.Decode(m.Value)
			line = v.(*eventsv1.StatementLine)
		}
	}
	if len(keys) != 2 {
		t.Fatalf("lines of the third card = %v, want 2", keys)
	}
	slices.Sort(keys)
	_, firstAt, _ := statements.ParseLineKey(keys[0])
	month := statements.MonthOf(firstAt)
	send(d.Topo.StatementLines().Name, keys[0], nil)
	forged := proto.Clone(line).(*eventsv1.StatementLine)
	forged.TransactionId = "never-paid"
	send(d.Topo.StatementLines().Name, statements.LineKey(token, firstAt, token+":code-store:never-paid"), encode(forged, codecs.StatementLine))

	out, code = codebankAudit(t, d)
	if code != 3 {
		t.Fatalf("audit of corrupted books = exit %d, want 3:\n%s", code, out)
	}
	for _, want := range []string{
		"payment " + original.PaymentKey + " (card " + card.Mask(first) + "): two different results",
		"card " + card.Mask(second) + ": used 1500.00 is over its limit 1000.00",
		"card " + card.Mask(third) + ": statement of " + month + ": the line of payment",
		"card " + card.Mask(third) + ": statement of " + month + `: line "never-paid"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit output lacks %q:\n%s", want, out)
		}
	}
	for _, c := range issued {
		if n := c.GetCard().GetNumber(); strings.Contains(out, n) {
			t.Errorf("audit output holds a full card number:\n%s", out)
		}
	}
	t.Logf("codebank audit on corrupted books, exit %d:\n%s", code, out)
}
