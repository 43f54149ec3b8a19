// Package orders keeps the Code Store's orders durably on Kafka: a goka group whose input is a
// stream of order events keyed by order id, and whose table holds every order's current state.
// The store (package web) writes events with a goka emitter and reads orders from a goka view
// of the table (Store); Memory is an in-process stand-in for handler tests.
//
// Its main types are Order, the table's value; Event, the input's value; Processor, which
// defines the group; and Store.
//
// # Why a goka table
//
// An order must outlive the process that took it: a customer reloads the order page after a
// restart of `codebank`, and the checkout of a pending order must be retried with the same id
// so that the bank charges once. The bank's own durable store is Kafka, and its state is kept
// in goka tables already (balances, statements). An orders table is therefore one more
// compacted, replicated topic on the same cluster: nothing new to run, back up or secure; it
// survives a restart of any process (a view recovers it from the topic); and any number of web
// replicas share it, each reading through its own view, with the same read-your-writes wait as
// the statements API. A database would be a second store to operate for a few records a
// second.
//
// # Events, in order
//
// An order's events share its key, hence a partition, so they are applied in the order they
// were written. Apply is the pure function that folds one event into an order:
//
//   - EventPlaced, written before every call to the bank (the first checkout and each retry),
//     creates the order as pending, with its items, total and masked card;
//   - EventDecided records the bank's answer: approved, or rejected with the bank's reason;
//   - EventFailed records that an attempt got no answer (the bank was unreachable or timed
//     out, or refused the request as invalid): the order stays pending and can be retried.
//
// A decision is final: a later placement or failure of the same order (a second click on
// "Pay", a retry racing a slow answer) changes nothing but the order's offset. The order keeps
// the masked card number only; the full number and the CVV are never written.
package orders

import (
	"errors"
	"github.com/codebank/codebank/codecs"
	"strconv"
	"time"

	"github.com/lovoo/goka"

	"github.com/codebank/codebank/processors"
)

// Status is an order's state.
type Status string

// Order states.
const (
	// StatusPending orders have no answer from the bank yet.
	StatusPending Status = "pending"
	// StatusApproved orders were charged to the card.
	StatusApproved Status = "approved"
	// StatusRejected orders were refused by the bank; Reason says why.
	StatusRejected Status = "rejected"
)

// Kinds of events.
const (
	EventPlaced  = "placed"
	EventDecided = "decided"
	EventFailed  = "failed"
)

// Reasons an attempt got no decision (Order.LastError, Event.Error).
const (
	// ErrorUnreachable: the bank could not be reached or did not answer in time. Retrying with
	// the same order id is safe: the bank charges a transaction id once.
	ErrorUnreachable = "bank_unreachable"
	// ErrorInvalid: the bank refused the request as invalid (INVALID_ARGUMENT); nothing was
	// charged.
	ErrorInvalid = "invalid_request"
)

// Item is one product line of an order.
type Item struct {
	// Slug identifies the product in the catalog.
	Slug string `json:"slug"`
	// Name is the product's name at the time of the order.
	Name string `json:"name"`
	// PriceCents is the unit price in minor units.
	PriceCents int64 `json:"price_cents"`
	// Quantity is how many were bought, at least 1.
	Quantity int `json:"quantity"`
}

// Order is the table's value: an order's current state.
type Order struct {
	// ID is the order id, also the bank's transaction id (the idempotency key).
	ID string `json:"id"`
	// Items are the products bought.
	Items []Item `json:"items"`
	// TotalCents is the amount charged: the sum of price times quantity.
	TotalCents int64 `json:"total_cents"`
	// Currency is the ISO 4217 code of the amounts.
	Currency string `json:"currency"`
	// CardMasked is the card number with its middle digits hidden; never the full number.
	CardMasked string `json:"card_masked"`
	// Status is pending, approved or rejected.
	Status Status `json:"status"`
	// Reason is the bank's reason for a rejection, in the results topic's vocabulary
	// (insufficient_credit, cvv_mismatch, ...); empty otherwise.
	Reason string `json:"reason,omitempty"`
	// TransactionID is the bank's transaction id of the decision (the order id).
	TransactionID string `json:"transaction_id,omitempty"`
	// LastError says why the latest attempt of a pending order got no decision
	// (ErrorUnreachable, ErrorInvalid); empty while an attempt is in flight.
	LastError string `json:"last_error,omitempty"`
	// Attempts counts the calls to the bank (placements).
	Attempts int `json:"attempts"`
	// PlacedAt is when the order was first placed.
	PlacedAt time.Time `json:"placed_at"`
	// DecidedAt is when the decision was recorded; zero while pending.
	DecidedAt time.Time `json:"decided_at,omitzero"`
	// UpdatedAt is when the latest event was applied.
	UpdatedAt time.Time `json:"updated_at"`
	// Offset is the input offset of the latest event applied, for read-your-writes.
	Offset int64 `json:"offset"`
}

