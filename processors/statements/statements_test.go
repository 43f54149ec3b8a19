package statements

import (
	"context"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func start(t *testing.T) (*tester.Tester, processors.Topology) {
	t.Helper()
	tt := tester.New(t)
	topo := processors.Topology{Prefix: "unit-"}
	proc, err := goka.NewProcessor(nil, New(topo, nil, nil).Graph(), goka.WithTester(tt))
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
	return &codecs.Result{TransactionID: tx, CardToken: "tok", Status: status, AmountCents: amount, Store: "Code Store", Description: "d", AuthorizedAt: at}
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

	card := tt.TableValue(table, "tok").(*eventsv1.StatementEntry).GetCard()
	months := map[string][2]int64{}
	for _, m := range card.GetMonths() {
		months[m.GetMonth()] = [2]int64{m.GetCount(), m.GetTotalCents()}
	}
	if months["2026-10"] != [2]int64{1, 100} || months["2026-11"] != [2]int64{2, 300} || len(months) != 2 {
		t.Fatalf("months = %v, want 2026-10: 1 line 100, 2026-11: 2 lines 300", months)
	}
	oct := tt.TableValue(table, PageKey("tok", "2026-10", 0)).(*eventsv1.StatementEntry).GetPage().GetLines()
	nov := tt.TableValue(table, PageKey("tok", "2026-11", 0)).(*eventsv1.StatementEntry).GetPage().GetLines()
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
	p0 := tt.TableValue(table, PageKey("tok", "2026-11", 0)).(*eventsv1.StatementEntry).GetPage().GetLines()
	p1 := tt.TableValue(table, PageKey("tok", "2026-11", 1)).(*eventsv1.StatementEntry).GetPage().GetLines()
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
	if Add(card, "x", "2026-11", 5) != 0 || Add(card, "y", "2026-11", 5) != 1 || Add(card, "z", "2026-12", 5) != 0 {
		t.Fatal("line numbers must count per month from 0")
	}
}
