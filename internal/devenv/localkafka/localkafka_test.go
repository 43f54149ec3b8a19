package localkafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/codebank/codebank/internal/devenv/jvm"
	"github.com/codebank/codebank/internal/devenv/osproc"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/certs"
	"github.com/codebank/codebank/internal/testenv/tier"
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
	return consumeFirstWith(t, addr, saramaConfig(), topic)
}

// consumeFirstWith returns the first message of partition 0 of topic,
// reading with cfg.
func consumeFirstWith(t *testing.T, addr string, cfg *sarama.Config, topic string) *sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{addr}, cfg)
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
	tier.Servers(t, "Maven Central")
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

	// A second Fetch only looks: it needs neither Maven (not on PATH any more) nor the cache's
	// lock (held here: a call that took it would wait until its context ends).
	t.Setenv("PATH", t.TempDir())
	unlock, err := osproc.LockFile(ctx, filepath.Join(filepath.Dir(filepath.Dir(libs)), "kafka-"+DefaultVersion+".lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	lookCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	again, err := Fetch(lookCtx, DefaultVersion, "")
	cancel()
	unlock()
	if err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if again != libs {
		t.Errorf("second Fetch returned %s, want %s", again, libs)
	}
}

// saslSSLListener returns a SASL_SSL listener for users with a certificate
// for 127.0.0.1 of a new CA, and the file of that CA's certificate.
func saslSSLListener(t *testing.T, users map[string]string) (*SASLSSLListener, string) {
	t.Helper()
	ca := certs.NewCA(t)
	pair := ca.Server(t, "127.0.0.1", "localhost")
	return &SASLSSLListener{CertPEM: pair.CertPEM, KeyPEM: pair.KeyPEM, Users: users}, ca.WriteFile(t, t.TempDir())
}

// secureConfig returns the configuration of a client of b's SASL_SSL
// listener that trusts the CA in caFile.
func secureConfig(t *testing.T, b *Broker, caFile, user, password string) kafkaconf.Config {
	t.Helper()
	c := kafkaconf.Config{
		Brokers: []string{b.SASLSSLAddr()}, ClientID: "localkafka-test",
		TLS:           &kafkaconf.TLS{CAFile: caFile},
		SASLMechanism: kafkaconf.SASLSCRAMSHA512, SASLUser: user, SASLPassword: password,
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	return c
}

// connect returns the error of a metadata request with cfg to addr, made
// without retries.
func connect(addr string, cfg *sarama.Config) error {
	cfg.Metadata.Retry.Max = 0
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 5 * time.Second
	cfg.Net.WriteTimeout = 5 * time.Second
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	return client.RefreshMetadata()
}

// login returns the error of a metadata request to b's SASL_SSL listener
// as user with password.
func login(t *testing.T, b *Broker, caFile, user, password string) error {
	t.Helper()
	return connect(b.SASLSSLAddr(), secureConfig(t, b, caFile, user, password).Sarama())
}

func TestRestartKeepsState(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	dataDir := t.TempDir()
	const topic, key, value = "restart-test", "card-1", "hello kafka"
	listener, caFile := saslSSLListener(t, map[string]string{"alice": "first", "bob": "bob-secret"})

	b := start(t, Options{DataDir: dataDir, ExtraProperties: map[string]string{"num.partitions": "3"}, SASLSSL: listener})
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

	// On the reused storage, Start sets the users it is given: alice gets a
	// new password, carol is added, bob stays.
	second := *listener
	second.Users = map[string]string{"alice": "second", "carol": "carol-secret"}
	b = start(t, Options{DataDir: dataDir, SASLSSL: &second})
	defer b.Stop()
	if m := consumeFirst(t, b.Addr(), topic); string(m.Key) != key || string(m.Value) != value {
		t.Errorf("after restart consumed %q=%q, want %q=%q", m.Key, m.Value, key, value)
	}
	for user, password := range second.Users {
		if err := login(t, b, caFile, user, password); err != nil {
			t.Errorf("%s after restart: %v", user, err)
		}
	}
	if err := login(t, b, caFile, "bob", "bob-secret"); err != nil {
		t.Errorf("bob, a user of the first start only, after restart: %v", err)
	}
	if err := login(t, b, caFile, "alice", "first"); !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
		t.Errorf("alice with her old password: err = %v, want %v", err, sarama.ErrSASLAuthenticationFailed)
	}
	stop(t, b)
}

// TestTempDataDir also checks the SASL_SSL listener, on the same broker.
func TestTempDataDir(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	listener, caFile := saslSSLListener(t, map[string]string{"codebank": "pa55-of-the-bank"})
	b := start(t, Options{SASLSSL: listener})
	dir := b.DataDir()
	for _, f := range []string{"server.properties", "broker.log", filepath.Join(logSubdir, "meta.properties")} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "server.properties")); err == nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("server.properties holds the listener's key but has mode %v, want 0600", fi.Mode().Perm())
	}
	t.Run("SASL_SSL", func(t *testing.T) { testSASLSSL(t, b, caFile) })
	stop(t, b)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp DataDir %s still there after Stop (err %v)", dir, err)
	}
}

