// Package kafkaconf builds the sarama and goka configuration every Code Bank component uses,
// tuned for a request-reply path rather than goka's throughput-first defaults.
//
// Its main type is Config; Config.ProcessorOptions, Config.EmitterOptions and
// Config.ViewOptions hand the result to goka. A Config may reach a secured cluster: over TLS
// (see TLS), with SASL PLAIN or SCRAM; every client built from it uses these settings.
package kafkaconf

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/tablestore"
)

// Config says how to reach and use the Kafka cluster.
type Config struct {
	// Brokers are the bootstrap addresses, host:port.
	Brokers []string
	// Replication is the replication factor of topics Code Bank creates. Default 1, right for
	// one local broker; use 3 on a cluster.
	Replication int
	// Acks is "all" (default: an approved payment's records are on every in-sync replica before
	// the checkout hears "approved") or "leader" (faster; a broker crash may lose the last
	// acknowledged records).
	Acks string
	// FlushFrequency is how long producers gather records before sending a batch. Default 0:
	// send at once and let batches form while requests are in flight, which costs no latency.
	// Goka's own default, 100ms, would add up to 100ms to every hop.
	FlushFrequency time.Duration
	// ClientID prefixes the client id of every Kafka connection.
	ClientID string
	// FetchWait, when set, makes consumers patient: a fetch returns once patientFetchBytes are
	// there or FetchWait has passed. Consumers off the synchronous path (statements, views, the
	// dashboard's feed) then take records in batches, one fetch per FetchWait at moderate rates
	// instead of one per record, for at most FetchWait of lag. Zero (the default, for the
	// authorizer's input and the replies): a fetch returns as soon as one record is there.
	FetchWait time.Duration

	// HotStandby makes a processor keep, besides its own partitions' tables, an up-to-date copy
	// of every other partition's (goka's hot standby): when an instance goes, the partitions it
	// had move to instances that hold their tables already, and resume in seconds instead of
	// recovering them. Memory and disk then grow with the whole table on every instance.
	HotStandby bool

	// TLS, if set, encrypts every connection and checks the brokers' certificates.
	TLS *TLS
	// SASLMechanism authenticates every connection: "" (no SASL), SASLPlain, SASLSCRAMSHA256 or
	// SASLSCRAMSHA512.
	SASLMechanism string
	// SASLUser and SASLPassword are the SASL credentials. LogValue and String mask the
	// password.
	SASLUser     string
	SASLPassword string

	shared *sharedProducer // set by ShareProducer
	hold   *holdSpec       // set by HoldBehindTable
	busy   bool            // set by BusyTable
}

// BusyTable returns a Config whose processors keep a table written for every payment (the
// authorizer's accounts): its local storage is tablestore.NewBusy's.
func (c Config) BusyTable() Config {
	c.busy = true
	return c
}

func (c Config) withDefaults() Config {
	if c.Replication <= 0 {
		c.Replication = 1
	}
	c.Acks = cmp.Or(c.Acks, "all")
	c.ClientID = cmp.Or(c.ClientID, "codebank")
	return c
}

