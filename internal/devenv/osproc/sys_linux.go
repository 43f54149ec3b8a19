package osproc

import "syscall"

// SysProcAttr puts the server into its own process group, so a Ctrl-C in the
// terminal reaches only the parent (which then calls Stop), and has the kernel
// send it SIGTERM if the parent dies without calling Stop.
//
// The kernel sends that signal when the thread that started the server ends.
// Go ends a thread only when a goroutine locked to it (runtime.LockOSThread)
// returns, so do not call StartProcess from such a goroutine.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
