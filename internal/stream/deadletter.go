package stream

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
)

// Headers of a dead-letter record, beside the headers the record had.
const (
	HeaderSourceTopic     = "codebank.dlq.topic"
	HeaderSourcePartition = "codebank.dlq.partition"
	HeaderSourceOffset    = "codebank.dlq.offset"
	HeaderError           = "codebank.dlq.error"
	HeaderConsumer        = "codebank.dlq.consumer"
)

// DeadLetterHeaders returns the headers that say where a dead-letter record came from and why
// it was refused. The error text is redacted (card.Redact): no card number reaches a header.
func DeadLetterHeaders(consumer, topic string, partition int32, offset int64, err error) goka.Headers {
	return goka.Headers{
		HeaderConsumer:        []byte(consumer),
		HeaderSourceTopic:     []byte(topic),
		HeaderSourcePartition: []byte(strconv.Itoa(int(partition))),
		HeaderSourceOffset:    []byte(strconv.FormatInt(offset, 10)),
		HeaderError:           []byte(card.Redact(err.Error())),
	}
}

// DeadLetters keeps a bad record from stopping its consumer. A record that does not decode, that
// breaks its topic's contract, or whose handling panics is copied unchanged to the consumer's
// dead-letter topic for that input (Topology.DeadLetters), with DeadLetterHeaders; the copy is
// counted and logged without any card number, and the partition flows on. In a goka group the
// record's offset is committed only once the copy is acknowledged, like any other output of the
// callback, so a crash in between dead-letters it again rather than losing it.
//
// Metric (one per process, whichever component registers it first):
//
//	codebank_dead_letters_total{group,topic}  records copied to a dead-letter topic, by consumer and source topic
type DeadLetters struct {
	log   *slog.Logger
	count *prometheus.CounterVec
}

// NewDeadLetters returns the dead-letter handling of a process, counting on reg (nil: a
// private registry). Components of one process may share it, or each build their own on the
// same registry.
func NewDeadLetters(reg prometheus.Registerer, log *slog.Logger) *DeadLetters {
	d := Deps{Registerer: reg, Log: log}.WithDefaults()
	reg, log = d.Registerer, d.Log
	count := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "codebank_dead_letters_total",
		Help: "Records copied to a dead-letter topic because they could not be decoded or broke their contract, by consumer and source topic.",
	}, []string{"group", "topic"})
	if err := reg.Register(count); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			panic(err)
		}
		count = already.ExistingCollector.(*prometheus.CounterVec)
	}
	return &DeadLetters{log: log, count: count}
}

// Callback handles one decoded record of a goka input. A non-nil error refuses the record: it
// must be returned before the callback changed any state, and the record is dead-lettered.
type Callback func(ctx goka.Context, msg any) error

// Input returns the goka edges that read in.Topic with cb through the dead-letter guard: the
// input, decoded with a codecs.Framed codec, and the output to in.DeadLetters.
func (d *DeadLetters) Input(consumer string, in Input, cb Callback) []goka.Edge {
	return []goka.Edge{
		goka.Input(goka.Stream(in.Topic.Name), codecs.Framed(in.Topic.Codec), d.guard(consumer, in, cb)),
		goka.Output(goka.Stream(in.DeadLetters.Name), in.DeadLetters.Codec),
	}
}

// Loop is Input for the group's loopback topic.
func (d *DeadLetters) Loop(consumer string, in Input, cb Callback) []goka.Edge {
	return []goka.Edge{
		goka.Loop(codecs.Framed(in.Topic.Codec), d.guard(consumer, in, cb)),
		goka.Output(goka.Stream(in.DeadLetters.Name), in.DeadLetters.Codec),
	}
}

