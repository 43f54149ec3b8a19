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

	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// KafkaBank is the ingress's way to the authorizer: it writes requests to their topics with
// goka emitters (so they partition exactly like the authorizer's inputs) and reads the answers
// from its own partition of the replies topic. Each replica reads one partition, so replies
// are never broadcast to every replica; replicas that share a partition (more replicas than
// partitions) still each see only answers they can match, and drop the rest.
type KafkaBank struct {
	topo      processors.Topology
	log       *slog.Logger
	payments  *goka.Emitter
	commands  *goka.Emitter
	consumer  sarama.Consumer
	replies   sarama.PartitionConsumer
	partition int32
	replyKey  string
	corr      *Correlator
	legs      *prometheus.HistogramVec // nil until Register
	ready     atomic.Bool
	closeOnce sync.Once
}

// Register exports, on reg, how long each leg of a payment's trip through Kafka takes:
//
//	codebank_ingress_payment_leg_seconds{leg="request"}  request written → decision (authorizer's clock)
//	codebank_ingress_payment_leg_seconds{leg="reply"}    decision → reply back at the waiting call
//
// The two legs compare this host's clock with the authorizer's, so on different hosts they are
// off by the clocks' skew; their sum, and codebank_ingress_request_seconds, are not.
func (b *KafkaBank) Register(reg prometheus.Registerer) error {
	b.legs = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "codebank_ingress_payment_leg_seconds",
		Help:    "Time of each leg of a payment through Kafka: request (written to decided) and reply (decided to back at the call).",
		Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, 1},
	}, []string{"leg"})
	return reg.Register(b.legs)
}

// NewKafkaBank connects to Kafka and starts reading replies from replyPartition of the replies
// topic; a negative replyPartition picks one (see ReplyPartition). Run must be called to
// deliver replies.
func NewKafkaBank(cfg kafkaconf.Config, topo processors.Topology, replyPartition int, log *slog.Logger) (*KafkaBank, error) {
	if log == nil {
		log = slog.Default()
	}
	replies := topo.Replies()
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
	b := &KafkaBank{topo: topo, log: log, partition: int32(replyPartition), replyKey: key, corr: NewCorrelator()}

	b.consumer, err = sarama.NewConsumer(cfg.Brokers, cfg.Sarama())
	if err != nil {
		return nil, fmt.Errorf("create reply consumer: %w", err)
	}
	// Replies only matter to calls waiting now: start at the end of the partition.
	b.replies, err = b.consumer.ConsumePartition(replies.Name, b.partition, sarama.OffsetNewest)
	if err != nil {
		b.consumer.Close()
		return nil, fmt.Errorf("consume %s/%d: %w", replies.Name, b.partition, err)
	}
	payments, commands := topo.PaymentRequests(), topo.CardCommands()
	b.payments, err = goka.NewEmitter(cfg.Brokers, goka.Stream(payments.Name), payments.Codec, cfg.EmitterOptions(log)...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("create emitter for %s: %w", payments.Name, err)
	}
	b.commands, err = goka.NewEmitter(cfg.Brokers, goka.Stream(commands.Name), commands.Codec, cfg.EmitterOptions(log)...)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("create emitter for %s: %w", commands.Name, err)
	}
	b.ready.Store(true)
	log.Info("ingress reading replies", "topic", replies.Name, "partition", b.partition, "reply_key", key)
	return b, nil
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
			v, err := codec.Decode(msg.Value)
			if err != nil {
				b.log.Warn("undecodable reply", "offset", msg.Offset, "err", err)
				continue
			}
			b.corr.Deliver(v.(*eventsv1.Reply))
		}
	}
}

// Ready reports whether the bank can take requests.
func (b *KafkaBank) Ready() bool { return b.ready.Load() }

// ErrUnavailable is returned when a request could not be written to Kafka.
var ErrUnavailable = errors.New("payment network unavailable")

// Pay writes a payment request for the card and waits for its decision.
func (b *KafkaBank) Pay(ctx context.Context, number string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	req.ReplyKey = b.replyKey
	r, err := b.call(ctx, b.payments, number, req.GetTransactionId(), req)
	if err != nil {
		return nil, err
	}
	if r.GetPayment() == nil {
		return nil, fmt.Errorf("reply to payment %s has no payment body", req.GetTransactionId())
	}
	return r.GetPayment(), nil
}

// Command writes a card command and waits for its answer.
func (b *KafkaBank) Command(ctx context.Context, number string, cmd *eventsv1.CardCommand) (*eventsv1.CardReply, error) {
	cmd.ReplyKey = b.replyKey
	r, err := b.call(ctx, b.commands, number, cmd.GetCommandId(), cmd)
	if err != nil {
		return nil, err
	}
	if r.GetCard() == nil {
		return nil, fmt.Errorf("reply to command %s has no card body", cmd.GetCommandId())
	}
	return r.GetCard(), nil
}

func (b *KafkaBank) call(ctx context.Context, e *goka.Emitter, key, id string, msg any) (*eventsv1.Reply, error) {
	reply, cancel := b.corr.Wait(id)
	defer cancel()
	start := time.Now()
	sent := make(chan error, 1)
	promise, err := e.Emit(key, msg)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	promise.Then(func(err error) { sent <- err })
	for {
		select {
		case r := <-reply:
			if b.legs != nil && r.GetPayment() != nil && !r.GetPayment().GetDuplicate() {
				decided := time.UnixMicro(r.GetPayment().GetOutcome().GetDecidedAtUnixUs())
				b.legs.WithLabelValues("request").Observe(decided.Sub(start).Seconds())
				b.legs.WithLabelValues("reply").Observe(time.Since(decided).Seconds())
			}
			return r, nil
		case err := <-sent:
			if err != nil {
				return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
			}
			sent = nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Close stops reading replies and flushes the emitters.
func (b *KafkaBank) Close() error {
	var errs []error
	b.closeOnce.Do(func() {
		b.ready.Store(false)
		for _, e := range []*goka.Emitter{b.payments, b.commands} {
			if e != nil {
				errs = append(errs, e.Finish())
			}
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
