//go:build unix && !linux

package localprometheus

import "syscall"

// setPdeathsig does nothing: only Linux ends a child with its parent.
func setPdeathsig(*syscall.SysProcAttr) {}