// Validate reports a configuration that cannot work, all of its faults at once. It reads the
// TLS files, so a missing or broken one is reported at start-up, naming the file.
func (c Config) Validate() error {
	var errs []error
	if len(c.Brokers) == 0 {
		errs = append(errs, errors.New("no Kafka brokers configured"))
	}
	switch c.Acks {
	case "", "all", "leader":
	default:
		errs = append(errs, fmt.Errorf("acks must be all or leader, got %q", c.Acks))
	}
	if err := c.validateSecurity(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Sarama returns a new sarama configuration: Kafka 4 protocol floor, latency-friendly
// producer, acks, TLS and SASL as configured. Each call returns a fresh copy, safe to modify.
// TLS files are read on the first call (or by Validate) only. If they cannot be loaded, every
// connection of the clients built from the configuration fails with the reason: call Validate
// first to hear of it at start-up.
func (c Config) Sarama() *sarama.Config {
	c = c.withDefaults()
	s := goka.DefaultConfig()
	// Kafka 4 refuses clients older than protocol 2.1 (KIP-896); goka defaults to 2.0.
	s.Version = sarama.V4_0_0_0
	s.ClientID = c.ClientID
	s.Producer.Flush.Frequency = c.FlushFrequency
	s.Producer.Flush.Bytes = 0
	s.Producer.Flush.Messages = 0
	s.Producer.Flush.MaxMessages = 0
	s.Producer.Compression = sarama.CompressionNone
	// One request in flight per broker connection: records queue while it is out and leave as
	// one batch, so batches grow with load at no cost in latency when idle; and a retried
	// batch can never overtake a later one, which would reorder a card's table changelog.
	s.Net.MaxOpenRequests = 1
	s.Producer.RequiredAcks = sarama.WaitForAll
	// With acks=all the producer is idempotent: a retry after a lost acknowledgement does not
	// write a record twice.
	s.Producer.Idempotent = true
	if c.Acks == "leader" {
		s.Producer.RequiredAcks = sarama.WaitForLocal
		s.Producer.Idempotent = false
	}
	// A broker that restarts, or a partition leader that moves, is waited for (about two
	// minutes, as Kafka's own producer does with delivery.timeout.ms): the idempotent producer
	// then completes what was interrupted, in order. Giving up after sarama's default of three
	// quick retries fails every record in flight, among them table writes whose outputs may
	// already be on the broker.
	s.Producer.Retry.Max = producerRetries
	s.Producer.Retry.BackoffFunc = producerBackoff
	// Input streams start from the oldest record when the group has no offset yet: a request
	// written before the first authorizer ever ran must still be decided. (Goka: newest.)
	s.Consumer.Offsets.Initial = sarama.OffsetOldest
	s.Consumer.MaxWaitTime = 250 * time.Millisecond
	if c.FetchWait > 0 {
		s.Consumer.Fetch.Min = patientFetchBytes
		s.Consumer.MaxWaitTime = c.FetchWait
	}
	// 1 MB a partition per fetch (sarama's default is 1 MB for the whole response). Recovering
	// a table reads it whole, and sarama waits for every partition to drain its batch before
	// fetching again: bigger fetches (4 MB was tried) leave the table loaders idle while a large
	// response arrives and hold more memory; 1 MB recovers 1M accounts twice as fast in 30 MB
	// less.
	s.Consumer.Fetch.Default = 1 << 20
	s.ChannelBufferSize = 1024
	s.Consumer.Group.Rebalance.Timeout = 20 * time.Second
	// An instance that dies without leaving its group (kill -9, a lost node) keeps its
	// partitions until its session times out: 6s (the broker's minimum by default, sarama's
	// default is 10s), with a heartbeat every second: a rebalance reaches each member at its
	// next heartbeat.
	s.Consumer.Group.Session.Timeout = 6 * time.Second
	s.Consumer.Group.Heartbeat.Interval = time.Second
	// A join refused with a retriable error (a group's first join on a fresh coordinator, a
	// coordinator that moved or is still loading) is retried after 200ms instead of sarama's
	// 2s, which a starting or rebalancing processor would otherwise spend idle; 60 retries keep
	// sarama's budget of about 10s before giving up.
	s.Consumer.Group.Rebalance.Retry.Backoff = 200 * time.Millisecond
	s.Consumer.Group.Rebalance.Retry.Max = 60
	s.Metadata.Retry.Backoff = 100 * time.Millisecond
	c.secure(s)
	return s
}

// partitioned returns a sarama config whose producer partitions like goka (FNV-1a by default).
// patientFetchBytes is what a patient consumer's fetch waits for (or FetchWait): more than
// its topics receive in FetchWait at the rates the bank runs at, so that the wait decides.
const patientFetchBytes = 1 << 20

// Patient returns the configuration with FetchWait set to wait, for consumers off the
// synchronous path.
func (c Config) Patient(wait time.Duration) Config {
	c.FetchWait = wait
	return c
}

func (c Config) partitioned(clientID string, hasher func() hash.Hash32) *sarama.Config {
	s := c.Sarama()
	s.ClientID = clientID
	s.Producer.Partitioner = sarama.NewCustomHashPartitioner(hasher)
	return s
}

// TopicManagerConfig returns goka's topic manager settings. Code Bank creates and checks its
// topics itself (processors.Topology.Ensure, which refuses a partition mismatch), with
// retentions of its own choosing; goka only warns about settings that differ from its own.
func (c Config) TopicManagerConfig() *goka.TopicManagerConfig {
	c = c.withDefaults()
	tm := goka.NewTopicManagerConfig()
	tm.Table.Replication = c.Replication
	tm.Stream.Replication = c.Replication
	// The retention goka expects of loop topics: processors.Topology gives them a week.
	tm.Stream.Retention = 7 * 24 * time.Hour
	tm.NoCreate = true
	tm.MismatchBehavior = goka.TMConfigMismatchBehaviorWarn
	return tm
}

// ProcessorOptions returns the options of a goka processor whose local table storage lives
// under storageDir.
func (c Config) ProcessorOptions(storageDir string, log *slog.Logger) []goka.ProcessorOption {
	tables := tablestore.New(storageDir)
	if c.busy {
		tables = tablestore.NewBusy(storageDir)
	}
	opts := []goka.ProcessorOption{
		goka.WithConsumerGroupBuilder(func(brokers []string, group, clientID string) (sarama.ConsumerGroup, error) {
			s := c.Sarama()
			s.ClientID = clientID
			return sarama.NewConsumerGroup(brokers, group, s)
		}),
		goka.WithConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			s := c.Sarama()
			s.ClientID = clientID
			return sarama.NewConsumer(brokers, s)
		}),
		goka.WithProducerBuilder(c.producer),
		goka.WithTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(c.Sarama(), c.TopicManagerConfig())),
		goka.WithStorageBuilder(tables),
		goka.WithLogger(Logger(log)),
		goka.WithClientID(c.withDefaults().ClientID),
	}
	if c.HotStandby {
		opts = append(opts, goka.WithHotStandby())
	}
	return opts
}

