package wait

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// recorder is a TB that keeps the failure; like testing.T, Fatalf ends the calling goroutine.
type recorder struct{ failed string }

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// run calls f on a goroutine of its own, as a test's body, and waits for it to end.
func run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}

func TestForReturnsOnceTheConditionHolds(t *testing.T) {
	var r recorder
	calls := 0
	var took time.Duration
	run(func() {
		took = For(&r, time.Minute, "the third call", func() error {
			calls++
			if calls < 3 {
				return fmt.Errorf("call %d", calls)
			}
			return nil
		})
	})
	if r.failed != "" || calls != 3 {
		t.Fatalf("For: failed %q after %d calls", r.failed, calls)
	}
	if took < 30*time.Millisecond { // two pauses: 10 ms, then 20 ms
		t.Errorf("For took %v, less than its two pauses", took)
	}
}

func TestForFailsWithTheLastAnswer(t *testing.T) {
	var r recorder
	calls := 0
	run(func() {
		For(&r, 100*time.Millisecond, "the impossible", func() error {
			calls++
			return fmt.Errorf("answer %d", calls)
		})
		t.Error("For returned although the condition never held")
	})
	if want := fmt.Sprintf("waited 100ms for the impossible: answer %d", calls); r.failed != want {
		t.Errorf("failure %q, want %q", r.failed, want)
	}
	if calls < 3 {
		t.Errorf("checked %d times in 100 ms, want the pause to start small", calls)
	}
}

func TestUntil(t *testing.T) {
	var r recorder
	n := 0
	run(func() { Until(&r, time.Minute, "n to reach 2", func() bool { n++; return n == 2 }) })
	if r.failed != "" || n != 2 {
		t.Errorf("Until: failed %q, n = %d", r.failed, n)
	}
	run(func() { Until(&r, 30*time.Millisecond, "never", func() bool { return false }) })
	if !strings.HasPrefix(r.failed, "waited 30ms for never: ") {
		t.Errorf("Until's failure %q", r.failed)
	}
}
