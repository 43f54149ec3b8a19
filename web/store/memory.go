package store

import (
	"context"
	"sync"
	"time"
)

// Memory keeps orders in process memory, applying events with Apply like the orders group.
// It is for tests of the store's handlers; orders are lost with the process.
type Memory struct {
	mu     sync.Mutex
	orders map[string]*Order
	offset int64
	now    func() time.Time
	// Err, when set, is returned by every method: a store that cannot reach Kafka.
	Err error
}

// NewMemory returns an empty in-memory store whose events are stamped by now (time.Now when
// nil).
func NewMemory(now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	return &Memory{orders: map[string]*Order{}, now: now}
}

// Get returns an order, or ErrNotFound.
func (m *Memory) Get(_ context.Context, id string) (*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return nil, m.Err
	}
	o, ok := m.orders[id]
	if !ok {
		return nil, ErrNotFound
	}
	c := *o
	return &c, nil
}

// Place is Orders.Place.
func (m *Memory) Place(_ context.Context, id string, p Placement) (*Order, error) {
	return m.apply(id, &Event{Kind: EventPlaced, At: m.now().UTC(), Items: p.Items, TotalCents: Total(p.Items), Currency: p.Currency, CardMasked: p.CardMasked})
}

// Decide is Orders.Decide.
func (m *Memory) Decide(_ context.Context, id string, d Decision) (*Order, error) {
	return m.apply(id, &Event{Kind: EventDecided, At: m.now().UTC(), Status: d.Status, Reason: d.Reason, TransactionID: d.TransactionID, PaymentID: d.PaymentID})
}

// Cancelling is Orders.Cancelling.
func (m *Memory) Cancelling(_ context.Context, id, kind, cancelID string) (*Order, error) {
	return m.apply(id, &Event{Kind: EventCancelling, At: m.now().UTC(), CancelKind: kind, CancelID: cancelID})
}

// Cancelled is Orders.Cancelled.
func (m *Memory) Cancelled(_ context.Context, id string) (*Order, error) {
	return m.apply(id, &Event{Kind: EventCancelled, At: m.now().UTC()})
}

// CancelFailed is Orders.CancelFailed.
func (m *Memory) CancelFailed(_ context.Context, id, why string) (*Order, error) {
	return m.apply(id, &Event{Kind: EventCancelFailed, At: m.now().UTC(), Error: why})
}

// Fail is Orders.Fail.
func (m *Memory) Fail(_ context.Context, id, why string) (*Order, error) {
	return m.apply(id, &Event{Kind: EventFailed, At: m.now().UTC(), Error: why})
}

// Put stores an order as it is, for tests that start from a given state.
func (m *Memory) Put(o *Order) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *o
	m.orders[o.ID] = &c
}

func (m *Memory) apply(id string, e *Event) (*Order, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.Err != nil {
		return nil, m.Err
	}
	m.offset++
	o := Apply(m.orders[id], id, e, m.offset)
	m.orders[id] = o
	c := *o
	return &c, nil
}