func (d *DeadLetters) guard(consumer string, in Input, cb Callback) goka.ProcessCallback {
	dlq := goka.Stream(in.DeadLetters.Name)
	d.count.WithLabelValues(consumer, in.Topic.Name) // the series exists, at 0, from the start
	return func(ctx goka.Context, msg any) {
		f, ok := msg.(*codecs.Frame)
		if !ok { // the goka tester hands values as they were given
			f = &codecs.Frame{Value: msg}
		}
		err := f.Err
		if err == nil {
			err = d.call(ctx, cb, f.Value)
		}
		if err == nil {
			return
		}
		raw := f.Raw
		if raw == nil { // the tester handed a value over: encode it
			if b, encErr := in.Topic.Codec.Encode(f.Value); encErr == nil {
				raw = b
			}
		}
		h := ctx.Headers().Merged(DeadLetterHeaders(consumer, string(ctx.Topic()), ctx.Partition(), ctx.Offset(), err))
		ctx.Emit(dlq, ctx.Key(), raw, goka.WithCtxEmitHeaders(h))
		d.Counted(consumer, string(ctx.Topic()), ctx.Partition(), ctx.Offset(), ctx.Key(), err)
	}
}

// call runs cb, turning a panic into an error: a record that trips a bug is dead-lettered
// instead of stopping the processor at every restart.
func (d *DeadLetters) call(ctx goka.Context, cb Callback, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			d.log.Error("record handling panicked; dead-lettering it", "topic", string(ctx.Topic()),
				"panic", card.Redact(fmt.Sprint(r)), "stack", card.Redact(string(debug.Stack())))
			err = fmt.Errorf("handling panicked: %v", r)
		}
	}()
	return cb(ctx, v)
}

// Counted counts and logs one dead-lettered record (key is logged redacted). Consumers outside
// goka call it after their own copy (DeadLetterWriter does).
func (d *DeadLetters) Counted(consumer, topic string, partition int32, offset int64, key string, err error) {
	d.count.WithLabelValues(consumer, topic).Inc()
	d.log.Warn("record dead-lettered", "consumer", consumer, "topic", topic, "partition", partition, "offset", offset,
		"key", card.Redact(key), "err", card.Redact(err.Error()))
}

// DeadLetterWriter copies records to one dead-letter topic for a consumer outside goka (the
// ingress's reply reader, the dashboard's feed), which commits no offsets: the copy is
// asynchronous, and a record whose copy fails is logged.
type DeadLetterWriter struct {
	consumer string
	d        *DeadLetters
	emitter  *goka.Emitter
}

// NewDeadLetterWriter returns a writer to in.DeadLetters for consumer.
func NewDeadLetterWriter(kc kafkaconf.Config, consumer string, in Input, d *DeadLetters, log *slog.Logger) (*DeadLetterWriter, error) {
	e, err := goka.NewEmitter(kc.Brokers, goka.Stream(in.DeadLetters.Name), in.DeadLetters.Codec, kc.EmitterOptions(log)...)
	if err != nil {
		return nil, fmt.Errorf("create emitter for %s: %w", in.DeadLetters.Name, err)
	}
	d.count.WithLabelValues(consumer, in.Topic.Name) // the series exists, at 0, from the start
	return &DeadLetterWriter{consumer: consumer, d: d, emitter: e}, nil
}

// Write copies a record of topic (its key, raw value and headers) with the dead-letter
// headers, and counts it.
func (w *DeadLetterWriter) Write(topic string, partition int32, offset int64, key, raw []byte, headers goka.Headers, err error) {
	h := headers.Merged(DeadLetterHeaders(w.consumer, topic, partition, offset, err))
	if raw == nil {
		raw = []byte{}
	}
	p, emitErr := w.emitter.EmitWithHeaders(string(key), raw, h)
	if emitErr == nil {
		p.Then(func(err error) {
			if err != nil {
				w.d.log.Error("copy to dead-letter topic failed", "consumer", w.consumer, "topic", topic, "offset", offset, "err", err)
			}
		})
	} else {
		w.d.log.Error("copy to dead-letter topic failed", "consumer", w.consumer, "topic", topic, "offset", offset, "err", emitErr)
	}
	w.d.Counted(w.consumer, topic, partition, offset, string(key), err)
}

// Close flushes the copies in flight.
func (w *DeadLetterWriter) Close() error { return w.emitter.Finish() }
