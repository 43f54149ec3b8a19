// Package audit checks Code Bank's books from its topics alone, as `codebank audit` does for an
// operator: it replays the results topic and reads the authorizer's and the statements' tables
// (and, when asked, the search index) and checks, for every card, that
//
//   - its account decodes and is not over its limit;
//   - the approved results sum to the account's used credit;
//   - its statement holds exactly one line for each approved result, for its amount, and each
//     month's count and total follow;
//   - no payment key was applied twice (two different approvals under one key);
//   - the search index holds one document per payment.
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
	Consumers []processors.Consumer
}

// Report is what an audit found.
type Report struct {
	// Results is the number of records read from the results topic; Payments the distinct
	// payment keys among them, Replays the records that repeated one identically, Refused the
	// records that do not decode or break the contract.
	Results, Payments, Replays, Refused int
	// Approved is the number of approved payments and ApprovedCents their sum.
	Approved      int
	ApprovedCents int64
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
	months        map[string]*monthBooks
	lines         map[string]*codecs.Result // the approved payments by the key of their statement line
}

type monthBooks struct{ cents, count int64 }

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

	// The results: every payment once, and each card's books.
	payments := map[string]*codecs.Result{}
	cards := map[string]*books{}
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
			b = &books{masked: r.CardMasked, months: map[string]*monthBooks{}, lines: map[string]*codecs.Result{}}
			cards[r.CardToken] = b
		}
		at, _ := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
		month := statements.MonthOf(at)
		b.lines[statements.LineKey(r.CardToken, at, r.PaymentKey)] = r
		mb := b.months[month]
		if mb == nil {
			mb = &monthBooks{}
			b.months[month] = mb
		}
		b.approved++
		b.approvedCents += r.AmountCents
		mb.count++
		mb.cents += r.AmountCents
	})
	if err != nil {
		return nil, err
	}
	rep.Partial = partial
	rep.Payments = len(payments)
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
		b = &books{months: map[string]*monthBooks{}, lines: map[string]*codecs.Result{}}
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
		if used < 0 {
			bad("used %s is negative", money.Format(used))
		}
		if !partial && used != b.approvedCents {
			bad("used %s, but its approved results sum to %s (%d payments)", money.Format(used), money.Format(b.approvedCents), b.approved)
		}
	}

	if unreadable {
		bad("a statement line does not decode")
		return out
	}
	// Every approved payment has its line, for its amount, and nothing else is on the
	// statement; each month's count and total follow.
	got := map[string]*monthBooks{}
	for _, key := range slices.Sorted(maps.Keys(stmt)) {
		line := stmt[key]
		_, at, _ := statements.ParseLineKey(key)
		month := statements.MonthOf(at)
		if got[month] == nil {
			got[month] = &monthBooks{}
		}
		got[month].count++
		got[month].cents += line.GetAmountCents()
		if r, ok := b.lines[key]; !ok {
			bad("statement of %s: line %q (%s) is no approved payment's", month, line.GetTransactionId(), money.Format(line.GetAmountCents()))
		} else if r.AmountCents != line.GetAmountCents() || r.TransactionID != line.GetTransactionId() {
			bad("statement of %s: line %q is for %s, its payment %q for %s", month, line.GetTransactionId(), money.Format(line.GetAmountCents()), r.TransactionID, money.Format(r.AmountCents))
		}
	}
	for _, key := range slices.Sorted(maps.Keys(b.lines)) {
		if r := b.lines[key]; stmt[key] == nil {
			_, at, _ := statements.ParseLineKey(key)
			bad("statement of %s: the line of payment %q (%s) is missing", statements.MonthOf(at), r.TransactionID, money.Format(r.AmountCents))
		}
	}
	for _, month := range sortedUnion(maps.Keys(b.months), maps.Keys(got)) {
		want, have := b.months[month], got[month]
		if want == nil {
			want = &monthBooks{}
		}
		if have == nil {
			have = &monthBooks{}
		}
		if *have != *want {
			bad("statement of %s shows %d purchases (%s), its approved results are %d (%s)",
				month, have.count, money.Format(have.cents), want.count, money.Format(want.cents))
		}
	}
	return out
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
		rep.Problems = append(rep.Problems, fmt.Sprintf("index %s: %d payments have no document, e.g. %s", index, len(missing), strings.Join(missing[:min(3, len(missing))], ", ")))
	}
	if len(extra) > 0 {
		rep.Problems = append(rep.Problems, fmt.Sprintf("index %s: %d documents are no payment's, e.g. %s", index, len(extra), strings.Join(extra[:min(3, len(extra))], ", ")))
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
