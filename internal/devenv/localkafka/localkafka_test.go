package localkafka

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/devenv/jvm"
)

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	return cfg
}

func start(t *testing.T, opts Options) *Broker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	b, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("broker on %s ready after %s", b.Addr(), time.Since(begin).Round(time.Millisecond))
	return b
}

func stop(t *testing.T, b *Broker) {
	t.Helper()
	begin := time.Now()
	if err := b.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("broker stopped after %s", time.Since(begin).Round(time.Millisecond))
}

func produce(t *testing.T, addr, topic, key, value string) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{
		Topic: topic,
		Key:   sarama.StringEncoder(key),
		Value: sarama.StringEncoder(value),
	}); err != nil {
		t.Fatalf("SendMessage: %v", err)
	}
}

// consumeFirst returns the first message of partition 0 of topic.
func consumeFirst(t *testing.T, addr, topic string) *sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatalf("ConsumePartition: %v", err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		return m
	case err := <-pc.Errors():
		t.Fatalf("consuming %s: %v", topic, err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no message on %s within 30s", topic)
	}
	return nil
}

func createTopic(t *testing.T, addr, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{addr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
}

func TestFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	libs, err := Fetch(ctx, "", "")
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	t.Logf("Fetch took %s", time.Since(begin).Round(time.Millisecond))
	for _, pattern := range []string{"kafka_2.13-" + DefaultVersion + ".jar", "kafka-clients-*.jar", "slf4j-simple-*.jar"} {
		if m, _ := filepath.Glob(filepath.Join(libs, pattern)); len(m) == 0 {
			t.Errorf("no %s in %s", pattern, libs)
		}
	}

	begin = time.Now()
	again, err := Fetch(ctx, DefaultVersion, "")
	if err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if again != libs {
		t.Errorf("second Fetch returned %s, want %s", again, libs)
	}
	if d := time.Since(begin); d > 100*time.Millisecond {
		t.Errorf("cached Fetch took %s", d)
	}
}

func TestRestartKeepsState(t *testing.T) {
	dataDir := t.TempDir()
	const topic, key, value = "restart-test", "card-1", "hello kafka"

	b := start(t, Options{DataDir: dataDir, ExtraProperties: map[string]string{"num.partitions": "3"}})
	if b.DataDir() != dataDir {
		t.Errorf("DataDir() = %s, want %s", b.DataDir(), dataDir)
	}
	if !strings.HasPrefix(b.Addr(), "127.0.0.1:") {
		t.Errorf("Addr() = %s", b.Addr())
	}
	createTopic(t, b.Addr(), topic, 1)
	produce(t, b.Addr(), topic, key, value)
	if m := consumeFirst(t, b.Addr(), topic); string(m.Key) != key || string(m.Value) != value {
		t.Errorf("consumed %q=%q, want %q=%q", m.Key, m.Value, key, value)
	}

	// Topics are auto-created with ExtraProperties' num.partitions.
	produce(t, b.Addr(), "auto-created", "k", "v")
	client, err := sarama.NewClient([]string{b.Addr()}, saramaConfig())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	parts, err := client.Partitions("auto-created")
	client.Close()
	if err != nil || len(parts) != 3 {
		t.Errorf("auto-created topic has partitions %v (err %v), want 3", parts, err)
	}

	stop(t, b)
	if err := b.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dataDir, logSubdir, "meta.properties")); err != nil {
		t.Fatalf("Stop removed a caller's DataDir: %v", err)
	}

	b = start(t, Options{DataDir: dataDir})
	defer b.Stop()
	if m := consumeFirst(t, b.Addr(), topic); string(m.Key) != key || string(m.Value) != value {
		t.Errorf("after restart consumed %q=%q, want %q=%q", m.Key, m.Value, key, value)
	}
	stop(t, b)
}

func TestTempDataDir(t *testing.T) {
	b := start(t, Options{})
	dir := b.DataDir()
	for _, f := range []string{"server.properties", "broker.log", filepath.Join(logSubdir, "meta.properties")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	stop(t, b)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp DataDir %s still there after Stop (err %v)", dir, err)
	}
}

func TestStartFailsWithBrokerLog(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	begin := time.Now()
	b, err := Start(ctx, Options{Port: port})
	if d := time.Since(begin); d > 20*time.Second {
		t.Errorf("Start took %s to fail", d)
	}
	if err == nil {
		b.Stop()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	var busy *jvm.PortInUseError
	if !errors.As(err, &busy) || busy.Port != port || !strings.Contains(err.Error(), "tail of") {
		t.Errorf("error does not show the broker's output: %v", err)
	}
	t.Logf("error as expected: %v", err)
}

func TestStartFailsOnBadConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, err := Start(ctx, Options{ExtraProperties: map[string]string{"node.id": "not-a-number"}})
	if err == nil || !strings.Contains(err.Error(), "not-a-number") {
		t.Errorf("Start with a broken server.properties: err = %v", err)
	}
}

// TestMissingTools checks that Fetch and Start report missing tools with
// Kafka's install hints (internal/devenv/jvm tests the checks themselves).
func TestMissingTools(t *testing.T) {
	ctx := context.Background()
	cache := t.TempDir()
	javaScript := func(version string) string {
		return "#!/bin/sh\necho 'openjdk version \"" + version + "\" 2024-01-16' >&2\n"
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no java", map[string]string{}, "java not found on PATH: install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)"},
		{"old java", map[string]string{"java": javaScript("11.0.22")}, "is Java 11 but this needs Java 17+: install a Java 17+ runtime"},
		{"no mvn", map[string]string{"java": javaScript("21.0.2")}, "mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, script := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir)
			_, err := Fetch(ctx, "", cache)
			if err == nil || !strings.HasPrefix(err.Error(), "localkafka: ") || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Fetch: err = %v, want localkafka: ...%s...", err, tc.want)
			}
		})
	}
	t.Setenv("PATH", t.TempDir())
	if _, err := Start(ctx, Options{CacheDir: cache}); err == nil || !strings.HasPrefix(err.Error(), "localkafka: java not found") {
		t.Errorf("Start without java: err = %v", err)
	}
	if _, err := Fetch(ctx, "4.1", cache); err == nil || !strings.Contains(err.Error(), "invalid Kafka version") {
		t.Errorf("Fetch of version 4.1: err = %v", err)
	}
}

func TestServerProperties(t *testing.T) {
	p := serverProperties("/d/data", 9092, 9093, map[string]string{"num.partitions": "4", "a.b": "x"})
	for _, want := range []string{
		"process.roles=broker,controller\n",
		"controller.quorum.voters=1@127.0.0.1:9093\n",
		"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n",
		"advertised.listeners=PLAINTEXT://127.0.0.1:9092\n",
		"log.dirs=/d/data\n",
		"group.initial.rebalance.delay.ms=0\n",
		"log.cleaner.enable=true\n",
		"a.b=x\nnum.partitions=4\n",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("server.properties lacks %q:\n%s", want, p)
		}
	}
	if strings.Contains(p, "auto.create.topics.enable") {
		t.Error("server.properties sets auto.create.topics.enable")
	}
	if id := newClusterID(); len(id) != 22 {
		t.Errorf("cluster id %q has %d characters, want 22", id, len(id))
	}
}
