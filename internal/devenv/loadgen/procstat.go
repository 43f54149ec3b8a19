package loadgen

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of /proc/PID/stat times; 100 on Linux.
const clockTicks = 100

// ProcStat follows one process's CPU time, system calls and resident memory through /proc.
type ProcStat struct {
	Name string
	PID  int

	mu       sync.Mutex
	cpuStart time.Duration
	sysStart int64
	at       time.Time
	cpu      time.Duration
	syscalls int64
	wall     time.Duration
	maxRSS   int64
}

// cpuTime returns the process's user+system CPU time.
func cpuTime(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// syscalls returns how many read and write system calls the process has made (syscr and
// syscw of /proc/PID/io: read, write and their kin, on files and sockets alike).
func syscalls(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && (k == "syscr" || k == "syscw") {
			c, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/io: %s: %w", pid, line, err)
			}
			n += c
		}
	}
	return n, nil
}

// RSS returns the process's resident set size in bytes.
func RSS(pid int) (int64, error) { return status(pid, "VmRSS") }

// AnonRSS returns the process's resident anonymous memory in bytes: RSS without the pages of
// the files it maps (an index's segments, a time-series database's chunks), which the kernel
// may drop and read again at any time, and which grow with the data.
func AnonRSS(pid int) (int64, error) { return status(pid, "RssAnon") }

// status returns a size field of /proc/PID/status in bytes.
func status(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no %s for pid %d", field, pid)
}

// Start begins a measurement window.
func (p *ProcStat) Start() {
	c, _ := cpuTime(p.PID)
	n, _ := syscalls(p.PID)
	p.mu.Lock()
	p.cpuStart, p.sysStart, p.at, p.maxRSS = c, n, time.Now(), 0
	p.mu.Unlock()
	p.Sample()
}

// Sample records the current RSS.
func (p *ProcStat) Sample() {
	r, err := RSS(p.PID)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.maxRSS = max(p.maxRSS, r)
	p.mu.Unlock()
}

// Stop ends the window.
func (p *ProcStat) Stop() {
	p.Sample()
	c, _ := cpuTime(p.PID)
	n, _ := syscalls(p.PID)
	p.mu.Lock()
	p.cpu, p.syscalls, p.wall = c-p.cpuStart, n-p.sysStart, time.Since(p.at)
	p.mu.Unlock()
}

// Syscalls is the number of read and write system calls made in the window (0 where
// /proc/PID/io cannot be read).
func (p *ProcStat) Syscalls() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.syscalls
}

// CPUPercent is the CPU used in the window, in percent of one core.
func (p *ProcStat) CPUPercent() float64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wall == 0 {
		return 0
	}
	return 100 * p.cpu.Seconds() / p.wall.Seconds()
}

// MaxRSS is the largest RSS sampled in the window, in bytes.
func (p *ProcStat) MaxRSS() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.maxRSS
}
