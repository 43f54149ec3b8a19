// Package statements is the goka processor that builds each card's monthly statement from the
// authorizer's results, and the Reader that serves statements from a goka view of its table.
//
// # Keys and bounds
//
// A statement must not be one value that grows forever, nor one that is rewritten whole for
// every purchase. The processor keeps two kinds of values in its table
// (processors.Topology.StatementsTable):
//
//   - under the card token, the card's state: each month's count and total, the offset of the
//     last result applied, and the latest applied transaction ids; it grows by one small entry
//     a month;
//   - under "card token|YYYY-MM|page", up to PageSize lines of that month, in the order the
//     bank approved them.
//
// A result (keyed by card token) updates the card's state, which numbers the line within its
// month, and the line is sent through the group's loopback to the key of its page. A page
// value is thus bounded by PageSize and an append rewrites one page, not the month.
//
// # Exactly once, in effect
//
// A result is applied once: a redelivered one (its offset is at or below the card's
// last_offset) or one the authorizer published again (its payment key is among the card's
// recent ones) changes no total; its line is placed again at the same line number, which
// overwrites the identical line. Rejected results never reach a statement.
//
// # Records it cannot use
//
// Both inputs are read through processors.DeadLetters: a result that does not decode or breaks
// docs/results-topic.md, a placement that breaks its contract, and a record whose card state or
// page in the table does not decode are copied to the group's dead-letter topic for their input,
// and the partition flows on. The Reader fails a card whose stored state does not decode
// (ErrUnreadable) rather than showing it empty.
//
// Metrics (registered by New):
//
//	codebank_statements_lines_total                         purchases added to statements
//	codebank_statements_duplicates_total                    results applied before, ignored
//	codebank_statements_lag_seconds                         from a payment's authorization to its line added
//	codebank_dead_letters_total{group="statements",topic}   records dead-lettered (processors.DeadLetters)
package statements

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// PageSize is the number of lines in one stored page of a month.
const PageSize = 100

// keepApplied is how many of a card's applied payments are remembered to recognise a result the
// authorizer published again. The authorizer publishes a result again only for an outcome it
// remembers, one of a card's latest authorizer.DefaultKeep (128), approvals and rejections
// alike: the same number of approvals covers them all. The card's state is read and written
// whole for every purchase, so each remembered payment costs on every one.
const keepApplied = 128

// MonthLayout is the layout of months in keys and the API: "2026-11".
const MonthLayout = "2006-01"

// Processor builds statements. Build it with New, define its goka group with Graph.
type Processor struct {
	cfg  Config
	log  *slog.Logger
	dead *processors.DeadLetters
	m    metrics
}

// Config configures the statements processor.
type Config struct {
	// Topology names the deployment's topics and groups.
	Topology processors.Topology
}

// Deps are the statements processor's collaborators.
type Deps struct {
	// Registerer receives the metrics of the package doc (default: a private registry).
	Registerer prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// New returns a statements processor.
func New(cfg Config, deps Deps) *Processor {
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	return &Processor{cfg: cfg, log: deps.Log, m: newMetrics(deps.Registerer), dead: processors.NewDeadLetters(deps.Registerer, deps.Log)}
}

// Graph returns the statements group: results in, placements looped back to pages (each input
// with its dead-letter topic), the table persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	topo := p.cfg.Topology
	results := topo.Input(processors.ConsumerStatements, topo.Results())
	loop := topo.Input(processors.ConsumerStatements, topo.StatementsLoop())
	edges := append(p.dead.Input(processors.ConsumerStatements, results, p.apply),
		p.dead.Loop(processors.ConsumerStatements, loop, p.place)...)
	// The table in the format of topo.StatementsTable, read lazily (stored).
	edges = append(edges, goka.Persist(storedCodec{}))
	return goka.DefineGroup(topo.StatementsGroup(), edges...)
}

// PageKey is the table key of page n of a card's month.
func PageKey(token, month string, n int64) string {
	return fmt.Sprintf("%s|%s|%04d", token, month, n)
}

// ErrUnreadable is returned (wrapped) for a card whose stored statement state or page does not
// decode: its statement cannot be shown, nor results applied to it, until it is repaired.
var ErrUnreadable = errors.New("statement state unreadable")

