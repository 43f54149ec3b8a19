// Package authorizer is the goka processor that owns every card's account: it issues cards,
// approves or rejects payments, and answers each request on the replies topic while publishing
// every decision to the results topic.
//
// Its table (processors.Topology.AuthorizerTable, keyed by card token) is the single source of
// truth for balances. Payments and card commands for one card land on one partition, so one
// instance decides them one at a time: concurrent payments can never spend past a limit.
// Decide is the pure decision; Processor's callbacks only decode, decide, store and emit. The
// authorizer never sees a card number: its inputs are keyed by token, and an account keeps the
// masked number only.
//
// # Lockout
//
// Expiry, CVV and holder-name failures are counted on the account in a sliding window: at
// Config.LockAfter within Config.LockWindow the card is blocked
// (BLOCK_REASON_VERIFICATION_FAILURES) until an operator unblocks it, which alone clears the
// count; an approval does not. VerifyCard commands count like payments. Card data is checked
// before anything else about a known card is said: a blocked or expired card, or an earlier
// outcome of the same transaction id, is told only to a request whose data is the card's.
//
// # Idempotency
//
// A transaction id is an idempotency key scoped to its merchant and card: the account remembers its latest
// outcomes (DefaultKeep, DefaultKeepFor) under a keyed digest of the transaction id with one of
// the parameters (Fingerprint). A request repeating both, with card data that is the card's, is
// answered with the original outcome and charged nothing; one repeating the id with other
// parameters is refused as a conflict, decides nothing and publishes no result; one repeating
// the id with card data that is not the card's is rejected, counted toward the lockout, and
// neither remembered nor published.
//
// # Money back: reversals, refunds and bill payments
//
// An Operation (a CardCommand) gives credit back: a merchant reverses or refunds part of a
// purchase, or an operator records the cardholder's payment of the bill. It is decided in the
// card's stream, in order with its payments (DecideOperation, RecordOperation), so concurrent
// refunds of one purchase can never give back more than it cost: each is checked against what
// is left of it at its turn.
//
// What is left of a purchase is its amount less what was given back of it. The account reads
// and writes the card's state for every payment, so what it keeps for this must cost nothing on
// a card whose purchases are never credited and stay small on one whose are. The purchase's
// amount and time are therefore not kept: they travel in the payment id the merchant holds,
// sealed by the ingress under a key of the bank (AEAD: a merchant can neither forge one nor
// alter it, and it opens only for the merchant it was given to). The account keeps only, for
// each purchase credited within the window (Config.CreditWindow, 30 days after its approval),
// how much was given back: 25 bytes a credited purchase in Account.credits, at most
// Config.CreditKeep (128) of them, so a busy card's account grows by at most 3.2 KB and by
// nothing until its first refund. A reversal or refund of a purchase beyond the window, or of
// one whose entry had to be dropped for room (Account.credit_floor_unix_s), is refused with
// OPERATION_RESULT_EXPIRED, never credited wrongly. Keys routed to the card's partition under
// other keys of the table were the other way: they would be written by goka's loopback, after
// the account and not with it, and grow with every approval instead of every credit.
//
// An operation is idempotent by its own id, like a payment: its outcome is remembered among the
// card's outcomes (Config.Keep, Config.KeepFor) under a keyed digest of its kind, merchant and
// id, with its purchase and amount as the parameters a retry must repeat. A bill payment is
// refused when it is more than the card owes; a refund after the bill was paid leaves used
// credit below zero, a credit balance the card can spend. Operations need no card data and
// never touch the lockout. Each one carried out is published as a results record of its own
// kind and key (docs/results-topic.md), and counted in Account.operations.
//
// # Read again after a crash
//
// The account keeps the place in the log of the last request, and of the last command, that
// changed it. After a crash the group reads again from its last committed offset; a request at
// or before that place was decided already and is never decided again: it is answered with
// its remembered outcome, and its result republished as it was. A result is written only once
// the account update it reports is acknowledged (Group), so a published result always has its
// account behind it.
//
// # Records it cannot use
//
// Inputs are read through stream.DeadLetters: a record that does not decode or breaks its
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
//	codebank_authorizer_unverified_repeats_total                 requests repeating a transaction id with card data not the card's
//	codebank_authorizer_unavailable_total                        payments refused undecided: the card's account cannot be read
//	codebank_authorizer_commands_total{command,result}           card commands handled
//	codebank_authorizer_lockouts_total                           cards blocked by failed verifications (Config.LockAfter within Config.LockWindow)
//	codebank_authorizer_processing_seconds                       ingress acceptance to decision
//	codebank_authorizer_replays_total{outcome}                   requests read again after a restart, decided before
//	codebank_authorizer_operations_total{kind,result}            reversals, refunds and bill payments handled
//	codebank_dead_letters_total{group="authorizer",topic}        records dead-lettered (stream.DeadLetters)
package authorizer

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/money"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Processor is the authorizer. Build it with New, define its goka group with Graph.
type Processor struct {
	cfg  Config
	deps Deps
	// replies and results are the output streams, named once: every payment emits to both.
	replies, results goka.Stream
	dead             *stream.DeadLetters
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
	// LockAfter is how many failed verifications within LockWindow block a card (default
	// DefaultLockAfter; negative: never; at most MaxLockAfter).
	LockAfter int
	// LockWindow is how long a failed verification counts toward the lockout (default
	// DefaultLockWindow).
	LockWindow time.Duration
	// CreditWindow is how long after its approval a purchase can be reversed or refunded, and
	// CreditKeep how many credited purchases a card remembers at most (default
	// DefaultCreditWindow, DefaultCreditKeep).
	CreditWindow time.Duration
	CreditKeep   int
}

