// Package store is the Code Store's side of Kafka: it keeps the store's orders durably, in a
// goka group of its own whose input is a stream of order events keyed by order id and whose
// table holds every order's current state. The store's pages (package web) write events with a
// goka emitter and read orders from a goka view of the table (Orders); Memory is an in-process
// stand-in for handler tests. The store is a client of the bank like any checkout: it reaches
// the bank through its gRPC API alone, and its topics are declared in its own Topology.
//
// Its main types are Order, the table's value; Event, the input's value; Processor, which
// defines the group; Orders; and Topology.
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
// the masked card number only; the full number and the CVV are never written. An approved
// order keeps the bank's payment id, which is all the store needs to give the money back.
//
// # Orders never paid are forgotten
//
// Anyone may post a checkout, so the table would grow forever from orders that are never paid.
// Orders.Sweep writes an EventExpired for each order not paid that has not changed for a while
// (a day in the web role, --order-ttl), and the group deletes the order if it still is one
// (Expires): its tombstone lets compaction drop it from the topic. An approved order stays.
//
// # Cancelling an order
//
// An approved order can be cancelled: within a day of its approval the store reverses the
// payment, later it refunds it, in full, with the order id as the reversal's or refund's id.
// Like a payment, the attempt is written first (EventCancelling, which fixes the kind, so that a
// retry a minute past the day is still the same reversal), then the bank is called, then its
// answer written (EventCancelled, or EventCancelFailed, which a retry clears). The bank gives
// an id back at most once, however many times the customer clicks.
package store

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lovoo/goka"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/money"
	"github.com/codebank/codebank/internal/stream"
)

// Status is an order's state.
type Status string

// Order states.
const (
	// StatusPending orders have no answer from the bank yet.
	StatusPending Status = "pending"
	// StatusApproved orders were charged to the card.
	StatusApproved Status = codecs.StatusApproved
	// StatusRejected orders were refused by the bank; Reason says why.
	StatusRejected Status = codecs.StatusRejected
)

// Kinds of events.
const (
	EventPlaced       = "placed"
	EventDecided      = "decided"
	EventFailed       = "failed"
	EventCancelling   = "cancelling"
	EventCancelled    = "cancelled"
	EventCancelFailed = "cancel_failed"
	EventExpired      = "expired"
)

// The ways an approved order is cancelled (Cancellation.Kind), as the bank's results name them.
const (
	CancelReversal = codecs.KindReversal
	CancelRefund   = codecs.KindRefund
)

// Reasons an attempt got no decision (Order.LastError, Event.Error).
const (
	// ErrorUnreachable: the bank could not be reached or did not answer in time. Retrying with
	// the same order id is safe: the bank charges a transaction id once.
	ErrorUnreachable = "bank_unreachable"
	// ErrorInvalid: the bank refused the request as invalid (INVALID_ARGUMENT); nothing was
	// charged.
	ErrorInvalid = "invalid_request"
	// ErrorMismatch: the bank's answer was not about this order (another amount, card or
	// transaction, or a replay of an attempt the store never made); the order is not marked
	// paid, and people must look at it.
	ErrorMismatch = "bank_mismatch"
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
	// PaymentID is the bank's payment id of an approved order: what a reversal or refund names.
	PaymentID string `json:"payment_id,omitempty"`
	// Cancellation is the order's cancellation, once asked for.
	Cancellation *Cancellation `json:"cancellation,omitempty"`
}

