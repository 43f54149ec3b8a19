package grpcgateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// KafkaBank is the ingress's way to the authorizer: it writes requests to their topics with
// goka emitters (so they partition exactly like the authorizer's inputs) and reads the answers
// from its own partition of the replies topic. Each replica reads one partition, so replies
// are never broadcast to every replica; replicas that share a partition (more replicas than
// partitions) still each see only answers they can match, and drop the rest.
//
// Every call waits under a correlation id the bank generates for it (Correlator.NewID) and is
// handed only a reply for its own card, transaction and amount. A reply that does not decode,
// breaks its contract or names a call it does not answer is copied to the ingress's dead-letter
// topic of the replies (processors.Topology.DeadLetters).
//
// Metrics (registered by NewKafkaBank):
//
//	codebank_ingress_payment_leg_seconds{leg="request"}  request written → decision (authorizer's clock)
//	codebank_ingress_payment_leg_seconds{leg="reply"}    decision → reply back at the waiting call
//	codebank_ingress_bank_inflight                       calls waiting for the authorizer
//	codebank_ingress_overloaded_total                    calls refused because MaxInFlight calls were waiting
//	codebank_ingress_reply_timeouts_total                calls that ended (deadline or cancel) before their reply came
//	codebank_dead_letters_total{group="ingress",topic}   replies dead-lettered
//
// The two legs compare this host's clock with the authorizer's, so on different hosts they are
// off by the clocks' skew; their sum, and codebank_ingress_request_seconds, are not.
type KafkaBank struct {
	topo        processors.Topology
	log         *slog.Logger
	kc          kafkaconf.Config
	out         atomic.Pointer[emitters] // the live generation's, swapped by Switch
	consumer    sarama.Consumer
	replies     sarama.PartitionConsumer
	dead        *stream.DeadLetterWriter
	partition   int32
	replyKey    string
	corr        *Correlator
	maxInFlight int64
	inflight    atomic.Int64
	m           bankMetrics
	ready       atomic.Bool
	closeOnce   sync.Once
}

// DefaultMaxInFlight is the default of BankConfig.MaxInFlight: at 10,000 payments a second and
// a quarter of a second each, about 2,500 calls wait at once.
const DefaultMaxInFlight = 20_000

// BankConfig configures a KafkaBank.
type BankConfig struct {
	// Kafka reaches the cluster.
	Kafka kafkaconf.Config
	// Topology names the deployment's topics.
	Topology processors.Topology
	// ReplyPartition is the partition of the replies topic this replica reads; negative picks one
	// (see ReplyPartition).
	ReplyPartition int
	// MaxInFlight is how many calls may wait for the authorizer at once; beyond it a call fails
	// at once with ErrOverloaded (default DefaultMaxInFlight).
	MaxInFlight int
}

// BankDeps are a KafkaBank's collaborators: its Registerer receives the bank's metrics.
type BankDeps = stream.Deps

type bankMetrics struct {
	legs       *prometheus.HistogramVec
	inflight   prometheus.GaugeFunc
	overloaded prometheus.Counter
	timeouts   prometheus.Counter
}

