package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/role"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// config is the configuration of the server roles, from flags and CODEBANK_* variables.
type config struct {
	Brokers         string
	Prefix          string
	Partitions      int
	ReplyPartitions int
	Replication     int
	Acks            string
	FlushFrequency  time.Duration
	FetchWait       time.Duration
	KafkaTLS        bool
	KafkaCA         string
	KafkaCert       string
	KafkaKey        string
	KafkaSASL       string
	KafkaUser       string

	GRPCAddr       string
	HTTPAddr       string
	OpsAddr        string
	RequestTimeout time.Duration
	ReplyPartition int
	MaxInFlight    int
	Currency       string
	LegacyMerchant string
	Reflection     bool
	LockAfter      int
	LockWindow     time.Duration
	APIKeysFile    string
	TLSCert        string
	TLSKey         string
	TLSClientCA    string

	DemoCardsFile  string
	BankAddr       string
	StatementsAddr string
	BankCA         string
	BankCert       string
	BankKey        string
	BankPlaintext  bool
	// PageAttempts, PageReads and ClientAddressHeader limit the pages' posts per client address
	// (web.Config).
	PageAttempts, PageReads int
	ClientAddressHeader     string
	// OrderTTL is how long the store keeps an order never paid.
	OrderTTL time.Duration

	StorageDir  string
	HotStandby  bool
	SinkLag     bool
	DemoSecrets bool
	LogFormat   string
	LogLevel    string
	Pprof       bool

	// Secrets: never logged.
	tokenKey, cardKeys, kafkaPassword  *cli.Secret
	storeSecret, merchantKey, pagesKey *cli.Secret
}

// kafkaFlags registers the flags every role that talks to Kafka needs.
func (c *config) kafkaFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated")
	fs.StringVar(&c.Prefix, "topic-prefix", "", "prefix of every topic and group name (separates deployments sharing a cluster)")
	fs.IntVar(&c.Partitions, "partitions", stream.DefaultPartitions, "partitions of the card-keyed topics (fixed once created)")
	fs.IntVar(&c.ReplyPartitions, "reply-partitions", processors.DefaultReplyPartitions, "partitions of the replies topic: the number of ingress replicas with a partition of their own")
	fs.IntVar(&c.Replication, "replication", 1, "replication factor of created topics (3 on a cluster)")
	fs.StringVar(&c.Acks, "acks", "all", "producer acks: all (durable) or leader (faster)")
	fs.DurationVar(&c.FlushFrequency, "flush-frequency", 0, "producer batching delay; 0 sends at once")
	fs.DurationVar(&c.FetchWait, "fetch-wait", 20*time.Millisecond, "how long consumers off the synchronous path (statements, their view, the dashboard's feed) wait to fill a fetch, taking records in batches; 0 fetches each record as it comes (least lag, most Kafka requests)")
	fs.BoolVar(&c.KafkaTLS, "kafka-tls", false, "reach the brokers over TLS")
	fs.StringVar(&c.KafkaCA, "kafka-ca", "", "CA certificates (PEM) of the brokers' certificates (default: the system's; implies --kafka-tls)")
	fs.StringVar(&c.KafkaCert, "kafka-cert", "", "client certificate (PEM) for brokers that require one; with --kafka-key")
	fs.StringVar(&c.KafkaKey, "kafka-key", "", "private key (PEM) of --kafka-cert")
	fs.StringVar(&c.KafkaSASL, "kafka-sasl", "", "SASL mechanism: SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN (empty: none)")
	fs.StringVar(&c.KafkaUser, "kafka-user", "", "SASL user")
	c.kafkaPassword = cli.SecretFlag(fs, "kafka-password", "SASL password")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// opsFlags registers the operations listen address of a serving role.
func (c *config) opsFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.OpsAddr, "ops-addr", ":9090", "/healthz, /readyz, /metrics (and /debug/pprof/ with --pprof) listen address, apart from the public ones (empty: none)")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve /debug/pprof/ on the operations address")
}

