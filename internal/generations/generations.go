// Package generations keeps which generation of the authorizer's card-keyed topics is live,
// and moves a running bank from one generation to another: `codebank partitions grow`,
// `rollback` and `cleanup`.
//
// A goka group cannot grow its partitions in place: its inputs and its table must be
// co-partitioned, and a card's partition is a hash of its token modulo the partition count.
// So more partitions means a new generation of the topics (processors.Topology.Generation),
// and a move:
//
//  1. Switch creates the new generation's topics and records the switch (State.Switching).
//     Every authorizer instance stops deciding; the ingress goes on writing requests to the
//     live generation, and its calls wait.
//  2. Once no instance of the old generation's group is left, the old table is copied, every
//     card's latest account, into the new one, partitioned as goka partitions.
//  3. The new generation is recorded live, the old one kept as State.Previous. The
//     authorizers decide on the new generation and forward what is left in the old
//     generation's inputs into the new ones (so a request written during the switch is decided
//     once, there); the ingress writes to the new generation.
//
// Rollback is the same move back to the previous generation: its table receives the accounts
// of the newer one, so every approval made meanwhile goes back with them. Cleanup deletes the
// previous generation once the forwarding is done.
//
// The state is one record in a compacted topic (processors.Topology.Generations); Watcher
// follows it in every role.
package generations

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
)

// stateKey is the key of the state record.
const stateKey = "authorizer"

// State is which generation of the authorizer's topics is live.
type State struct {
	// Generation is the live generation (1: the first), with Partitions partitions.
	Generation int `json:"generation"`
	Partitions int `json:"partitions"`
	// Previous is the generation kept for rollback (0: none), with PreviousPartitions. Its
	// inputs are forwarded into the live generation's until Cleanup.
	Previous           int `json:"previous,omitempty"`
	PreviousPartitions int `json:"previous_partitions,omitempty"`
	// Switching says a move to generation To (ToPartitions) is under way: nothing is decided
	// until it is live.
	Switching    bool `json:"switching,omitempty"`
	To           int  `json:"to,omitempty"`
	ToPartitions int  `json:"to_partitions,omitempty"`
	// Last is the highest generation ever created. A generation number is never used twice,
	// not even after cleanup deleted it: accounts remember the place in the log of their last
	// request by topic name, and a new topic of an old name would start its offsets again below
	// it.
	Last int `json:"last,omitempty"`
	// At is when the state was recorded.
	At time.Time `json:"at"`
}

// Initial is the state of a bank that never moved: generation 1 with base's partitions.
func Initial(base processors.Topology) State {
	return State{Generation: 1, Partitions: base.At(1, 0).PaymentRequests().Partitions, Last: 1}
}

// last returns the highest generation the state knows of.
func (s State) last() int { return max(s.Generation, s.Previous, s.To, s.Last) }

// Live returns base at the live generation.
func (s State) Live(base processors.Topology) processors.Topology {
	return base.At(s.Generation, s.Partitions)
}

// Prev returns base at the previous generation, and whether there is one.
func (s State) Prev(base processors.Topology) (processors.Topology, bool) {
	return base.At(s.Previous, s.PreviousPartitions), s.Previous > 0
}

// String describes the state for people.
func (s State) String() string {
	out := fmt.Sprintf("generation %d (%d partitions) live", s.Generation, s.Partitions)
	if s.Previous > 0 {
		out += fmt.Sprintf(", generation %d (%d partitions) kept for rollback", s.Previous, s.PreviousPartitions)
	}
	if s.Switching {
		out += fmt.Sprintf(", switching to generation %d (%d partitions)", s.To, s.ToPartitions)
	}
	return out
}

// Read returns the recorded state (Initial when none is), reading the state topic to its end.
func Read(ctx context.Context, kc kafkaconf.Config, base processors.Topology) (State, error) {
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		return State{}, err
	}
	defer client.Close()
	return read(ctx, client, base)
}

func read(ctx context.Context, client sarama.Client, base processors.Topology) (State, error) {
	topic := base.Generations().Name
	state := Initial(base)
	end, err := client.GetOffset(topic, 0, sarama.OffsetNewest)
	if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return state, nil // a bank set up before generations: the first
	}
	if err != nil {
		return state, fmt.Errorf("read %s: %w", topic, err)
	}
	if end == 0 {
		return state, nil
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return state, err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		return state, err
	}
	defer pc.Close()
	for {
		select {
		case m := <-pc.Messages():
			if s, ok := decode(m); ok {
				state = s
			}
			if m.Offset+1 >= end {
				return state, nil
			}
		case err := <-pc.Errors():
			return state, err
		case <-ctx.Done():
			return state, ctx.Err()
		}
	}
}

func decode(m *sarama.ConsumerMessage) (State, bool) {
	var s State
	if string(m.Key) != stateKey || m.Value == nil || json.Unmarshal(m.Value, &s) != nil || s.Generation < 1 {
		return State{}, false
	}
	return s, true
}

// Write records s.
func Write(kc kafkaconf.Config, base processors.Topology, s State) error {
	cfg := kc.Sarama()
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer(kc.Brokers, cfg)
	if err != nil {
		return err
	}
	defer p.Close()
	s.At = time.Now().UTC()
	v, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, _, err = p.SendMessage(&sarama.ProducerMessage{Topic: base.Generations().Name, Key: sarama.StringEncoder(stateKey), Value: sarama.ByteEncoder(v)})
	return err
}

// Watcher follows the recorded state. Build it with NewWatcher (which reads the state once),
// then run it with Run.
type Watcher struct {
	kc   kafkaconf.Config
	base processors.Topology

	mu      sync.Mutex
	state   State
	changed chan struct{} // closed at the next change
	end     int64         // where Run starts reading
}

// NewWatcher reads the state and returns a watcher of its changes.
func NewWatcher(ctx context.Context, kc kafkaconf.Config, base processors.Topology) (*Watcher, error) {
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		return nil, err
	}
	defer client.Close()
	end, err := client.GetOffset(base.Generations().Name, 0, sarama.OffsetNewest)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", base.Generations().Name, err)
	}
	state, err := read(ctx, client, base)
	if err != nil {
		return nil, err
	}
	return &Watcher{kc: kc, base: base, state: state, changed: make(chan struct{}), end: end}, nil
}

// Static returns a watcher of a state that never changes (for tests and tools).
func Static(s State) *Watcher {
	return &Watcher{state: s, changed: make(chan struct{})}
}

// Current returns the state and a channel closed at its next change.
func (w *Watcher) Current() (State, <-chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state, w.changed
}

// Run follows the state until ctx ends.
func (w *Watcher) Run(ctx context.Context) error {
	if w.kc.Brokers == nil {
		<-ctx.Done()
		return nil
	}
	consumer, err := sarama.NewConsumer(w.kc.Brokers, w.kc.Sarama())
	if err != nil {
		return err
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(w.base.Generations().Name, 0, w.end)
	if err != nil {
		return err
	}
	defer pc.Close()
	for {
		select {
		case m := <-pc.Messages():
			if s, ok := decode(m); ok {
				w.mu.Lock()
				w.state = s
				close(w.changed)
				w.changed = make(chan struct{})
				w.mu.Unlock()
			}
		case err := <-pc.Errors():
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// ErrSwitching is returned when a move is asked for while another is under way.
var ErrSwitching = errors.New("a move between generations is under way")
