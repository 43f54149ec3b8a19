package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/web/store"
)

// devSecret is the bank secret used when none is configured: fine for a laptop, never for a
// real bank, and logged as such.
const devSecret = "codebank-development-secret-do-not-use-in-production"

// config is the configuration of the server roles, from flags and CODEBANK_* variables.
type config struct {
	Brokers         string
	Prefix          string
	Partitions      int
	ReplyPartitions int
	Replication     int
	Acks            string
	FlushFrequency  time.Duration

	GRPCAddr       string
	HTTPAddr       string
	RequestTimeout time.Duration
	ReplyPartition int
	MaxInFlight    int
	Currency       string

	StoreSecret    string
	DemoCardsFile  string
	BankAddr       string
	StatementsAddr string

	StorageDir string
	Secret     string
	LogFormat  string
	LogLevel   string
	Pprof      bool
}

// kafkaFlags registers the flags every role that talks to Kafka needs.
func (c *config) kafkaFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap servers, comma-separated")
	fs.StringVar(&c.Prefix, "topic-prefix", "", "prefix of every topic and group name (separates deployments sharing a cluster)")
	fs.IntVar(&c.Partitions, "partitions", processors.DefaultPartitions, "partitions of the card-keyed topics (fixed once created)")
	fs.IntVar(&c.ReplyPartitions, "reply-partitions", processors.DefaultReplyPartitions, "partitions of the replies topic: the number of ingress replicas with a partition of their own")
	fs.IntVar(&c.Replication, "replication", 1, "replication factor of created topics (3 on a cluster)")
	fs.StringVar(&c.Acks, "acks", "all", "producer acks: all (durable) or leader (faster)")
	fs.DurationVar(&c.FlushFrequency, "flush-frequency", 0, "producer batching delay; 0 sends at once")
	fs.StringVar(&c.Secret, "secret", "", "bank secret deriving CVVs and card tokens (at least 16 bytes; a development secret is used when empty)")
	fs.StringVar(&c.LogFormat, "log-format", "json", "log format: json or text")
	fs.StringVar(&c.LogLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&c.Pprof, "pprof", false, "serve /debug/pprof/ on the HTTP port")
}

// ingressFlags registers the flags of a role that serves the bank's API, listening on the
// addresses given by default.
func (c *config) ingressFlags(fs *flag.FlagSet, grpcAddr, httpAddr string) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", grpcAddr, "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", httpAddr, "REST gateway, /healthz, /readyz and /metrics listen address")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "longest wait for the authorizer's answer")
	fs.IntVar(&c.MaxInFlight, "max-inflight", grpcgateway.DefaultMaxInFlight, "calls that may wait for the authorizer at once; beyond it calls get RESOURCE_EXHAUSTED at once")
	fs.IntVar(&c.ReplyPartition, "reply-partition", -1, "partition of the replies topic this replica reads; -1 picks one (StatefulSet ordinal, else random)")
	fs.StringVar(&c.Currency, "currency", "BRL", "ISO 4217 currency of new cards")
}

// webFlags registers the flags of the pages.
func (c *config) webFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.StoreSecret, "store-secret", "", "secret signing the store's order ids (at least 16 bytes; replicas share it); random when empty")
	fs.StringVar(&c.DemoCardsFile, "demo-cards", "", "JSON file of demo cards for the store's help panel (make run writes it)")
}

// storageFlag registers the directory of a role's local table storage.
func (c *config) storageFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.StorageDir, "storage-dir", "/var/lib/codebank", "directory of the local table storage (one per instance)")
}

func (c *config) kafka() kafkaconf.Config {
	return kafkaconf.Config{
		Brokers: strings.Split(c.Brokers, ","), Replication: c.Replication, Acks: c.Acks,
		FlushFrequency: c.FlushFrequency, ClientID: strings.TrimSuffix("codebank-"+c.Prefix, "-"),
	}
}

func (c *config) topology() processors.Topology {
	return processors.Topology{Prefix: c.Prefix, Partitions: c.Partitions, ReplyPartitions: c.ReplyPartitions, Replication: c.Replication}
}

func (c *config) storeTopology() store.Topology {
	return store.Topology{Prefix: c.Prefix, Partitions: c.Partitions, Replication: c.Replication}
}

func (c *config) ingress(r roles) grpcgateway.Config {
	return grpcgateway.Config{StatementsOnly: !r.ingress, RequestTimeout: c.RequestTimeout, Currency: c.Currency}
}

// keys returns the card keys; without a configured secret, the development one, with a warning.
func (c *config) keys(log *slog.Logger) (card.Keys, error) {
	if c.Secret == "" {
		log.Warn("no bank secret configured (CODEBANK_SECRET): using the development secret")
		return card.NewKeys(devSecret)
	}
	return card.NewKeys(c.Secret)
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

// logValue returns the configuration as log attributes, with the secret masked.
func (c config) logValue() slog.Value {
	if c.Secret != "" {
		c.Secret = "***"
	}
	if c.StoreSecret != "" {
		c.StoreSecret = "***"
	}
	return slog.AnyValue(c)
}
