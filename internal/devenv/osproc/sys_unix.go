//go:build unix

package osproc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// LockFile takes an exclusive flock on path, polling so that ctx can cancel
// the wait. onWait is called once if the lock is held by someone else.
func LockFile(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	waited := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !waited && onWait != nil {
			onWait()
		}
		waited = true
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for lock %s: %w", path, ctx.Err())
		case <-time.After(250 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// TryLockFile takes an exclusive flock on path if nobody holds it.
func TryLockFile(path string) (unlock func(), ok bool) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, false
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, false
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, true
}

// Terminate asks the process for a controlled shutdown.
func Terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }

// DumpThreads asks a JVM to print its threads' stacks to its standard output (SIGQUIT),
// which it does without stopping.
func DumpThreads(p *os.Process) error { return p.Signal(syscall.SIGQUIT) }

// Niced returns the command line that runs path with args at a niceness of nice (through
// nice(1), so that every thread of the process starts with it), or path and args unchanged
// when nice is 0. The process keeps the PID the command starts with: nice execs it.
func Niced(nice int, path string, args []string) (string, []string) {
	if nice == 0 {
		return path, args
	}
	return "nice", append([]string{"-n", strconv.Itoa(nice), path}, args...)
}
