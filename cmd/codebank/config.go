package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
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

	StoreSecret string

	AuthorizerHTTPAddr string
	StorageDir         string
	Secret             string
	LogFormat          string
	LogLevel           string
	Pprof              bool
}

// newFlagSet returns a flag set whose usage lists flags with their environment variables.
func newFlagSet(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: codebank %s\n\nFlags (each also read from the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(stderr, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

func envName(flagName string) string {
	return "CODEBANK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses args, then fills every flag not given on the command line from its
// environment variable.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return errHelp
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", envName(f.Name), v, e)
			}
		}
	})
	return err
}

// errHelp is returned by parse after printing help: the command exits 0.
var errHelp = fmt.Errorf("%w: help", errUsage)

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

func (c *config) ingressFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.GRPCAddr, "grpc-addr", ":50051", "gRPC listen address")
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8080", "REST gateway, /healthz, /readyz and /metrics listen address")
	fs.DurationVar(&c.RequestTimeout, "request-timeout", 5*time.Second, "longest wait for the authorizer's answer")
	fs.IntVar(&c.MaxInFlight, "max-inflight", grpcgateway.DefaultMaxInFlight, "calls that may wait for the authorizer at once; beyond it calls get RESOURCE_EXHAUSTED at once")
	fs.IntVar(&c.ReplyPartition, "reply-partition", -1, "partition of the replies topic this replica reads; -1 picks one (StatefulSet ordinal, else random)")
	fs.StringVar(&c.Currency, "currency", "BRL", "ISO 4217 currency of new cards")
}

// storeFlags registers the flags of the store's pages.
func (c *config) storeFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.StoreSecret, "store-secret", "", "secret signing the store's order ids (at least 16 bytes; replicas share it); random when empty")
}

func (c *config) authorizerFlags(fs *flag.FlagSet, httpDefault string) {
	fs.StringVar(&c.StorageDir, "storage-dir", "/var/lib/codebank", "directory of the authorizer's local table storage (one per instance)")
	fs.StringVar(&c.AuthorizerHTTPAddr, "authorizer-http-addr", httpDefault, "authorizer /healthz, /readyz and /metrics listen address (empty: none)")
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

func (c *config) ingress() grpcgateway.Config {
	return grpcgateway.Config{GRPCAddr: c.GRPCAddr, HTTPAddr: c.HTTPAddr, RequestTimeout: c.RequestTimeout, Currency: c.Currency}
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
