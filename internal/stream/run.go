package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/tablestore"
)

// Group runs one goka group of Code Bank: every role and every test builds and runs its
// processors this way. Build it with NewGroup and run it with Run.
type Group struct {
	name string
	proc *goka.Processor
}

// GroupStats exports goka's figures of a process's groups, read from their stats at each
// scrape:
//
//	codebank_group_partitions_assigned{group}                    partitions this instance processes
//	codebank_table_recovered{group}                              1 once its table is recovered and it processes, else 0
//	codebank_table_recovery_remaining_records{group,partition}  records of the table still to recover
//
// Register one with the process's registry and Add each group.
type GroupStats struct {
	mu                             sync.Mutex
	groups                         []*Group
	assigned, recovered, remaining *prometheus.GaugeVec
	all                            gauges
}

// NewGroupStats returns the collector of groups' figures.
func NewGroupStats() *GroupStats {
	s := &GroupStats{
		assigned: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codebank_group_partitions_assigned",
			Help: "Partitions of the group's input this instance processes."}, []string{"group"}),
		recovered: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codebank_table_recovered",
			Help: "1 once this instance of the group has recovered its table and processes its input, else 0."}, []string{"group"}),
		remaining: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "codebank_table_recovery_remaining_records",
			Help: "Records of each assigned partition of the group's table still to recover; 0 once recovered."}, []string{"group", "partition"}),
	}
	s.all = gauges{s.assigned, s.recovered, s.remaining}
	return s
}

// activeRunMode is goka's run mode (unexported) of a partition an instance processes, as
// opposed to a hot standby's copy.
const activeRunMode goka.PPRunMode = 0

// Add exports g's figures from the next scrape on, until the function it returns is called.
func (s *GroupStats) Add(g *Group) (remove func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups = append(s.groups, g)
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.groups = slices.DeleteFunc(s.groups, func(x *Group) bool { return x == g })
	}
}

// Describe implements prometheus.Collector.
func (s *GroupStats) Describe(ch chan<- *prometheus.Desc) { s.all.describe(ch) }

// Collect implements prometheus.Collector.
func (s *GroupStats) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all.scrape(ch, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for _, g := range s.groups {
			recovered := 0.0
			if g.proc.Recovered() {
				recovered = 1
			}
			s.recovered.WithLabelValues(g.name).Set(recovered)
			stats := g.proc.StatsWithContext(ctx)
			if stats == nil {
				continue
			}
			assigned := 0
			for part, ps := range stats.Group {
				ts := ps.TableStats
				if ts == nil {
					assigned++ // a group without a table: every partition it has is its own
					continue
				}
				if ts.RunMode != activeRunMode {
					continue // a hot standby's copy of another instance's partition
				}
				assigned++
				remaining := 0.0
				if ts.Status != goka.PartitionRunning && ts.Recovery != nil {
					remaining = float64(max(ts.Recovery.Hwm-ts.Recovery.Offset-1, 0))
				}
				s.remaining.WithLabelValues(g.name, strconv.Itoa(int(part))).Set(remaining)
			}
			s.assigned.WithLabelValues(g.name).Set(float64(assigned))
		}
	})
}

// NewGroup returns the group of graph, with kc's configuration and its local table storage
// under storageDir.
func NewGroup(kc kafkaconf.Config, graph *goka.GroupGraph, storageDir string, log *slog.Logger) (*Group, error) {
	proc, err := goka.NewProcessor(kc.Brokers, graph, kc.ProcessorOptions(storageDir, log)...)
	if err != nil {
		return nil, fmt.Errorf("create group %s: %w", graph.Group(), err)
	}
	return &Group{name: string(graph.Group()), proc: proc}, nil
}

// Run runs the group until ctx ends (then it returns nil) or the group fails. goka's errors
// name record keys, some of which are card numbers: the error returned masks them.
func (g *Group) Run(ctx context.Context) error {
	if err := g.proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("group %s: %s", g.name, card.Redact(err.Error()))
	}
	return nil
}

