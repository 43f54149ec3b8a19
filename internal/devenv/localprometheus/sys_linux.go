package localprometheus

import "syscall"

// setPdeathsig has the kernel send the server SIGTERM when the thread that started it ends,
// which Go does only when a goroutine locked to its thread (runtime.LockOSThread) returns: do not
// call Start from such a goroutine.
func setPdeathsig(a *syscall.SysProcAttr) { a.Pdeathsig = syscall.SIGTERM }
