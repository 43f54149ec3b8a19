// Package wait is how the tests wait for something to happen: they check a condition again and
// again, with a pause that grows from 10 ms to 250 ms, until it holds or the time they allow has
// passed, and then fail naming what they waited for and the condition's last answer. No test
// sleeps for a fixed time and hopes.
package wait

import (
	"errors"
	"time"
)

// TB is the part of testing.TB that waiting needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

const (
	firstPause = 10 * time.Millisecond
	maxPause   = 250 * time.Millisecond
)

// For calls check until it returns nil and returns how long that took. If check has not returned
// nil within the time given, For fails t with what and check's last error. check may itself fail
// t (for an error that waiting cannot mend).
func For(t TB, within time.Duration, what string, check func() error) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(within)
	pause := firstPause
	for {
		err := check()
		if err == nil {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %v for %s: %v", within, what, err)
		}
		time.Sleep(min(pause, time.Until(deadline)+time.Millisecond))
		pause = min(2*pause, maxPause)
	}
}

// errNotYet is Until's last answer.
var errNotYet = errors.New("it did not happen")

// Until calls cond until it returns true, as For.
func Until(t TB, within time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	return For(t, within, what, func() error {
		if cond() {
			return nil
		}
		return errNotYet
	})
}
