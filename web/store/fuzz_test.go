package store

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzApply folds a sequence of events, decoded from arbitrary JSON lines, into an order as the
// orders group does (events that break the contract are dead-lettered, not applied): Apply never
// changes the order it is given, a decision is final, attempts only grow, the items and total
// are the first placement's, only an approved order with a payment id is ever cancelled, and a
// cancellation carried out never changes.
func FuzzApply(f *testing.F) {
	f.Add([]byte(`{"kind":"placed","at":"2026-11-25T10:00:00Z","items":[{"slug":"mug","name":"Mug","price_cents":5990,"quantity":2}],"total_cents":11980,"card_masked":"x"}
{"kind":"failed","at":"2026-11-25T10:00:01Z","error":"bank_unreachable"}
{"kind":"placed","at":"2026-11-25T10:00:02Z","items":[{"slug":"x","price_cents":1,"quantity":1}],"total_cents":1,"card_masked":"y"}
{"kind":"decided","at":"2026-11-25T10:00:03Z","status":"approved","transaction_id":"order-1"}
{"kind":"decided","at":"2026-11-25T10:00:04Z","status":"rejected"}`))
	f.Add([]byte(`{"kind":"decided","at":"2026-11-25T10:00:03Z","status":"approved"}`))
	f.Add([]byte(`{"kind":"placed","at":"2026-11-25T10:00:00Z","items":[{"slug":"mug","name":"Mug","price_cents":5990,"quantity":2}],"total_cents":11980,"card_masked":"x"}
{"kind":"decided","at":"2026-11-25T10:00:03Z","status":"approved","transaction_id":"order-1","payment_id":"p"}
{"kind":"cancelling","at":"2026-11-25T10:01:00Z","cancel_kind":"reversal","cancel_id":"order-1"}
{"kind":"cancel_failed","at":"2026-11-25T10:01:01Z","error":"bank_unreachable"}
{"kind":"cancelling","at":"2026-11-26T11:00:00Z","cancel_kind":"refund","cancel_id":"order-1"}
{"kind":"cancelled","at":"2026-11-26T11:00:01Z"}
{"kind":"cancel_failed","at":"2026-11-26T11:00:02Z","error":"bank_unreachable"}`))
	f.Add([]byte(`{"kind":"placed","at":"2026-11-25T10:00:00Z","items":[{"slug":"x","price_cents":2305843009213693952,"quantity":8}],"total_cents":0,"card_masked":"x"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var o *Order
		var first *Event
		for i, line := range bytes.Split(data, []byte("\n")) {
			v, err := EventCodec{}.Decode(line)
			if err != nil {
				continue
			}
			e := v.(*Event)
			if CheckEvent("order-1", e) != nil {
				continue
			}
			var before Order
			if o != nil {
				before = *o
			}
			n := Apply(o, "order-1", e, int64(i))
			if o != nil && !reflect.DeepEqual(*o, before) {
				t.Fatal("Apply changed the order it was given")
			}
			if o != nil && o.Decided() && (n.Status != o.Status || n.Reason != o.Reason || n.DecidedAt != o.DecidedAt) {
				t.Fatalf("a decided order changed: %+v, then %+v", o, n)
			}
			if o != nil && n.Attempts < o.Attempts || n.Offset < int64(i) {
				t.Fatalf("attempts or offset went back: %+v, then %+v", o, n)
			}
			if e.Kind == EventPlaced && first == nil && (o == nil || !o.Decided()) {
				first = e // the placement that sets the order's items
			}
			if n.Cancellation != nil && (n.Status != StatusApproved || n.PaymentID == "" || n.Cancellation.AmountCents != n.TotalCents) {
				t.Fatalf("cancellation %+v of order %+v", n.Cancellation, n)
			}
			if o != nil && o.Cancelled() && !reflect.DeepEqual(*o.Cancellation, *n.Cancellation) {
				t.Fatalf("a cancellation carried out changed: %+v, then %+v", o.Cancellation, n.Cancellation)
			}
			if first != nil && (n.TotalCents != first.TotalCents || n.TotalCents != Total(n.Items)) {
				t.Fatalf("order total %d, first placement's %d, items' %d", n.TotalCents, first.TotalCents, Total(n.Items))
			}
			o = n
		}
	})
}
