package loadgen

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestParseSchedule(t *testing.T) {
	steps, err := ParseSchedule("~1000:5s, 10000:60s")
	if err != nil {
		t.Fatal(err)
	}
	want := []Step{{1000, 5 * time.Second, false}, {10000, time.Minute, true}}
	if len(steps) != 2 || steps[0] != want[0] || steps[1] != want[1] {
		t.Fatalf("ParseSchedule = %v, want %v", steps, want)
	}
	for _, bad := range []string{"", "10000", "x:1s", "100:x", "0:1s", "-5:1s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) succeeded", bad)
		}
	}
}

// TestRunIsOpenLoop: a server that stalls delays nothing else; the stalled time is in the
// latencies of the requests that were due meanwhile.
func TestRunIsOpenLoop(t *testing.T) {
	steps := []Step{{Rate: 1000, Duration: 500 * time.Millisecond, Measure: true}}
	stallUntil := time.Now().Add(200 * time.Millisecond)
	res := Run(context.Background(), steps, 10000, func(ctx context.Context, seq int) Outcome {
		if d := time.Until(stallUntil); d > 0 {
			time.Sleep(d)
		}
		if seq%100 == 99 {
			return Outcome{Err: "Unavailable"}
		}
		return Outcome{}
	})
	r := res[0]
	if r.Sent != 500 || r.Completed != 500 || r.Errors["Unavailable"] != 5 {
		t.Fatalf("sent %d completed %d errors %v", r.Sent, r.Completed, r.Errors)
	}
	if r.Quantile(1) < 180*time.Millisecond {
		t.Errorf("max latency %v: want the first request measured from its intended start through the stall", r.Quantile(1))
	}
	if r.Quantile(0.5) > 50*time.Millisecond {
		t.Errorf("p50 = %v: requests due after the stall should be fast", r.Quantile(0.5))
	}
}

func TestProcStat(t *testing.T) {
	p := &ProcStat{Name: "self", PID: os.Getpid()}
	p.Start()
	for end := time.Now().Add(50 * time.Millisecond); time.Now().Before(end); {
	}
	p.Stop()
	if p.MaxRSS() <= 0 || p.CPUPercent() <= 0 {
		t.Errorf("RSS %d, CPU %.1f%%: want both positive", p.MaxRSS(), p.CPUPercent())
	}
}