func (c Config) creditPolicy() CreditPolicy {
	return CreditPolicy{Window: c.CreditWindow, Keep: c.CreditKeep}
}

func (c Config) policy() Policy {
	return Policy{Keep: c.Keep, KeepFor: c.KeepFor, LockAfter: min(max(c.LockAfter, 0), MaxLockAfter), LockWindow: c.LockWindow}
}

// Deps are the authorizer's collaborators.
type Deps struct {
	// Keys derive the fingerprints of payments (the tokenization key alone is needed).
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
	if cfg.LockAfter == 0 {
		cfg.LockAfter = DefaultLockAfter
	}
	if cfg.LockWindow <= 0 {
		cfg.LockWindow = DefaultLockWindow
	}
	if cfg.CreditWindow <= 0 {
		cfg.CreditWindow = DefaultCreditWindow
	}
	if cfg.CreditKeep <= 0 {
		cfg.CreditKeep = DefaultCreditKeep
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
	return &Processor{cfg: cfg, deps: deps, m: newMetrics(deps.Registerer), dead: stream.NewDeadLetters(deps.Registerer, deps.Log),
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

// Group returns the authorizer's goka group on Kafka kc, its local table storage under
// storageDir. Its results are written only once the account update they report is acknowledged
// (kafkaconf.Config.HoldBehindTable): a result on the broker always has its account behind it,
// so a request read again after a crash finds its outcome and is never decided twice. The
// accounts are written for every payment: their storage is a busy table's
// (kafkaconf.Config.BusyTable).
func (p *Processor) Group(kc kafkaconf.Config, storageDir string, log *slog.Logger) (*stream.Group, error) {
	topo := p.cfg.Topology
	return stream.NewGroup(kc.HoldBehindTable(topo.AuthorizerTable().Name, topo.Results().Name).BusyTable(), p.Graph(), storageDir, log)
}

// At returns the authorizer of another generation of the topics (processors.Topology.At),
// sharing p's metrics.
func (p *Processor) At(topo processors.Topology) *Processor {
	q := *p
	q.cfg.Topology = topo
	q.replies, q.results = goka.Stream(topo.Replies().Name), goka.Stream(topo.Results().Name)
	return &q
}

// ForwardGraph returns the group that empties p's generation into the generation to, after a
// move (internal/generations): under p's group, so from its last committed offsets, it copies
// every record left in p's inputs, unchanged, into to's. They are decided there, once.
func (p *Processor) ForwardGraph(to processors.Topology) *goka.GroupGraph {
	from := p.cfg.Topology
	forward := func(out goka.Stream) goka.ProcessCallback {
		return func(ctx goka.Context, msg any) { ctx.Emit(out, ctx.Key(), msg) }
	}
	requests, commands := goka.Stream(to.PaymentRequests().Name), goka.Stream(to.CardCommands().Name)
	return goka.DefineGroup(from.AuthorizerGroup(),
		goka.Input(goka.Stream(from.PaymentRequests().Name), new(codec.Bytes), forward(requests)),
		goka.Input(goka.Stream(from.CardCommands().Name), new(codec.Bytes), forward(commands)),
		goka.Output(requests, new(codec.Bytes)),
		goka.Output(commands, new(codec.Bytes)),
	)
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
		Error: &eventsv1.ReplyError{Message: card.Redact(err.Error()), CardToken: ctx.Key()}}})
}

