package kafkaconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// The SASL mechanisms of Config.SASLMechanism.
const (
	// SASLPlain sends the user and password as they are: use it over TLS only.
	SASLPlain = "PLAIN"
	// SASLSCRAMSHA256 proves the password with SCRAM-SHA-256 (RFC 7677) without sending it.
	SASLSCRAMSHA256 = "SCRAM-SHA-256"
	// SASLSCRAMSHA512 proves the password with SCRAM-SHA-512 without sending it.
	SASLSCRAMSHA512 = "SCRAM-SHA-512"
)

// TLS says how to reach the brokers over TLS. Its files are read once, by the first of
// Config.Validate and Config.Sarama to need them, and shared by every copy of the Config that
// points to it: to read changed files, make a new TLS.
type TLS struct {
	// CAFile is a PEM file of the certificates that sign the brokers' certificates. Empty: the
	// system's roots.
	CAFile string
	// CertFile and KeyFile are the PEM files of a client certificate and its key, for brokers
	// that require one (mutual TLS): both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name every broker's certificate must carry. Empty: each broker's
	// certificate must carry the host of that broker's address.
	ServerName string

	once   sync.Once
	config *tls.Config // the loaded settings, shared by every sarama configuration
	err    error       // why they could not be loaded
}

// load reads the files once and returns the TLS settings they make.
func (t *TLS) load() (*tls.Config, error) {
	t.once.Do(func() { t.config, t.err = t.read() })
	return t.config, t.err
}

func (t *TLS) read() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return nil, fmt.Errorf("TLS certificate file %s given without its key file", t.CertFile)
	case t.CertFile == "" && t.KeyFile != "":
		return nil, fmt.Errorf("TLS key file %s given without its certificate file", t.KeyFile)
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load TLS certificate %s and key %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// validateSecurity reports TLS files that cannot be loaded and SASL settings that cannot work.
func (c Config) validateSecurity() error {
	var errs []error
	if c.TLS != nil {
		if _, err := c.TLS.load(); err != nil {
			errs = append(errs, err)
		}
	}
	switch c.SASLMechanism {
	case "":
		if c.SASLUser != "" || c.SASLPassword != "" {
			errs = append(errs, errors.New("SASL user or password given without a SASL mechanism"))
		}
	case SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512:
		if c.SASLUser == "" {
			errs = append(errs, fmt.Errorf("SASL mechanism %s needs a user", c.SASLMechanism))
		}
		if c.SASLPassword == "" {
			errs = append(errs, fmt.Errorf("SASL mechanism %s needs a password", c.SASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown SASL mechanism %q: use %s, %s or %s",
			c.SASLMechanism, SASLPlain, SASLSCRAMSHA256, SASLSCRAMSHA512))
	}
	return errors.Join(errs...)
}

// secure applies the TLS and SASL settings to s.
func (c Config) secure(s *sarama.Config) {
	if c.TLS != nil {
		s.Net.TLS.Enable = true
		cfg, err := c.TLS.load()
		if err != nil {
			// Validate was skipped or ignored. Rather than connect without the certificates the
			// cluster expects, every connection fails with the reason, e.g. "kafka: client has run
			// out of available brokers to talk to: read TLS CA file: open ...".
			s.Net.Proxy.Enable = true
			s.Net.Proxy.Dialer = refusingDialer{err}
		} else {
			s.Net.TLS.Config = cfg.Clone()
		}
	}
	if c.SASLMechanism == "" {
		return
	}
	s.Net.SASL.Enable = true
	s.Net.SASL.Mechanism = sarama.SASLMechanism(c.SASLMechanism)
	s.Net.SASL.User = c.SASLUser
	s.Net.SASL.Password = c.SASLPassword
	switch c.SASLMechanism {
	case SASLSCRAMSHA256:
		s.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case SASLSCRAMSHA512:
		s.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
	// An unknown mechanism is left to sarama, which refuses the configuration.
}

// refusingDialer fails every connection with err.
type refusingDialer struct{ err error }

func (d refusingDialer) Dial(network, addr string) (net.Conn, error) { return nil, d.err }

// scramClient is sarama's side of one SCRAM exchange, done by xdg-go/scram, which also checks
// the broker's proof that it knows the credentials.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

// Begin starts the exchange for user and password.
func (s *scramClient) Begin(user, password, authzID string) error {
	client, err := s.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	s.conv = client.NewConversation()
	return nil
}

// Step answers the broker's challenge.
func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

// Done reports whether the exchange is over.
func (s *scramClient) Done() bool { return s.conv.Done() }

// LogValue returns the configuration, defaults applied, as log attributes, with the SASL
// password masked.
func (c Config) LogValue() slog.Value {
	c = c.withDefaults()
	attrs := []slog.Attr{
		slog.Any("brokers", c.Brokers),
		slog.Int("replication", c.Replication),
		slog.String("acks", c.Acks),
		slog.Duration("flush_frequency", c.FlushFrequency),
		slog.String("client_id", c.ClientID),
	}
	if c.TLS != nil {
		attrs = append(attrs, slog.Group("tls",
			slog.String("ca_file", c.TLS.CAFile),
			slog.String("cert_file", c.TLS.CertFile),
			slog.String("key_file", c.TLS.KeyFile),
			slog.String("server_name", c.TLS.ServerName)))
	}
	if c.SASLMechanism != "" || c.SASLUser != "" || c.SASLPassword != "" {
		attrs = append(attrs,
			slog.String("sasl_mechanism", c.SASLMechanism),
			slog.String("sasl_user", c.SASLUser),
			slog.String("sasl_password", mask(c.SASLPassword)))
	}
	return slog.GroupValue(attrs...)
}

// String returns the configuration as LogValue does, so that printing it does not show the
// SASL password either.
func (c Config) String() string { return c.LogValue().String() }

// mask hides a secret but not whether it is set.
func mask(secret string) string {
	if secret == "" {
		return ""
	}
	return "***"
}
