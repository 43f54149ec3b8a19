//go:build unix && !linux

package localconnect

import "syscall"

// sysProcAttr puts the worker into its own process group, so a Ctrl-C in the
// terminal reaches only the parent, which then calls Stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