// apply handles one result of the authorizer (key: card token).
func (p *Processor) apply(ctx goka.Context, msg any) error {
	r := msg.(*codecs.Result)
	if err := codecs.CheckResult(ctx.Key(), r); err != nil {
		return err
	}
	if r.Status != codecs.StatusApproved {
		return nil
	}
	token := ctx.Key()
	card, err := cardState(ctx.Value())
	if err != nil {
		return err
	}
	line, month := lineOf(r)
	if prev := applied(card, r.PaymentKey); prev != nil || ctx.Offset() <= card.GetLastOffset() && card.GetLastOffset() > 0 {
		p.m.duplicates.Inc()
		if prev != nil {
			ctx.Loopback(PageKey(token, prev.GetMonth(), prev.GetLineNo()/PageSize), &eventsv1.StatementLinePlacement{LineNo: prev.GetLineNo(), Line: line})
		}
		return nil
	}
	lineNo := Add(card, r.PaymentKey, month, r.AmountCents)
	card.LastOffset = ctx.Offset()
	ctx.SetValue(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Card{Card: card}})
	ctx.Loopback(PageKey(token, month, lineNo/PageSize), &eventsv1.StatementLinePlacement{LineNo: lineNo, Line: line})
	p.m.lines.Inc()
	if at, err := time.Parse(codecs.TimeFormat, r.AuthorizedAt); err == nil {
		p.m.lag.Observe(max(time.Since(at).Seconds(), 0))
	}
	return nil
}

// place puts a line on its page (key: card token|month|page).
func (p *Processor) place(ctx goka.Context, msg any) error {
	pl := msg.(*eventsv1.StatementLinePlacement)
	if err := CheckPlacement(ctx.Key(), pl); err != nil {
		return err
	}
	var page *eventsv1.StatementPage
	v := ctx.Value()
	if st, ok := v.(*stored); ok {
		n, isPage, err := st.pageLines()
		switch {
		case err != nil:
			return fmt.Errorf("%w: page: %w", ErrUnreadable, err)
		case !isPage:
			return fmt.Errorf("%w: the page's key holds a card state", ErrUnreadable)
		case pl.GetLineNo()%PageSize == int64(n):
			// The next line, as almost always: appended to the page's bytes.
			next, err := st.withLine(pl.GetLine())
			if err != nil {
				return err
			}
			ctx.SetValue(next)
			return nil
		}
		// A line out of order, or placed again: the page decoded, as it always was.
		if v, err = st.entry(); err != nil {
			return fmt.Errorf("%w: page: %w", ErrUnreadable, err)
		}
	}
	switch v := v.(type) {
	case nil:
		page = &eventsv1.StatementPage{}
	case *eventsv1.StatementEntry:
		if page = v.GetPage(); page == nil {
			return fmt.Errorf("%w: the page's key holds a card state", ErrUnreadable)
		}
	case *codecs.Undecodable:
		return fmt.Errorf("%w: page: %w", ErrUnreadable, v)
	default:
		return fmt.Errorf("%w: page of type %T", ErrUnreadable, v)
	}
	Place(page, pl)
	ctx.SetValue(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Page{Page: page}})
	return nil
}

// CheckPlacement checks a loopback record against its contract: its key names the page that
// holds its line number (PageKey), and it carries a line.
func CheckPlacement(key string, pl *eventsv1.StatementLinePlacement) error {
	parts := strings.Split(key, "|")
	var problems []string
	if len(parts) != 3 || parts[0] == "" {
		problems = append(problems, "key must be card token|YYYY-MM|page")
	} else {
		if t, err := time.Parse(MonthLayout, parts[1]); err != nil || t.Format(MonthLayout) != parts[1] {
			problems = append(problems, "key must name a month YYYY-MM")
		}
		if n, err := strconv.ParseInt(parts[2], 10, 64); err != nil || pl.GetLineNo() < 0 || n != pl.GetLineNo()/PageSize {
			problems = append(problems, "line_no must be on the key's page")
		}
	}
	if pl.GetLine() == nil {
		problems = append(problems, "line is required")
	}
	if len(problems) > 0 {
		return fmt.Errorf("statement line placement: %w: %s", codecs.ErrContract, strings.Join(problems, "; "))
	}
	return nil
}

