//go:build !unix

package localprometheus

import (
	"context"
	"os"
	"syscall"
)

// lockFile does not lock: concurrent first fetches are not serialised on these systems.
func lockFile(context.Context, string, func()) (func(), error) { return func() {}, nil }

func sysProcAttr() *syscall.SysProcAttr { return nil }

func terminate(p *os.Process) error { return p.Kill() }
