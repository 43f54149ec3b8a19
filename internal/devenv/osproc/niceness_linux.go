package osproc

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Niceness returns the niceness of a running process, from /proc/PID/stat.
func Niceness(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces; the
	// niceness is the stat's 19th field, the 17th after the name.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 17 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	return strconv.Atoi(f[16])
}
