package statements

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
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

func TestStatementsProcessor(t *testing.T) {
	tt, topo := start(t)
	table := goka.Table(topo.StatementsTable().Name)
	results := topo.Results().Name
	tt.Consume(results, "tok", result("a", "approved", "2026-10-31T23:59:59.000000Z", 100))
	tt.Consume(results, "tok", result("b", "rejected", "2026-10-31T23:59:59.500000Z", 999))
	tt.Consume(results, "tok", result("c", "approved", "2026-11-01T00:00:00.000000Z", 250))
	tt.Consume(results, "tok", result("a", "approved", "2026-10-31T23:59:59.000000Z", 100)) // published again
	tt.Consume(results, "tok", result("d", "approved", "2026-11-02T10:00:00.000000Z", 50))

	card := entryOf(t, tt.TableValue(table, "tok")).GetCard()
	months := map[string][2]int64{}
	for _, m := range card.GetMonths() {
		months[m.GetMonth()] = [2]int64{m.GetCount(), m.GetTotalCents()}
	}
	if months["2026-10"] != [2]int64{1, 100} || months["2026-11"] != [2]int64{2, 300} || len(months) != 2 {
		t.Fatalf("months = %v, want 2026-10: 1 line 100, 2026-11: 2 lines 300", months)
	}
	oct := entryOf(t, tt.TableValue(table, PageKey("tok", "2026-10", 0))).GetPage().GetLines()
	nov := entryOf(t, tt.TableValue(table, PageKey("tok", "2026-11", 0))).GetPage().GetLines()
	if len(oct) != 1 || oct[0].GetTransactionId() != "a" || len(nov) != 2 || nov[0].GetTransactionId() != "c" || nov[1].GetTransactionId() != "d" {
		t.Fatalf("pages: october %v, november %v", oct, nov)
	}
}

func TestPages(t *testing.T) {
	tt, topo := start(t)
	table := goka.Table(topo.StatementsTable().Name)
	for i := 0; i < PageSize+5; i++ {
		tt.Consume(topo.Results().Name, "tok", result(string(rune('A'+i%26))+string(rune('a'+i/26)), "approved", "2026-11-05T10:00:00.000000Z", 1))
	}
	p0 := entryOf(t, tt.TableValue(table, PageKey("tok", "2026-11", 0))).GetPage().GetLines()
	p1 := entryOf(t, tt.TableValue(table, PageKey("tok", "2026-11", 1))).GetPage().GetLines()
	if len(p0) != PageSize || len(p1) != 5 {
		t.Fatalf("pages hold %d and %d lines, want %d and 5", len(p0), len(p1), PageSize)
	}
}

func TestPlaceIsIdempotent(t *testing.T) {
	page := &eventsv1.StatementPage{}
	pl := &eventsv1.StatementLinePlacement{LineNo: 2, Line: nil}
	Place(page, pl)
	Place(page, pl)
	if len(page.GetLines()) != 3 {
		t.Fatalf("page has %d slots, want 3", len(page.GetLines()))
	}
	card := &eventsv1.StatementCard{}
	if Add(card, "t:m:x", "2026-11", 5) != 0 || Add(card, "t:m:y", "2026-11", 5) != 1 || Add(card, "t:m:z", "2026-12", 5) != 0 {
		t.Fatal("line numbers must count per month from 0")
	}
}

// TestAppliedPayments: a card's state remembers its latest keepApplied payments by their keys
// within the card, recognises those it remembered by whole keys before, and stays small: it is
// read and written whole for every purchase.
func TestAppliedPayments(t *testing.T) {
	token := "gzNcUY7KgaoXOFX_qNg2gQ"
	key := func(i int) string {
		return fmt.Sprintf("%s:code-store:%08x-7c1e-4b0e-9d53-2b8f0f4e6a%02x", token, i, i%256)
	}
	card := &eventsv1.StatementCard{Recent: []*eventsv1.AppliedLine{{PaymentKey: key(-1), TransactionId: "old", Month: "2026-10", LineNo: 7}}}
	if prev := applied(card, key(-1)); prev == nil || prev.GetLineNo() != 7 {
		t.Fatalf("a payment remembered by its whole key is not recognised: %v", prev)
	}
	for i := range 1000 {
		Add(card, key(i), "2026-11", 100)
	}
	if n := len(card.GetRecent()); n != keepApplied {
		t.Fatalf("%d payments remembered, want %d", n, keepApplied)
	}
	if applied(card, key(1000-keepApplied)) == nil || applied(card, key(999)) == nil || applied(card, key(1000-keepApplied-1)) != nil {
		t.Error("the latest payments are not the ones remembered")
	}
	if k := card.GetRecent()[0].GetPaymentKey(); strings.HasPrefix(k, token) || card.GetRecent()[0].GetTransactionId() != "" {
		t.Errorf("a payment is remembered as %q, %q: want its key within the card only", k, card.GetRecent()[0].GetTransactionId())
	}
	// 128 payments of 36-character transaction ids: under 8 KB (about 31 KB with 256 whole
	// keys and transaction ids).
	if size := proto.Size(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Card{Card: card}}); size > 8<<10 {
		t.Errorf("a card's state is %d bytes", size)
	}
	if keepApplied < authorizer.DefaultKeep {
		t.Errorf("keepApplied %d is under the authorizer's %d remembered outcomes, whose results it may publish again", keepApplied, authorizer.DefaultKeep)
	}
}

