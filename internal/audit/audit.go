// Package audit checks Code Bank's books from its topics alone, as `codebank audit` does for an
// operator: it replays the results topic and reads the authorizer's and the statements' tables
// (and, when asked, the search index) and checks, for every card, that
//
//   - its account decodes and is not over its limit;
//   - its used credit is its approved purchases less its reversals, refunds and bill payments
//     (each from its results);
//   - no purchase was reversed or refunded beyond its amount, nor credited without its
//     approval among the results;
//   - its statement holds exactly one line for each approved result (purchase, reversal, refund
//     or bill payment), of its kind and for its amount, and each month's sums follow;
//   - each month's closing balance is its opening (the previous month's closing) plus its
//     purchases less its reversals, refunds and bill payments, and is the card's used credit at
//     the month's end (from its results); the latest is the account's used credit;
//   - no payment key was applied twice (two different approvals under one key);
//   - the search index holds one document per payment and per operation.
//
// Results that do not decode or break docs/results-topic.md are counted, not booked: every
// consumer dead-letters them. Its main types are Config and Report.
package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/money"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// Config says what to audit.
type Config struct {
	// Kafka reaches the cluster.
	Kafka kafkaconf.Config
	// Topo names the deployment's topics.
	Topo processors.Topology
	// Search, when set, is checked to hold one document per payment in Index.
	Search *elastic.Client
	Index  string
	// Consumers are consumers beyond the bank's whose dead-letter topics are counted (the
	// store's).
	Consumers []stream.Consumer
}

// Report is what an audit found.
type Report struct {
	// Results is the number of records read from the results topic; Payments the distinct
	// purchases' payment keys among them (Operations counts the others), Replays the records
	// that repeated one identically, Refused the records that do not decode or break the
	// contract.
	Results, Payments, Replays, Refused int
	// Approved is the number of approved payments and ApprovedCents their sum.
	Approved      int
	ApprovedCents int64
	// Operations is the number of reversals, refunds and bill payments (each once), and
	// CreditedCents their sum.
	Operations    int
	CreditedCents int64
	// Cards is the number of cards with an account.
	Cards int
	// Documents is the number of documents in the index; -1 when it was not checked.
	Documents int64
	// DeadLetters counts the records of each dead-letter topic that has any.
	DeadLetters map[string]int64
	// Partial is set when retention has removed the oldest results: used credit is then not
	// compared with them.
	Partial bool
	// Problems are the discrepancies found, card numbers masked.
	Problems []string
}

// OK reports whether the books balance.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Write prints the report, listing at most max problems.
func (r *Report) Write(w io.Writer, max int) {
	fmt.Fprintf(w, "results:   %d records: %d payments (%d approved, %s), %d replays, %d refused by the contract\n",
		r.Results, r.Payments, r.Approved, money.Format(r.ApprovedCents), r.Replays, r.Refused)
	fmt.Fprintf(w, "money back: %d reversals, refunds and bill payments (%s)\n", r.Operations, money.Format(r.CreditedCents))
	fmt.Fprintf(w, "accounts:  %d cards\n", r.Cards)
	if r.Documents >= 0 {
		fmt.Fprintf(w, "index:     %d documents\n", r.Documents)
	}
	names := make([]string, 0, len(r.DeadLetters))
	for n := range r.DeadLetters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		fmt.Fprintf(w, "dead letters: %d in %s\n", r.DeadLetters[n], n)
	}
	if r.Partial {
		fmt.Fprintln(w, "note: retention removed the oldest results; used credit was not compared with them")
	}
	if r.OK() {
		fmt.Fprintln(w, "OK: the books balance")
		return
	}
	fmt.Fprintf(w, "FAILED: %d discrepancies\n", len(r.Problems))
	for i, p := range r.Problems {
		if i == max {
			fmt.Fprintf(w, "  ... and %d more\n", len(r.Problems)-max)
			break
		}
		fmt.Fprintln(w, "  "+p)
	}
}

// books are one card's figures from the results.
type books struct {
	masked        string
	approvedCents int64
	approved      int64
	lines         map[string]*codecs.Result // the approved payments and operations by the key of their statement line
	// creditedCents is what reversals, refunds and bill payments gave back.
	creditedCents int64
	operations    int64
}

