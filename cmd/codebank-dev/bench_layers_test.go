package main

import (
	"bytes"
	"math"
	"testing"

	"github.com/google/pprof/profile"
)

// TestProfileLayers: a sample is the first layer's whose pattern matches a function of its
// stack, wherever the function is in it; shares are of CPU time, not of samples.
func TestProfileLayers(t *testing.T) {
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "samples", Unit: "count"}, {Type: "cpu", Unit: "nanoseconds"}},
		PeriodType: &profile.ValueType{Type: "cpu", Unit: "nanoseconds"},
		Period:     10_000_000,
	}
	locs := map[string]*profile.Location{}
	loc := func(name string) *profile.Location {
		if l, ok := locs[name]; ok {
			return l
		}
		id := uint64(len(locs) + 1)
		f := &profile.Function{ID: id, Name: name}
		p.Function = append(p.Function, f)
		l := &profile.Location{ID: id, Line: []profile.Line{{Function: f}}}
		p.Location = append(p.Location, l)
		locs[name] = l
		return l
	}
	sample := func(ms int64, stack ...string) { // leaf first, as in a profile
		s := &profile.Sample{Value: []int64{ms / 10, ms * 1_000_000}}
		for _, f := range stack {
			s.Location = append(s.Location, loc(f))
		}
		p.Sample = append(p.Sample, s)
	}
	// The authorizer's table read is the bank's: its code is in the stack.
	sample(300, "internal/runtime/syscall/linux.Syscall6", "github.com/syndtr/goleveldb/leveldb.(*DB).Get",
		"github.com/codebank/codebank/processors/authorizer.(*Processor).pay", "github.com/lovoo/goka.(*PartitionProcessor).run")
	sample(100, "github.com/syndtr/goleveldb/leveldb.(*DB).mCompaction")
	sample(200, "internal/runtime/syscall/linux.Syscall6", "github.com/IBM/sarama.(*Broker).write", "github.com/IBM/sarama.(*Broker).AsyncProduce",
		"github.com/IBM/sarama.(*asyncProducer).newBrokerProducer.func1", "github.com/IBM/sarama.withRecover")
	sample(150, "github.com/IBM/sarama.(*Broker).Fetch", "github.com/IBM/sarama.(*brokerConsumer).fetchNewMessages", "github.com/IBM/sarama.withRecover")
	sample(50, "github.com/IBM/sarama.(*Broker).responseReceiver", "github.com/IBM/sarama.withRecover")
	sample(50, "runtime.futex", "runtime.findRunnable", "runtime.schedule", "runtime.park_m", "runtime.mcall")
	sample(100, "google.golang.org/grpc/internal/transport.(*loopyWriter).run")
	sample(25, "runtime.gcDrain", "runtime.gcBgMarkWorker")
	sample(25, "runtime.memmove")
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	got, err := profileLayers(&buf)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"bank code": 0.3, "tables": 0.1, "Kafka produce": 0.2, "Kafka fetch": 0.15, "Kafka other": 0.05,
		"scheduler": 0.05, "gRPC transport": 0.1, "GC": 0.025, "other": 0.025}
	for _, n := range layerNames() {
		if math.Abs(got[n]-want[n]) > 1e-9 {
			t.Errorf("%s: %.3f, want %.3f", n, got[n], want[n])
		}
	}
	if _, err := profileLayers(bytes.NewReader([]byte("not a profile"))); err == nil {
		t.Error("a file that is no profile was read")
	}
}
