package statements

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func start(t *testing.T) (*tester.Tester, processors.Topology) {
	t.Helper()
	tt := tester.New(t)
	topo := processors.Topology{Prefix: "unit-"}
	proc, err := goka.NewProcessor(nil, New(Config{Topology: topo}, Deps{}).Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return tt, topo
}

func result(tx, status, at string, amount int64) *codecs.Result {
	r := &codecs.Result{PaymentKey: codecs.PaymentKey("tok", "code-store", tx), TransactionID: tx, CardToken: "tok", Merchant: "code-store", Status: status, AmountCents: amount,
		Store: "Code Store", Description: "d", AuthorizedAt: at}
	if status == codecs.StatusRejected {
		r.Reason = "insufficient_credit"
	}
	return r
}

// written is one record the group wrote to the lines topic.
type written struct {
	key  string
	line *eventsv1.StatementLine
}

func drain(t *testing.T, q *tester.QueueTracker) []written {
	t.Helper()
	var out []written
	for {
		key, v, ok := q.Next()
		if !ok {
			return out
		}
		out = append(out, written{key, v.(*eventsv1.StatementLine)})
	}
}

// TestStatementsProcessor: each approved result becomes one line under a key that orders the
// card's lines by time; a result published again writes the same key and value; rejections
// write nothing.
func TestStatementsProcessor(t *testing.T) {
	tt, topo := start(t)
	lines := tt.NewQueueTracker(topo.StatementLines().Name)
	results := topo.Results().Name
	tt.Consume(results, "tok", result("a", "approved", "2026-10-31T23:59:59.999999Z", 100))
	tt.Consume(results, "tok", result("b", "rejected", "2026-10-31T23:59:59.9999995Z", 999))
	tt.Consume(results, "tok", result("c", "approved", "2026-11-01T00:00:00.000000Z", 250))
	tt.Consume(results, "tok", result("a", "approved", "2026-10-31T23:59:59.999999Z", 100)) // published again
	tt.Consume(results, "tok", result("d", "approved", "2026-11-02T10:00:00.000000Z", 50))

	got := drain(t, lines)
	if len(got) != 4 {
		t.Fatalf("%d lines written, want 4 (three approvals, one of them twice): %v", len(got), got)
	}
	if got[0].key != got[2].key || !proto.Equal(got[0].line, got[2].line) {
		t.Errorf("a result published again wrote %q %v, first %q %v", got[2].key, got[2].line, got[0].key, got[0].line)
	}
	keys := map[string]*eventsv1.StatementLine{}
	for _, w := range got {
		keys[w.key] = w.line
	}
	sorted := slices.Sorted(func(yield func(string) bool) {
		for k := range keys {
			if !yield(k) {
				return
			}
		}
	})
	var txs []string
	var s Summaries
	for _, k := range sorted {
		token, at, err := ParseLineKey(k)
		if err != nil || token != "tok" {
			t.Fatalf("key %q: %q, %v", k, token, err)
		}
		txs = append(txs, keys[k].GetTransactionId())
		s.Add(at, keys[k])
	}
	if strings.Join(txs, ",") != "a,c,d" {
		t.Errorf("lines in key order: %v, want a,c,d", txs)
	}
	months := map[string][2]int64{}
	for _, m := range s.Months() {
		months[m.GetMonth()] = [2]int64{m.GetCount(), m.GetTotalCents()}
	}
	if months["2026-10"] != [2]int64{1, 100} || months["2026-11"] != [2]int64{2, 300} || len(months) != 2 || s.Count() != 3 {
		t.Fatalf("months = %v, want 2026-10: 1 line 100, 2026-11: 2 lines 300", months)
	}
	if l := keys[sorted[0]]; l.GetAmountCents() != 100 || l.GetStore() != "Code Store" || l.GetAuthorizedAtUnixMs() != time.Date(2026, 10, 31, 23, 59, 59, 999e6, time.UTC).UnixMilli() {
		t.Errorf("line a = %v", l)
	}
}

// TestLineKeys: keys sort by card, then time; a month is the range of its instants, UTC; the
// same payment always has the same key, another payment at the same instant another.
func TestLineKeys(t *testing.T) {
	at := time.Date(2026, 11, 30, 23, 59, 59, 999999000, time.UTC)
	k := LineKey("gzNcUY7KgaoXOFX_qNg2gQ", at, "gzNcUY7KgaoXOFX_qNg2gQ:code-store:order-1")
	if k != LineKey("gzNcUY7KgaoXOFX_qNg2gQ", at, "gzNcUY7KgaoXOFX_qNg2gQ:code-store:order-1") {
		t.Fatal("a payment's key is not stable")
	}
	if k == LineKey("gzNcUY7KgaoXOFX_qNg2gQ", at, "gzNcUY7KgaoXOFX_qNg2gQ:other-store:order-1") {
		t.Error("two payments at the same instant share a key")
	}
	token, got, err := ParseLineKey(k)
	if err != nil || token != "gzNcUY7KgaoXOFX_qNg2gQ" || !got.Equal(at) {
		t.Fatalf("ParseLineKey(%q) = %q, %v, %v", k, token, got, err)
	}
	in := func(key, month string) bool {
		start, limit, err := MonthRange("gzNcUY7KgaoXOFX_qNg2gQ", month)
		if err != nil {
			t.Fatal(err)
		}
		return start <= key && key < limit
	}
	next := LineKey("gzNcUY7KgaoXOFX_qNg2gQ", at.Add(time.Microsecond), "x")
	if !in(k, "2026-11") || in(k, "2026-12") || !in(next, "2026-12") || in(next, "2026-11") || k >= next {
		t.Errorf("the last µs of November and the first of December: %q, %q", k, next)
	}
	cs, cl := CardRange("gzNcUY7KgaoXOFX_qNg2gQ")
	for _, other := range []string{"gzNcUY7KgaoXOFX_qNg2gR", "gzNcUY7KgaoXOFX_qNg2g-", "gzNcUY7KgaoXOFX_qNg2g_", "gzNcUY7KgaoXOFX_qNg2gz"} {
		if o := LineKey(other, at, "x"); cs <= o && o < cl {
			t.Errorf("card %s's line %q falls in the range of another card", other, o)
		}
	}
	if !(cs <= k && k < cl) {
		t.Errorf("%q is not within its card's range [%q, %q)", k, cs, cl)
	}
	for _, bad := range []string{"", "tok", "tok|123|abc", "tok|00000000000000x1|0123456789abcdef", "tok|0000000000000001|0123456789abcdeg", "|0000000000000001|0123456789abcdef"} {
		if _, _, err := ParseLineKey(bad); err == nil {
			t.Errorf("ParseLineKey(%q) accepted", bad)
		}
	}
	if _, _, err := MonthRange("tok", "2026-13"); err == nil {
		t.Error("month 2026-13 accepted")
	}
}

// TestPoisonRecords feeds the statements group results it cannot use: each goes to the
// dead-letter topic of the results, and the group goes on writing lines.
func TestPoisonRecords(t *testing.T) {
	tt, topo := start(t)
	results := topo.Results()
	lines := tt.NewQueueTracker(topo.StatementLines().Name)
	resultsDLQ := tt.NewQueueTracker(topo.DeadLetters(processors.ConsumerStatements, results).Name)
	wrongKey := result("w", "approved", "2026-11-02T10:00:00.000000Z", 5)
	wrongKey.PaymentKey = "other:code-store:w"
	for _, tc := range []struct {
		name    string
		value   any
		wantErr string
	}{
		{"not JSON", &codecs.Frame{Raw: []byte("not json")}, "decode"},
		{"no status", result("s", "", "2026-11-02T10:00:00.000000Z", 5), "status"},
		{"payment key of another card", wrongKey, "payment_key"},
		{"no time", result("t", "approved", "yesterday", 5), "authorized_at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tt.Consume(results.Name, "tok", tc.value)
			h, key, _, ok := resultsDLQ.NextWithHeaders()
			if !ok || key != "tok" {
				t.Fatalf("dead letter = %q, %v; want the record of tok", key, ok)
			}
			if got := string(h[stream.HeaderError]); !strings.Contains(got, tc.wantErr) || string(h[stream.HeaderSourceTopic]) != results.Name {
				t.Errorf("dead letter headers = %q, want an error about %s", h, tc.wantErr)
			}
		})
	}
	if got := drain(t, lines); len(got) != 0 {
		t.Fatalf("poison wrote lines: %v", got)
	}
	tt.Consume(results.Name, "tok", result("ok", "approved", "2026-11-02T10:00:00.000000Z", 7))
	if got := drain(t, lines); len(got) != 1 || got[0].line.GetTransactionId() != "ok" {
		t.Errorf("after the poison: %v, want the line of ok", got)
	}
}

// BenchmarkApply is the statements' work for one approved result: the line and its key.
func BenchmarkApply(b *testing.B) {
	r := result("order-123456", "approved", "2026-11-02T10:00:00.123456Z", 1999)
	for i := 0; b.Loop(); i++ {
		line, at := LineOf(r)
		_ = LineKey(r.CardToken, at, r.PaymentKey)
		if _, err := codecs.StatementLine.Encode(line); err != nil {
			b.Fatal(err)
		}
	}
}