// purchaseBooks are one purchase's credits from the results.
type purchaseBooks struct {
	result   *codecs.Result // nil: no approval of it among the results
	credited int64
	card     string // masked
}

type accountInfo struct {
	masked string
	acct   *eventsv1.Account
	err    error
}

// Run audits the deployment once.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	client, err := sarama.NewClient(cfg.Kafka.Brokers, cfg.Kafka.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka: %w", err)
	}
	defer client.Close()
	rep := &Report{Documents: -1, DeadLetters: map[string]int64{}}

	// The results: every payment and operation once, and each card's books.
	payments := map[string]*codecs.Result{}
	cards := map[string]*books{}
	purchases := map[string]*purchaseBooks{}
	purchase := func(key string) *purchaseBooks {
		p := purchases[key]
		if p == nil {
			p = &purchaseBooks{}
			purchases[key] = p
		}
		return p
	}
	results := cfg.Topo.Results()
	partial, err := readTopic(ctx, client, results.Name, func(m *sarama.ConsumerMessage) {
		if m.Value == nil {
			return
		}
		rep.Results++
		v, err := results.Codec.Decode(m.Value)
		if err == nil {
			err = codecs.CheckResult(string(m.Key), v.(*codecs.Result))
		}
		if err != nil {
			rep.Refused++
			return
		}
		r := v.(*codecs.Result)
		if prev, ok := payments[r.PaymentKey]; ok {
			if prev.Status == r.Status && prev.AmountCents == r.AmountCents && prev.AuthorizedAt == r.AuthorizedAt {
				rep.Replays++
			} else {
				rep.Problems = append(rep.Problems, fmt.Sprintf("payment %s (card %s): two different results, %s %s at %s and %s %s at %s",
					r.PaymentKey, r.CardMasked, prev.Status, money.Format(prev.AmountCents), prev.AuthorizedAt, r.Status, money.Format(r.AmountCents), r.AuthorizedAt))
			}
			if prev.Status == codecs.StatusApproved || r.Status != codecs.StatusApproved {
				return
			}
			// A rejection replaced by an approval under one key: book the approval (and the
			// discrepancy above stands).
		}
		payments[r.PaymentKey] = r
		if r.Status != codecs.StatusApproved {
			return
		}
		b := cards[r.CardToken]
		if b == nil {
			b = &books{masked: r.CardMasked, lines: map[string]*codecs.Result{}}
			cards[r.CardToken] = b
		}
		at, _ := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
		b.lines[statements.LineKey(r.CardToken, at, r.PaymentKey)] = r
		if !r.Purchase() {
			b.operations++
			b.creditedCents += r.AmountCents
			rep.Operations++
			rep.CreditedCents += r.AmountCents
			if r.PurchaseKey != "" {
				p := purchase(r.PurchaseKey)
				p.credited += r.AmountCents
				p.card = r.CardMasked
			}
			return
		}
		purchase(r.PaymentKey).result = r
		b.approved++
		b.approvedCents += r.AmountCents
	})
	if err != nil {
		return nil, err
	}
	rep.Partial = partial
	rep.Payments = len(payments) - rep.Operations
	keys := make([]string, 0, len(purchases))
	for k := range purchases {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		p := purchases[k]
		switch {
		case p.credited == 0:
		case p.result == nil && !partial:
			rep.Problems = append(rep.Problems, fmt.Sprintf("purchase %s (card %s): %s reversed or refunded, and no approval of it among the results",
				k, p.card, money.Format(p.credited)))
		case p.result != nil && p.credited > p.result.AmountCents:
			rep.Problems = append(rep.Problems, fmt.Sprintf("purchase %s (card %s): %s reversed or refunded of %s approved",
				k, p.result.CardMasked, money.Format(p.credited), money.Format(p.result.AmountCents)))
		}
	}
	for _, b := range cards {
		rep.Approved += int(b.approved)
		rep.ApprovedCents += b.approvedCents
	}

	// The accounts: latest value per card token.
	accounts := map[string]*accountInfo{}
	// At the live generation (internal/generations): its table holds every account.
	state, err := generations.Read(ctx, cfg.Kafka, cfg.Topo)
	if err != nil {
		return nil, err
	}
	table := state.Live(cfg.Topo).AuthorizerTable()
	if _, err := readTopic(ctx, client, table.Name, func(m *sarama.ConsumerMessage) {
		token := string(m.Key)
		if m.Value == nil {
			delete(accounts, token)
			return
		}
		info := &accountInfo{masked: token}
		v, err := table.Codec.Decode(m.Value)
		if err == nil {
			info.acct = v.(*eventsv1.Account)
			info.masked = info.acct.GetMaskedNumber()
		} else {
			info.err = err
		}
		accounts[token] = info
	}); err != nil {
		return nil, err
	}
	rep.Cards = len(accounts)

	// The statements: every line, latest value per key, by card.
	stmtLines := map[string]map[string]*eventsv1.StatementLine{}
	unreadable := map[string]bool{}
	lines := cfg.Topo.StatementLines()
	if _, err := readTopic(ctx, client, lines.Name, func(m *sarama.ConsumerMessage) {
		key := string(m.Key)
		token, _, err := statements.ParseLineKey(key)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("statement line under a key that is not a line's: %s", card.Redact(key)))
			return
		}
		if m.Value == nil {
			delete(stmtLines[token], key)
			return
		}
		v, err := lines.Codec.Decode(m.Value)
		if err != nil {
			unreadable[token] = true
			return
		}
		if stmtLines[token] == nil {
			stmtLines[token] = map[string]*eventsv1.StatementLine{}
		}
		stmtLines[token][key] = v.(*eventsv1.StatementLine)
	}); err != nil {
		return nil, err
	}

	// Every card, in a stable order.
	for _, token := range sortedUnion(maps.Keys(cards), maps.Keys(accounts), maps.Keys(stmtLines)) {
		rep.Problems = append(rep.Problems, checkCard(token, cards[token], accounts[token], stmtLines[token], unreadable[token], partial)...)
	}

	if err := countDeadLetters(client, cfg, rep); err != nil {
		return nil, err
	}
	if cfg.Search != nil {
		if err := checkIndex(ctx, cfg.Search, cfg.Index, payments, rep); err != nil {
			return nil, err
		}
	}
	return rep, nil
}