// tokenKeyFlag registers the tokenization key.
func (c *config) tokenKeyFlag(fs *flag.FlagSet) {
	c.tokenKey = cli.SecretFlag(fs, "token-key", "tokenization key: card number -> card token, the key of every card's records (at least 32 random bytes; never changes in place)")
}

// cardKeysFlag registers the card keys.
func (c *config) cardKeysFlag(fs *flag.FlagSet) {
	c.cardKeys = cli.SecretFlag(fs, "card-keys", `card keys deriving CVVs, "id:secret" each (comma- or line-separated), the current one first; older ones keep their cards verifying (at least 32 random bytes each)`)
}

// httpAddrUsage is the help of --http-addr, one text for the roles that share its variable.
const httpAddrUsage = "HTTP listen address: the REST gateway of the ingress and statements, the pages of web, both in codebank all"

// ingressFlags registers the flags of a role that serves the bank's API, listening on the
// addresses given by default.
func (c *config) ingressFlags(fs *flag.FlagSet, grpcAddr, httpAddr string) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", grpcAddr, "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", httpAddr, httpAddrUsage)
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "longest wait for the authorizer's answer")
	fs.IntVar(&c.MaxInFlight, "max-inflight", grpcgateway.DefaultMaxInFlight, "calls that may wait for the authorizer at once; beyond it calls get RESOURCE_EXHAUSTED at once")
	fs.IntVar(&c.ReplyPartition, "reply-partition", -1, "partition of the replies topic this replica reads; -1 picks one (StatefulSet ordinal, else random)")
	fs.StringVar(&c.Currency, "currency", "BRL", "ISO 4217 currency of new cards")
	fs.StringVar(&c.LegacyMerchant, "legacy-merchant", "", "serve the original bank's payment.PaymentService, whose callers carry no key, booking them as this merchant of the keys file (only behind a mesh that authenticates them; empty: not served)")
	fs.BoolVar(&c.Reflection, "reflection", false, "serve gRPC server reflection")
	c.serverTLSFlags(fs)
	fs.StringVar(&c.APIKeysFile, "api-keys-file", "", "API keys file: one key a line, \"<key id> <role> <sha256 hex> [<merchant> <name>]\" (codebank keys new writes lines); read again when it changes, and a file that becomes empty, malformed or missing revokes every key until it is fixed (required)")
	c.opsFlags(fs)
}

// serverTLSFlags registers the TLS of the public listeners.
func (c *config) serverTLSFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.TLSCert, "tls-cert", "", "certificate (PEM) to serve the public listeners (gRPC, HTTP) over TLS; with --tls-key")
	fs.StringVar(&c.TLSKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&c.TLSClientCA, "tls-client-ca", "", "CA certificates (PEM): require client certificates signed by them (mutual TLS)")
}

