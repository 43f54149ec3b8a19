// Package authorizer is the goka processor that owns every card's account: it issues cards,
// approves or rejects payments, and answers each request on the replies topic while publishing
// every decision to the results topic.
//
// Its table (processors.Topology.AuthorizerTable, keyed by card number) is the single source of
// truth for balances. Payments and card commands for one card land on one partition, so one
// instance decides them one at a time: concurrent payments can never spend past a limit.
// Decide is the pure decision; Processor's callbacks only decode, decide, store and emit.
//
// Metrics (registered by New):
//
//	codebank_authorizer_decisions_total{status,reason,channel}  payments decided
//	codebank_authorizer_duplicates_total                         requests answered with an earlier outcome
//	codebank_authorizer_commands_total{command,result}           card commands handled
//	codebank_authorizer_processing_seconds                       ingress acceptance to decision
package authorizer

import (
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// Processor is the authorizer. Build it with New, define its goka group with Graph.
type Processor struct {
	topo processors.Topology
	// replies and results are the output streams, named once: every payment emits to both.
	replies, results goka.Stream
	keys             card.Keys
	now              func() time.Time
	keep             int
	keepFor          time.Duration
	log              *slog.Logger
	m                metrics
}

// Option configures a Processor.
type Option func(*Processor)

// WithClock sets the clock that stamps decisions (default time.Now); tests inject one.
func WithClock(now func() time.Time) Option { return func(p *Processor) { p.now = now } }

// WithKeep sets how many outcomes per card, and for how long at most, are remembered for
// idempotency (default DefaultKeep, DefaultKeepFor).
func WithKeep(n int, d time.Duration) Option {
	return func(p *Processor) { p.keep, p.keepFor = n, d }
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(p *Processor) { p.log = l } }

// WithRegisterer registers the processor's metrics (default: a private registry).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(p *Processor) { p.m = newMetrics(r) }
}

// New returns an authorizer for the topology; keys derive the card tokens of results.
func New(topo processors.Topology, keys card.Keys, opts ...Option) *Processor {
	p := &Processor{topo: topo, keys: keys, now: time.Now, keep: DefaultKeep, keepFor: DefaultKeepFor, log: slog.Default(),
		replies: goka.Stream(topo.Replies().Name), results: goka.Stream(topo.Results().Name)}
	for _, o := range opts {
		o(p)
	}
	if p.m.decisions == nil {
		p.m = newMetrics(prometheus.NewRegistry())
	}
	return p
}

// Graph returns the authorizer's goka group: payment requests and card commands in, the
// account table persisted, replies and results out.
func (p *Processor) Graph() *goka.GroupGraph {
	payments, commands := p.topo.PaymentRequests(), p.topo.CardCommands()
	table, replies, results := p.topo.AuthorizerTable(), p.topo.Replies(), p.topo.Results()
	return goka.DefineGroup(p.topo.AuthorizerGroup(),
		goka.Input(goka.Stream(payments.Name), payments.Codec, p.pay),
		goka.Input(goka.Stream(commands.Name), commands.Codec, p.command),
		goka.Persist(table.Codec),
		goka.Output(goka.Stream(replies.Name), replies.Codec),
		goka.Output(goka.Stream(results.Name), results.Codec),
	)
}

func account(ctx goka.Context) *eventsv1.Account {
	if v := ctx.Value(); v != nil {
		return v.(*eventsv1.Account)
	}
	return nil
}

// pay decides one payment request.
func (p *Processor) pay(ctx goka.Context, msg any) {
	req := msg.(*eventsv1.PaymentRequested)
	acct := account(ctx)
	now := p.now()
	out, dup := Decide(acct, req, now)
	if acct != nil && !dup {
		Record(acct, out, p.keep, p.keepFor)
		ctx.SetValue(acct)
	}
	if req.GetReplyKey() != "" {
		ctx.Emit(p.replies, req.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: req.GetTransactionId(),
			Body:          &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{Outcome: out, Duplicate: dup}},
		})
	}
	// A duplicate is published again, identical to the original record: if the original was
	// lost with a crash before it was acknowledged, this is what delivers it; consumers dedupe
	// by transaction id.
	number := ctx.Key()
	token := p.keys.Token(number)
	ctx.Emit(p.results, token, p.result(number, token, acct, req, out))

	if dup {
		p.m.duplicates.Inc()
		return
	}
	p.m.decisions.WithLabelValues(StatusName(out.GetStatus()), ReasonName(out.GetReason()), ChannelName(req.GetChannel())).Inc()
	if req.GetRequestedAtUnixUs() > 0 {
		p.m.processing.Observe(float64(out.GetDecidedAtUnixUs()-req.GetRequestedAtUnixUs()) / 1e6)
	}
}

