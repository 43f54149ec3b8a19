package web

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/kafkaconf"
)

// kafkaTestConfig is never dialled: tests feed a Feed with Add.
var kafkaTestConfig = kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestAggregateWindow(t *testing.T) {
	var a aggregate
	now := testNow
	a.add(result("old", "approved", "", "S", 100, now.Add(-WindowSeconds*time.Second), 1), now) // just outside
	a.add(result("a", "approved", "", "S", 100, now.Add(-299*time.Second), 1), now)
	a.add(result("b", "approved", "", "S", 100, now, 1), now)
	a.add(result("b", "approved", "", "S", 100, now, 1), now)                               // duplicate
	a.add(result("future", "rejected", "card_blocked", "S", 1, now.Add(time.Hour), 1), now) // counts as now
	d := a.snapshot(now)
	if d.Approved != 2 || d.Rejected != 1 || d.Series.Approved[0] != 1 || d.Series.Approved[WindowSeconds-1] != 1 || d.Series.Rejected[WindowSeconds-1] != 1 {
		t.Fatalf("approved %d rejected %d, first %d last %d", d.Approved, d.Rejected, d.Series.Approved[0], d.Series.Approved[WindowSeconds-1])
	}
	if d.Series.StartUnix != now.Unix()-WindowSeconds+1 || d.ApprovedCents != 200 {
		t.Errorf("start %d, approved cents %d", d.Series.StartUnix, d.ApprovedCents)
	}
	// A minute later the oldest second has left the window, and its slot is reused.
	later := now.Add(time.Minute)
	a.add(result("c", "approved", "", "S", 100, later.Add(-299*time.Second), 1), later)
	d = a.snapshot(later)
	if d.Approved != 2 {
		t.Errorf("a minute later: approved %d, want 2", d.Approved)
	}
	// A duplicate of a result that has left the window is not counted again: it is too old.
	a.add(result("a", "approved", "", "S", 100, now.Add(-299*time.Second), 1), later)
	if d := a.snapshot(later); d.Approved != 2 {
		t.Errorf("an expired duplicate was counted: %d", d.Approved)
	}
}

func TestAggregateFigures(t *testing.T) {
	var a aggregate
	now := testNow
	for i := range 100 {
		ms := float64(i + 1) // 1..100 ms
		st, reason := "approved", ""
		if i%4 == 0 {
			st, reason = "rejected", []string{"insufficient_credit", "cvv_mismatch"}[i%8/4]
		}
		a.add(result(fmt.Sprint(i), st, reason, fmt.Sprintf("Store %02d", i%13), int64(100*(i%13+1)), now.Add(-time.Duration(i)*time.Second), ms), now)
	}
	d := a.snapshot(now)
	if d.Approved != 75 || d.Rejected != 25 || math.Abs(*d.ApprovalRate-0.75) > 1e-9 {
		t.Fatalf("approved %d rejected %d rate %v", d.Approved, d.Rejected, *d.ApprovalRate)
	}
	if d.RatePerSecond != 1 {
		t.Errorf("rate = %v/s over the last 10 s, want 1", d.RatePerSecond)
	}
	for _, p := range []struct{ got, want float64 }{{d.Latency.P50, 50}, {d.Latency.P90, 90}, {d.Latency.P99, 99}} {
		if math.Abs(p.got-p.want)/p.want > 0.06 {
			t.Errorf("percentile = %v, want %v within 6%%", p.got, p.want)
		}
	}
	if len(d.Stores) != topStores || d.Stores[0].Store != "Store 12" || d.Stores[0].AmountCents < d.Stores[1].AmountCents {
		t.Errorf("stores = %+v", d.Stores)
	}
	if len(d.Reasons) != 2 || d.Reasons[0].Count+d.Reasons[1].Count != 25 || d.Reasons[0].Label == "" {
		t.Errorf("reasons = %+v", d.Reasons)
	}
}

