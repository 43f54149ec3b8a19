//go:build !unix

package jvm

import (
	"context"
	"os"
	"syscall"
)

// lockFile is a no-op where flock is not available: concurrent first fetches
// are then not serialised.
func lockFile(ctx context.Context, path string, onWait func()) (unlock func(), err error) {
	return func() {}, ctx.Err()
}

// tryLockFile never locks here, so no class-data archive is dumped.
func tryLockFile(path string) (unlock func(), ok bool) { return nil, false }

func sysProcAttr() *syscall.SysProcAttr { return nil }

// terminate kills the process: there is no SIGTERM here.
func terminate(p *os.Process) error { return p.Kill() }
