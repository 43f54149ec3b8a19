package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
)

// ErrNotReady is returned by Orders' methods while its view has not recovered the table.
var ErrNotReady = errors.New("orders store is not ready: recovering the orders table")

// ErrNotApplied is returned when an event was written but the orders group did not apply it
// before the context ended: is the orders processor running?
var ErrNotApplied = errors.New("order event written but not applied in time")

// Orders writes order events with a goka emitter and reads orders from a goka view of the
// orders table. Each write waits until the view shows the event applied, so a read right after
// a write sees it (read-your-writes), on this replica and, once their views catch up, on
// every other. Build it with NewOrders, run it with Run, and Close it.
type Orders struct {
	emitter *goka.Emitter
	view    *stream.View
	log     *slog.Logger
	now     func() time.Time
	closed  sync.Once
}

// NewOrders returns the deployment's orders. The view keeps its copy of the table
// under storageDir, or in memory when storageDir is empty (it then recovers the table from
// Kafka at every start). The topics must exist (Ensure).
func NewOrders(kc kafkaconf.Config, topo Topology, storageDir string, log *slog.Logger) (*Orders, error) {
	if log == nil {
		log = slog.Default()
	}
	events, table := topo.Events(), topo.Table()
	em, err := goka.NewEmitter(kc.Brokers, goka.Stream(events.Name), events.Codec, kc.EmitterOptions(log)...)
	if err != nil {
		return nil, fmt.Errorf("create orders emitter: %w", err)
	}
	view, err := stream.NewView(kc, table, storageDir, log)
	if err != nil {
		em.Finish()
		return nil, err
	}
	return &Orders{emitter: em, view: view, log: log, now: time.Now}, nil
}

// Run runs the view until ctx ends.
func (s *Orders) Run(ctx context.Context) error { return s.view.Run(ctx) }

// Ready reports whether the view has recovered the table.
func (s *Orders) Ready() bool { return s.view.Ready() }

// Close flushes and closes the emitter. Call it after the writers have stopped.
func (s *Orders) Close() error {
	var err error
	s.closed.Do(func() { err = s.emitter.Finish() })
	return err
}

// Get returns an order, or ErrNotFound.
func (s *Orders) Get(ctx context.Context, id string) (*Order, error) {
	if !s.view.Ready() {
		return nil, ErrNotReady
	}
	v, err := s.view.Get(id)
	if err != nil {
		return nil, fmt.Errorf("read order: %w", err)
	}
	return orderOf(v)
}

// ErrUnreadable is returned (wrapped) for an order whose stored state does not decode.
var ErrUnreadable = errors.New("order unreadable")

// orderOf returns the order of a view value: ErrNotFound for none, ErrUnreadable for a value
// that does not decode.
func orderOf(v any) (*Order, error) {
	switch v := v.(type) {
	case *Order:
		if v != nil {
			return v, nil
		}
	case *codecs.Undecodable:
		return nil, fmt.Errorf("%w: %w", ErrUnreadable, v)
	}
	return nil, ErrNotFound
}

// Place records an attempt to pay for an order (creating the order as pending the first
// time) and returns the order once the placement is applied. Call it before each call to the
// bank; the returned order may already be decided, by an earlier attempt.
func (s *Orders) Place(ctx context.Context, id string, p Placement) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventPlaced, At: s.now().UTC(), Items: p.Items, TotalCents: Total(p.Items), Currency: p.Currency, CardMasked: p.CardMasked})
}

// Decide records the bank's answer and returns the order once it is applied.
func (s *Orders) Decide(ctx context.Context, id string, d Decision) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventDecided, At: s.now().UTC(), Status: d.Status, Reason: d.Reason, TransactionID: d.TransactionID, PaymentID: d.PaymentID})
}

// Cancelling records an attempt to cancel an approved order (the first one fixes its kind and
// id) and returns the order once it is applied. Call it before each call to the bank.
func (s *Orders) Cancelling(ctx context.Context, id, kind, cancelID string) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventCancelling, At: s.now().UTC(), CancelKind: kind, CancelID: cancelID})
}