// TestPoisonRecords feeds the statements group records it cannot use: each goes to the
// dead-letter topic of its input, and the group goes on applying results.
func TestPoisonRecords(t *testing.T) {
	tt, topo := start(t)
	table := goka.Table(topo.StatementsTable().Name)
	results, loop := topo.Results(), topo.StatementsLoop()
	resultsDLQ := tt.NewQueueTracker(topo.DeadLetters(processors.ConsumerStatements, results).Name)
	loopDLQ := tt.NewQueueTracker(topo.DeadLetters(processors.ConsumerStatements, loop).Name)

	wrongKey := result("w", "approved", "2026-11-02T10:00:00.000000Z", 5)
	wrongKey.PaymentKey = "other:code-store:w"
	tt.SetTableValue(table, "damaged", &codecs.Undecodable{Raw: []byte("garbage")})
	damaged := result("x", "approved", "2026-11-02T10:00:00.000000Z", 5)
	damaged.CardToken, damaged.PaymentKey = "damaged", "damaged:code-store:x"
	tests := []struct {
		name    string
		topic   string
		key     string
		value   any
		dlq     *tester.QueueTracker
		wantErr string
	}{
		{"not JSON", results.Name, "tok", &codecs.Frame{Raw: []byte("not json")}, resultsDLQ, "decode"},
		{"no status", results.Name, "tok", result("s", "", "2026-11-02T10:00:00.000000Z", 5), resultsDLQ, "status"},
		{"payment key of another card", results.Name, "tok", wrongKey, resultsDLQ, "payment_key"},
		{"no time", results.Name, "tok", result("t", "approved", "yesterday", 5), resultsDLQ, "authorized_at"},
		{"card state damaged", results.Name, "damaged", damaged, resultsDLQ, "statement state unreadable"},
		{"placement on the wrong page", loop.Name, PageKey("tok", "2026-11", 3), &eventsv1.StatementLinePlacement{LineNo: 5, Line: &eventsv1.StatementLine{}}, loopDLQ, "line_no"},
		{"placement without a line", loop.Name, PageKey("tok", "2026-11", 0), &eventsv1.StatementLinePlacement{LineNo: 5}, loopDLQ, "line is required"},
		{"placement key without a month", loop.Name, "tok|nov|0000", &eventsv1.StatementLinePlacement{Line: &eventsv1.StatementLine{}}, loopDLQ, "month"},
		{"undecodable placement", loop.Name, PageKey("tok", "2026-11", 0), &codecs.Frame{Raw: []byte{0xff}}, loopDLQ, "decode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tt.Consume(tc.topic, tc.key, tc.value)
			h, key, _, ok := tc.dlq.NextWithHeaders()
			if !ok || key != tc.key {
				t.Fatalf("dead letter = %q, %v; want the record of %q", key, ok, tc.key)
			}
			if got := string(h[processors.HeaderError]); !strings.Contains(got, tc.wantErr) || string(h[processors.HeaderSourceTopic]) != tc.topic {
				t.Errorf("dead letter headers = %q, want an error about %s", h, tc.wantErr)
			}
		})
	}
	tt.Consume(results.Name, "tok", result("ok", "approved", "2026-11-02T10:00:00.000000Z", 7))
	if got := Applied(entryOf(t, tt.TableValue(table, "tok")).GetCard()); got != 1 {
		t.Errorf("applied %d purchases after the poison, want 1", got)
	}
}

// entryOf decodes a value of the group's table as its readers do.
func entryOf(t *testing.T, v any) *eventsv1.StatementEntry {
	t.Helper()
	st, ok := v.(*stored)
	if !ok {
		t.Fatalf("table value of type %T", v)
	}
	e, err := st.entry()
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestPagesTakeLinesInAnyOrder: lines placed in order are appended to the stored page's bytes,
// and any order (a line placed again, a gap filled later) gives the same page as placing them on
// the decoded page, which is what readers decode.
func TestPagesTakeLinesInAnyOrder(t *testing.T) {
	tt, topo := start(t)
	table := goka.Table(topo.StatementsTable().Name)
	key := PageKey("tok", "2026-11", 0)
	want := &eventsv1.StatementPage{}
	var sizes []int
	for _, no := range []int64{0, 1, 2, 2, 1, 5, 3, 4, 6, 7, 0, 8} {
		pl := &eventsv1.StatementLinePlacement{LineNo: no, Line: &eventsv1.StatementLine{TransactionId: fmt.Sprint("tx-", no), AmountCents: 100 + no, Store: "Code Store"}}
		tt.Consume(topo.StatementsLoop().Name, key, pl)
		Place(want, pl)
		got := entryOf(t, tt.TableValue(table, key)).GetPage()
		if !proto.Equal(got, want) {
			t.Fatalf("after line %d: page %v\nwant %v", no, got, want)
		}
		sizes = append(sizes, len(tt.TableValue(table, key).(*stored).raw))
	}
	// The first three went in order: each added just its line's bytes to the page.
	line := proto.Size(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Page{Page: &eventsv1.StatementPage{Lines: []*eventsv1.StatementLine{
		{TransactionId: "tx-1", AmountCents: 101, Store: "Code Store"}}}}})
	if sizes[1]-sizes[0] != line || sizes[2]-sizes[1] != line {
		t.Errorf("page sizes %v: in order, a line adds %d bytes", sizes[:3], line)
	}
}
