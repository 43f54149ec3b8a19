package kafkaconf

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"

	"github.com/codebank/codebank/internal/testenv/certs"
)

// tlsFiles writes a CA, a client certificate and its key to a temporary directory.
func tlsFiles(t *testing.T) (ca *certs.CA, caFile, certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	ca = certs.NewCA(t)
	caFile = ca.WriteFile(t, dir)
	certFile, keyFile = ca.Client(t, "codebank").WriteFiles(t, dir, "client")
	return ca, caFile, certFile, keyFile
}

func TestValidateSecurity(t *testing.T) {
	_, caFile, certFile, keyFile := tlsFiles(t)
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.pem")
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	brokers := []string{"127.0.0.1:9093"}
	for _, tc := range []struct {
		name string
		c    Config
		want []string // in the error; none: valid
	}{
		{"plain", Config{Brokers: brokers}, nil},
		{"TLS with system roots", Config{Brokers: brokers, TLS: &TLS{}}, nil},
		{"mutual TLS and SCRAM", Config{Brokers: brokers,
			TLS:           &TLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka"},
			SASLMechanism: SASLSCRAMSHA512, SASLUser: "codebank", SASLPassword: "s3cret"}, nil},
		{"SASL PLAIN", Config{Brokers: brokers, SASLMechanism: SASLPlain, SASLUser: "u", SASLPassword: "p"}, nil},
		{"missing CA file", Config{Brokers: brokers, TLS: &TLS{CAFile: missing}},
			[]string{"read TLS CA file", missing, "no such file"}},
		{"CA file without a certificate", Config{Brokers: brokers, TLS: &TLS{CAFile: notPEM}},
			[]string{"TLS CA file " + notPEM + " holds no PEM certificate"}},
		{"certificate without key", Config{Brokers: brokers, TLS: &TLS{CertFile: certFile}},
			[]string{"TLS certificate file " + certFile + " given without its key file"}},
		{"key without certificate", Config{Brokers: brokers, TLS: &TLS{KeyFile: keyFile}},
			[]string{"TLS key file " + keyFile + " given without its certificate file"}},
		{"key of another certificate", Config{Brokers: brokers, TLS: &TLS{CertFile: caFile, KeyFile: keyFile}},
			[]string{"load TLS certificate " + caFile + " and key " + keyFile}},
		{"unknown mechanism", Config{Brokers: brokers, SASLMechanism: "scram-sha-512", SASLUser: "u", SASLPassword: "hunter2-secret"},
			[]string{`unknown SASL mechanism "scram-sha-512": use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`}},
		{"SCRAM without user and password", Config{Brokers: brokers, SASLMechanism: SASLSCRAMSHA256},
			[]string{"SASL mechanism SCRAM-SHA-256 needs a user", "SASL mechanism SCRAM-SHA-256 needs a password"}},
		{"user without mechanism", Config{Brokers: brokers, SASLUser: "u", SASLPassword: "hunter2-secret"},
			[]string{"SASL user or password given without a SASL mechanism"}},
		{"every fault at once", Config{Acks: "some", TLS: &TLS{CAFile: missing}, SASLMechanism: "GSSAPI"},
			[]string{"no Kafka brokers", "acks must be", missing, `unknown SASL mechanism "GSSAPI"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want an error with %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("Validate() shows the password: %v", err)
			}
		})
	}
}

func TestSaramaSecurity(t *testing.T) {
	_, caFile, certFile, keyFile := tlsFiles(t)
	c := Config{
		Brokers:       []string{"127.0.0.1:9093"},
		TLS:           &TLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile, ServerName: "kafka.internal"},
		SASLMechanism: SASLSCRAMSHA512, SASLUser: "codebank", SASLPassword: "s3cret",
	}
	s := c.Sarama()
	if err := s.Validate(); err != nil {
		t.Fatalf("sarama refuses the configuration: %v", err)
	}
	if !s.Net.TLS.Enable || s.Net.TLS.Config == nil || s.Net.TLS.Config.RootCAs == nil ||
		len(s.Net.TLS.Config.Certificates) != 1 || s.Net.TLS.Config.ServerName != "kafka.internal" ||
		s.Net.TLS.Config.MinVersion != tls.VersionTLS12 {
		t.Errorf("TLS: enable %v, config %+v", s.Net.TLS.Enable, s.Net.TLS.Config)
	}
	if !s.Net.SASL.Enable || s.Net.SASL.Mechanism != sarama.SASLTypeSCRAMSHA512 ||
		s.Net.SASL.User != "codebank" || s.Net.SASL.Password != "s3cret" || s.Net.SASL.SCRAMClientGeneratorFunc == nil {
		t.Errorf("SASL: enable %v, mechanism %q, user %q", s.Net.SASL.Enable, s.Net.SASL.Mechanism, s.Net.SASL.User)
	}
	if s.Net.Proxy.Enable {
		t.Error("a loaded TLS configuration set a dialer")
	}
	// Each call returns its own copy.
	s.Net.TLS.Config.ServerName = "changed"
	if c.Sarama().Net.TLS.Config.ServerName != "kafka.internal" {
		t.Error("changing one sarama configuration's TLS changed the next")
	}

	plain := Config{Brokers: c.Brokers}.Sarama()
	if plain.Net.TLS.Enable || plain.Net.SASL.Enable {
		t.Errorf("config without security: TLS %v, SASL %v", plain.Net.TLS.Enable, plain.Net.SASL.Enable)
	}
	for mech, want := range map[string]sarama.SASLMechanism{
		SASLPlain:       sarama.SASLTypePlaintext,
		SASLSCRAMSHA256: sarama.SASLTypeSCRAMSHA256,
	} {
		s := Config{Brokers: c.Brokers, SASLMechanism: mech, SASLUser: "u", SASLPassword: "p"}.Sarama()
		if err := s.Validate(); err != nil || s.Net.SASL.Mechanism != want {
			t.Errorf("%s: mechanism %q, sarama says %v", mech, s.Net.SASL.Mechanism, err)
		}
	}
}

// TestTLSHandshake connects with the TLS settings of Sarama to a server that requires a client
// certificate of the same CA. The files are removed before: they are read once, by Validate.
func TestTLSHandshake(t *testing.T) {
	ca, caFile, certFile, keyFile := tlsFiles(t)
	c := Config{Brokers: []string{"127.0.0.1:9093"}, TLS: &TLS{CAFile: caFile, CertFile: certFile, KeyFile: keyFile}}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	for _, f := range []string{caFile, certFile, keyFile} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}

	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "127.0.0.1").TLS(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	peer := make(chan string, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		tc := conn.(*tls.Conn)
		if err := tc.Handshake(); err != nil {
			peer <- err.Error()
			return
		}
		peer <- tc.ConnectionState().PeerCertificates[0].Subject.CommonName
		tc.Write([]byte{1})
	}()

	cfg := c.Sarama().Net.TLS.Config
	cfg.ServerName = "127.0.0.1" // sarama's part: the host of the broker's address
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", l.Addr().String(), cfg)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err != nil {
		t.Errorf("read after handshake: %v", err)
	}
	if got := <-peer; got != "codebank" {
		t.Errorf("server saw client %q, want codebank", got)
	}
}

// TestUnloadableTLSFailsConnections checks that a client built from a Config whose TLS files
// cannot be loaded (Validate skipped) connects nowhere and says why.
func TestUnloadableTLSFailsConnections(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "ca.pem")
	c := Config{Brokers: []string{"127.0.0.1:9"}, TLS: &TLS{CAFile: missing}}
	s := c.Sarama()
	s.Metadata.Retry.Max = 0
	client, err := sarama.NewClient(c.Brokers, s)
	if err == nil {
		client.Close()
		t.Fatal("NewClient succeeded")
	}
	if !strings.Contains(err.Error(), "read TLS CA file: open "+missing) {
		t.Errorf("NewClient: %v, want the CA file's error", err)
	}
}

// scramExchange runs the exchange of client against a SCRAM server that knows user with
// password and returns the error of the side that refused.
func scramExchange(t *testing.T, client sarama.SCRAMClient, hash scram.HashGeneratorFcn, user, password, given string) error {
	t.Helper()
	known, err := hash.NewClient(user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	creds := known.GetStoredCredentials(scram.KeyFactors{Salt: "0123456789abcdef", Iters: 4096})
	server, err := hash.NewServer(func(name string) (scram.StoredCredentials, error) {
		if name != user {
			return scram.StoredCredentials{}, fmt.Errorf("unknown user %q", name)
		}
		return creds, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	conv := server.NewConversation()
	if err := client.Begin(user, given, ""); err != nil {
		return err
	}
	// As sarama does: the client speaks first, and again after each challenge until done.
	msg, err := client.Step("")
	for err == nil && !client.Done() {
		var challenge string
		if challenge, err = conv.Step(msg); err != nil {
			return fmt.Errorf("server: %w", err)
		}
		msg, err = client.Step(challenge)
	}
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	if !conv.Valid() {
		return fmt.Errorf("server did not accept the client")
	}
	return nil
}

func TestSCRAMClient(t *testing.T) {
	for mech, hash := range map[string]scram.HashGeneratorFcn{SASLSCRAMSHA256: scram.SHA256, SASLSCRAMSHA512: scram.SHA512} {
		s := Config{Brokers: []string{"b:9092"}, SASLMechanism: mech, SASLUser: "codebank", SASLPassword: "s3cret"}.Sarama()
		if err := scramExchange(t, s.Net.SASL.SCRAMClientGeneratorFunc(), hash, "codebank", "s3cret", "s3cret"); err != nil {
			t.Errorf("%s: %v", mech, err)
		}
		err := scramExchange(t, s.Net.SASL.SCRAMClientGeneratorFunc(), hash, "codebank", "s3cret", "wrong")
		if err == nil || !strings.HasPrefix(err.Error(), "server: ") {
			t.Errorf("%s with a wrong password: %v, want the server to refuse", mech, err)
		}
	}
}

func TestPasswordMasked(t *testing.T) {
	c := Config{
		Brokers: []string{"kafka-0:9093"}, ClientID: "codebank",
		TLS:           &TLS{CAFile: "/etc/kafka/ca.pem"},
		SASLMechanism: SASLSCRAMSHA512, SASLUser: "authorizer", SASLPassword: "pa55word-of-the-bank",
	}
	var out bytes.Buffer
	slog.New(slog.NewJSONHandler(&out, nil)).Info("config", "kafka", c)
	slog.New(slog.NewTextHandler(&out, nil)).Info("config", "kafka", c)
	fmt.Fprintf(&out, "%v %+v %s\n", c, c, c)
	got := out.String()
	if strings.Contains(got, c.SASLPassword) {
		t.Errorf("the password shows:\n%s", got)
	}
	for _, want := range []string{`"sasl_password":"***"`, `"sasl_user":"authorizer"`, `"ca_file":"/etc/kafka/ca.pem"`, "kafka.sasl_password=***"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %s:\n%s", want, got)
		}
	}
	if v := (Config{Brokers: c.Brokers}).LogValue().String(); strings.Contains(v, "sasl") || strings.Contains(v, "tls") {
		t.Errorf("config without security logs %s", v)
	}
}
