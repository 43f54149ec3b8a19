// Package authorizer is the goka processor that owns every card's account: it issues cards,
// approves or rejects payments, and answers each request on the replies topic while publishing
// every decision to the results topic.
//
// Its table (processors.Topology.AuthorizerTable, keyed by card number) is the single source of
// truth for balances. Payments and card commands for one card land on one partition, so one
// instance decides them one at a time: concurrent payments can never spend past a limit.
// Decide is the pure decision; Processor's callbacks only decode, decide, store and emit.
//
// # Idempotency
//
// A transaction id is an idempotency key scoped to its card: the account remembers its latest
// outcomes (DefaultKeep, DefaultKeepFor) under a keyed digest of the transaction id with one of
// the parameters (Fingerprint). A request repeating both is answered with the original outcome
// and charged nothing; one repeating the id with other parameters is refused as a conflict,
// decides nothing and publishes no result.
//
// # Records it cannot use
//
// Inputs are read through processors.DeadLetters: a record that does not decode or breaks its
// contract (codecs.CheckPaymentRequested, codecs.CheckCardCommand) goes to the group's
// dead-letter topic for its input, and one that carries a reply key gets an error reply at once.
// An account that does not decode, or whose amounts make no sense, fails its card closed: its
// payments are answered rejected with REJECT_REASON_ACCOUNT_UNAVAILABLE, undecided (no result is
// published, nothing remembered: a retry after the repair is decided), its commands answered
// CARD_RESULT_UNAVAILABLE, and the stored value is left for an operator to repair.
//
// Metrics (registered by New):
//
//	codebank_authorizer_decisions_total{status,reason,channel}  payments decided
//	codebank_authorizer_duplicates_total                         requests answered with an earlier outcome
//	codebank_authorizer_conflicts_total                          requests refused: transaction id reused with other parameters
//	codebank_authorizer_unavailable_total                        payments refused undecided: the card's account cannot be read
//	codebank_authorizer_commands_total{command,result}           card commands handled
//	codebank_authorizer_processing_seconds                       ingress acceptance to decision
//	codebank_dead_letters_total{group="authorizer",topic}        records dead-lettered (processors.DeadLetters)
package authorizer

import (
	"encoding/json"
	"errors"
	"fmt"
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
)

// Processor is the authorizer. Build it with New, define its goka group with Graph.
type Processor struct {
	cfg  Config
	deps Deps
	// replies and results are the output streams, named once: every payment emits to both.
	replies, results goka.Stream
	dead             *processors.DeadLetters
	m                metrics
}

// Config configures the authorizer.
type Config struct {
	// Topology names the deployment's topics and groups.
	Topology processors.Topology
	// Keep is how many outcomes a card remembers for idempotency, and KeepFor for how long at
	// most (default DefaultKeep, DefaultKeepFor).
	Keep    int
	KeepFor time.Duration
}

// Deps are the authorizer's collaborators.
type Deps struct {
	// Keys derive the card tokens of replies and results and the fingerprints of payments.
	Keys card.Keys
	// Registerer receives the metrics of the package doc (default: a private registry).
	Registerer prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
	// Now is the clock that stamps decisions (default time.Now); tests set one.
	Now func() time.Time
}

