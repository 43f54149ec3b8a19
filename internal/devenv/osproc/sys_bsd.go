//go:build unix && !linux

package osproc

import "syscall"

// SysProcAttr puts the server into its own process group, so a Ctrl-C in the
// terminal reaches only the parent, which then calls Stop.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