// EmitterOptions returns the options of a goka emitter; it partitions like goka processors.
func (c Config) EmitterOptions(log *slog.Logger) []goka.EmitterOption {
	return []goka.EmitterOption{
		goka.WithEmitterProducerBuilder(c.producer),
		goka.WithEmitterTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(c.Sarama(), c.TopicManagerConfig())),
		goka.WithEmitterLogger(Logger(log)),
		goka.WithEmitterClientID(c.withDefaults().ClientID),
	}
}

// ViewOptions returns the options of a goka view but its storage (stream.NewView adds it).
func (c Config) ViewOptions(log *slog.Logger) []goka.ViewOption {
	return []goka.ViewOption{
		goka.WithViewConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			s := c.Sarama()
			s.ClientID = clientID
			return sarama.NewConsumer(brokers, s)
		}),
		goka.WithViewTopicManagerBuilder(goka.TopicManagerBuilderWithConfig(c.Sarama(), c.TopicManagerConfig())),
		goka.WithViewLogger(Logger(log)),
		goka.WithViewClientID(c.withDefaults().ClientID),
		goka.WithViewAutoReconnect(),
	}
}

// Logger adapts slog to goka's logger; goka's messages are logged at debug level, with
// "component=goka", and with anything that could be a card number masked (goka names record
// keys, and some keys are card numbers).
func Logger(log *slog.Logger) goka.Logger {
	if log == nil {
		log = slog.Default()
	}
	return gokaLogger{log.With("component", "goka")}
}

type gokaLogger struct{ log *slog.Logger }

func (l gokaLogger) Print(v ...any)   { l.debug(fmt.Sprint(v...)) }
func (l gokaLogger) Println(v ...any) { l.debug(fmt.Sprintln(v...)) }
func (l gokaLogger) Printf(format string, v ...any) {
	l.debug(fmt.Sprintf(format, v...))
}

func (l gokaLogger) debug(msg string) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(card.Redact(strings.TrimSpace(msg)))
	}
}

// producerRetries and producerBackoff make a producer retry for about two minutes: 50ms,
// doubling up to 1s, then every second.
const producerRetries = 120

func producerBackoff(retries, _ int) time.Duration {
	return min(50*time.Millisecond<<min(retries, 5), time.Second)
}