func (p *Processor) result(number, token string, acct *eventsv1.Account, req *eventsv1.PaymentRequested, out *eventsv1.Outcome) *codecs.Result {
	requested, decided := time.UnixMicro(req.GetRequestedAtUnixUs()).UTC(), time.UnixMicro(out.GetDecidedAtUnixUs()).UTC()
	return &codecs.Result{
		TransactionID:  out.GetTransactionId(),
		CardToken:      token,
		CardMasked:     card.Mask(number),
		CardBIN:        number[:min(6, len(number))],
		Status:         StatusName(out.GetStatus()),
		Reason:         ReasonName(out.GetReason()),
		AmountCents:    out.GetAmountCents(),
		Amount:         json.Number(money.Format(out.GetAmountCents())),
		Currency:       acct.GetCurrency(),
		Store:          req.GetStore(),
		Description:    req.GetDescription(),
		Channel:        ChannelName(req.GetChannel()),
		RequestedAt:    requested.Format(TimeFormat),
		AuthorizedAt:   decided.Format(TimeFormat),
		ProcessingMs:   float64(out.GetDecidedAtUnixUs()-req.GetRequestedAtUnixUs()) / 1e3,
		AvailableCents: out.GetAvailableCents(),
		LimitCents:     acct.GetLimitCents(),
	}
}

// TimeFormat is the layout of the times in results: RFC 3339 in UTC with microseconds.
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// command handles one card command.
func (p *Processor) command(ctx goka.Context, msg any) {
	cmd := msg.(*eventsv1.CardCommand)
	acct := account(ctx)
	reply := &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_OK, Account: acct}
	name := "unknown"
	switch c := cmd.GetCommand().(type) {
	case *eventsv1.CardCommand_Issue:
		name = "issue"
		if acct != nil {
			reply.Result = eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS
			reply.Account = nil
			break
		}
		acct = &eventsv1.Account{
			HolderName:     strings.TrimSpace(c.Issue.GetHolderName()),
			LimitCents:     c.Issue.GetLimitCents(),
			Currency:       c.Issue.GetCurrency(),
			ExpiryMonth:    c.Issue.GetExpiryMonth(),
			ExpiryYear:     c.Issue.GetExpiryYear(),
			Status:         codebankv1.CardStatus_CARD_STATUS_ACTIVE,
			IssuedAtUnixUs: p.now().UnixMicro(),
		}
		ctx.SetValue(acct)
		reply.Account = acct
	case *eventsv1.CardCommand_Get:
		name = "get"
		if acct == nil {
			reply.Result = eventsv1.CardResult_CARD_RESULT_NOT_FOUND
		}
	default:
		p.log.Warn("unknown card command", "command_id", cmd.GetCommandId())
		return
	}
	p.m.commands.WithLabelValues(name, strings.ToLower(strings.TrimPrefix(reply.Result.String(), "CARD_RESULT_"))).Inc()
	if cmd.GetReplyKey() != "" {
		ctx.Emit(p.replies, cmd.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: cmd.GetCommandId(),
			Body:          &eventsv1.Reply_Card{Card: reply},
		})
	}
}

// StatusName is the lower-case name of a payment status in results and metrics: "approved".
func StatusName(s codebankv1.PaymentStatus) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "PAYMENT_STATUS_"))
}

// ReasonName is the lower-case name of a reject reason in results and metrics:
// "insufficient_credit"; empty for none.
func ReasonName(r codebankv1.RejectReason) string {
	if r == codebankv1.RejectReason_REJECT_REASON_UNSPECIFIED {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "REJECT_REASON_"))
}

// ChannelName is the name of a channel in results and metrics: "api" or "legacy".
func ChannelName(c eventsv1.Channel) string {
	if c == eventsv1.Channel_CHANNEL_LEGACY {
		return "legacy"
	}
	return "api"
}

type metrics struct {
	decisions  *prometheus.CounterVec
	duplicates prometheus.Counter
	commands   *prometheus.CounterVec
	processing prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_decisions_total", Help: "Payments decided, by status, reason and channel.",
		}, []string{"status", "reason", "channel"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_duplicates_total", Help: "Requests answered with the outcome of an earlier request with the same transaction id.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_commands_total", Help: "Card commands handled, by command and result.",
		}, []string{"command", "result"}),
		processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "codebank_authorizer_processing_seconds",
			Help:    "Time from the ingress accepting a payment to the authorizer deciding it.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	r.MustRegister(m.decisions, m.duplicates, m.commands, m.processing)
	return m
}
