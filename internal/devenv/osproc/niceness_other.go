//go:build !linux

package osproc

import "errors"

// Niceness is not read here: it needs Linux's /proc.
func Niceness(pid int) (int, error) { return 0, errors.New("niceness: needs /proc") }
