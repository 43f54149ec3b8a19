package grpcgateway

import (
	"crypto/rand"
	"encoding/hex"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

const correlatorShards = 32

// Correlator hands each reply from Kafka to the one call waiting for it. Every call waits under
// an id of its own (NewID), never under anything a client chose, and says what a reply to it
// must look like: a reply that names the call but does not match it is not delivered, and the
// call goes on waiting for its own. The Correlator is sharded so that concurrent calls rarely
// share a lock.
type Correlator struct {
	seed   maphash.Seed
	prefix string
	next   atomic.Uint64
	shards [correlatorShards]struct {
		sync.Mutex
		waiters map[string]waiter
	}
}

type waiter struct {
	ch     chan *eventsv1.Reply
	accept func(*eventsv1.Reply) bool
}

// Delivery says what became of a reply handed to Deliver.
type Delivery int

const (
	// Delivered: the waiting call got the reply.
	Delivered Delivery = iota
	// Unclaimed: no call waits under the reply's id (it gave up, or waits on another replica).
	Unclaimed
	// Mismatched: a call waits under the reply's id, but the reply is not an answer to it (its
	// card, amount or transaction differ); the call was not given it.
	Mismatched
)

// NewCorrelator returns an empty Correlator.
func NewCorrelator() *Correlator {
	var b [8]byte
	rand.Read(b[:])
	c := &Correlator{seed: maphash.MakeSeed(), prefix: hex.EncodeToString(b[:]) + "-"}
	for i := range c.shards {
		c.shards[i].waiters = make(map[string]waiter)
	}
	return c
}

// NewID returns a correlation id no other call of any replica uses: a random prefix of this
// Correlator and a counter.
func (c *Correlator) NewID() string {
	return c.prefix + strconv.FormatUint(c.next.Add(1), 36)
}

func (c *Correlator) shard(id string) int {
	return int(maphash.String(c.seed, id) % correlatorShards)
}

// Wait registers a call waiting under id (from NewID) for a reply that accept approves. The
// channel receives that reply at most once; cancel must be called when the caller stops
// waiting.
func (c *Correlator) Wait(id string, accept func(*eventsv1.Reply) bool) (reply <-chan *eventsv1.Reply, cancel func()) {
	ch := make(chan *eventsv1.Reply, 1)
	s := &c.shards[c.shard(id)]
	s.Lock()
	s.waiters[id] = waiter{ch: ch, accept: accept}
	s.Unlock()
	return ch, func() {
		s.Lock()
		if w, ok := s.waiters[id]; ok && w.ch == ch {
			delete(s.waiters, id)
		}
		s.Unlock()
	}
}

// Deliver hands r to the call waiting under its correlation id, if r is an answer to it.
func (c *Correlator) Deliver(r *eventsv1.Reply) Delivery {
	id := r.GetCorrelationId()
	s := &c.shards[c.shard(id)]
	s.Lock()
	w, ok := s.waiters[id]
	switch {
	case !ok:
		s.Unlock()
		return Unclaimed
	case !w.accept(r):
		s.Unlock()
		return Mismatched
	}
	delete(s.waiters, id)
	s.Unlock()
	w.ch <- r // buffered, and the waiter is removed before its one delivery
	return Delivered
}

// Pending returns how many calls wait.
func (c *Correlator) Pending() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.Lock()
		n += len(s.waiters)
		s.Unlock()
	}
	return n
}