// testSASLSSL checks b's SASL_SSL listener, whose certificate the CA in
// caFile signs and which knows user codebank: a client of kafkaconf creates a
// topic, writes to it through a goka emitter and reads the record back; a
// wrong password, an unknown user, a client without TLS and one without SASL
// are turned away. (The PLAINTEXT listener, which stays, answered Start's
// probe.)
func testSASLSSL(t *testing.T, b *Broker, caFile string) {
	const topic, key, value = "sasl-ssl-test", "card-2", "over TLS"
	addr := b.SASLSSLAddr()
	if host, port, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" || port == "0" || addr == b.Addr() {
		t.Fatalf("SASLSSLAddr() = %q (Addr() %q)", addr, b.Addr())
	}
	kc := secureConfig(t, b, caFile, "codebank", "pa55-of-the-bank")

	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
	admin.Close()
	if err != nil {
		t.Fatalf("CreateTopic: %v", err)
	}
	em, err := goka.NewEmitter(kc.Brokers, goka.Stream(topic), new(codec.String), kc.EmitterOptions(nil)...)
	if err != nil {
		t.Fatalf("NewEmitter: %v", err)
	}
	if err := em.EmitSync(key, value); err != nil {
		t.Fatalf("EmitSync: %v", err)
	}
	if err := em.Finish(); err != nil {
		t.Fatalf("emitter Finish: %v", err)
	}
	if m := consumeFirstWith(t, addr, kc.Sarama(), topic); string(m.Key) != key || string(m.Value) != value {
		t.Errorf("consumed %q=%q, want %q=%q", m.Key, m.Value, key, value)
	}

	for _, tc := range []struct{ user, password string }{{"codebank", "wrong"}, {"mallory", "pa55-of-the-bank"}} {
		err := login(t, b, caFile, tc.user, tc.password)
		if !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
			t.Errorf("user %s, password %s: err = %v, want %v", tc.user, tc.password, err, sarama.ErrSASLAuthenticationFailed)
		}
	}
	if err := connect(addr, saramaConfig()); err == nil {
		t.Error("a client without TLS got metadata from the SASL_SSL listener")
	}
	noSASL := kc
	noSASL.SASLMechanism, noSASL.SASLUser, noSASL.SASLPassword = "", "", ""
	if err := connect(addr, noSASL.Sarama()); err == nil {
		t.Error("a client without SASL got metadata from the SASL_SSL listener")
	}
}

// TestStartFailsWithBrokerLog starts brokers on a busy PLAINTEXT port and on
// a busy SASL_SSL port, which Kafka binds after the PLAINTEXT one answers.
// Both fail with a PortInUseError for the port, which makes Start retry on a
// port it picked.
func TestStartFailsWithBrokerLog(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	saslSSL, _ := saslSSLListener(t, nil)
	saslSSL.Port = port

	for _, opts := range []Options{{Port: port}, {SASLSSL: saslSSL}} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		b, err := Start(ctx, opts)
		cancel()
		if err == nil {
			b.Stop()
			t.Fatalf("Start on busy port %d succeeded (SASL_SSL listener: %v)", port, opts.SASLSSL != nil)
		}
		// It failed because the broker exited, not after waiting out its readiness timeout.
		if !strings.Contains(err.Error(), "java exited") {
			t.Errorf("Start did not fail on the broker's exit: %v", err)
		}
		var busy *jvm.PortInUseError
		if !errors.As(err, &busy) || busy.Port != port || !strings.Contains(err.Error(), "tail of") {
			t.Errorf("error does not show the broker's output: %v", err)
		}
		t.Logf("error as expected: %v", err)
	}
}