// pay decides one payment request (key: card token).
func (p *Processor) pay(ctx goka.Context, msg any) error {
	req := msg.(*eventsv1.PaymentRequested)
	token := ctx.Key()
	if err := codecs.CheckPaymentRequested(token, req); err != nil {
		p.refuse(ctx, req.GetReplyKey(), req.GetCorrelationId(), err)
		return err
	}
	now := p.deps.Now()
	acct, err := account(ctx)
	at := positionOf(ctx)
	var (
		out  *eventsv1.Outcome
		kind = Fresh
	)
	if err != nil {
		out = Unavailable(req, now)
		p.deps.Log.Error("account unreadable: payment rejected", "card", req.GetMaskedNumber(), "card_token", token, "err", card.Redact(err.Error()))
	} else {
		fp := FingerprintOf(p.deps.Keys, req)
		if acct != nil && at.within(acct.GetRequestInput(), acct.GetRequestOffset()) {
			p.replay(ctx, acct, req, fp)
			return nil
		}
		out, kind = Decide(acct, req, fp, now)
		if acct != nil && (kind == Fresh || kind == Unverified) {
			wasBlocked := acct.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED
			if kind == Unverified {
				RecordUnverified(acct, out, p.cfg.policy())
			} else {
				Record(acct, out, fp, p.cfg.policy())
			}
			acct.RequestInput, acct.RequestOffset = at.input, at.offset
			ctx.SetValue(acct)
			if !wasBlocked && acct.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED {
				p.locked(acct, token)
			}
		}
	}
	// An unknown card's result goes out before its reply, as a known card's account write
	// does: the shared producer sends a reply that follows another record about 0.1 ms sooner
	// than one alone, and a merchant's clock must not tell an unknown number from a wrong CVV
	// (BenchmarkDeclineTiming in grpcgateway). It waits for no account write.
	unknown := acct == nil && err == nil
	if unknown {
		ctx.Emit(p.results, token, p.result(token, acct, req, out))
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
	case kind == Unverified:
		// Not published either: the id's result is the original payment's.
		p.m.unverified.Inc()
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
	if !unknown {
		ctx.Emit(p.results, token, p.result(token, acct, req, out))
	}
	return nil
}

// replay answers a payment request read again after a restart (from the last committed
// offset) that its account shows decided already: with the remembered outcome, republished
// exactly as first published. One whose outcome the account no longer remembers (more than
// Config.Keep payments of the card came after it before the restart) is not answered: it was
// answered and published when it was decided, and deciding it again would charge it twice.
func (p *Processor) replay(ctx goka.Context, acct *eventsv1.Account, req *eventsv1.PaymentRequested, fp Fingerprint) {
	prev, ok := findOutcome(acct, fp.ID)
	if ok && !VerificationFailed(prev.reason) {
		if reason := unverifiedPayment(acct, req); reason != eventsv1.RejectReason_REJECT_REASON_UNSPECIFIED {
			// A repeat of the id with data not the card's (Unverified): its failure was counted
			// when it was decided, and its answer is that rejection again, never the id's outcome.
			p.m.replays.WithLabelValues("unverified").Inc()
			if req.GetReplyKey() != "" && req.GetCorrelationId() != "" {
				out := &eventsv1.Outcome{TransactionId: req.GetTransactionId(), Status: eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED, Reason: reason,
					AmountCents: req.GetAmountCents(), AvailableCents: Available(acct), DecidedAtUnixUs: p.deps.Now().UnixMicro(), RequestedAtUnixUs: req.GetRequestedAtUnixUs()}
				ctx.Emit(p.replies, req.GetReplyKey(), &eventsv1.Reply{CorrelationId: req.GetCorrelationId(),
					Body: &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{Outcome: out, CardToken: ctx.Key()}}})
			}
			return
		}
	}
	if !ok {
		p.m.replays.WithLabelValues("forgotten").Inc()
		p.deps.Log.Warn("payment request read again was decided before and its outcome is no longer remembered: not answered again",
			"card", req.GetMaskedNumber(), "card_token", ctx.Key(), "offset", ctx.Offset())
		return
	}
	p.m.replays.WithLabelValues("answered").Inc()
	// The account is written again, as it is: the local table may hold a write that never
	// reached the changelog before the crash, and the result below must not be published
	// without the account that reports it.
	ctx.SetValue(acct)
	out, token := prev.outcome(req.GetTransactionId()), ctx.Key()
	if req.GetReplyKey() != "" && req.GetCorrelationId() != "" {
		ctx.Emit(p.replies, req.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: req.GetCorrelationId(),
			Body:          &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{Outcome: out, CardToken: token}},
		})
	}
	ctx.Emit(p.results, token, p.result(token, acct, req, out))
}

