package kafkaconf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// HoldBehindTable returns a Config whose processors write a record to one of the held topics
// only once every write to table made before it under the same key is acknowledged, and never
// if one of those writes fails.
//
// A goka processor's table write and its other outputs are separate records with no
// transaction between them, and sarama sends each topic's records on its own: a crash can leave
// an output on the broker without the table write it followed. The processor then reads its
// input again from the last committed offset, on a table without that write. An output that
// others act on (the authorizer's results: statements, analytics) is held until the state it
// reports is durable; so once it is published, a record read again finds its outcome in the
// table. Outputs on the synchronous path (the replies) are not held: they cost a round trip
// more when held, and a decision taken again on the same state is the same.
func (c Config) HoldBehindTable(table string, held ...string) Config {
	c.hold = &holdSpec{table: table, held: map[string]bool{}}
	for _, t := range held {
		c.hold.held[t] = true
	}
	return c
}

type holdSpec struct {
	table string
	held  map[string]bool
}

// errHoldClosed finishes records still held when their producer closes.
var errHoldClosed = errors.New("producer closed before the table write it waited for was acknowledged")

// holding is the producer of HoldBehindTable.
type holding struct {
	goka.Producer
	spec *holdSpec

	mu      sync.Mutex
	pending map[string]*keyWrites // keys with table writes in flight
	ready   []heldRecord          // released, to be sent by the sender
	closed  bool
	wake    chan struct{}
	done    chan struct{}
}

type keyWrites struct {
	inflight int
	err      error
	held     []heldRecord
}

type heldRecord struct {
	topic, key string
	value      []byte
	headers    goka.Headers
	finish     goka.PromiseFinisher
	err        error // set when released: the table write failed
}

func newHolding(p goka.Producer, spec *holdSpec) *holding {
	h := &holding{Producer: p, spec: spec, pending: map[string]*keyWrites{}, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go h.send()
	return h
}

func (h *holding) Emit(topic, key string, value []byte) *goka.Promise {
	return h.EmitWithHeaders(topic, key, value, nil)
}

func (h *holding) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	switch {
	case topic == h.spec.table:
		h.mu.Lock()
		kw := h.pending[key]
		if kw == nil {
			kw = &keyWrites{}
			h.pending[key] = kw
		}
		kw.inflight++
		h.mu.Unlock()
		return h.Producer.EmitWithHeaders(topic, key, value, headers).Then(func(err error) { h.written(key, err) })
	case h.spec.held[topic]:
		h.mu.Lock()
		kw := h.pending[key]
		if kw == nil {
			h.mu.Unlock()
			return h.Producer.EmitWithHeaders(topic, key, value, headers)
		}
		p, finish := goka.NewPromiseWithFinisher()
		kw.held = append(kw.held, heldRecord{topic: topic, key: key, value: value, headers: headers, finish: finish})
		h.mu.Unlock()
		return p
	default:
		return h.Producer.EmitWithHeaders(topic, key, value, headers)
	}
}

// written accounts for one acknowledged (or failed) table write of key and releases the
// records held behind the key's writes once none is in flight. It runs on the goroutine that
// reads the producer's acknowledgements, so it only queues them: sending from here could block
// on a full producer that waits for this very goroutine.
func (h *holding) written(key string, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	kw := h.pending[key]
	if kw == nil { // failed by Close
		return
	}
	kw.inflight--
	if err != nil && kw.err == nil {
		kw.err = err
	}
	if kw.inflight > 0 {
		return
	}
	delete(h.pending, key)
	for _, r := range kw.held {
		if kw.err != nil {
			r.err = fmt.Errorf("not written: the table write before it failed: %w", kw.err)
		}
		h.ready = append(h.ready, r)
	}
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// send writes the released records, in the order they were released, until Close.
func (h *holding) send() {
	defer close(h.done)
	for range h.wake {
		h.mu.Lock()
		batch, closed := h.ready, h.closed
		h.ready = nil
		h.mu.Unlock()
		for _, r := range batch {
			if r.err != nil {
				r.finish(nil, r.err)
				continue
			}
			finish := r.finish
			h.Producer.EmitWithHeaders(r.topic, r.key, r.value, r.headers).ThenWithMessage(func(m *sarama.ProducerMessage, err error) { finish(m, err) })
		}
		if closed {
			return
		}
	}
}

// Close sends what was released, fails what is still held, and closes the producer.
func (h *holding) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	for key, kw := range h.pending {
		for _, r := range kw.held {
			r.finish(nil, errHoldClosed)
		}
		delete(h.pending, key)
	}
	h.mu.Unlock()
	select {
	case h.wake <- struct{}{}:
	default:
	}
	<-h.done
	return h.Producer.Close()
}
