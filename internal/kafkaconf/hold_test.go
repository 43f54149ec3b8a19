package kafkaconf

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// manualProducer records what is sent and lets the test acknowledge or fail each record.
type manualProducer struct {
	mu     sync.Mutex
	sent   []string                          // topic/key
	finish map[string][]goka.PromiseFinisher // in the order sent
	closed bool
}

func (m *manualProducer) Emit(topic, key string, value []byte) *goka.Promise {
	return m.EmitWithHeaders(topic, key, value, nil)
}

func (m *manualProducer) EmitWithHeaders(topic, key string, _ []byte, _ goka.Headers) *goka.Promise {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, f := goka.NewPromiseWithFinisher()
	id := topic + "/" + key
	m.sent = append(m.sent, id)
	m.finish[id] = append(m.finish[id], f)
	return p
}

func (m *manualProducer) Close() error { m.closed = true; return nil }

func (m *manualProducer) ack(id string, err error) {
	m.mu.Lock()
	f := m.finish[id][0]
	m.finish[id] = m.finish[id][1:]
	m.mu.Unlock()
	f(&sarama.ProducerMessage{}, err)
}

func (m *manualProducer) wasSent(id string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.sent {
		if s == id {
			return true
		}
	}
	return false
}

// settled waits for a promise's outcome.
func settled(t *testing.T, p *goka.Promise) error {
	t.Helper()
	done := make(chan error, 1)
	p.Then(func(err error) { done <- err })
	select {
	case err := <-done:
		return err
	case <-time.After(5 * time.Second):
		t.Fatal("promise never finished")
		return nil
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal(what)
		}
	}
}

func TestHoldBehindTable(t *testing.T) {
	inner := &manualProducer{finish: map[string][]goka.PromiseFinisher{}}
	h := newHolding(inner, Config{}.HoldBehindTable("table", "results").hold)

	// A result waits for the table write of its key made before it; a reply does not, nor
	// does a result of a key with no write in flight.
	tableA := h.Emit("table", "a", nil)
	resultA := h.Emit("results", "a", nil)
	h.Emit("replies", "a", nil)
	h.Emit("results", "b", nil)
	if inner.wasSent("results/a") {
		t.Fatal("a result was sent before the table write it follows was acknowledged")
	}
	if !inner.wasSent("replies/a") || !inner.wasSent("results/b") {
		t.Fatalf("records that wait for nothing were held: sent %v", inner.sent)
	}
	// Two writes in flight: the result waits for both.
	h.Emit("table", "a", nil)
	inner.ack("table/a", nil)
	if err := settled(t, tableA); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	if inner.wasSent("results/a") {
		t.Fatal("a result was sent with a table write of its key still in flight")
	}
	inner.ack("table/a", nil)
	eventually(t, "the result was never sent after its table writes were acknowledged", func() bool { return inner.wasSent("results/a") })
	inner.ack("results/a", nil)
	if err := settled(t, resultA); err != nil {
		t.Fatalf("result: %v", err)
	}

	// A failed table write fails the records held behind it, which are never sent.
	h.Emit("table", "c", nil)
	resultC := h.Emit("results", "c", nil)
	failed := errors.New("broker gone")
	inner.ack("table/c", failed)
	if err := settled(t, resultC); !errors.Is(err, failed) {
		t.Fatalf("result behind a failed table write: %v, want %v", err, failed)
	}
	if inner.wasSent("results/c") {
		t.Fatal("a result behind a failed table write was sent")
	}

	// Close fails what is still held and closes the producer.
	h.Emit("table", "d", nil)
	resultD := h.Emit("results", "d", nil)
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := settled(t, resultD); !errors.Is(err, errHoldClosed) {
		t.Fatalf("result held at close: %v", err)
	}
	inner.ack("table/d", nil) // a late acknowledgement releases nothing
	if inner.wasSent("results/d") || !inner.closed {
		t.Fatalf("after close: sent %v, closed %v", inner.sent, inner.closed)
	}
}
