// Package statements is the goka processor that turns the authorizer's approved results into
// the lines of each card's monthly statement, and the Reader that serves statements from a goka
// view of those lines.
//
// # One record a line
//
// Each approved payment, and each reversal, refund and bill payment, becomes one record of its
// own in a compacted topic
// (processors.Topology.StatementLines), keyed by LineKey: the card token, the time the bank
// approved it (µs, fixed width) and a digest of its payment key. The key alone orders a card's
// lines by time, so a month is the range of keys between two instants and needs no index; the
// processor keeps no state, reads no table and writes nothing but the line. A result costs one
// record of about a hundred bytes, instead of the card's state and a page of up to a hundred
// lines rewritten for every purchase, with a second hop through a loopback topic to reach it.
//
// # Exactly once, in effect
//
// A line's key is a function of its payment: a result delivered again (after a crash, before
// the group's offset commit) or published again by the authorizer (always byte for byte as the
// first time) writes the same key with the same value, and compaction keeps one. Nothing needs
// remembering to tell a payment seen before. Rejected results never reach a statement.
//
// # A month as a bill
//
// A line's kind says whether it adds to what the card owes (a purchase) or takes from it (a
// reversal, a refund, a bill payment); amounts are always positive. A month's bill (Bills) is
// computed from the card's lines when it is read: opening balance (the previous month's
// closing), purchases, credits, payments, closing balance, due date (the 10th of the next month,
// UTC) and minimum payment (MinimumPayment). Nothing of it is stored: the group stays without
// state, and an old line is never rewritten.
//
// # Records it cannot use
//
// Results are read through stream.DeadLetters: one that does not decode or breaks
// docs/results-topic.md is copied to the group's dead-letter topic for it, and the partition
// flows on. The Reader fails a card with a line that does not decode (ErrUnreadable) rather
// than show it without it.
//
// Metrics (registered by New):
//
//	codebank_statements_lines_total                         lines written, of every kind (a result read again writes its line again)
//	codebank_statements_lag_seconds                         from a payment's authorization to its line written
//	codebank_dead_letters_total{group="statements",topic}   records dead-lettered (stream.DeadLetters)
package statements

import (
	"errors"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// MonthLayout is the layout of months in the API: "2026-11".
const MonthLayout = "2006-01"

// Processor writes statement lines. Build it with New, define its goka group with Graph.
type Processor struct {
	cfg   Config
	log   *slog.Logger
	dead  *stream.DeadLetters
	lines goka.Stream
	m     metrics
}

// Config configures the statements processor.
type Config struct {
	// Topology names the deployment's topics and groups.
	Topology processors.Topology
}

// Deps are the statements processor's collaborators: its Registerer receives the metrics of
// the package doc.
type Deps = stream.Deps

// New returns a statements processor.
func New(cfg Config, deps Deps) *Processor {
	deps = deps.WithDefaults()
	return &Processor{cfg: cfg, log: deps.Log, m: newMetrics(deps.Registerer), dead: stream.NewDeadLetters(deps.Registerer, deps.Log),
		lines: goka.Stream(cfg.Topology.StatementLines().Name)}
}

// Graph returns the statements group: results in (with their dead-letter topic), lines out.
func (p *Processor) Graph() *goka.GroupGraph {
	topo := p.cfg.Topology
	results := topo.Input(processors.ConsumerStatements, topo.Results())
	lines := topo.StatementLines()
	edges := append(p.dead.Input(processors.ConsumerStatements, results, p.apply),
		goka.Output(goka.Stream(lines.Name), lines.Codec))
	return goka.DefineGroup(topo.StatementsGroup(), edges...)
}

// ErrUnreadable is returned (wrapped) for a card with a stored line that does not decode: its
// statement cannot be shown until it is repaired.
var ErrUnreadable = errors.New("statement line unreadable")

// apply writes the line of one approved result (key: card token).
func (p *Processor) apply(ctx goka.Context, msg any) error {
	r := msg.(*codecs.Result)
	if err := codecs.CheckResult(ctx.Key(), r); err != nil {
		return err
	}
	if r.Status != codecs.StatusApproved {
		return nil
	}
	line, at := LineOf(r)
	ctx.Emit(p.lines, LineKey(ctx.Key(), at, r.PaymentKey), line)
	p.m.lines.Inc()
	p.m.lag.Observe(max(time.Since(at).Seconds(), 0))
	return nil
}

// LineOf returns the statement line of an approved result that passed codecs.CheckResult (a
// purchase or an operation), and the time the bank approved it.
func LineOf(r *codecs.Result) (*eventsv1.StatementLine, time.Time) {
	t, _ := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
	return &eventsv1.StatementLine{
		TransactionId: r.TransactionID, AuthorizedAtUnixMs: t.UnixMilli(),
		Store: r.Store, Description: r.Description, AmountCents: r.AmountCents,
		Kind: lineKind(r.KindOf()), OperationId: r.OperationID,
	}, t
}

// lineKind is the kind of a line of a result of kind k (codecs.Result.KindOf).
func lineKind(k string) eventsv1.OperationKind {
	switch k {
	case codecs.KindReversal:
		return eventsv1.OperationKind_OPERATION_KIND_REVERSAL
	case codecs.KindRefund:
		return eventsv1.OperationKind_OPERATION_KIND_REFUND
	case codecs.KindBillPayment:
		return eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT
	}
	return eventsv1.OperationKind_OPERATION_KIND_PURCHASE
}

type metrics struct {
	lines prometheus.Counter
	lag   prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		lines: prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_statements_lines_total",
			Help: "Statement lines written, one per approved result read (a result read again writes its line again)."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "codebank_statements_lag_seconds",
			Help:    "Time from a payment's authorization to its statement line written.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
	}
	r.MustRegister(m.lines, m.lag)
	return m
}