func TestAggregateBoundsStores(t *testing.T) {
	var a aggregate
	for i := range maxStoresPerSecond + 50 {
		a.add(result(fmt.Sprint(i), "approved", "", fmt.Sprint("store-", i), 1, testNow, 1), testNow)
	}
	b := a.secs[testNow.Unix()%WindowSeconds]
	if len(b.stores) != maxStoresPerSecond+1 || b.stores[otherStores].Count != 50 {
		t.Errorf("one second holds %d stores, %d purchases in %q", len(b.stores), b.stores[otherStores].Count, otherStores)
	}
}

func TestEmptyDashboard(t *testing.T) {
	var a aggregate
	d := a.snapshot(testNow)
	if d.ApprovalRate != nil || d.Latency.Count != 0 || d.Stores == nil || d.Reasons == nil {
		t.Errorf("empty snapshot = %+v", d)
	}
}

func TestGroupThousands(t *testing.T) {
	for in, want := range map[string]string{"0.05": "0.05", "999.99": "999.99", "1000.00": "1,000.00", "-1234567.89": "-1,234,567.89", "100000.00": "100,000.00"} {
		if got := groupThousands(in); got != want {
			t.Errorf("groupThousands(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAggregateMoneyBack: reversals and refunds are counted apart from purchases (not as
// approvals, not in the stores' sales, not in the latency), with their own rate and the refund
// rate; a bill payment is not a sale's and is left out; a refund read twice counts once.
func TestAggregateMoneyBack(t *testing.T) {
	var a aggregate
	now := testNow
	for i := range 8 {
		a.add(result(fmt.Sprint("p", i), "approved", "", "Code Store", 1000, now.Add(-time.Duration(i)*time.Second), 1), now)
	}
	credit := func(key, kind string, cents int64, at time.Time) *codecs.Result {
		r := result(key, "approved", "", "Code Store", cents, at, 500)
		r.Kind = kind
		return r
	}
	a.add(credit("v1", codecs.KindReversal, 300, now), now)
	a.add(credit("r1", codecs.KindRefund, 200, now.Add(-20*time.Second)), now)
	a.add(credit("r1", codecs.KindRefund, 200, now.Add(-20*time.Second)), now) // read again
	a.add(credit("b1", codecs.KindBillPayment, 5000, now), now)
	d := a.snapshot(now)
	if d.Approved != 8 || d.ApprovedCents != 8000 || d.Latency.Count != 8 || d.Stores[0].Count != 8 {
		t.Errorf("purchases: %d approved, %d cents, latency of %d, store %+v; want the 8 purchases alone", d.Approved, d.ApprovedCents, d.Latency.Count, d.Stores[0])
	}
	if d.Reversals != 1 || d.Refunds != 1 || d.CreditedCents != 500 || d.CreditsPerSecond != 0.1 || math.Abs(*d.RefundRate-0.25) > 1e-9 {
		t.Errorf("money back: %d reversals, %d refunds, %d cents, %v/s, rate %v; want 1, 1, 500, 0.1/s, 25%%",
			d.Reversals, d.Refunds, d.CreditedCents, d.CreditsPerSecond, *d.RefundRate)
	}
	if d.Series.Reversals[WindowSeconds-1] != 1 || d.Series.Refunds[WindowSeconds-21] != 1 {
		t.Errorf("series: %v %v", d.Series.Reversals[WindowSeconds-3:], d.Series.Refunds[WindowSeconds-22:WindowSeconds-19])
	}
}

// BenchmarkAggregateWindow fills the dashboard's window at 1,000 results a second and
// reports what the window keeps per result (retained-B/result) and the cost of adding one.
func BenchmarkAggregateWindow(b *testing.B) {
	const rate = 1000
	retained := func(a *aggregate) float64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		runtime.KeepAlive(a)
		return float64(m.HeapAlloc)
	}
	for b.Loop() {
		b.StopTimer()
		before := retained(nil)
		a := new(aggregate)
		b.StartTimer()
		for s := range WindowSeconds {
			now := testNow.Add(time.Duration(s) * time.Second)
			for i := range rate {
				a.add(result(fmt.Sprintf("tx-%d-%d", s, i), "approved", "", "Code Store", 100, now, 1.5), now)
			}
		}
		b.StopTimer()
		b.ReportMetric((retained(a)-before)/(WindowSeconds*rate), "retained-B/result")
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*WindowSeconds*rate), "ns/result")
}