// position is where an input record was read: a digest of its topic and partition, and its
// offset. An account keeps the position of the last request, and of the last command, that
// changed it (Account.request_input and request_offset, command_input and command_offset).
type position struct {
	input  uint32
	offset int64
}

func positionOf(ctx goka.Context) position {
	h := fnv.New32a()
	fmt.Fprintf(h, "%s/%d", ctx.Topic(), ctx.Partition())
	return position{input: h.Sum32(), offset: ctx.Offset()}
}

// within reports whether the record at p was read before: it comes from the same topic and
// partition as the stored position, at or before it. A topic of another name (a new
// generation of the topics) starts afresh.
func (p position) within(input uint32, offset int64) bool {
	return input == p.input && p.offset <= offset
}

// locked logs a card blocked by its verification failures.
func (p *Processor) locked(acct *eventsv1.Account, token string) {
	p.m.lockouts.Inc()
	p.deps.Log.Warn("card blocked: too many failed verifications", "card", acct.GetMaskedNumber(), "card_token", token,
		"failures", len(acct.GetVerifyFailureTimes()), "window", p.cfg.LockWindow.String())
}

func (p *Processor) result(token string, acct *eventsv1.Account, req *eventsv1.PaymentRequested, out *eventsv1.Outcome) *codecs.Result {
	requested, decided := time.UnixMicro(out.GetRequestedAtUnixUs()).UTC(), time.UnixMicro(out.GetDecidedAtUnixUs()).UTC()
	masked := req.GetMaskedNumber() // the account's, if any, is the same: both come from the number
	r := &codecs.Result{
		PaymentKey:     codecs.PaymentKey(token, req.GetMerchantId(), out.GetTransactionId()),
		Kind:           codecs.KindPurchase,
		TransactionID:  out.GetTransactionId(),
		CardToken:      token,
		CardMasked:     masked,
		CardBIN:        masked[:min(6, len(masked))],
		Status:         codecs.StatusName(out.GetStatus()),
		Reason:         codecs.ReasonName(out.GetReason()),
		AmountCents:    out.GetAmountCents(),
		Amount:         json.Number(money.Format(out.GetAmountCents())),
		Currency:       acct.GetCurrency(),
		Merchant:       req.GetMerchantId(),
		Store:          codecs.StoreName(req.GetMerchantName(), req.GetStore()),
		Description:    req.GetDescription(),
		Channel:        codecs.ChannelName(req.GetChannel()),
		RequestedAt:    requested.Format(codecs.TimeFormat),
		AuthorizedAt:   decided.Format(codecs.TimeFormat),
		ProcessingMs:   float64(out.GetDecidedAtUnixUs()-out.GetRequestedAtUnixUs()) / 1e3,
		AvailableCents: out.GetAvailableCents(),
		LimitCents:     acct.GetLimitCents(),
	}
	r.NetAmount = json.Number(money.Format(r.NetCents()))
	return r
}