// webFlags registers the flags of the pages.
func (c *config) webFlags(fs *flag.FlagSet) {
	c.storeSecret = cli.SecretFlag(fs, "store-secret", "secret signing the store's order ids and statement views (at least 32 bytes; replicas share it)")
	c.merchantKey = cli.SecretFlag(fs, "merchant-key", "the store's merchant API key, for its payments")
	c.pagesKey = cli.SecretFlag(fs, "pages-key", "the bank pages' API key (role pages), to verify cards and show statements")
	fs.StringVar(&c.DemoCardsFile, "demo-cards", "", "JSON file of demo cards for the store's help panel (make run writes it)")
	fs.StringVar(&c.BankCA, "bank-ca", "", "CA certificates (PEM) to reach the bank over TLS (empty: plaintext, to a loopback --bank-addr only unless --bank-plaintext)")
	fs.StringVar(&c.BankCert, "bank-cert", "", "client certificate (PEM) for mutual TLS with the bank; with --bank-key")
	fs.StringVar(&c.BankKey, "bank-key", "", "private key (PEM) of --bank-cert")
	fs.BoolVar(&c.BankPlaintext, "bank-plaintext", false, "without --bank-ca, send API keys and card data in plaintext to a --bank-addr or --statements-addr that is not loopback (only inside a network that encrypts or isolates the hop: a service mesh, a private network)")
	fs.IntVar(&c.PageAttempts, "page-attempts-per-minute", web.DefaultAttemptsPerMinute, "posts of the pages that carry or spend card data (checkout, an order's payment or cancellation, the statement page's card check) a client address may make a minute, half of them at once; beyond, 429 with Retry-After")
	fs.IntVar(&c.PageReads, "page-reads-per-minute", web.DefaultReadsPerMinute, "refreshes of an open statement a client address may make a minute, half of them at once; beyond, 429 with Retry-After")
	fs.DurationVar(&c.OrderTTL, "order-ttl", role.DefaultOrderTTL, "how long the store keeps an order never paid (pending, or declined) after its last change: anyone may post a checkout, and the orders table must not grow forever (0: keep them)")
	fs.StringVar(&c.ClientAddressHeader, "client-address-header", "", "header that carries a visitor's address, set by the proxy in front of the pages, which must drop any a client sent (Istio's gateway: X-Envoy-External-Address); empty: the connection's peer")
}

// lockoutFlags registers the authorizer's lockout.
func (c *config) lockoutFlags(fs *flag.FlagSet) {
	fs.IntVar(&c.LockAfter, "lock-after", authorizer.DefaultLockAfter, fmt.Sprintf("failed card verifications (a wrong expiry, CVV or holder name, by payments or the statement page) within --lock-window that block a card until an operator unblocks it; approvals do not clear them (0: never; at most %d)", authorizer.MaxLockAfter))
	fs.DurationVar(&c.LockWindow, "lock-window", authorizer.DefaultLockWindow, "how long a failed card verification counts toward --lock-after")
}

// lockout returns the authorizer's lockout of --lock-after and --lock-window; it refuses values
// out of range. The flag's 0 (never) is the authorizer's negative.
func (c *config) lockout() (authorizer.Config, error) {
	if c.LockAfter > authorizer.MaxLockAfter || c.LockWindow <= 0 {
		return authorizer.Config{}, fmt.Errorf("%w: --lock-after must be 0 to %d and --lock-window positive, got %d and %s", cli.ErrUsage, authorizer.MaxLockAfter, c.LockAfter, c.LockWindow)
	}
	cfg := authorizer.Config{LockAfter: c.LockAfter, LockWindow: c.LockWindow}
	if cfg.LockAfter <= 0 {
		cfg.LockAfter = -1
	}
	return cfg, nil
}

// demoSecretsFlag registers the flag that admits the published demo secrets.
func (c *config) demoSecretsFlag(fs *flag.FlagSet) {
	fs.BoolVar(&c.DemoSecrets, "demo-secrets", false, "accept the demo secrets published with the source code ("+cli.PublishedDir+"), which every role refuses otherwise: for the Compose demo only (compose.yaml sets it), since a bank that uses them has no secret at all")
}

// checkKeysFile refuses a keys file that admits a published demo key (unless --demo-secrets).
func (c *config) checkKeysFile(set *apikey.Set) error {
	if c.DemoSecrets {
		return nil
	}
	for id, sum := range set.Hashes() {
		if f, ok := cli.PublishedHash(sum); ok {
			return cli.PublishedError("API key "+id, f)
		}
	}
	return nil
}

// sinkLagFlag registers --sink-lag, of the roles that run the statements.
func (c *config) sinkLagFlag(fs *flag.FlagSet) {
	fs.BoolVar(&c.SinkLag, "sink-lag", false, "also export the consumer lag of the search sink, Kafka Connect's group connect-<topic prefix>codebank-results-opensearch on the results topic (where the sink runs: its alerts read it)")
}