// New returns an authorizer.
func New(cfg Config, deps Deps) *Processor {
	if cfg.Keep <= 0 {
		cfg.Keep = DefaultKeep
	}
	if cfg.KeepFor <= 0 {
		cfg.KeepFor = DefaultKeepFor
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	return &Processor{cfg: cfg, deps: deps, m: newMetrics(deps.Registerer), dead: processors.NewDeadLetters(deps.Registerer, deps.Log),
		replies: goka.Stream(cfg.Topology.Replies().Name), results: goka.Stream(cfg.Topology.Results().Name)}
}

// Graph returns the authorizer's goka group: payment requests and card commands in (each with
// its dead-letter topic), the account table persisted, replies and results out.
func (p *Processor) Graph() *goka.GroupGraph {
	topo := p.cfg.Topology
	payments := topo.Input(processors.ConsumerAuthorizer, topo.PaymentRequests())
	commands := topo.Input(processors.ConsumerAuthorizer, topo.CardCommands())
	table, replies, results := topo.AuthorizerTable(), topo.Replies(), topo.Results()
	edges := append(p.dead.Input(processors.ConsumerAuthorizer, payments, p.pay),
		p.dead.Input(processors.ConsumerAuthorizer, commands, p.command)...)
	edges = append(edges,
		goka.Persist(codecs.Lenient(table.Codec)),
		goka.Output(goka.Stream(replies.Name), replies.Codec),
		goka.Output(goka.Stream(results.Name), results.Codec),
	)
	return goka.DefineGroup(topo.AuthorizerGroup(), edges...)
}

// account returns the card's account: nil for none, or an error when the stored value does not
// decode or breaks its contract.
func account(ctx goka.Context) (*eventsv1.Account, error) {
	switch v := ctx.Value().(type) {
	case nil:
		return nil, nil
	case *eventsv1.Account:
		if err := codecs.CheckAccount(v); err != nil {
			return nil, err
		}
		return v, nil
	case *codecs.Undecodable:
		return nil, v
	default:
		return nil, fmt.Errorf("account of type %T", v)
	}
}

// refuse answers a request that breaks its contract with an error reply, when it says where
// to (a reply key and a correlation id).
func (p *Processor) refuse(ctx goka.Context, replyKey, correlationID string, err error) {
	if replyKey == "" || correlationID == "" {
		return
	}
	ctx.Emit(p.replies, replyKey, &eventsv1.Reply{CorrelationId: correlationID, Body: &eventsv1.Reply_Error{
		Error: &eventsv1.ReplyError{Message: card.Redact(err.Error()), CardToken: p.deps.Keys.Token(ctx.Key())}}})
}

// pay decides one payment request (key: card number).
func (p *Processor) pay(ctx goka.Context, msg any) error {
	req := msg.(*eventsv1.PaymentRequested)
	number := ctx.Key()
	if err := codecs.CheckPaymentRequested(number, req); err != nil {
		p.refuse(ctx, req.GetReplyKey(), req.GetCorrelationId(), err)
		return err
	}
	token := p.deps.Keys.Token(number)
	now := p.deps.Now()
	acct, err := account(ctx)
	var (
		out  *eventsv1.Outcome
		kind = Fresh
	)
	if err != nil {
		out = Unavailable(req, now)
		p.deps.Log.Error("account unreadable: payment rejected", "card", card.Mask(number), "err", card.Redact(err.Error()))
	} else {
		fp := FingerprintOf(p.deps.Keys, req)
		out, kind = Decide(acct, req, fp, now)
		if acct != nil && kind == Fresh {
			Record(acct, out, fp, p.cfg.Keep, p.cfg.KeepFor)
			ctx.SetValue(acct)
		}
	}
	if req.GetReplyKey() != "" && req.GetCorrelationId() != "" {
		ctx.Emit(p.replies, req.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: req.GetCorrelationId(),
			Body: &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{Outcome: out, CardToken: token,
				Duplicate: kind == Duplicate, Conflict: kind == Conflict}},
		})
	}
	switch {
	case kind == Conflict:
		// Nothing was decided: a result would stand for another payment under the same key.
		p.m.conflicts.Inc()
		return nil
	case err != nil:
		// Nothing was decided either: once the account is repaired, a retry with the same id is
		// decided, and its result is the payment's only one.
		p.m.unavailable.Inc()
		return nil
	case kind == Duplicate:
		// Published again, identical to the original record: if the original was lost with a
		// crash before it was acknowledged, this is what delivers it; consumers dedupe by
		// payment key.
		p.m.duplicates.Inc()
	default:
		p.m.decisions.WithLabelValues(codecs.StatusName(out.GetStatus()), codecs.ReasonName(out.GetReason()), codecs.ChannelName(req.GetChannel())).Inc()
		p.m.processing.Observe(float64(out.GetDecidedAtUnixUs()-out.GetRequestedAtUnixUs()) / 1e6)
	}
	ctx.Emit(p.results, token, p.result(number, token, acct, req, out))
	return nil
}