// command handles one card command (key: card token).
func (p *Processor) command(ctx goka.Context, msg any) error {
	cmd := msg.(*eventsv1.CardCommand)
	token := ctx.Key()
	if err := codecs.CheckCardCommand(token, cmd); err != nil {
		p.refuse(ctx, cmd.GetReplyKey(), cmd.GetCommandId(), err)
		return err
	}
	if op := cmd.GetOperation(); op != nil {
		p.operate(ctx, cmd, op)
		return nil
	}
	acct, err := account(ctx)
	at := positionOf(ctx)
	// A command read again after a restart, that its account shows applied already, is
	// answered as it stands and changes nothing.
	replayed := acct != nil && at.within(acct.GetCommandInput(), acct.GetCommandOffset())
	if replayed {
		acct = proto.Clone(acct).(*eventsv1.Account)
	}
	store := func() {
		if !replayed {
			acct.CommandInput, acct.CommandOffset = at.input, at.offset
			ctx.SetValue(acct)
		}
	}
	reply := &eventsv1.CardReply{Result: eventsv1.CardResult_CARD_RESULT_OK, Account: acct, CardToken: token}
	name := commandName(cmd)
	switch {
	case err != nil:
		reply.Result, reply.Account = eventsv1.CardResult_CARD_RESULT_UNAVAILABLE, nil
		p.deps.Log.Error("account unreadable: card command refused", "card_token", token, "command", name, "err", card.Redact(err.Error()))
	case name == "issue" && replayed:
	case name == "issue":
		if acct != nil {
			reply.Result, reply.Account = eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS, nil
			break
		}
		c := cmd.GetIssue()
		acct = &eventsv1.Account{
			HolderName:     strings.TrimSpace(c.GetHolderName()),
			LimitCents:     c.GetLimitCents(),
			Currency:       c.GetCurrency(),
			ExpiryMonth:    c.GetExpiryMonth(),
			ExpiryYear:     c.GetExpiryYear(),
			Status:         eventsv1.CardStatus_CARD_STATUS_ACTIVE,
			IssuedAtUnixUs: p.deps.Now().UnixMicro(),
			MaskedNumber:   c.GetMaskedNumber(),
			CardKeyId:      c.GetCardKeyId(),
		}
		store()
		reply.Account = acct
	case acct == nil:
		reply.Result = eventsv1.CardResult_CARD_RESULT_NOT_FOUND
	case name == "block":
		acct.Status, acct.BlockReason = eventsv1.CardStatus_CARD_STATUS_BLOCKED, eventsv1.BlockReason_BLOCK_REASON_OPERATOR
		store()
	case name == "unblock":
		acct.Status, acct.BlockReason = eventsv1.CardStatus_CARD_STATUS_ACTIVE, eventsv1.BlockReason_BLOCK_REASON_UNSPECIFIED
		clearFailures(acct)
		store()
	case name == "verify":
		wasBlocked, before := acct.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED, slices.Clone(acct.GetVerifyFailureTimes())
		if !Verify(acct, cmd.GetVerify(), p.deps.Now(), p.cfg.policy()) {
			reply.Result = eventsv1.CardResult_CARD_RESULT_NOT_VERIFIED
		}
		if !slices.Equal(acct.GetVerifyFailureTimes(), before) || acct.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED && !wasBlocked {
			store()
		}
		if !replayed && !wasBlocked && acct.GetStatus() == eventsv1.CardStatus_CARD_STATUS_BLOCKED {
			p.locked(acct, token)
		}
	}
	if name == "block" || name == "unblock" {
		p.deps.Log.Info("card "+name+"ed", "card", acct.GetMaskedNumber(), "card_token", token, "actor", cmd.GetActor(), "result", reply.Result.String())
	}
	p.m.commands.WithLabelValues(name, strings.ToLower(strings.TrimPrefix(reply.Result.String(), "CARD_RESULT_"))).Inc()
	if reply.Account != nil {
		// The failures that count toward the lockout now, for GetCard; the table keeps their times.
		reply.Account = proto.Clone(reply.Account).(*eventsv1.Account)
		reply.Account.VerifyFailures = int32(Failures(reply.Account, p.deps.Now(), p.cfg.policy()))
	}
	if cmd.GetReplyKey() != "" {
		ctx.Emit(p.replies, cmd.GetReplyKey(), &eventsv1.Reply{
			CorrelationId: cmd.GetCommandId(),
			Body:          &eventsv1.Reply_Card{Card: reply},
		})
	}
	return nil
}

