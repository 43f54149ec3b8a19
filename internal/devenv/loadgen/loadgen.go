// Package loadgen drives open-loop load: requests start at a fixed arrival rate whatever the
// latency of earlier ones, and each latency is measured from the request's intended start, so
// a stalled server shows up in the percentiles instead of silently slowing the load down
// (coordinated omission).
//
// Its main types are Step (a rate held for a duration), Run's Result, and ProcStat.
package loadgen

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Step is a rate held for a duration.
type Step struct {
	Rate     int           // requests per second
	Duration time.Duration // how long
	Measure  bool          // false for warm-up steps, left out of the results
}

// ParseSchedule reads "2000:10s,10000:60s" (rate:duration, comma-separated). A step whose rate
// is prefixed with "~" is a warm-up: "~1000:5s,10000:60s".
func ParseSchedule(s string) ([]Step, error) {
	var steps []Step
	for _, part := range strings.Split(s, ",") {
		rate, dur, ok := strings.Cut(strings.TrimSpace(part), ":")
		warm := strings.HasPrefix(rate, "~")
		r, err1 := strconv.Atoi(strings.TrimPrefix(rate, "~"))
		d, err2 := time.ParseDuration(dur)
		if !ok || err1 != nil || err2 != nil || r <= 0 || d <= 0 {
			return nil, fmt.Errorf("schedule step %q: want RATE:DURATION, e.g. 10000:60s", part)
		}
		steps = append(steps, Step{Rate: r, Duration: d, Measure: !warm})
	}
	return steps, nil
}

// Outcome is what one request reports: nil error, or the error's class (e.g. a gRPC code).
type Outcome struct {
	Err string
}

// Result summarizes one measured step.
type Result struct {
	Step      Step
	Sent      int
	Completed int
	Errors    map[string]int
	Latencies []time.Duration // sorted
	Elapsed   time.Duration   // from the step's start to its last completion
}

// Achieved is the rate of completed requests without error.
func (r Result) Achieved() float64 {
	ok := r.Completed
	for _, n := range r.Errors {
		ok -= n
	}
	return float64(ok) / r.Step.Duration.Seconds()
}

// Mean returns the mean latency of the successful calls.
func (r Result) Mean() time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.Latencies {
		sum += d
	}
	return sum / time.Duration(len(r.Latencies))
}

// Quantile returns the latency at q (0..1).
func (r Result) Quantile(q float64) time.Duration {
	if len(r.Latencies) == 0 {
		return 0
	}
	return r.Latencies[int(q*float64(len(r.Latencies)-1)+0.5)]
}

// Run sends requests following the schedule; do is called at each request's intended time,
// with the request's sequence number, on a goroutine of its own: an idle worker left from an
// earlier request, or a new one when every worker is busy, so requests never wait for each
// other. (Reusing workers spares each request a new goroutine and the growth of its stack:
// about a tenth of the load generator's CPU, measured.) At most maxInFlight requests are
// outstanding; one that cannot start counts as error "overload" (the load generator itself is
// saturated). It returns one Result per measured step.
func Run(ctx context.Context, steps []Step, maxInFlight int, do func(ctx context.Context, seq int) Outcome) []Result {
	var results []Result
	seq := 0
	sem := make(chan struct{}, maxInFlight)
	for _, st := range steps {
		res := Result{Step: st, Errors: map[string]int{}}
		var mu sync.Mutex
		var wg sync.WaitGroup
		lat := make([]time.Duration, 0, int(float64(st.Rate)*st.Duration.Seconds())+1)
		type job struct {
			seq      int
			intended time.Time
		}
		run := func(j job) {
			out := do(ctx, j.seq)
			d := time.Since(j.intended)
			<-sem
			mu.Lock()
			res.Completed++
			if out.Err != "" {
				res.Errors[out.Err]++
			} else {
				lat = append(lat, d)
			}
			mu.Unlock()
		}
		idle := make(chan job) // unbuffered: a send succeeds only when a worker is waiting
		worker := func(j job) {
			defer wg.Done()
			run(j)
			for j := range idle {
				run(j)
			}
		}
		interval := time.Second / time.Duration(st.Rate)
		total := int(st.Duration / interval)
		start := time.Now()
		for i := 0; i < total && ctx.Err() == nil; i++ {
			intended := start.Add(time.Duration(i) * interval)
			if d := time.Until(intended); d > 200*time.Microsecond {
				time.Sleep(d)
			}
			if now := time.Now(); now.Before(intended) {
				intended = now // sent a little early: measure from the real start
			}
			res.Sent++
			select {
			case sem <- struct{}{}:
			default:
				mu.Lock()
				res.Completed++
				res.Errors["overload"]++
				mu.Unlock()
				continue
			}
			j := job{seq: seq, intended: intended}
			seq++
			select {
			case idle <- j:
			default:
				wg.Add(1)
				go worker(j)
			}
		}
		close(idle)
		wg.Wait()
		res.Elapsed = time.Since(start)
		slices.Sort(lat)
		res.Latencies = lat
		if st.Measure {
			results = append(results, res)
		}
	}
	return results
}