// Add records a new line of amount in month on a card's state and returns its line number in
// the month. The payment is remembered by its key without the card token it starts with (the
// state's own key): AppliedLine.payment_key holds "merchant:transaction id".
func Add(card *eventsv1.StatementCard, paymentKey, month string, amount int64) int64 {
	var mt *eventsv1.MonthTotal
	for _, m := range card.GetMonths() {
		if m.GetMonth() == month {
			mt = m
		}
	}
	if mt == nil {
		mt = &eventsv1.MonthTotal{Month: month}
		card.Months = append(card.Months, mt)
	}
	lineNo := mt.Count
	mt.Count++
	mt.TotalCents += amount
	card.Recent = append(card.Recent, &eventsv1.AppliedLine{PaymentKey: withinCard(paymentKey), Month: month, LineNo: lineNo})
	if n := len(card.Recent) - keepApplied; n > 0 {
		card.Recent = append(card.Recent[:0:0], card.Recent[n:]...)
	}
	return lineNo
}

// Place puts a line at its slot of a page; placing the same line again changes nothing.
func Place(page *eventsv1.StatementPage, pl *eventsv1.StatementLinePlacement) {
	slot := int(pl.GetLineNo() % PageSize)
	for len(page.Lines) <= slot {
		page.Lines = append(page.Lines, nil)
	}
	page.Lines[slot] = pl.GetLine()
}

// cardState returns the card's state from a table value: empty for none, an error wrapping
// ErrUnreadable for a value that does not decode or is not a card's state.
func cardState(v any) (*eventsv1.StatementCard, error) {
	if st, ok := v.(*stored); ok {
		e, err := st.entry()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUnreadable, err)
		}
		v = e
	}
	switch v := v.(type) {
	case nil:
		return &eventsv1.StatementCard{}, nil
	case *eventsv1.StatementEntry:
		if v.GetCard() == nil {
			return nil, fmt.Errorf("%w: the card's key holds a page", ErrUnreadable)
		}
		return v.GetCard(), nil
	case *codecs.Undecodable:
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, v)
	default:
		return nil, fmt.Errorf("%w: value of type %T", ErrUnreadable, v)
	}
}

// applied returns where a payment was put on the card's statement, or nil. Payments applied
// before keys were kept within the card are remembered by their whole key.
func applied(card *eventsv1.StatementCard, paymentKey string) *eventsv1.AppliedLine {
	short := withinCard(paymentKey)
	for i := len(card.GetRecent()) - 1; i >= 0; i-- {
		if k := card.Recent[i].GetPaymentKey(); k == short || k == paymentKey {
			return card.Recent[i]
		}
	}
	return nil
}

// withinCard returns a payment key ("card token:merchant:transaction id", codecs.PaymentKey)
// without its card token.
func withinCard(paymentKey string) string {
	_, rest, _ := strings.Cut(paymentKey, ":")
	return rest
}

// Applied returns the number of purchases on a card's statement, over every month.
func Applied(card *eventsv1.StatementCard) int64 {
	var n int64
	for _, m := range card.GetMonths() {
		n += m.GetCount()
	}
	return n
}

// lineOf returns the statement line of a result that passed codecs.CheckResult, and its month.
func lineOf(r *codecs.Result) (*eventsv1.StatementLine, string) {
	t, _ := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
	return &eventsv1.StatementLine{
		TransactionId: r.TransactionID, AuthorizedAtUnixMs: t.UnixMilli(),
		Store: r.Store, Description: r.Description, AmountCents: r.AmountCents,
	}, t.UTC().Format(MonthLayout)
}

type metrics struct {
	lines      prometheus.Counter
	duplicates prometheus.Counter
	lag        prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		lines:      prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_statements_lines_total", Help: "Purchases added to statements."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_statements_duplicates_total", Help: "Results applied before, ignored."}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "codebank_statements_lag_seconds",
			Help:    "Time from a payment's authorization to its line added to the card's statement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}}),
	}
	r.MustRegister(m.lines, m.duplicates, m.lag)
	return m
}
