package loadgen

import (
	"context"
	"os"
	"sync"
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

// TestRunIsOpenLoop: a server that stalls delays nothing else. The first requests block until
// released, and later ones are sent and answered meanwhile; the blocked ones' latencies count
// from their intended start, through the stall. Nothing here depends on how fast the machine is:
// the stall ends when the test has seen what it waits for, not after a time.
func TestRunIsOpenLoop(t *testing.T) {
	const blocked = 20
	var (
		mu         sync.Mutex
		waiting    int
		afterwards int // requests after the blocked ones, answered while they wait
		released   bool
	)
	release := make(chan struct{})
	// maybeRelease ends the stall once every blocked request waits and 50 later ones were
	// answered meanwhile, whichever comes last. Called with mu held.
	maybeRelease := func() {
		if !released && waiting == blocked && afterwards >= 50 {
			released = true
			close(release)
		}
	}
	steps := []Step{{Rate: 1000, Duration: 200 * time.Millisecond, Measure: true}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res := Run(ctx, steps, 10000, func(ctx context.Context, seq int) Outcome {
		if seq < blocked {
			mu.Lock()
			waiting++
			maybeRelease()
			mu.Unlock()
			select {
			case <-release:
			case <-ctx.Done():
				return Outcome{Err: "never released"}
			}
			return Outcome{}
		}
		mu.Lock()
		defer mu.Unlock()
		if !released {
			afterwards++
			maybeRelease()
		}
		if seq%100 == 99 {
			return Outcome{Err: "Unavailable"}
		}
		return Outcome{}
	})
	r := res[0]
	if r.Sent != 200 || r.Completed != 200 || r.Errors["Unavailable"] != 2 || r.Errors["never released"] != 0 {
		t.Fatalf("sent %d completed %d errors %v: want every request sent while the first %d were stalled", r.Sent, r.Completed, r.Errors, blocked)
	}
	// Intended starts are 1 ms apart from the step's start. The release came after 50 requests
	// after the blocked ones were answered, so after one numbered blocked+49 or more was sent:
	// no earlier than its intended start (less the 0.2 ms Run may send early), 69 ms after the
	// first request's. Measured from its intended start, the first request took at least that.
	if want := time.Duration(blocked+48) * time.Millisecond; r.Quantile(1) < want {
		t.Errorf("max latency %v: want the stalled requests measured from their intended start through the stall (at least %v)", r.Quantile(1), want)
	}
}

func TestProcStat(t *testing.T) {
	p := &ProcStat{Name: "self", PID: os.Getpid()}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	p.Start()
	// 100 writes to a file: each a write system call the window counts.
	f, err := os.Create(t.TempDir() + "/f")
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		if _, err := f.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	// Burn CPU until the kernel has counted at least three of its ticks for this process,
	// however long that takes on a busy machine: a loop of fixed wall time may get no tick.
	for x := 0; ; x++ {
		if x%100000 == 0 {
			if now, _ := cpuTime(os.Getpid()); now-before >= 3*time.Second/clockTicks {
				break
			}
		}
	}
	p.Stop()
	if p.MaxRSS() <= 0 || p.CPUPercent() <= 0 {
		t.Errorf("RSS %d, CPU %.1f%%: want both positive", p.MaxRSS(), p.CPUPercent())
	}
	// This process maps its own executable: its anonymous memory is part of its RSS, not all.
	rss, err1 := RSS(os.Getpid())
	anon, err2 := AnonRSS(os.Getpid())
	if err1 != nil || err2 != nil || anon <= 0 || anon >= rss {
		t.Errorf("RSS %d (%v), anonymous %d (%v): want 0 < anonymous < RSS", rss, err1, anon, err2)
	}
	if p.Syscalls() < 100 {
		t.Errorf("%d read and write system calls counted, want at least the test's 100 writes", p.Syscalls())
	}
}
