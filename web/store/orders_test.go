package store

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
)

var (
	t0    = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	mug   = Item{Slug: "mug", Name: "Stoneware Mug", PriceCents: 5990, Quantity: 2}
	place = &Event{Kind: EventPlaced, At: t0, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555"}
)

func TestApply(t *testing.T) {
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	approve := &Event{Kind: EventDecided, At: at(2), Status: StatusApproved, TransactionID: "order-1"}
	reject := &Event{Kind: EventDecided, At: at(2), Status: StatusRejected, Reason: "insufficient_credit", TransactionID: "order-1"}
	unreachable := &Event{Kind: EventFailed, At: at(1), Error: ErrorUnreachable}
	retry := &Event{Kind: EventPlaced, At: at(3), Items: []Item{{Slug: "other", Quantity: 9}}, TotalCents: 1, CardMasked: "411111******1111"}
	approvePaid := &Event{Kind: EventDecided, At: at(2), Status: StatusApproved, TransactionID: "order-1", PaymentID: "pay-1"}
	cancelling := &Event{Kind: EventCancelling, At: at(4), CancelKind: CancelReversal, CancelID: "order-1"}
	cancelAsRefund := &Event{Kind: EventCancelling, At: at(6), CancelKind: CancelRefund, CancelID: "order-1"}
	cancelFailed := &Event{Kind: EventCancelFailed, At: at(5), Error: ErrorUnreachable}
	cancelled := &Event{Kind: EventCancelled, At: at(7)}

	tests := []struct {
		name   string
		events []*Event
		want   Order
	}{
		{"placed", []*Event{place},
			Order{Status: StatusPending, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1, UpdatedAt: t0}},
		{"approved", []*Event{place, approve},
			Order{Status: StatusApproved, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1,
				TransactionID: "order-1", DecidedAt: at(2), UpdatedAt: at(2)}},
		{"rejected", []*Event{place, reject},
			Order{Status: StatusRejected, Reason: "insufficient_credit", Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555",
				Attempts: 1, TransactionID: "order-1", DecidedAt: at(2), UpdatedAt: at(2)}},
		{"unreachable stays pending", []*Event{place, unreachable},
			Order{Status: StatusPending, LastError: ErrorUnreachable, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1, UpdatedAt: at(1)}},
		{"retry keeps the first placement's items and clears the error", []*Event{place, unreachable, retry},
			Order{Status: StatusPending, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 2, UpdatedAt: at(3)}},
		{"a failure before the first placement keeps the placement's items", []*Event{unreachable, place},
			Order{Status: StatusPending, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1, UpdatedAt: t0}},
		{"a decision is final", []*Event{place, approve, retry, unreachable, reject},
			Order{Status: StatusApproved, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1,
				TransactionID: "order-1", DecidedAt: at(2), UpdatedAt: at(2)}},
		{"a cancellation keeps its first kind through a failure and a retry", []*Event{place, approvePaid, cancelling, cancelFailed, cancelAsRefund, cancelled},
			Order{Status: StatusApproved, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1,
				TransactionID: "order-1", PaymentID: "pay-1", DecidedAt: at(2), UpdatedAt: at(7),
				Cancellation: &Cancellation{Kind: CancelReversal, ID: "order-1", AmountCents: 11980, RequestedAt: at(4), DoneAt: at(7)}}},
		{"a cancellation carried out is final", []*Event{place, approvePaid, cancelling, cancelled, cancelFailed, cancelAsRefund},
			Order{Status: StatusApproved, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1,
				TransactionID: "order-1", PaymentID: "pay-1", DecidedAt: at(2), UpdatedAt: at(7),
				Cancellation: &Cancellation{Kind: CancelReversal, ID: "order-1", AmountCents: 11980, RequestedAt: at(4), DoneAt: at(7)}}},
		{"nothing to cancel without a payment id, or before an approval", []*Event{place, cancelling, approve, cancelling, cancelled},
			Order{Status: StatusApproved, Items: []Item{mug}, TotalCents: 11980, Currency: "BRL", CardMasked: "545454******8555", Attempts: 1,
				TransactionID: "order-1", DecidedAt: at(2), UpdatedAt: at(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var o *Order
			for i, e := range tt.events {
				before := o
				var snapshot Order
				if before != nil {
					snapshot = *before
				}
				o = Apply(o, "order-1", e, int64(10+i))
				if before != nil && !reflect.DeepEqual(*before, snapshot) {
					t.Fatalf("Apply modified its input")
				}
			}
			want := tt.want
			want.ID, want.PlacedAt, want.Offset = "order-1", t0, int64(10+len(tt.events)-1)
			if !reflect.DeepEqual(*o, want) {
				t.Errorf("got  %+v\nwant %+v", *o, want)
			}
		})
	}
}

func startProcessor(t *testing.T) (*tester.Tester, Topology) {
	t.Helper()
	tt := tester.New(t)
	topo := Topology{Prefix: "unit-"}
	proc, err := goka.NewProcessor(nil, New(topo, Deps{}).Graph(), goka.WithTester(tt))
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

func TestProcessor(t *testing.T) {
	tt, topo := startProcessor(t)
	events, table := topo.Events().Name, goka.Table(topo.Table().Name)
	tt.Consume(events, "order-1", place)
	tt.Consume(events, "order-2", place)
	tt.Consume(events, "order-1", &Event{Kind: EventDecided, At: t0, Status: StatusApproved, TransactionID: "order-1"})
	tt.Consume(events, "order-1", place) // a second click, after the answer

	o1, o2 := tt.TableValue(table, "order-1").(*Order), tt.TableValue(table, "order-2").(*Order)
	if o1.Status != StatusApproved || o1.Attempts != 1 || o1.TotalCents != 11980 || o1.ID != "order-1" {
		t.Errorf("order-1 = %+v, want approved after one attempt", o1)
	}
	if o2.Status != StatusPending || o2.ID != "order-2" {
		t.Errorf("order-2 = %+v, want pending", o2)
	}
	if o1.Offset <= o2.Offset {
		t.Errorf("order-1 offset %d, order-2 offset %d: want the latest event's offset", o1.Offset, o2.Offset)
	}
}

// TestOrdersNeverPaidExpire: an expiry forgets the orders never paid (pending, declined) that
// had not changed before its time, and keeps an approved order, a cancelled one and any order
// changed since; an expiry of an order that is not there changes nothing.
func TestOrdersNeverPaidExpire(t *testing.T) {
	tt, topo := startProcessor(t)
	events, table := topo.Events().Name, goka.Table(topo.Table().Name)
	day := 24 * time.Hour
	later := func(e *Event, d time.Duration) *Event { c := *e; c.At = c.At.Add(d); return &c }
	tt.Consume(events, "order-pending", place)
	tt.Consume(events, "order-declined", place)
	tt.Consume(events, "order-declined", &Event{Kind: EventDecided, At: t0, Status: StatusRejected, Reason: "insufficient_credit", TransactionID: "order-declined"})
	tt.Consume(events, "order-paid", place)
	tt.Consume(events, "order-paid", &Event{Kind: EventDecided, At: t0, Status: StatusApproved, TransactionID: "order-paid", PaymentID: "pay-1"})
	tt.Consume(events, "order-cancelled", place)
	tt.Consume(events, "order-cancelled", &Event{Kind: EventDecided, At: t0, Status: StatusApproved, TransactionID: "order-cancelled", PaymentID: "pay-2"})
	tt.Consume(events, "order-cancelled", &Event{Kind: EventCancelling, At: t0, CancelKind: CancelReversal, CancelID: "order-cancelled"})
	tt.Consume(events, "order-cancelled", &Event{Kind: EventCancelled, At: t0})
	tt.Consume(events, "order-retried", place)
	tt.Consume(events, "order-retried", later(place, 2*day)) // tried again two days later

	expire := &Event{Kind: EventExpired, At: t0.Add(2 * day), ExpireBefore: t0.Add(day)}
	for _, id := range []string{"order-pending", "order-declined", "order-paid", "order-cancelled", "order-retried", "order-never"} {
		tt.Consume(events, id, expire)
	}
	for id, kept := range map[string]bool{"order-pending": false, "order-declined": false, "order-paid": true, "order-cancelled": true, "order-retried": true, "order-never": false} {
		if got := tt.TableValue(table, id) != nil; got != kept {
			t.Errorf("%s after the expiry: kept %v, want %v", id, got, kept)
		}
	}
	if err := CheckEvent("order-1", &Event{Kind: EventExpired, At: t0}); !errors.Is(err, codecs.ErrContract) {
		t.Errorf("an expiry without expire_before = %v, want a contract error", err)
	}
}

// TestPoisonEvents feeds the orders group events it cannot use: each goes to its dead-letter
// topic, and the group goes on.
func TestPoisonEvents(t *testing.T) {
	tt, topo := startProcessor(t)
	events, table := topo.Events().Name, goka.Table(topo.Table().Name)
	dlq := tt.NewQueueTracker(topo.Consumers()[0].Inputs[0].DeadLetters.Name)
	tt.SetTableValue(table, "order-damaged", &codecs.Undecodable{Raw: []byte("{")})
	overflow := &Event{Kind: EventPlaced, At: t0, Items: []Item{{Slug: "x", PriceCents: 1 << 61, Quantity: 8}}, TotalCents: 0, CardMasked: "x"}
	tests := []struct {
		name, key string
		value     any
		wantErr   string
	}{
		{"not JSON", "order-1", &codecs.Frame{Raw: []byte("{")}, "decode"},
		{"unknown kind", "order-1", &Event{Kind: "shipped", At: t0}, "kind"},
		{"placement without items", "order-1", &Event{Kind: EventPlaced, At: t0, CardMasked: "x"}, "items"},
		{"total that overflows", "order-1", overflow, "price"},
		{"wrong total", "order-1", &Event{Kind: EventPlaced, At: t0, Items: []Item{mug}, TotalCents: 1, CardMasked: "x"}, "total_cents"},
		{"decision without status", "order-1", &Event{Kind: EventDecided, At: t0}, "status"},
		{"key that is no order id", "order 1/..", place, "key"},
		{"order damaged in the table", "order-damaged", place, "order unreadable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tt.Consume(events, tc.key, tc.value)
			h, key, _, ok := dlq.NextWithHeaders()
			if !ok || key != tc.key || !strings.Contains(string(h[stream.HeaderError]), tc.wantErr) {
				t.Fatalf("dead letter = %q %v %q, want one about %s", key, ok, h[stream.HeaderError], tc.wantErr)
			}
		})
	}
	tt.Consume(events, "order-1", place)
	if o := tt.TableValue(table, "order-1").(*Order); o.Attempts != 1 || o.TotalCents != 11980 {
		t.Errorf("order after the poison = %+v, want placed once", o)
	}
}

func TestTopics(t *testing.T) {
	topo := Topology{Prefix: "p-", Partitions: 4}
	ev, tab := topo.Events(), topo.Table()
	if ev.Name != "p-store-order-events" || tab.Name != "p-store-orders-table" || string(topo.Group()) != "p-store-orders" {
		t.Errorf("names = %s, %s, %s", ev.Name, tab.Name, topo.Group())
	}
	if ev.Partitions != 4 || tab.Partitions != 4 || tab.Config["cleanup.policy"] != "compact" {
		t.Errorf("events %+v, table %+v", ev, tab)
	}
	if p := (Topology{}).Events().Partitions; p != stream.DefaultPartitions {
		t.Errorf("default partitions = %d, want %d", p, stream.DefaultPartitions)
	}
}

func TestCodecs(t *testing.T) {
	o := Apply(nil, "order-1", place, 7)
	b, err := OrderCodec{}.Encode(o)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "decided_at") {
		t.Errorf("pending order encodes a decision time: %s", b)
	}
	back, err := OrderCodec{}.Decode(b)
	if err != nil || !reflect.DeepEqual(back, o) {
		t.Errorf("round trip = %+v, %v; want %+v", back, err, o)
	}
	if _, err := (EventCodec{}).Encode(o); err == nil {
		t.Error("EventCodec encoded an *Order")
	}
	if _, err := (OrderCodec{}).Decode([]byte("{")); err == nil {
		t.Error("OrderCodec decoded broken JSON")
	}
}

func TestMemory(t *testing.T) {
	m := NewMemory(func() time.Time { return t0 })
	ctx := context.Background()
	if _, err := m.Get(ctx, "x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get of a missing order = %v, want ErrNotFound", err)
	}
	if o, _ := m.Place(ctx, "x", Placement{Items: []Item{mug}, CardMasked: "545454******8555"}); o.TotalCents != 11980 || o.Status != StatusPending {
		t.Fatalf("Place = %+v", o)
	}
	if o, _ := m.Decide(ctx, "x", Decision{Status: StatusRejected, Reason: "cvv_mismatch"}); o.Status != StatusRejected || o.Reason != "cvv_mismatch" {
		t.Fatalf("Decide = %+v", o)
	}
	m.Err = errors.New("kafka down")
	if _, err := m.Fail(ctx, "x", ErrorUnreachable); err == nil {
		t.Fatal("Fail with a broken store = nil error")
	}
}
