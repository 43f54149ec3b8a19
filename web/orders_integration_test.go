package web_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

var ctxT = banktest.Ctx

var mug = store.Item{Slug: "stoneware-mug", Name: "Stoneware Mug", PriceCents: 5990, Quantity: 2}

// TestOrdersStore checks the orders store on the real broker: read-your-writes, concurrent
// placements of one order (a double click), and a second replica's view.
func TestOrdersStore(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	startOrders(t, d, t.TempDir())
	st := startStore(t, d)

	if _, err := st.Get(ctxT(t), "order-missing"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get of a missing order = %v, want ErrNotFound", err)
	}
	o, err := st.Place(ctxT(t), "order-1", store.Placement{Items: []store.Item{mug}, Currency: "BRL", CardMasked: "545454******8555"})
	if err != nil || o.Status != store.StatusPending || o.TotalCents != 11980 || o.Attempts != 1 {
		t.Fatalf("Place = %+v, %v", o, err)
	}
	if got, err := st.Get(ctxT(t), "order-1"); err != nil || got.Offset != o.Offset {
		t.Fatalf("Get right after Place = %+v, %v: not read-your-writes", got, err)
	}

	// Five placements of one order at once, then its decision.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := st.Place(ctxT(t), "order-2", store.Placement{Items: []store.Item{mug}, CardMasked: "545454******8555"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	o, err = st.Decide(ctxT(t), "order-2", store.Decision{Status: store.StatusApproved, TransactionID: "order-2"})
	if err != nil || o.Status != store.StatusApproved || o.Attempts != 5 {
		t.Fatalf("Decide = %+v, %v; want approved after 5 attempts", o, err)
	}
	if o, err := st.Place(ctxT(t), "order-2", store.Placement{Items: []store.Item{{Slug: "x", PriceCents: 1, Quantity: 1}}, CardMasked: "x"}); err != nil ||
		o.Status != store.StatusApproved || o.TotalCents != 11980 {
		t.Errorf("a placement after the decision changed the order: %+v, %v", o, err)
	}
	// A placement the orders group would refuse is refused before it is written, not after a
	// wait: written, it would be dead-lettered and the call would end on its deadline
	// (ErrNotApplied), never with the contract's error; and no order is made of it.
	if _, err := st.Place(ctxT(t), "order-3", store.Placement{}); !errors.Is(err, codecs.ErrContract) {
		t.Errorf("empty placement = %v, want a contract error", err)
	}
	if o, err := st.Get(ctxT(t), "order-3"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused placement made an order: %+v, %v", o, err)
	}

	// Another replica's view sees the orders.
	replica := startStore(t, d)
	if o, err := replica.Get(ctxT(t), "order-2"); err != nil || o.Status != store.StatusApproved {
		t.Errorf("replica Get = %+v, %v", o, err)
	}
	if o, err := replica.Fail(ctxT(t), "order-1", store.ErrorUnreachable); err != nil || o.LastError != store.ErrorUnreachable {
		t.Errorf("replica Fail = %+v, %v", o, err)
	}
}

