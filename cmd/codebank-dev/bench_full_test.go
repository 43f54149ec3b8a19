package main

import (
	"encoding/json"
	"testing"
	"time"
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
