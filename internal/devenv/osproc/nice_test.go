//go:build linux

package osproc

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/testenv/wait"
)

// TestNiced: a process started through Niced runs at the niceness asked, under the PID its
// command started with, and at none when asked for none: relative to the test's own (make
// test may itself run niced), at most 19.
func TestNiced(t *testing.T) {
	own, err := Niceness(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 10} {
		want := min(own+n, 19)
		path, args := Niced(n, "sleep", []string{"30"})
		cmd := exec.Command(path, args...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		// nice(1) sets the niceness, then execs sleep under its own PID: read it once the
		// process is sleep.
		wait.For(t, 30*time.Second, "the command to be sleep", func() error {
			comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid))
			if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
				return fmt.Errorf("comm %q, %v", comm, err)
			}
			return nil
		})
		if got, err := Niceness(cmd.Process.Pid); err != nil || got != want {
			t.Errorf("Niced(%d): the process runs at niceness %d (%v), want %d", n, got, err, want)
		}
	}
}