// TestOrdersNeverPaidAreForgotten: a sweep forgets, through the orders group, the orders never
// paid that had not changed before its time (a tombstone each, so that compaction drops them
// from the topic), and keeps the paid one.
func TestOrdersNeverPaidAreForgotten(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	startOrders(t, d, t.TempDir())
	st := startStore(t, d)
	id := func(c string) string { return "order-" + strings.Repeat(c, 16) + "-" + strings.Repeat(c, 16) }
	paid, declined, pending := id("a"), id("b"), id("c")
	for _, o := range []string{paid, declined, pending} {
		if _, err := st.Place(ctxT(t), o, store.Placement{Items: []store.Item{mug}, Currency: "BRL", CardMasked: "545454******8555"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Decide(ctxT(t), paid, store.Decision{Status: store.StatusApproved, TransactionID: paid, PaymentID: "pay-1"})
	st.Decide(ctxT(t), declined, store.Decision{Status: store.StatusRejected, Reason: "insufficient_credit", TransactionID: declined})
	st.Fail(ctxT(t), pending, store.ErrorUnreachable)

	// A sweep of orders unchanged since a time before them forgets nothing.
	if n, err := st.Sweep(ctxT(t), time.Now().Add(-time.Hour)); err != nil || n != 0 {
		t.Fatalf("sweep of orders unchanged for an hour = %d, %v; want none", n, err)
	}
	n, err := st.Sweep(ctxT(t), time.Now().Add(time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("sweep = %d, %v; want the 2 orders never paid", n, err)
	}
	for _, o := range []string{declined, pending} {
		wait.For(t, time.Minute, o+" to be forgotten", func() error {
			if got, err := st.Get(ctxT(t), o); !errors.Is(err, store.ErrNotFound) {
				return fmt.Errorf("%+v, %v", got, err)
			}
			return nil
		})
	}
	if o, err := st.Get(ctxT(t), paid); err != nil || o.Status != store.StatusApproved {
		t.Errorf("the paid order after the sweep = %+v, %v", o, err)
	}
}

// TestOrdersSurviveRestart stops the orders group and the store, starts them again on empty
// local storage, and finds every order as it was, on the order page too.
func TestOrdersSurviveRestart(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	proc := startOrders(t, d, t.TempDir())
	st, err := store.NewOrders(d.Kafka, d.Store, "", banktest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	run := runUntilCleanup(t, "orders store", st.Run)
	wait.Until(t, time.Minute, "the orders view to recover", st.Ready)
	ids := []string{"order-" + strings.Repeat("a", 16) + "-" + strings.Repeat("c", 16), "order-" + strings.Repeat("b", 16) + "-" + strings.Repeat("d", 16)} // the store's id format
	st.Place(ctxT(t), ids[0], store.Placement{Items: []store.Item{mug}, Currency: "BRL", CardMasked: "545454******8555"})
	st.Decide(ctxT(t), ids[0], store.Decision{Status: store.StatusApproved, TransactionID: ids[0]})
	st.Place(ctxT(t), ids[1], store.Placement{Items: []store.Item{mug}, Currency: "BRL", CardMasked: "545454******8555"})
	if _, err := st.Fail(ctxT(t), ids[1], store.ErrorUnreachable); err != nil {
		t.Fatal(err)
	}

	// Restart: everything stops; the new instances have empty local storage.
	run.stop(t)
	st.Close()
	proc.Stop(t)
	startOrders(t, d, t.TempDir())
	again := startStore(t, d)

	approved, err := again.Get(ctxT(t), ids[0])
	if err != nil || approved.Status != store.StatusApproved || approved.TotalCents != 11980 || approved.CardMasked != "545454******8555" {
		t.Fatalf("approved order after restart = %+v, %v", approved, err)
	}
	pending, err := again.Get(ctxT(t), ids[1])
	if err != nil || pending.Status != store.StatusPending || pending.LastError != store.ErrorUnreachable {
		t.Fatalf("pending order after restart = %+v, %v", pending, err)
	}
	// The restarted group goes on applying events.
	if o, err := again.Decide(ctxT(t), ids[1], store.Decision{Status: store.StatusRejected, Reason: "insufficient_credit"}); err != nil || o.Status != store.StatusRejected {
		t.Fatalf("Decide after restart = %+v, %v", o, err)
	}
	// And the order page shows it.
	hs := httptest.NewServer(web.New(web.Config{}, web.Deps{Orders: again, Log: banktest.Logger()}).Handler())
	defer hs.Close()
	resp, err := http.Get(hs.URL + "/orders/" + ids[0])
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !contains(string(body), ">Approved<", "545454******8555", "R$ 119.80") {
		t.Errorf("order page after restart = %d:\n%s", resp.StatusCode, body)
	}
}