// Decided reports whether the bank's answer is recorded.
func (o *Order) Decided() bool { return o.Status == StatusApproved || o.Status == StatusRejected }

// Event is one record of the events topic.
type Event struct {
	// Kind is EventPlaced, EventDecided or EventFailed.
	Kind string `json:"kind"`
	// At is when the event happened.
	At time.Time `json:"at"`
	// Items, TotalCents, Currency and CardMasked describe a placement.
	Items      []Item `json:"items,omitempty"`
	TotalCents int64  `json:"total_cents,omitempty"`
	Currency   string `json:"currency,omitempty"`
	CardMasked string `json:"card_masked,omitempty"`
	// Status, Reason and TransactionID describe a decision.
	Status        Status `json:"status,omitempty"`
	Reason        string `json:"reason,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
	// Error says why an attempt failed.
	Error string `json:"error,omitempty"`
}

// Placement is what the store knows of an order before calling the bank.
type Placement struct {
	Items      []Item
	Currency   string
	CardMasked string
}

// Total returns the sum of price times quantity of items.
func Total(items []Item) int64 {
	var sum int64
	for _, it := range items {
		sum += it.PriceCents * int64(it.Quantity)
	}
	return sum
}

// Decision is the bank's answer to an order.
type Decision struct {
	Status        Status
	Reason        string
	TransactionID string
}

// Apply folds event e (at input offset off) into order o, the order's state before it (nil for
// a new order), and returns the new state. It never modifies o.
func Apply(o *Order, id string, e *Event, off int64) *Order {
	var n Order
	if o != nil {
		n = *o
	} else {
		n = Order{ID: id, Status: StatusPending, PlacedAt: e.At}
	}
	n.Offset = max(n.Offset, off)
	if n.Decided() {
		return &n // a decision is final
	}
	switch e.Kind {
	case EventPlaced:
		if o == nil {
			n.Items = append([]Item(nil), e.Items...)
			n.TotalCents, n.Currency, n.CardMasked = e.TotalCents, e.Currency, e.CardMasked
		}
		n.Attempts++
		n.LastError = ""
	case EventDecided:
		n.Status, n.Reason, n.TransactionID, n.DecidedAt = e.Status, e.Reason, e.TransactionID, e.At
		n.LastError = ""
	case EventFailed:
		n.LastError = e.Error
	default:
		return &n
	}
	n.UpdatedAt = e.At
	return &n
}

// Group is the orders' goka group: "<prefix>store-orders".
func Group(t processors.Topology) goka.Group { return goka.Group(t.Prefix + "store-orders") }

func partitions(t processors.Topology) int {
	if t.Partitions <= 0 {
		return processors.DefaultPartitions
	}
	return t.Partitions
}

// Events carries the order events (EventCodec, JSON). Key: order id. Written by the store's
// emitter, read by the orders group. Kept a week: the table holds the state for good.
func Events(t processors.Topology) processors.Topic {
	return processors.Topic{Name: t.Prefix + "store-order-events", Key: "order id", Codec: EventCodec{}, Partitions: partitions(t),
		Config: map[string]string{"retention.ms": strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)}}
}

// Table is the orders group's compacted changelog: every order's current state (OrderCodec,
// JSON). Key: order id. Written by the orders group, read by the store's views.
func Table(t processors.Topology) processors.Topic {
	return processors.Topic{Name: string(goka.GroupTable(Group(t))), Key: "order id", Codec: OrderCodec{}, Partitions: partitions(t),
		Config: map[string]string{"cleanup.policy": "compact", "segment.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)}}
}

// Topics returns the topics of the orders group, which Ensure creates.
func Topics(t processors.Topology) []processors.Topic { return []processors.Topic{Events(t), Table(t)} }

// Processor is the orders group. Build it with New and run its Graph with goka.NewProcessor.
type Processor struct {
	topo processors.Topology
}

// New returns the orders processor of a deployment.
func New(topo processors.Topology) *Processor { return &Processor{topo: topo} }

// Graph returns the orders group: events in, orders persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	events, table := Events(p.topo), Table(p.topo)
	return goka.DefineGroup(Group(p.topo),
		goka.Input(goka.Stream(events.Name), events.Codec, p.apply),
		goka.Persist(table.Codec),
	)
}

// apply handles one event (key: order id).
func (p *Processor) apply(ctx goka.Context, msg any) {
	o, _ := ctx.Value().(*Order)
	ctx.SetValue(Apply(o, ctx.Key(), msg.(*Event), ctx.Offset()))
}

// EventCodec is the goka codec of *Event, as JSON: the records are few and read by the store
// alone, and JSON keeps them readable with any Kafka tool.
type EventCodec = codecs.JSON[Event]

// OrderCodec is the goka codec of *Order, as JSON.
type OrderCodec = codecs.JSON[Order]

// ErrNotFound is returned by Get (of Store and Memory) for an order id never placed.
var ErrNotFound = errors.New("order not found")
