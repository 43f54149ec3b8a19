package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/devenv/loadgen"
)

// TestSlowest: the seconds with the most calls over slowCall come first, each with its longest
// call; fast calls count nowhere.
func TestSlowest(t *testing.T) {
	start := time.Date(2026, 12, 7, 22, 0, 0, 0, time.UTC)
	var details []map[string]any
	call := func(at, latency time.Duration) {
		details = append(details, map[string]any{"timestamp": start.Add(at).Format(time.RFC3339Nano), "latency": int64(latency)})
	}
	for i := range 200 {
		call(time.Duration(i)*5*time.Millisecond, 2*time.Millisecond) // a second of fast calls
	}
	for i := range 40 {
		call(4*time.Second+time.Duration(i)*time.Millisecond, 300*time.Millisecond-time.Duration(i)*time.Millisecond)
	}
	call(7*time.Second+500*time.Millisecond, 30*time.Millisecond)
	call(9*time.Second, 26*time.Millisecond)
	call(9*time.Second+900*time.Millisecond, 40*time.Millisecond)
	call(11*time.Second, 25*time.Millisecond) // not over
	b, _ := json.Marshal(map[string]any{"details": details})
	var rep ghzReport
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := "from 22:00:00.000, second 4: 40 (longest 300.0 ms), second 9: 2 (longest 40.0 ms), second 7: 1 (longest 30.0 ms)"
	if got := rep.slowest(); got != want {
		t.Errorf("slowest() = %q, want %q", got, want)
	}
	if got := (ghzReport{}).slowest(); got != "" {
		t.Errorf("slowest() without calls = %q", got)
	}
	rep.Details = rep.Details[:200]
	if got := rep.slowest(); got != "" {
		t.Errorf("slowest() without slow calls = %q", got)
	}
}

// TestPrintFullLoadGenerator: the load generator's CPU is reported beside the servers', and
// every process's together, so that a step on a full machine shows it; its system calls and
// memory, which are not read, are not shown as zeros.
func TestPrintFullLoadGenerator(t *testing.T) {
	procs := []*loadgen.ProcStat{{Name: "codebank all"}, {Name: "kafka broker"}}
	step := fullStep{Phase: "capacity", Rate: 4000, Ghz: ghzReport{Total: time.Minute, Rps: 4000}, Decisions: 240_000,
		CPU: map[string]float64{"codebank all": 72, "kafka broker": 26, loadGenerator: 60}}
	run := fullStep{Phase: "run", Rate: 1000, Ghz: ghzReport{Total: time.Second, Rps: 1000}, Decisions: 1000,
		CPU: map[string]float64{"codebank all": 60, "kafka broker": 50, loadGenerator: 30}, Syscalls: map[string]int64{"codebank all": 2000, "kafka broker": 1000}}
	soak := run
	soak.Phase, soak.RSS = "soak", map[string]int64{"codebank all": 300 << 20, "kafka broker": 500 << 20}
	var out strings.Builder
	printFull(&out, []fullStep{run, step, soak, soak}, map[string]float64{"codebank all": 3, "kafka broker": 7}, procs, books{}, time.Second, "OK", nil)
	for _, want := range []string{
		"| 600, 500, 300 | 2.0, 1.0, – |",      // its system calls are not counted
		"RSS MB: codebank all, kafka broker |", // nor its memory
		"| 600, 500, 300 | 300, 500 |",
		"CPU µs/payment: codebank all, kafka broker, ghz |",
		"| 180, 65, 150 |", // 72% of a core for a minute over 240,000 payments is 180 µs
		"| ghz | idle: 0, run 1000/s: 30, capacity 4000/s: 60, soak",
		fmt.Sprintf("| all of them, of %d%% | idle: 10, run 1000/s: 140, capacity 4000/s: 158, soak", 100*numCPU()),
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
}
