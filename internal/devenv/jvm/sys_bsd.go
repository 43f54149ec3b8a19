//go:build unix && !linux

package jvm

import "syscall"

// sysProcAttr puts the server into its own process group, so a Ctrl-C in the
// terminal reaches only the parent, which then calls Stop.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