// commandName is a command's name in metrics and logs.
func commandName(cmd *eventsv1.CardCommand) string {
	switch cmd.GetCommand().(type) {
	case *eventsv1.CardCommand_Issue:
		return "issue"
	case *eventsv1.CardCommand_Get:
		return "get"
	case *eventsv1.CardCommand_Block:
		return "block"
	case *eventsv1.CardCommand_Unblock:
		return "unblock"
	case *eventsv1.CardCommand_Verify:
		return "verify"
	case *eventsv1.CardCommand_Operation:
		return "operation"
	}
	return "unknown" // CheckCardCommand refuses it first
}

type metrics struct {
	decisions   *prometheus.CounterVec
	duplicates  prometheus.Counter
	conflicts   prometheus.Counter
	unverified  prometheus.Counter
	unavailable prometheus.Counter
	commands    *prometheus.CounterVec
	lockouts    prometheus.Counter
	processing  prometheus.Histogram
	replays     *prometheus.CounterVec
	operations  *prometheus.CounterVec
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
		unverified: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_unverified_repeats_total", Help: "Requests repeating the transaction id of a remembered outcome with card data that is not the card's: rejected, counted toward the lockout, not published.",
		}),
		unavailable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_unavailable_total", Help: "Payments rejected undecided because the card's stored account cannot be read.",
		}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_commands_total", Help: "Card commands handled, by command and result.",
		}, []string{"command", "result"}),
		lockouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "codebank_authorizer_lockouts_total", Help: "Cards blocked because they failed verification too many times within the lockout's window.",
		}),
		processing: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "codebank_authorizer_processing_seconds",
			Help:    "Time from the ingress accepting a payment to the authorizer deciding it.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_replays_total", Help: "Payment requests read again after a restart that their card had decided already: answered with the remembered outcome, answered rejected again (unverified: a repeat whose card data was not the card's), or forgotten (not answered again).",
		}, []string{"outcome"}),
		operations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_authorizer_operations_total", Help: "Reversals, refunds and bill payments handled, by kind and result (ok, duplicate, conflict, exceeds, expired, not_found, unavailable, forgotten).",
		}, []string{"kind", "result"}),
	}
	r.MustRegister(m.decisions, m.duplicates, m.conflicts, m.unverified, m.unavailable, m.commands, m.lockouts, m.processing, m.replays, m.operations)
	return m
}