// Ready reports whether the group has recovered its tables and is processing.
func (g *Group) Ready() bool { return g.proc.Recovered() }

// WaitReady waits until the group is ready or ctx ends.
func (g *Group) WaitReady(ctx context.Context) error { return g.proc.WaitForReadyContext(ctx) }

// View is a goka view of one of Code Bank's tables, read leniently (a value that does not
// decode reads as a *codecs.Undecodable, for its key alone) and able to wake a reader when it
// changes (Await). Build it with NewView and run it with Run.
type View struct {
	name string
	view *goka.View

	mu      sync.Mutex
	changed chan struct{} // closed at the next write to the view's storage
}

// NewView returns a view of table whose local copy lives under storageDir, or in memory when
// storageDir is empty (it then recovers the table at every start).
func NewView(kc kafkaconf.Config, table Topic, storageDir string, log *slog.Logger) (*View, error) {
	v := &View{name: table.Name}
	builder := storage.MemoryBuilder()
	if storageDir != "" {
		builder = tablestore.NewView(storageDir)
	}
	opts := append(kc.ViewOptions(log), goka.WithViewStorageBuilder(v.notifying(builder)))
	view, err := goka.NewView(kc.Brokers, goka.Table(table.Name), codecs.Lenient(table.Codec), opts...)
	if err != nil {
		return nil, fmt.Errorf("create view of %s: %w", table.Name, err)
	}
	v.view = view
	return v, nil
}

// Run runs the view until ctx ends (then it returns nil) or the view fails.
func (v *View) Run(ctx context.Context) error {
	if err := v.view.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("view of %s: %s", v.name, card.Redact(err.Error()))
	}
	return nil
}

// Ready reports whether the view has caught up with its table once.
func (v *View) Ready() bool { return v.view.Recovered() }

// Get returns the value of key: nil for none, a *codecs.Undecodable for a value that does not
// decode.
func (v *View) Get(key string) (any, error) { return v.view.Get(key) }

// Range calls fn with the key and value (as Get returns it) of every key in [start, limit) in
// key order, over every partition, until fn returns false or an error. An empty limit reads
// every key that starts with start.
func (v *View) Range(start, limit string, fn func(key string, value any) (bool, error)) error {
	var it goka.Iterator
	var err error
	if start == "" && limit == "" {
		// Every key: goka's in-memory storage reads an empty range as none.
		it, err = v.view.Iterator()
	} else {
		it, err = v.view.IteratorWithRange(start, limit)
	}
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		value, err := it.Value()
		if err != nil {
			return err
		}
		more, err := fn(it.Key(), value)
		if err != nil || !more {
			return err
		}
	}
	return it.Err()
}

// Await calls check until it reports done or fails, calling it again each time the view
// changes, until ctx ends (then it returns ctx's error).
func (v *View) Await(ctx context.Context, check func() (done bool, err error)) error {
	for {
		changed := v.changes() // before the check: a change during it wakes the wait below
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (v *View) changes() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.changed == nil {
		v.changed = make(chan struct{})
	}
	return v.changed
}

func (v *View) notify() {
	v.mu.Lock()
	if v.changed != nil {
		close(v.changed)
		v.changed = nil
	}
	v.mu.Unlock()
}

// notifying wraps a storage builder so that every write to the view's storage wakes Await.
func (v *View) notifying(b storage.Builder) storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		st, err := b(topic, partition)
		if err != nil {
			return nil, err
		}
		return notifyingStorage{Storage: st, notify: v.notify}, nil
	}
}

type notifyingStorage struct {
	storage.Storage
	notify func()
}

func (s notifyingStorage) Set(key string, value []byte) error {
	err := s.Storage.Set(key, value)
	s.notify()
	return err
}

func (s notifyingStorage) Delete(key string) error {
	err := s.Storage.Delete(key)
	s.notify()
	return err
}
