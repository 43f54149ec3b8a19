//go:build !unix

package osproc

import (
	"context"
	"os"
	"syscall"
)

// LockFile is a no-op where flock is not available: concurrent first fetches
// are then not serialised.
func LockFile(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	return func() {}, ctx.Err()
}

// TryLockFile never locks here.
func TryLockFile(path string) (unlock func(), ok bool) { return nil, false }

// SysProcAttr is nothing special here.
func SysProcAttr() *syscall.SysProcAttr { return nil }

// Terminate kills the process: there is no SIGTERM here.
func Terminate(p *os.Process) error { return p.Kill() }

// DumpThreads does nothing: there is no SIGQUIT here.
func DumpThreads(p *os.Process) error { return nil }

// Niced returns path and args unchanged: there is no nice(1) here.
func Niced(nice int, path string, args []string) (string, []string) { return path, args }