// operate carries out a reversal, a refund or a bill payment (key: card token), or refuses it,
// and answers it. One carried out is stored with the account, published as a results record of
// its own and remembered under its id, like a payment.
func (p *Processor) operate(ctx goka.Context, cmd *eventsv1.CardCommand, op *eventsv1.Operation) {
	token, kind := ctx.Key(), codecs.KindName(op.GetKind())
	acct, err := account(ctx)
	at := positionOf(ctx)
	fp := OperationFingerprintOf(p.deps.Keys, op)
	now := p.deps.Now()
	replayed := err == nil && acct != nil && at.within(acct.GetCommandInput(), acct.GetCommandOffset())
	var (
		out  OperationOutcome
		seen = Fresh
	)
	switch {
	case err != nil:
		out = OperationOutcome{Result: eventsv1.OperationResult_OPERATION_RESULT_UNAVAILABLE, AmountCents: op.GetAmountCents(),
			DecidedAtUnixUs: now.UnixMicro(), RequestedAtUnixUs: cmd.GetRequestedAtUnixUs()}
		p.deps.Log.Error("account unreadable: operation refused", "card_token", token, "kind", kind, "err", card.Redact(err.Error()))
	case replayed:
		// Read again after a restart: the card decided it before. Its remembered outcome is the
		// answer. One no longer remembered that would be carried out now was carried out then
		// (answered and published): it is never carried out twice. A refusal changed nothing,
		// and is decided again.
		out, seen = DecideOperation(acct, op, fp, cmd.GetRequestedAtUnixUs(), now, p.cfg.creditPolicy())
		if seen == Fresh && out.Result == eventsv1.OperationResult_OPERATION_RESULT_OK {
			p.m.operations.WithLabelValues(kind, "forgotten").Inc()
			p.deps.Log.Warn("operation read again was carried out before and is no longer remembered: not answered again",
				"card", acct.GetMaskedNumber(), "card_token", token, "kind", kind, "offset", ctx.Offset())
			return
		}
		if seen == Duplicate {
			// Written again, as it is: the local table may hold a write that never reached the
			// changelog before the crash, and the result below must not go without it.
			ctx.SetValue(acct)
		}
	default:
		out, seen = DecideOperation(acct, op, fp, cmd.GetRequestedAtUnixUs(), now, p.cfg.creditPolicy())
		if seen == Fresh && out.Result == eventsv1.OperationResult_OPERATION_RESULT_OK {
			RecordOperation(acct, op, out, fp, p.cfg.policy(), p.cfg.creditPolicy())
			acct.CommandInput, acct.CommandOffset = at.input, at.offset
			ctx.SetValue(acct)
		}
	}
	label := strings.ToLower(strings.TrimPrefix(out.Result.String(), "OPERATION_RESULT_"))
	if seen == Duplicate && !replayed {
		label = "duplicate"
	}
	p.m.operations.WithLabelValues(kind, label).Inc()
	if cmd.GetReplyKey() != "" {
		reply := &eventsv1.OperationReply{CardToken: token, Result: out.Result, Duplicate: seen == Duplicate && !replayed,
			OperationId: op.GetOperationId(), AmountCents: op.GetAmountCents(), LeftCents: out.LeftCents, DecidedAtUnixUs: out.DecidedAtUnixUs,
			UsedCents: acct.GetUsedCents(), AvailableCents: Available(acct)}
		if op.GetKind() == eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT && acct != nil {
			// An operator's answer shows the card: not what only the authorizer reads.
			reply.Account = proto.Clone(acct).(*eventsv1.Account)
			reply.Account.Outcomes, reply.Account.Credits = nil, nil
		}
		ctx.Emit(p.replies, cmd.GetReplyKey(), &eventsv1.Reply{CorrelationId: cmd.GetCommandId(), Body: &eventsv1.Reply_Operation{Operation: reply}})
	}
	if out.Result == eventsv1.OperationResult_OPERATION_RESULT_OK {
		// A duplicate is published again, identical: if the original was lost with a crash
		// before it was acknowledged, this delivers it; consumers dedupe by its key.
		ctx.Emit(p.results, token, p.operationResult(token, acct, op, out))
	}
}

// operationResult is the results record of an operation carried out.
func (p *Processor) operationResult(token string, acct *eventsv1.Account, op *eventsv1.Operation, out OperationOutcome) *codecs.Result {
	kind := codecs.KindName(op.GetKind())
	requested, decided := time.UnixMicro(out.RequestedAtUnixUs).UTC(), time.UnixMicro(out.DecidedAtUnixUs).UTC()
	masked := acct.GetMaskedNumber()
	r := &codecs.Result{
		PaymentKey:     codecs.OperationKey(token, op.GetMerchantId(), kind, op.GetOperationId()),
		Kind:           kind,
		TransactionID:  op.GetTransactionId(),
		OperationID:    op.GetOperationId(),
		CardToken:      token,
		CardMasked:     masked,
		CardBIN:        masked[:min(6, len(masked))],
		Status:         codecs.StatusApproved,
		AmountCents:    out.AmountCents,
		Amount:         json.Number(money.Format(out.AmountCents)),
		Currency:       acct.GetCurrency(),
		Merchant:       op.GetMerchantId(),
		Store:          op.GetMerchantName(),
		Channel:        codecs.ChannelName(eventsv1.Channel_CHANNEL_API),
		RequestedAt:    requested.Format(codecs.TimeFormat),
		AuthorizedAt:   decided.Format(codecs.TimeFormat),
		ProcessingMs:   float64(out.DecidedAtUnixUs-out.RequestedAtUnixUs) / 1e3,
		AvailableCents: out.AvailableCents,
		LimitCents:     acct.GetLimitCents(),
	}
	if isCredit(op.GetKind()) {
		r.PurchaseKey = codecs.PaymentKey(token, op.GetMerchantId(), op.GetTransactionId())
	}
	r.NetAmount = json.Number(money.Format(r.NetCents()))
	return r
}
