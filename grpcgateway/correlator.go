package grpcgateway

import (
	"hash/maphash"
	"sync"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

const correlatorShards = 32

// Correlator hands each reply from Kafka to the callers waiting for its correlation id. Several
// callers may wait for one id (a client retrying while its first call still waits); a reply no
// one waits for is dropped. It is sharded so that concurrent calls rarely share a lock.
type Correlator struct {
	seed   maphash.Seed
	shards [correlatorShards]struct {
		sync.Mutex
		waiters map[string][]chan *eventsv1.Reply
	}
}

// NewCorrelator returns an empty Correlator.
func NewCorrelator() *Correlator {
	c := &Correlator{seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].waiters = make(map[string][]chan *eventsv1.Reply)
	}
	return c
}

func (c *Correlator) shard(id string) int {
	return int(maphash.String(c.seed, id) % correlatorShards)
}

// Wait registers interest in the reply with this id. The channel receives it at most once;
// cancel must be called when the caller stops waiting.
func (c *Correlator) Wait(id string) (reply <-chan *eventsv1.Reply, cancel func()) {
	ch := make(chan *eventsv1.Reply, 1)
	s := &c.shards[c.shard(id)]
	s.Lock()
	s.waiters[id] = append(s.waiters[id], ch)
	s.Unlock()
	return ch, func() {
		s.Lock()
		defer s.Unlock()
		ws := s.waiters[id]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(s.waiters, id)
		} else {
			s.waiters[id] = ws
		}
	}
}

// Deliver hands r to everyone waiting for its correlation id and reports whether anyone was.
func (c *Correlator) Deliver(r *eventsv1.Reply) bool {
	id := r.GetCorrelationId()
	s := &c.shards[c.shard(id)]
	s.Lock()
	ws := s.waiters[id]
	delete(s.waiters, id)
	s.Unlock()
	for _, w := range ws {
		w <- r // buffered, and each waiter is removed before its one delivery
	}
	return len(ws) > 0
}

// Pending returns how many ids are waited for.
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
