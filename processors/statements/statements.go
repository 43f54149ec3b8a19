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
// last_offset) or one the authorizer published again (its transaction id is among the card's
// recent ones) changes no total; its line is placed again at the same line number, which
// overwrites the identical line. Rejected results never reach a statement.
//
// Metrics (registered by New):
//
//	codebank_statements_lines_total       purchases added to statements
//	codebank_statements_duplicates_total  results applied before, ignored
package statements

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// PageSize is the number of lines in one stored page of a month.
const PageSize = 100

// keepApplied is how many of a card's applied transaction ids are remembered to recognise a
// result the authorizer published again; the authorizer replays only from its own, smaller
// window (authorizer.DefaultKeep outcomes).
const keepApplied = 256

// MonthLayout is the layout of months in keys and the API: "2026-11".
const MonthLayout = "2006-01"

// Processor builds statements. Build it with New, define its goka group with Graph.
type Processor struct {
	topo processors.Topology
	log  *slog.Logger
	m    metrics
}

// New returns a statements processor for the topology; its metrics go to reg (nil: none).
func New(topo processors.Topology, reg prometheus.Registerer, log *slog.Logger) *Processor {
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if log == nil {
		log = slog.Default()
	}
	return &Processor{topo: topo, log: log, m: newMetrics(reg)}
}

// Graph returns the statements group: results in, placements looped back to pages, the table
// persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	results, loop, table := p.topo.Results(), p.topo.StatementsLoop(), p.topo.StatementsTable()
	return goka.DefineGroup(p.topo.StatementsGroup(),
		goka.Input(goka.Stream(results.Name), results.Codec, p.apply),
		goka.Loop(loop.Codec, p.place),
		goka.Persist(table.Codec),
	)
}

// PageKey is the table key of page n of a card's month.
func PageKey(token, month string, n int64) string {
	return fmt.Sprintf("%s|%s|%04d", token, month, n)
}

// apply handles one result of the authorizer (key: card token).
func (p *Processor) apply(ctx goka.Context, msg any) {
	r := msg.(*codecs.Result)
	if r.Status != "approved" {
		return
	}
	token := ctx.Key()
	card := cardState(ctx.Value())
	line, month, err := lineOf(r)
	if err != nil {
		p.log.Error("result cannot go on a statement", "transaction_id", r.TransactionID, "err", err)
		return
	}
	if prev := applied(card, r.TransactionID); prev != nil || ctx.Offset() <= card.GetLastOffset() && card.GetLastOffset() > 0 {
		p.m.duplicates.Inc()
		if prev != nil {
			ctx.Loopback(PageKey(token, prev.GetMonth(), prev.GetLineNo()/PageSize), &eventsv1.StatementLinePlacement{LineNo: prev.GetLineNo(), Line: line})
		}
		return
	}
	lineNo := Add(card, r.TransactionID, month, r.AmountCents)
	card.LastOffset = ctx.Offset()
	ctx.SetValue(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Card{Card: card}})
	ctx.Loopback(PageKey(token, month, lineNo/PageSize), &eventsv1.StatementLinePlacement{LineNo: lineNo, Line: line})
	p.m.lines.Inc()
}

// place puts a line on its page (key: card token|month|page).
func (p *Processor) place(ctx goka.Context, msg any) {
	pl := msg.(*eventsv1.StatementLinePlacement)
	var page *eventsv1.StatementPage
	if v, ok := ctx.Value().(*eventsv1.StatementEntry); ok && v.GetPage() != nil {
		page = v.GetPage()
	} else {
		page = &eventsv1.StatementPage{}
	}
	Place(page, pl)
	ctx.SetValue(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Page{Page: page}})
}

// Add records a new line of amount in month on a card's state and returns its line number in
// the month.
func Add(card *eventsv1.StatementCard, txID, month string, amount int64) int64 {
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
	card.Recent = append(card.Recent, &eventsv1.AppliedLine{TransactionId: txID, Month: month, LineNo: lineNo})
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

func cardState(v any) *eventsv1.StatementCard {
	if e, ok := v.(*eventsv1.StatementEntry); ok && e.GetCard() != nil {
		return e.GetCard()
	}
	return &eventsv1.StatementCard{}
}

func applied(card *eventsv1.StatementCard, txID string) *eventsv1.AppliedLine {
	for i := len(card.GetRecent()) - 1; i >= 0; i-- {
		if card.Recent[i].GetTransactionId() == txID {
			return card.Recent[i]
		}
	}
	return nil
}

func lineOf(r *codecs.Result) (*codebankv1.StatementLine, string, error) {
	t, err := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
	if err != nil {
		return nil, "", fmt.Errorf("authorized_at %q: %w", r.AuthorizedAt, err)
	}
	return &codebankv1.StatementLine{
		TransactionId: r.TransactionID, AuthorizedAtUnixMs: t.UnixMilli(),
		Store: r.Store, Description: r.Description, AmountCents: r.AmountCents,
	}, t.UTC().Format(MonthLayout), nil
}

type metrics struct {
	lines      prometheus.Counter
	duplicates prometheus.Counter
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		lines:      prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_statements_lines_total", Help: "Purchases added to statements."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_statements_duplicates_total", Help: "Results applied before, ignored."}),
	}
	r.MustRegister(m.lines, m.duplicates)
	return m
}