// NewKafkaBank connects to Kafka and starts reading replies from its partition of the replies
// topic. Run must be called to deliver replies.
func NewKafkaBank(cfg BankConfig, deps BankDeps) (*KafkaBank, error) {
	deps = deps.WithDefaults()
	log, reg := deps.Log, deps.Registerer
	kc, topo := cfg.Kafka, cfg.Topology
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	replies := topo.Replies()
	replyPartition := cfg.ReplyPartition
	if replyPartition < 0 {
		replyPartition = ReplyPartition(replies.Partitions)
	}
	if replyPartition >= replies.Partitions {
		return nil, fmt.Errorf("reply partition %d: the replies topic has %d partitions", replyPartition, replies.Partitions)
	}
	key, err := ReplyKey(replies.Name, int32(replyPartition), replies.Partitions)
	if err != nil {
		return nil, err
	}
	b := &KafkaBank{topo: topo, kc: kc, log: log, partition: int32(replyPartition), replyKey: key, corr: NewCorrelator(),
		maxInFlight: int64(cfg.MaxInFlight)}
	b.m = bankMetrics{
		legs: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "codebank_ingress_payment_leg_seconds",
			Help:    "Time of each leg of a payment through Kafka: request (written to decided) and reply (decided to back at the call).",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, 1},
		}, []string{"leg"}),
		inflight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "codebank_ingress_bank_inflight", Help: "Calls waiting for the authorizer's answer.",
		}, func() float64 { return float64(b.inflight.Load()) }),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_ingress_overloaded_total", Help: "Calls refused with RESOURCE_EXHAUSTED because the limit of calls in flight was reached.",
		}),
	}
	b.m.timeouts = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "codebank_ingress_reply_timeouts_total", Help: "Calls to the authorizer that ended (their deadline passed, or the caller left) before its reply came.",
	})
	if err := registerAll(reg, b.m.legs, b.m.inflight, b.m.overloaded, b.m.timeouts); err != nil {
		return nil, err
	}

	b.consumer, err = sarama.NewConsumer(kc.Brokers, kc.Sarama())
	if err != nil {
		return nil, fmt.Errorf("create reply consumer: %w", err)
	}
	// Replies only matter to calls waiting now: start at the end of the partition.
	b.replies, err = b.consumer.ConsumePartition(replies.Name, b.partition, sarama.OffsetNewest)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("consume %s/%d: %w", replies.Name, b.partition, err)
	}
	in := topo.Input(processors.ConsumerIngress, replies)
	if b.dead, err = stream.NewDeadLetterWriter(kc, processors.ConsumerIngress, in, stream.NewDeadLetters(reg, log), log); err != nil {
		b.Close()
		return nil, err
	}
	out, err := newEmitters(kc, topo, log)
	if err != nil {
		b.Close()
		return nil, err
	}
	b.out.Store(out)
	b.ready.Store(true)
	log.Info("ingress reading replies", "topic", replies.Name, "partition", b.partition, "reply_key", key)
	return b, nil
}

// emitters write one generation's requests (processors.Topology.Generation).
type emitters struct {
	generation         int
	payments, commands *goka.Emitter
}

func newEmitters(kc kafkaconf.Config, topo processors.Topology, log *slog.Logger) (*emitters, error) {
	payments, commands := topo.PaymentRequests(), topo.CardCommands()
	e := &emitters{generation: topo.Generation}
	var err error
	if e.payments, err = goka.NewEmitter(kc.Brokers, goka.Stream(payments.Name), payments.Codec, kc.EmitterOptions(log)...); err != nil {
		return nil, fmt.Errorf("create emitter for %s: %w", payments.Name, err)
	}
	if e.commands, err = goka.NewEmitter(kc.Brokers, goka.Stream(commands.Name), commands.Codec, kc.EmitterOptions(log)...); err != nil {
		e.payments.Finish()
		return nil, fmt.Errorf("create emitter for %s: %w", commands.Name, err)
	}
	return e, nil
}

func (e *emitters) finish() error {
	return errors.Join(e.payments.Finish(), e.commands.Finish())
}

// Switch writes requests to the generation of topo from now on (internal/generations): the
// authorizers forward what was written to the previous one.
func (b *KafkaBank) Switch(topo processors.Topology) error {
	if cur := b.out.Load(); cur != nil && cur.generation == topo.Generation {
		return nil
	}
	out, err := newEmitters(b.kc, topo, b.log)
	if err != nil {
		return err
	}
	if old := b.out.Swap(out); old != nil {
		old.finish()
	}
	b.log.Info("ingress writing requests to a new generation", "generation", max(topo.Generation, 1), "topic", topo.PaymentRequests().Name,
		"partitions", topo.PaymentRequests().Partitions)
	return nil
}

