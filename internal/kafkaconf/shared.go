package kafkaconf

import (
	"hash"
	"sync"

	"github.com/lovoo/goka"
)

// ShareProducer returns a Config whose processors and emitters all write through one Kafka
// producer, created by the first of them and closed by the last. Records from every component
// of the process then leave in the same produce requests: with the ingress and the authorizer
// in one process, a request carries new payment requests together with the decisions of
// earlier ones, and the broker handles half as many produce requests.
func (c Config) ShareProducer() Config {
	c.shared = &sharedProducer{}
	return c
}

// producer builds the goka producer of one processor or emitter.
func (c Config) producer(brokers []string, clientID string, hasher func() hash.Hash32) (goka.Producer, error) {
	build := func() (goka.Producer, error) { return goka.NewProducer(brokers, c.partitioned(clientID, hasher)) }
	var (
		p   goka.Producer
		err error
	)
	if c.shared == nil {
		p, err = build()
	} else {
		p, err = c.shared.use(build)
	}
	if err != nil || c.hold == nil {
		return p, err
	}
	return newHolding(p, c.hold), nil
}

// sharedProducer counts the users of one goka producer. Every user partitions with goka's
// default hasher, so one producer serves them all.
type sharedProducer struct {
	mu    sync.Mutex
	p     goka.Producer
	users int
}

func (s *sharedProducer) use(build func() (goka.Producer, error)) (goka.Producer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.p == nil {
		p, err := build()
		if err != nil {
			return nil, err
		}
		s.p = p
	}
	s.users++
	return &sharedUse{s: s, p: s.p}, nil
}

// sharedUse is one user's handle; closing it closes the producer when no user is left.
type sharedUse struct {
	s    *sharedProducer
	p    goka.Producer
	once sync.Once
}

func (u *sharedUse) Emit(topic, key string, value []byte) *goka.Promise {
	return u.p.Emit(topic, key, value)
}

func (u *sharedUse) EmitWithHeaders(topic, key string, value []byte, headers goka.Headers) *goka.Promise {
	return u.p.EmitWithHeaders(topic, key, value, headers)
}

func (u *sharedUse) Close() error {
	var err error
	u.once.Do(func() {
		u.s.mu.Lock()
		defer u.s.mu.Unlock()
		u.s.users--
		if u.s.users == 0 && u.s.p != nil {
			err = u.s.p.Close()
			u.s.p = nil
		}
	})
	return err
}