// checkCard returns the discrepancies of one card.
func checkCard(token string, b *books, a *accountInfo, stmt map[string]*eventsv1.StatementLine, unreadable, partial bool) []string {
	if b == nil {
		b = &books{lines: map[string]*codecs.Result{}}
	}
	name := b.masked
	if a != nil {
		name = a.masked
	}
	if name == "" {
		name = "with token " + token
	}
	var out []string
	bad := func(format string, args ...any) { out = append(out, "card "+name+": "+fmt.Sprintf(format, args...)) }

	switch {
	case a == nil:
		if b.approved > 0 {
			bad("%d approved results (%s) but no account", b.approved, money.Format(b.approvedCents))
		}
	case a.err != nil:
		bad("account does not decode: %v", a.err)
	default:
		used, limit := a.acct.GetUsedCents(), a.acct.GetLimitCents()
		if used > limit {
			bad("used %s is over its limit %s", money.Format(used), money.Format(limit))
		}
		if !partial && used != b.approvedCents-b.creditedCents {
			bad("used %s, but its results say %s: %s approved (%d purchases) less %s given back (%d reversals, refunds and bill payments)",
				money.Format(used), money.Format(b.approvedCents-b.creditedCents), money.Format(b.approvedCents), b.approved,
				money.Format(b.creditedCents), b.operations)
		}
	}

	if unreadable {
		bad("a statement line does not decode")
		return out
	}
	// Every approved payment and operation has its line, of its kind and for its amount, and
	// nothing else is on the statement.
	for _, key := range slices.Sorted(maps.Keys(stmt)) {
		line := stmt[key]
		_, at, _ := statements.ParseLineKey(key)
		month := statements.MonthOf(at)
		if r, ok := b.lines[key]; !ok {
			bad("statement of %s: line %q (%s) is no approved payment's or operation's", month, line.GetTransactionId()+line.GetOperationId(), money.Format(line.GetAmountCents()))
		} else if want, _ := statements.LineOf(r); r.AmountCents != line.GetAmountCents() || r.TransactionID != line.GetTransactionId() ||
			want.GetKind() != kindOf(line) || r.OperationID != line.GetOperationId() {
			bad("statement of %s: line %q is a %s of %s, its result %q a %s of %s", month, line.GetTransactionId()+line.GetOperationId(), kindOf(line),
				money.Format(line.GetAmountCents()), r.PaymentKey, r.KindOf(), money.Format(r.AmountCents))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(b.lines)) {
		if r := b.lines[key]; stmt[key] == nil {
			_, at, _ := statements.ParseLineKey(key)
			what := "payment " + r.TransactionID
			if !r.Purchase() {
				what = strings.ReplaceAll(r.KindOf(), "_", " ") + " " + r.OperationID
			}
			bad("statement of %s: the line of %s (%s) is missing", statements.MonthOf(at), what, money.Format(r.AmountCents))
		}
	}
	// Each month's sums, and its bill: the closing balance the statement shows (its opening
	// plus its purchases less its reversals, refunds and payments, month after month) is the
	// card's used credit at the month's end, as its results say; and the latest is the
	// account's.
	fromResults := make(map[string]*eventsv1.StatementLine, len(b.lines))
	for k, r := range b.lines {
		fromResults[k], _ = statements.LineOf(r)
	}
	want, got := summaries(fromResults), summaries(stmt)
	wantBills, gotBills := statements.Bills(want, time.Now()), statements.Bills(got, time.Now())
	byMonth := map[string][2]*statements.Bill{}
	for i := range wantBills {
		e := byMonth[wantBills[i].Month]
		e[0] = &wantBills[i]
		byMonth[wantBills[i].Month] = e
	}
	for i := range gotBills {
		e := byMonth[gotBills[i].Month]
		e[1] = &gotBills[i]
		byMonth[gotBills[i].Month] = e
	}
	for _, month := range slices.Sorted(maps.Keys(byMonth)) {
		w, g := byMonth[month][0], byMonth[month][1]
		if w == nil {
			w = &statements.Bill{}
		}
		if g == nil {
			g = &statements.Bill{}
		}
		if g.Closing != g.Opening+g.Purchases-g.Reversals-g.Refunds-g.Payments {
			bad("statement of %s: closing balance %s is not its opening %s plus purchases %s less reversals %s, refunds %s and payments %s",
				month, money.Format(g.Closing), money.Format(g.Opening), money.Format(g.Purchases), money.Format(g.Reversals), money.Format(g.Refunds), money.Format(g.Payments))
		}
		if w.Purchases != g.Purchases || w.Reversals != g.Reversals || w.Refunds != g.Refunds || w.Payments != g.Payments {
			bad("statement of %s shows purchases %s, reversals %s, refunds %s, payments %s; its results are %s, %s, %s, %s", month,
				money.Format(g.Purchases), money.Format(g.Reversals), money.Format(g.Refunds), money.Format(g.Payments),
				money.Format(w.Purchases), money.Format(w.Reversals), money.Format(w.Refunds), money.Format(w.Payments))
		}
		if !partial && g.Closing != w.Closing {
			bad("statement of %s closes at %s, but the card's used credit at the month's end was %s", month, money.Format(g.Closing), money.Format(w.Closing))
		}
	}
	if n := len(gotBills); n > 0 && !partial && a != nil && a.acct != nil && gotBills[n-1].Closing != a.acct.GetUsedCents() {
		bad("statement of %s closes at %s, the account's used credit is %s", gotBills[n-1].Month, money.Format(gotBills[n-1].Closing), money.Format(a.acct.GetUsedCents()))
	}
	return out
}

// kindOf is a statement line's kind, a line written before kinds being a purchase's.
func kindOf(l *eventsv1.StatementLine) eventsv1.OperationKind {
	if l.GetKind() == eventsv1.OperationKind_OPERATION_KIND_UNSPECIFIED {
		return eventsv1.OperationKind_OPERATION_KIND_PURCHASE
	}
	return l.GetKind()
}

// summaries adds up a card's lines by their keys (statement line keys), month by month.
func summaries(lines map[string]*eventsv1.StatementLine) []*eventsv1.MonthTotal {
	var s statements.Summaries
	for _, k := range slices.Sorted(maps.Keys(lines)) { // by time, as the statement reads them
		if _, at, err := statements.ParseLineKey(k); err == nil {
			s.Add(at, lines[k])
		}
	}
	return s.Months()
}

// sortedUnion returns every key the sequences yield, once each, sorted.
func sortedUnion(seqs ...iter.Seq[string]) []string {
	set := map[string]bool{}
	for _, seq := range seqs {
		for k := range seq {
			set[k] = true
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// countDeadLetters counts the records of every dead-letter topic.
func countDeadLetters(client sarama.Client, cfg Config, rep *Report) error {
	seen := map[string]bool{}
	for _, c := range append(cfg.Topo.Consumers(), cfg.Consumers...) {
		for _, in := range c.Inputs {
			name := in.DeadLetters.Name
			if seen[name] {
				continue
			}
			seen[name] = true
			n, err := records(client, name)
			if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				continue
			}
			if err != nil {
				return err
			}
			if n > 0 {
				rep.DeadLetters[name] = n
			}
		}
	}
	return nil
}

// records returns how many records a topic holds.
func records(client sarama.Client, topic string) (int64, error) {
	parts, err := client.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range parts {
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return 0, err
		}
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		n += newest - oldest
	}
	return n, nil
}

// checkIndex compares the index's document ids with the payment keys.
func checkIndex(ctx context.Context, c *elastic.Client, index string, payments map[string]*codecs.Result, rep *Report) error {
	if _, err := c.Refresh(index).Do(ctx); err != nil && !elastic.IsNotFound(err) {
		return fmt.Errorf("refresh %s: %w", index, err)
	}
	ids := map[string]bool{}
	scroll := c.Scroll(index).Size(1000).FetchSource(false)
	defer scroll.Clear(context.Background())
	for {
		res, err := scroll.Do(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if elastic.IsNotFound(err) {
			break
		}
		if err != nil {
			return fmt.Errorf("read index %s: %w", index, err)
		}
		for _, h := range res.Hits.Hits {
			ids[h.Id] = true
		}
	}
	rep.Documents = int64(len(ids))
	var missing, extra []string
	for key := range payments {
		if !ids[key] {
			missing = append(missing, key)
		}
	}
	for id := range ids {
		if payments[id] == nil {
			extra = append(extra, id)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	if len(missing) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("index %s: %d payments or operations have no document, e.g. %s", index, len(missing), strings.Join(missing[:min(3, len(missing))], ", ")))
	}
	if len(extra) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("index %s: %d documents are no payment's or operation's, e.g. %s", index, len(extra), strings.Join(extra[:min(3, len(extra))], ", ")))
	}
	return nil
}

// idle is how long a partition may stay silent before its high water mark is reached.
const idle = 10 * time.Second

// readTopic hands fn every record of a topic up to the high water marks read at the start, one
// partition after another. partial reports that retention removed a partition's oldest records.
func readTopic(ctx context.Context, client sarama.Client, topic string, fn func(*sarama.ConsumerMessage)) (partial bool, err error) {
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return false, err
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		return false, fmt.Errorf("partitions of %s: %w", topic, err)
	}
	for _, p := range parts {
		oldest, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			return false, err
		}
		newest, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return false, err
		}
		partial = partial || oldest > 0
		if newest <= oldest {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, oldest)
		if err != nil {
			return false, fmt.Errorf("read %s/%d: %w", topic, p, err)
		}
		err = func() error {
			defer pc.Close()
			timer := time.NewTimer(idle)
			defer timer.Stop()
			for {
				select {
				case m := <-pc.Messages():
					fn(m)
					if m.Offset >= newest-1 {
						return nil
					}
					timer.Reset(idle)
				case err := <-pc.Errors():
					return fmt.Errorf("read %s/%d: %w", topic, p, err)
				case <-timer.C:
					return fmt.Errorf("read %s/%d: no record for %v before offset %d", topic, p, idle, newest)
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}()
		if err != nil {
			return false, err
		}
	}
	return partial, nil
}
