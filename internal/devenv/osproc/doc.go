// Package osproc holds what the local servers of internal/devenv need of the operating system:
// a file lock that serialises first fetches into the shared cache (LockFile, TryLockFile), and
// child processes that end with their parent and shut down in order (SysProcAttr, Terminate),
// at a lower priority when asked (Niced).
package osproc
