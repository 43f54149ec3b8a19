package statements

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// FuzzResult decodes a results record from arbitrary bytes as the statements processor reads
// it; one that passes the contract numbers a line in its month, and its line lands on the page
// its placement names.
func FuzzResult(f *testing.F) {
	good, _ := codecs.ResultCodec{}.Encode(result("a", "approved", "2026-10-31T23:59:59.000000Z", 100))
	f.Add(good)
	f.Add([]byte(`{"payment_key":"tok:a","transaction_id":"a","card_token":"tok","status":"approved","amount_cents":1,"authorized_at":"2026-11-01T00:00:00+03:00","store":"s","description":"d"}`))
	f.Add([]byte(`{"status":"approved"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := codecs.ResultCodec{}.Decode(data)
		if err != nil {
			return
		}
		r := v.(*codecs.Result)
		if codecs.CheckResult(r.CardToken, r) != nil || r.Status != codecs.StatusApproved {
			return
		}
		line, month := lineOf(r)
		card := &eventsv1.StatementCard{}
		no := Add(card, r.PaymentKey, month, r.AmountCents)
		if no != 0 || Applied(card) != 1 || card.GetMonths()[0].GetTotalCents() != r.AmountCents {
			t.Fatalf("first line of a card: number %d, %v", no, card)
		}
		pl := &eventsv1.StatementLinePlacement{LineNo: no, Line: line}
		key := PageKey(r.CardToken, month, no/PageSize)
		if err := CheckPlacement(key, pl); err != nil {
			t.Fatalf("the processor's own placement %q breaks the contract: %v", key, err)
		}
	})
}

// FuzzPlace decodes a placement and a stored page from arbitrary bytes; a placement that passes
// its contract puts its line at its slot of a page never longer than PageSize, and placing it
// again changes nothing.
func FuzzPlace(f *testing.F) {
	pl, _ := codecs.StatementLinePlacement.Encode(&eventsv1.StatementLinePlacement{LineNo: 205, Line: &eventsv1.StatementLine{TransactionId: "x", AmountCents: 1}})
	page, _ := codecs.StatementEntry.Encode(&eventsv1.StatementEntry{Entry: &eventsv1.StatementEntry_Page{Page: &eventsv1.StatementPage{Lines: []*eventsv1.StatementLine{{}, {}}}}})
	f.Add(PageKey("tok", "2026-11", 2), pl, page)
	f.Add(PageKey("tok", "2026-11", 0), pl, []byte{})
	f.Add("tok|2026-13|0000", pl, page)
	f.Fuzz(func(t *testing.T, key string, placement, stored []byte) {
		v, err := codecs.StatementLinePlacement.Decode(placement)
		if err != nil {
			return
		}
		p := v.(*eventsv1.StatementLinePlacement)
		if CheckPlacement(key, p) != nil {
			return
		}
		e, err := codecs.StatementEntry.Decode(stored)
		if err != nil {
			return
		}
		pg := e.(*eventsv1.StatementEntry).GetPage()
		if pg == nil || len(pg.GetLines()) > PageSize {
			pg = &eventsv1.StatementPage{}
		}
		Place(pg, p)
		slot := int(p.GetLineNo() % PageSize)
		if len(pg.GetLines()) > PageSize || !proto.Equal(pg.GetLines()[slot], p.GetLine()) {
			t.Fatalf("after placing line %d: %d lines, slot holds %v", p.GetLineNo(), len(pg.GetLines()), pg.GetLines()[slot])
		}
		once := proto.Clone(pg)
		Place(pg, p)
		if !proto.Equal(once, pg) {
			t.Fatal("placing a line twice changed the page")
		}
	})
}