func TestStartFailsOnBadConfig(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
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
	p := serverProperties("/d/data", listenerPorts{plain: 9092, controller: 9093}, nil, map[string]string{"num.partitions": "4", "a.b": "x"})
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

func TestServerPropertiesSASLSSL(t *testing.T) {
	l := &SASLSSLListener{
		CertPEM: []byte("-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n"),
		KeyPEM:  []byte("-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n"),
	}
	p := serverProperties("/d/data", listenerPorts{plain: 9092, controller: 9093, saslSSL: 9094}, l, nil)
	for _, want := range []string{
		"listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093,SASL_SSL://127.0.0.1:9094\n",
		"advertised.listeners=PLAINTEXT://127.0.0.1:9092,SASL_SSL://127.0.0.1:9094\n",
		"inter.broker.listener.name=PLAINTEXT\n",
		"listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL\n",
		"listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n",
		"listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;\n",
		"listener.name.sasl_ssl.ssl.keystore.type=PEM\n",
		`listener.name.sasl_ssl.ssl.keystore.certificate.chain=-----BEGIN CERTIFICATE-----\nQ0VSVA==\n-----END CERTIFICATE-----\n` + "\n",
		`listener.name.sasl_ssl.ssl.keystore.key=-----BEGIN PRIVATE KEY-----\nS0VZ\n-----END PRIVATE KEY-----\n` + "\n",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("server.properties lacks %q:\n%s", want, p)
		}
	}
}

func TestSASLSSLListenerChecked(t *testing.T) {
	ca := certs.NewCA(t)
	pair := ca.Server(t, "127.0.0.1")
	crt, key := pair.CertPEM, pair.KeyPEM
	block, _ := pem.Decode(key)
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sec1, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	ecKey := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tc := range []struct {
		name string
		l    SASLSSLListener
		want string
	}{
		{"no key", SASLSSLListener{CertPEM: crt}, "needs CertPEM and KeyPEM"},
		{"key of another certificate", SASLSSLListener{CertPEM: crt, KeyPEM: ca.Server(t, "127.0.0.1").KeyPEM}, "CertPEM and KeyPEM: tls: private key does not match public key"},
		{"SEC 1 key", SASLSSLListener{CertPEM: crt, KeyPEM: ecKey}, `not an unencrypted PKCS#8 key ("PRIVATE KEY")`},
		{"empty password", SASLSSLListener{CertPEM: crt, KeyPEM: key, Users: map[string]string{"a": ""}}, "empty name or password"},
		{"comma in name", SASLSSLListener{CertPEM: crt, KeyPEM: key, Users: map[string]string{"a,b": "p"}}, "a name cannot contain a comma"},
		{"comma in password", SASLSSLListener{CertPEM: crt, KeyPEM: key, Users: map[string]string{"a": "p,q"}}, "a password cannot contain a comma"},
		{"quoted password", SASLSSLListener{CertPEM: crt, KeyPEM: key, Users: map[string]string{"a": `"p"`}}, "be in double quotes"},
	} {
		// Start checks the listener before it looks for java or the jars
		// (which the cancelled context would stop).
		b, err := Start(cancelled, Options{CacheDir: t.TempDir(), SASLSSL: &tc.l})
		if err == nil {
			b.Stop()
			t.Fatalf("%s: Start succeeded", tc.name)
		}
		if !strings.HasPrefix(err.Error(), "localkafka: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want localkafka: ...%s...", tc.name, err, tc.want)
		}
		if strings.Contains(err.Error(), "p,q") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	ok := SASLSSLListener{CertPEM: crt, KeyPEM: key, Users: map[string]string{"b": "x=y]", "a": "pw"}}
	if err := ok.check(); err != nil {
		t.Errorf("check: %v", err)
	}
	want := []string{"--add-scram", "SCRAM-SHA-512=[name=a,password=pw]", "--add-scram", "SCRAM-SHA-512=[name=b,password=x=y]]"}
	if got := ok.scramArgs(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("scramArgs() = %q, want %q", got, want)
	}
}