func registerAll(reg prometheus.Registerer, cs ...prometheus.Collector) error {
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// ReplyPartition picks the replies partition of this replica: the ordinal of a StatefulSet pod
// (hostname ending in -N) modulo partitions, else a random one.
func ReplyPartition(partitions int) int {
	host, _ := os.Hostname()
	if i := strings.LastIndexByte(host, '-'); i >= 0 {
		if n, err := strconv.Atoi(host[i+1:]); err == nil && n >= 0 {
			return n % partitions
		}
	}
	return rand.IntN(partitions)
}

// ReplyKey returns a record key that goka's partitioner (FNV-1a, like every producer into a
// goka topic) sends to partition p of a topic with n partitions.
func ReplyKey(topic string, p int32, n int) (string, error) {
	part := sarama.NewCustomHashPartitioner(goka.DefaultHasher())(topic)
	for i := 0; i < 1_000_000; i++ {
		key := "reply-" + strconv.Itoa(int(p)) + "-" + strconv.Itoa(i)
		got, err := part.Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, int32(n))
		if err != nil {
			return "", err
		}
		if got == p {
			return key, nil
		}
	}
	return "", fmt.Errorf("no reply key found for partition %d of %d", p, n)
}

// Run delivers replies to waiting calls until ctx ends or the consumer fails.
func (b *KafkaBank) Run(ctx context.Context) error {
	codec := b.topo.Replies().Codec
	for {
		select {
		case <-ctx.Done():
			return nil
		case err, ok := <-b.replies.Errors():
			if !ok {
				return errors.New("reply consumer closed")
			}
			b.log.Warn("reply consumer", "err", err)
		case msg, ok := <-b.replies.Messages():
			if !ok {
				return errors.New("reply consumer closed")
			}
			if err := b.deliver(codec, msg); err != nil {
				b.dead.Write(msg.Topic, msg.Partition, msg.Offset, msg.Key, msg.Value, goka.HeadersFromSarama(msg.Headers), err)
			}
		}
	}
}

// ErrReplyMismatch is why a reply that names a waiting call but does not answer it is
// dead-lettered.
var ErrReplyMismatch = errors.New("reply does not answer the call it names (card, transaction or amount differ)")

// deliver hands one reply record to its call; an error says why the record is dead-lettered.
func (b *KafkaBank) deliver(codec goka.Codec, msg *sarama.ConsumerMessage) error {
	if msg.Value == nil {
		return nil
	}
	v, err := codec.Decode(msg.Value)
	if err != nil {
		return err
	}
	r := v.(*eventsv1.Reply)
	if err := codecs.CheckReply(r); err != nil {
		return err
	}
	if b.corr.Deliver(r) == Mismatched {
		return ErrReplyMismatch
	}
	return nil
}

// Ready reports whether the bank can take requests.
func (b *KafkaBank) Ready() bool { return b.ready.Load() }

// Errors of KafkaBank's calls.
var (
	// ErrUnavailable is returned when a request could not be written to Kafka.
	ErrUnavailable = errors.New("payment network unavailable")
	// ErrOverloaded is returned, at once, when BankConfig.MaxInFlight calls are already
	// waiting.
	ErrOverloaded = errors.New("too many calls in flight")
	// ErrRefused is returned (wrapped, with the authorizer's message) when the authorizer
	// refused a request as malformed.
	ErrRefused = errors.New("request refused by the authorizer")
)

