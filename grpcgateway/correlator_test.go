package grpcgateway

import (
	"testing"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

func TestCorrelator(t *testing.T) {
	c := NewCorrelator()
	idA, idB := c.NewID(), c.NewID()
	if idA == idB || NewCorrelator().NewID() == idA {
		t.Fatalf("ids %q, %q repeat", idA, idB)
	}
	forA := func(r *eventsv1.Reply) bool { return r.GetPayment().GetCardToken() == "card-a" }
	a, cancelA := c.Wait(idA, forA)
	other, cancelOther := c.Wait(idB, func(*eventsv1.Reply) bool { return true })
	defer cancelA()
	if c.Pending() != 2 {
		t.Fatalf("Pending() = %d, want 2", c.Pending())
	}
	reply := func(id, token string) *eventsv1.Reply {
		return &eventsv1.Reply{CorrelationId: id, Body: &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{CardToken: token}}}
	}
	// A reply under A's id for another card is not A's answer: A keeps waiting.
	if got := c.Deliver(reply(idA, "card-b")); got != Mismatched {
		t.Fatalf("Deliver(forged) = %v, want Mismatched", got)
	}
	select {
	case r := <-a:
		t.Fatalf("the call got a reply that is not its answer: %v", r)
	default:
	}
	if got := c.Deliver(reply(idA, "card-a")); got != Delivered {
		t.Fatalf("Deliver(answer) = %v, want Delivered", got)
	}
	if r := <-a; r.GetPayment().GetCardToken() != "card-a" {
		t.Fatalf("the call got %v", r)
	}
	if got := c.Deliver(reply(idA, "card-a")); got != Unclaimed {
		t.Errorf("a second reply = %v, want Unclaimed", got)
	}
	cancelOther()
	if got := c.Deliver(reply(idB, "x")); got != Unclaimed {
		t.Errorf("a reply to a canceled call = %v, want Unclaimed", got)
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
	accept := func(*eventsv1.Reply) bool { return true }
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			id := c.NewID()
			ch, cancel := c.Wait(id, accept)
			c.Deliver(&eventsv1.Reply{CorrelationId: id})
			<-ch
			cancel()
		}
	})
}
