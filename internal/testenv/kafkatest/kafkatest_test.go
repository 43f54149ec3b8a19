package kafkatest

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/testenv/tier"
)

var brokerAddr string

func TestMain(m *testing.M) { os.Exit(Run(m, &brokerAddr)) }

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

func TestName(t *testing.T) {
	a, b := Name(t), Name(t)
	if a == b {
		t.Errorf("Name returned %q twice", a)
	}
	if !regexp.MustCompile(`^t-TestName-[0-9a-f]{6}$`).MatchString(a) {
		t.Errorf("Name = %q", a)
	}
	t.Run("sub test/with spaces & ümlauts", func(t *testing.T) {
		n := Name(t)
		if !topicNameRE.MatchString(n) || !strings.HasPrefix(n, "t-TestName-sub_test-with_spaces_-_") {
			t.Errorf("Name = %q", n)
		}
	})
	t.Run(strings.Repeat("x", 300), func(t *testing.T) {
		if n := Name(t); len(n) > maxNameLen+10 || !topicNameRE.MatchString(n) {
			t.Errorf("Name = %q (%d characters)", n, len(n))
		}
	})
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"TestA/b_c":     "TestA-b_c",
		"TestA/a.b//c":  "TestA-a-b-c",
		"//":            "test",
		"TestX/#01":     "TestX-01",
		"TestY/a--b":    "TestY-a--b",
		"TestZ/trail//": "TestZ-trail",
	} {
		if got := sanitize(in); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBroker checks that Run provided a broker that takes and serves
// messages on topics named by Name.
func TestBroker(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	if !strings.HasPrefix(brokerAddr, "127.0.0.1:") {
		t.Fatalf("brokerAddr = %q", brokerAddr)
	}
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	topic := Name(t)

	p, err := sarama.NewSyncProducer([]string{brokerAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	partition, offset, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder("hi")})
	if err != nil {
		t.Fatalf("producing to auto-created topic %s: %v", topic, err)
	}

	c, err := sarama.NewConsumer([]string{brokerAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, partition, offset)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if string(m.Value) != "hi" {
			t.Errorf("consumed %q, want %q", m.Value, "hi")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no message within 30s")
	}
}