// Cancelled records that the bank gave the order's payment back.
func (s *Orders) Cancelled(ctx context.Context, id string) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventCancelled, At: s.now().UTC()})
}

// CancelFailed records that an attempt to cancel got no answer (why: ErrorUnreachable or
// ErrorInvalid).
func (s *Orders) CancelFailed(ctx context.Context, id, why string) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventCancelFailed, At: s.now().UTC(), Error: why})
}

// Fail records that an attempt got no decision (why: ErrorUnreachable or ErrorInvalid) and
// returns the order once it is applied.
func (s *Orders) Fail(ctx context.Context, id, why string) (*Order, error) {
	return s.write(ctx, id, &Event{Kind: EventFailed, At: s.now().UTC(), Error: why})
}

// write emits an event and waits until the view shows it applied: the order's offset reaches
// the event's. An order's events share a partition, so offsets order them.
func (s *Orders) write(ctx context.Context, id string, e *Event) (*Order, error) {
	if err := CheckEvent(id, e); err != nil {
		return nil, err // the orders group would dead-letter it, and the wait below never end
	}
	if !s.view.Ready() {
		return nil, ErrNotReady
	}
	type written struct {
		offset int64
		err    error
	}
	done := make(chan written, 1)
	p, err := s.emitter.Emit(id, e)
	if err != nil {
		return nil, fmt.Errorf("write order event: %w", err)
	}
	p.ThenWithMessage(func(msg *sarama.ProducerMessage, err error) {
		if err != nil {
			done <- written{err: err}
			return
		}
		done <- written{offset: msg.Offset}
	})
	var w written
	select {
	case w = <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("write order event: %w", ctx.Err())
	}
	if w.err != nil {
		return nil, fmt.Errorf("write order event: %w", w.err)
	}
	var o *Order
	err = s.view.Await(ctx, func() (bool, error) {
		v, err := s.view.Get(id)
		if err != nil {
			return false, fmt.Errorf("read order: %w", err)
		}
		got, err := orderOf(v)
		if errors.Is(err, ErrUnreadable) {
			return false, err
		}
		o = got
		return err == nil && got.Offset >= w.offset, nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return nil, fmt.Errorf("order %s: %w: %w", id, ErrNotApplied, err)
	}
	if err != nil {
		return nil, err
	}
	return o, nil
}

// Sweep writes an EventExpired for every order in the view that was never paid and has not
// changed since before, so that the orders group forgets it (Expires), and returns how many it
// wrote. Orders that change meanwhile are kept: the group checks again. Several replicas may
// sweep at once; an order forgotten twice is forgotten once.
func (s *Orders) Sweep(ctx context.Context, before time.Time) (int, error) {
	if !s.view.Ready() {
		return 0, ErrNotReady
	}
	e := &Event{Kind: EventExpired, At: s.now().UTC(), ExpireBefore: before.UTC()}
	var ids []string
	err := s.view.Range("", "", func(id string, v any) (bool, error) {
		if o, err := orderOf(v); err == nil && Expires(o, e) {
			ids = append(ids, id)
		}
		return ctx.Err() == nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep orders: %w", err)
	}
	for _, id := range ids {
		if _, err := s.emitter.Emit(id, e); err != nil {
			return 0, fmt.Errorf("sweep orders: %w", err)
		}
	}
	return len(ids), ctx.Err()
}

// Forget sweeps (Sweep) the orders never paid that have not changed for ttl, so that they are
// forgotten, and logs how many; a failed sweep is logged, to be tried again at the next (the
// web role calls it every tenth of ttl).
func (s *Orders) Forget(ctx context.Context, ttl time.Duration) {
	n, err := s.Sweep(ctx, s.now().Add(-ttl))
	switch {
	case errors.Is(err, ErrNotReady), ctx.Err() != nil:
	case err != nil:
		s.log.Warn("sweeping the orders never paid", "err", err)
	case n > 0:
		s.log.Info("orders never paid forgotten", "orders", n, "unchanged_for", ttl)
	}
}