// Cancellation is the giving back of an approved order's payment.
type Cancellation struct {
	// Kind is CancelReversal or CancelRefund, fixed by the first attempt.
	Kind string `json:"kind"`
	// ID is the reversal's or refund's id at the bank (the order id).
	ID string `json:"id"`
	// AmountCents is the amount given back: the whole order.
	AmountCents int64 `json:"amount_cents"`
	// RequestedAt is when it was first asked for; DoneAt when the bank carried it out (zero
	// until then).
	RequestedAt time.Time `json:"requested_at"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	// LastError says why the latest attempt failed (ErrorUnreachable, ErrorInvalid); empty
	// while one is in flight.
	LastError string `json:"last_error,omitempty"`
}

// Decided reports whether the bank's answer is recorded.
func (o *Order) Decided() bool { return o.Status == StatusApproved || o.Status == StatusRejected }

// Cancellable reports whether the order can be cancelled, or its cancellation tried again: it
// was approved, with a payment id, and is not cancelled yet.
func (o *Order) Cancellable() bool {
	return o.Status == StatusApproved && o.PaymentID != "" && (o.Cancellation == nil || o.Cancellation.DoneAt.IsZero())
}

// Cancelled reports whether the bank gave the order's payment back.
func (o *Order) Cancelled() bool { return o.Cancellation != nil && !o.Cancellation.DoneAt.IsZero() }

// CancelKindAt returns how an order decided at decidedAt is cancelled at now: a reversal within a
// day of its approval, a refund after.
func CancelKindAt(decidedAt, now time.Time) string {
	if now.Sub(decidedAt) < 24*time.Hour {
		return CancelReversal
	}
	return CancelRefund
}

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
	// Status, Reason, TransactionID and PaymentID describe a decision.
	Status        Status `json:"status,omitempty"`
	Reason        string `json:"reason,omitempty"`
	TransactionID string `json:"transaction_id,omitempty"`
	PaymentID     string `json:"payment_id,omitempty"`
	// CancelKind and CancelID describe a cancellation asked for.
	CancelKind string `json:"cancel_kind,omitempty"`
	CancelID   string `json:"cancel_id,omitempty"`
	// Error says why an attempt failed.
	Error string `json:"error,omitempty"`
	// ExpireBefore, in an EventExpired, forgets the order if it was never paid and has not
	// changed since before this time.
	ExpireBefore time.Time `json:"expire_before,omitzero"`
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
	// PaymentID is the bank's payment id (approved orders).
	PaymentID string
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
	switch e.Kind {
	case EventCancelling, EventCancelled, EventCancelFailed:
		if n.Status == StatusApproved && n.PaymentID != "" && cancel(&n, e) {
			n.UpdatedAt = e.At
		}
		return &n
	}
	if n.Decided() {
		return &n // a decision is final
	}
	switch e.Kind {
	case EventPlaced:
		if len(n.Items) == 0 { // the first placement (an attempt's failure may come first)
			n.PlacedAt = e.At
			n.Items = append([]Item(nil), e.Items...)
			n.TotalCents, n.Currency, n.CardMasked = e.TotalCents, e.Currency, e.CardMasked
		}
		n.Attempts++
		n.LastError = ""
	case EventDecided:
		n.Status, n.Reason, n.TransactionID, n.DecidedAt = e.Status, e.Reason, e.TransactionID, e.At
		n.PaymentID = e.PaymentID
		n.LastError = ""
	case EventFailed:
		n.LastError = e.Error
	default:
		return &n
	}
	n.UpdatedAt = e.At
	return &n
}

// Expires reports whether an EventExpired e forgets order o: an order never paid (pending, or
// declined) whose last change came before e.ExpireBefore. An approved order, cancelled or not,
// is kept: its payment is on the card's statement.
func Expires(o *Order, e *Event) bool {
	if o == nil || e.Kind != EventExpired || o.Status == StatusApproved {
		return false
	}
	last := o.UpdatedAt
	if last.IsZero() {
		last = o.PlacedAt
	}
	return last.Before(e.ExpireBefore)
}

// cancel folds a cancellation event into an approved order n, and reports whether it changed
// it: the first attempt fixes the cancellation, a retry clears its error, the bank's answer
// ends it; nothing changes a cancellation carried out.
func cancel(n *Order, e *Event) bool {
	c := n.Cancellation
	if c != nil && !c.DoneAt.IsZero() {
		return false
	}
	if c == nil {
		if e.Kind != EventCancelling {
			return false
		}
		n.Cancellation = &Cancellation{Kind: e.CancelKind, ID: e.CancelID, AmountCents: n.TotalCents, RequestedAt: e.At}
		return true
	}
	c = new(Cancellation)
	*c = *n.Cancellation // orders are values: never change the one given
	n.Cancellation = c
	switch e.Kind {
	case EventCancelling:
		c.LastError = ""
	case EventCancelled:
		c.DoneAt, c.LastError = e.At, ""
	case EventCancelFailed:
		c.LastError = e.Error
	}
	return true
}

// Processor is the orders group. Build it with New, define its goka group with Graph.
type Processor struct {
	topo Topology
	dead *stream.DeadLetters
}

// Deps are the orders group's collaborators.
type Deps = stream.Deps

// New returns the orders group of the store's topology.
func New(topo Topology, deps Deps) *Processor {
	return &Processor{topo: topo, dead: stream.NewDeadLetters(deps.Registerer, deps.Log)}
}

// Graph returns the orders group: events in (with their dead-letter topic), orders persisted.
func (p *Processor) Graph() *goka.GroupGraph {
	events := p.topo.Consumers()[0].Inputs[0]
	edges := append(p.dead.Input(ConsumerOrders, events, p.apply), goka.Persist(codecs.Lenient(p.topo.Table().Codec)))
	return goka.DefineGroup(p.topo.Group(), edges...)
}

// apply handles one event (key: order id). An event that breaks its contract, or whose order
// in the table does not decode, is dead-lettered.
func (p *Processor) apply(ctx goka.Context, msg any) error {
	e := msg.(*Event)
	if err := CheckEvent(ctx.Key(), e); err != nil {
		return err
	}
	var o *Order
	switch v := ctx.Value().(type) {
	case nil:
	case *Order:
		o = v
	case *codecs.Undecodable:
		return fmt.Errorf("order unreadable: %w", v)
	default:
		return fmt.Errorf("order of type %T", v)
	}
	if e.Kind == EventExpired {
		if Expires(o, e) {
			ctx.Delete() // a tombstone: compaction drops the order from the topic
		}
		return nil
	}
	ctx.SetValue(Apply(o, ctx.Key(), e, ctx.Offset()))
	return nil
}

// CheckEvent checks an order event (key: order id) against its contract.
func CheckEvent(key string, e *Event) error {
	var problems []string
	bad := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	if codecs.CheckTransactionID(key) != nil {
		bad("key must be an order id")
	}
	if e.At.IsZero() {
		bad("at is required")
	}
	switch e.Kind {
	case EventPlaced:
		if len(e.Items) == 0 || len(e.Items) > MaxItems {
			bad("items must be 1-%d", MaxItems)
		}
		for i, it := range e.Items {
			if it.Slug == "" || it.PriceCents <= 0 || it.PriceCents > money.MaxCents || it.Quantity < 1 || it.Quantity > MaxItemQuantity {
				bad("items[%d] needs a slug, a price of 1 to the bank's maximum and a quantity of 1-%d", i, MaxItemQuantity)
			}
		}
		if len(problems) == 0 && (e.TotalCents != Total(e.Items) || codecs.CheckCents(e.TotalCents) != nil) {
			bad("total_cents must be the items' total, 1 to the bank's maximum")
		}
		if e.CardMasked == "" {
			bad("card_masked is required")
		}
	case EventDecided:
		if e.Status != StatusApproved && e.Status != StatusRejected {
			bad("status must be approved or rejected")
		}
	case EventFailed, EventCancelFailed:
		if e.Error == "" {
			bad("error is required")
		}
	case EventCancelling:
		if e.CancelKind != CancelReversal && e.CancelKind != CancelRefund {
			bad("cancel_kind must be %s or %s", CancelReversal, CancelRefund)
		}
		if codecs.CheckTransactionID(e.CancelID) != nil {
			bad("cancel_id must be an id of 1-64 characters of [A-Za-z0-9._:-]")
		}
	case EventCancelled:
	case EventExpired:
		if e.ExpireBefore.IsZero() {
			bad("expire_before is required")
		}
	default:
		bad("kind must be placed, decided, failed, cancelling, cancelled, cancel_failed or expired")
	}
	if len(problems) > 0 {
		return fmt.Errorf("order event: %w: %s", codecs.ErrContract, strings.Join(problems, "; "))
	}
	return nil
}

// Bounds of an order event's items: within them, a total never overflows.
const (
	MaxItems        = 100
	MaxItemQuantity = 1000
)

// EventCodec is the goka codec of *Event, as JSON: the records are few and read by the store
// alone, and JSON keeps them readable with any Kafka tool.
type EventCodec = codecs.JSON[Event]

// OrderCodec is the goka codec of *Order, as JSON.
type OrderCodec = codecs.JSON[Order]

// ErrNotFound is returned by Get (of Store and Memory) for an order id never placed.
var ErrNotFound = errors.New("order not found")