func (p *Processor) result(number, token string, acct *eventsv1.Account, req *eventsv1.PaymentRequested, out *eventsv1.Outcome) *codecs.Result {
	requested, decided := time.UnixMicro(out.GetRequestedAtUnixUs()).UTC(), time.UnixMicro(out.GetDecidedAtUnixUs()).UTC()
	return &codecs.Result{
		PaymentKey:     codecs.PaymentKey(token, out.GetTransactionId()),
		TransactionID:  out.GetTransactionId(),
		CardToken:      token,
		CardMasked:     card.Mask(number),
		CardBIN:        number[:min(6, len(number))],
		Status:         codecs.StatusName(out.GetStatus()),
		Reason:         codecs.ReasonName(out.GetReason()),
		AmountCents:    out.GetAmountCents(),
		Amount:         json.Number(money.Format(out.GetAmountCents())),
		Currency:       acct.GetCurrency(),
		Store:          req.GetStore(),
		Description:    req.GetDescription(),
		Channel:        codecs.ChannelName(req.GetChannel()),
		RequestedAt:    requested.Format(codecs.TimeFormat),
		AuthorizedAt:   decided.Format(codecs.TimeFormat),
		ProcessingMs:   float64(out.GetDecidedAtUnixUs()-out.GetRequestedAtUnixUs()) / 1e3,
		AvailableCents: out.GetAvailableCents(),
		LimitCents:     acct.GetLimitCents(),
	}
}

// command handles one card command (key: card number).
func (p *Processor) command(ctx goka.Context, msg any) error {
	cmd := msg.(*eventsv1.CardCommand)
	number := ctx.Key()
	if err := codecs.CheckCardCommand(number, cmd); err != nil {
		p.refuse(ctx, cmd.GetReplyKey(), cmd.GetCommandId(), err)
		return err
	}
	acct, err := account(ctx)
	reply := &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_OK, Account: acct, CardToken: p.deps.Keys.Token(number)}
	var name string
	switch c := cmd.GetCommand().(type) {
	case *eventsv1.CardCommand_Issue:
		name = "issue"
		switch {
		case err != nil:
			reply.Result = eventsv1.CardResult_CARD_RESULT_UNAVAILABLE
		case acct != nil:
			reply.Result = eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS
			reply.Account = nil
		default:
			acct = &eventsv1.Account{
				HolderName:     strings.TrimSpace(c.Issue.GetHolderName()),
				LimitCents:     c.Issue.GetLimitCents(),
				Currency:       c.Issue.GetCurrency(),
				ExpiryMonth:    c.Issue.GetExpiryMonth(),
				ExpiryYear:     c.Issue.GetExpiryYear(),
				Status:         eventsv1.CardStatus_CARD_STATUS_ACTIVE,
				IssuedAtUnixUs: p.deps.Now().UnixMicro(),
			}
			ctx.SetValue(acct)
			reply.Account = acct
		}
	case *eventsv1.CardCommand_Get:
		name = "get"
		switch {
		case err != nil:
			reply.Result = eventsv1.CardResult_CARD_RESULT_UNAVAILABLE
		case acct == nil:
			reply.Result = eventsv1.CardResult_CARD_RESULT_NOT_FOUND
		}
	default:
		return errors.New("card command: unknown command") // CheckCardCommand refuses it first
	}
	if err != nil {
		p.deps.Log.Error("account unreadable: card command refused", "card", card.Mask(number), "command", name, "err", card.Redact(err.Error()))
	}
	p.m.commands.WithLabelValues(name, strings.ToLower(strings.TrimPrefix(reply.Result.String(), "CARD_RESULT_"))).Inc()
	if cmd.GetReplyKey() != "" {
		ctx.Emit(p.replies, cmd.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: cmd.GetCommandId(),
			Body:          &eventsv1.Reply_Card{Card: reply},
		})
	}
	return nil
}

type metrics struct {
	decisions   *prometheus.CounterVec
	duplicates  prometheus.Counter
	conflicts   prometheus.Counter
	unavailable prometheus.Counter
	commands    *prometheus.CounterVec
	processing  prometheus.Histogram
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_decisions_total", Help: "Payments decided, by status, reason and channel.",
		}, []string{"status", "reason", "channel"}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_duplicates_total", Help: "Requests answered with the outcome of an earlier request with the same card, transaction id and parameters.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_conflicts_total", Help: "Requests refused because their card already has a payment with the same transaction id and other parameters.",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_unavailable_total", Help: "Payments rejected undecided because the card's stored account cannot be read.",
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
	r.MustRegister(m.decisions, m.duplicates, m.conflicts, m.unavailable, m.commands, m.processing)
	return m
}