// Pay writes a payment request for the card of token and waits for its decision: a reply for
// this card, transaction id and amount.
func (b *KafkaBank) Pay(ctx context.Context, token string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	req.ReplyKey = b.replyKey
	req.CorrelationId = b.corr.NewID()
	start := time.Now()
	r, err := b.call(ctx, func(e *emitters) *goka.Emitter { return e.payments }, token, req.CorrelationId, req, func(r *eventsv1.Reply) bool {
		if e := r.GetError(); e != nil {
			return e.GetCardToken() == token
		}
		p := r.GetPayment()
		return p != nil && p.GetCardToken() == token &&
			p.GetOutcome().GetTransactionId() == req.GetTransactionId() && p.GetOutcome().GetAmountCents() == req.GetAmountCents()
	})
	if err != nil {
		return nil, err
	}
	p := r.GetPayment()
	if !p.GetDuplicate() && !p.GetConflict() {
		decided := time.UnixMicro(p.GetOutcome().GetDecidedAtUnixUs())
		b.m.legs.WithLabelValues("request").Observe(decided.Sub(start).Seconds())
		b.m.legs.WithLabelValues("reply").Observe(time.Since(decided).Seconds())
	}
	return p, nil
}

// Command writes a card command for the card of token and waits for its answer: a reply about
// this card.
func (b *KafkaBank) Command(ctx context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.CardReply, error) {
	cmd.ReplyKey = b.replyKey
	cmd.CommandId = b.corr.NewID()
	r, err := b.call(ctx, func(e *emitters) *goka.Emitter { return e.commands }, token, cmd.CommandId, cmd, func(r *eventsv1.Reply) bool {
		if e := r.GetError(); e != nil {
			return e.GetCardToken() == token
		}
		return r.GetCard() != nil && r.GetCard().GetCardToken() == token
	})
	if err != nil {
		return nil, err
	}
	return r.GetCard(), nil
}

func (b *KafkaBank) call(ctx context.Context, emitter func(*emitters) *goka.Emitter, key, id string, msg any, accept func(*eventsv1.Reply) bool) (*eventsv1.Reply, error) {
	if b.inflight.Add(1) > b.maxInFlight {
		b.inflight.Add(-1)
		b.m.overloaded.Inc()
		return nil, ErrOverloaded
	}
	defer b.inflight.Add(-1)
	reply, cancel := b.corr.Wait(id, accept)
	defer cancel()
	sent := make(chan error, 1)
	promise, err := emitter(b.out.Load()).Emit(key, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	promise.Then(func(err error) { sent <- err })
	for {
		select {
		case r := <-reply:
			if e := r.GetError(); e != nil {
				return nil, fmt.Errorf("%w: %s", ErrRefused, e.GetMessage())
			}
			return r, nil
		case err := <-sent:
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			sent = nil
		case <-ctx.Done():
			b.m.timeouts.Inc()
			return nil, ctx.Err()
		}
	}
}

// Close stops reading replies and flushes the emitters.
func (b *KafkaBank) Close() error {
	var errs []error
	b.closeOnce.Do(func() {
		b.ready.Store(false)
		if out := b.out.Swap(nil); out != nil {
			errs = append(errs, out.finish())
		}
		if b.dead != nil {
			errs = append(errs, b.dead.Close())
		}
		if b.replies != nil {
			errs = append(errs, b.replies.Close())
		}
		if b.consumer != nil {
			errs = append(errs, b.consumer.Close())
		}
	})
	return errors.Join(errs...)
}

// Operate writes a card command carrying an operation for the card of token and waits for its
// answer: a reply about this card, operation id and amount.
func (b *KafkaBank) Operate(ctx context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.OperationReply, error) {
	cmd.ReplyKey = b.replyKey
	cmd.CommandId = b.corr.NewID()
	op := cmd.GetOperation()
	r, err := b.call(ctx, func(e *emitters) *goka.Emitter { return e.commands }, token, cmd.CommandId, cmd, func(r *eventsv1.Reply) bool {
		if e := r.GetError(); e != nil {
			return e.GetCardToken() == token
		}
		o := r.GetOperation()
		return o != nil && o.GetCardToken() == token && o.GetOperationId() == op.GetOperationId() && o.GetAmountCents() == op.GetAmountCents()
	})
	if err != nil {
		return nil, err
	}
	return r.GetOperation(), nil
}
