package grpcgateway

import (
	"strconv"
	"testing"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func TestCorrelator(t *testing.T) {
	c := NewCorrelator()
	a, cancelA := c.Wait("tx")
	b, cancelB := c.Wait("tx")
	other, cancelOther := c.Wait("other")
	defer cancelA()
	defer cancelB()
	if c.Pending() != 2 {
		t.Fatalf("Pending() = %d, want 2", c.Pending())
	}
	if !c.Deliver(&eventsv1.Reply{CorrelationId: "tx"}) {
		t.Fatal("Deliver found no waiter")
	}
	if (<-a).GetCorrelationId() != "tx" || (<-b).GetCorrelationId() != "tx" {
		t.Fatal("both waiters should get the reply")
	}
	if c.Deliver(&eventsv1.Reply{CorrelationId: "tx"}) {
		t.Error("a second reply found a waiter")
	}
	cancelOther()
	if c.Deliver(&eventsv1.Reply{CorrelationId: "other"}) {
		t.Error("a canceled waiter got a reply")
	}
	select {
	case r := <-other:
		t.Errorf("canceled waiter received %v", r)
	default:
	}
	if c.Pending() != 0 {
		t.Errorf("Pending() = %d, want 0", c.Pending())
	}
}

func TestReplyKey(t *testing.T) {
	for _, n := range []int{1, 2, 8, 32} {
		for p := 0; p < n; p++ {
			key, err := ReplyKey("replies", int32(p), n)
			if err != nil {
				t.Fatal(err)
			}
			if got := gokaPartition(key, n); got != int32(p) {
				t.Errorf("ReplyKey(%d of %d) = %q, which goka sends to %d", p, n, key, got)
			}
		}
	}
}

func BenchmarkCorrelator(b *testing.B) {
	c := NewCorrelator()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			id := strconv.Itoa(i) + "-tx"
			i++
			ch, cancel := c.Wait(id)
			c.Deliver(&eventsv1.Reply{CorrelationId: id})
			<-ch
			cancel()
		}
	})
}