// storageFlag registers the directory of a role's local table storage.
func (c *config) storageFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.StorageDir, "storage-dir", "/var/lib/codebank", "directory of the local table storage (one per instance)")
	fs.BoolVar(&c.HotStandby, "hot-standby", false, "keep an up-to-date copy of every partition's table, not only this instance's: an instance lost costs seconds instead of a recovery, for memory and disk that grow with the whole table (see docs/operations.md)")
}

// kafka returns the Kafka configuration: reaching the brokers, over TLS and with SASL when
// asked. Its Validate reports a password that cannot be read, like its other faults.
func (c *config) kafka() kafkaconf.Config {
	kc := kafkaconf.Config{
		Brokers: strings.Split(c.Brokers, ","), Replication: c.Replication, Acks: c.Acks,
		FlushFrequency: c.FlushFrequency, ClientID: strings.TrimSuffix("codebank-"+c.Prefix, "-"),
		SASLMechanism: c.KafkaSASL, SASLUser: c.KafkaUser,
	}
	if c.KafkaTLS || c.KafkaCA != "" || c.KafkaCert != "" || c.KafkaKey != "" {
		kc.TLS = &kafkaconf.TLS{CAFile: c.KafkaCA, CertFile: c.KafkaCert, KeyFile: c.KafkaKey}
	}
	if c.kafkaPassword != nil {
		kc.SASLPassword, _ = c.kafkaPassword.Value() // a file that cannot be read leaves it empty: Validate says so
	}
	return kc
}

func (c *config) topology() processors.Topology {
	return processors.Topology{Prefix: c.Prefix, Partitions: c.Partitions, ReplyPartitions: c.ReplyPartitions, Replication: c.Replication}
}

func (c *config) storeTopology() store.Topology {
	return store.Topology{Prefix: c.Prefix, Partitions: c.Partitions, Replication: c.Replication}
}

// keys returns the role's card keys: the tokenization key, and the card keys when withCardKeys.
// A role refuses to start without them: there is no default.
func (c *config) keys(withCardKeys bool) (card.Keys, error) {
	tk, err := c.tokenKey.Required("the tokenization key (at least 32 random bytes, e.g. from openssl rand -base64 48)")
	if err != nil {
		return card.Keys{}, err
	}
	if err := cli.CheckPublished("--token-key", []byte(tk), c.DemoSecrets); err != nil {
		return card.Keys{}, err
	}
	var cks []card.CardKey
	if withCardKeys {
		v, err := c.cardKeys.Required(`the card keys, "id:secret" each, the current first (at least 32 random bytes each)`)
		if err != nil {
			return card.Keys{}, err
		}
		if cks, err = card.ParseCardKeys(v); err != nil {
			return card.Keys{}, err
		}
		for _, ck := range cks {
			if err := cli.CheckPublished("--card-keys key "+ck.ID, ck.Secret, c.DemoSecrets); err != nil {
				return card.Keys{}, err
			}
		}
	}
	return card.NewKeys([]byte(tk), cks...)
}

// serverTLS returns the TLS configuration of the public listeners; nil without --tls-cert.
func (c *config) serverTLS() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" {
		if c.TLSClientCA != "" {
			return nil, fmt.Errorf("%w: --tls-client-ca needs --tls-cert and --tls-key", cli.ErrUsage)
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}
	if c.TLSClientCA != "" {
		if cfg.ClientCAs, err = certPool(c.TLSClientCA); err != nil {
			return nil, fmt.Errorf("--tls-client-ca: %w", err)
		}
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// bankTLS returns the TLS configuration to reach the bank; nil without --bank-ca.
func (c *config) bankTLS() (*tls.Config, error) {
	return cli.ClientTLS(c.BankCA, c.BankCert, c.BankKey)
}

func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// logger builds the process logger.
func (c *config) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.LogFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format must be json or text, got %q", c.LogFormat)
}

// logValue returns the configuration as log attributes; the secrets are unexported fields, so
// they are never among them.
func (c config) logValue() slog.Value {
	return slog.AnyValue(c)
}
