package jvm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/codebank/codebank/internal/devenv/osproc"
)

// Command is a java server to start with StartProcess.
type Command struct {
	Java      *Java
	Options   []string   // JVM options; CDS's options follow them
	CDS       *ClassData // the server's archive
	Classpath string
	Main      string   // the main class
	Args      []string // its arguments
	Dir       string   // the working directory
	Log       string   // the file the output is appended to
	Banner    string   // a line written to Log before the process starts
	// Name and Addr say which server it is in messages: "broker on
	// 127.0.0.1:9092".
	Name, Addr string
	// Nice, when positive, lowers the process's priority (nice(1)): a helper that must not
	// take the CPU from the servers on a request's path.
	Nice int
	// BindFailure finds, in the log of a server that did not start, the
	// port (its first group) that a listener could not bind. If it matches
	// and the log says "Address already in use", WaitReady's error wraps a
	// *PortInUseError.
	BindFailure *regexp.Regexp
}

// Process is a running java server started by StartProcess. It runs in its
// own process group, so a Ctrl-C in the terminal reaches only the parent
// (which then calls Stop). On Linux the kernel also sends it SIGTERM if the
// parent dies without calling Stop, or rather when the thread that started
// it ends: so do not call StartProcess from a goroutine locked to its thread
// (runtime.LockOSThread) that may return.
type Process struct {
	c       Command
	cmd     *exec.Cmd
	logFile *os.File
	logFrom int64         // size of the log before this process started
	exited  chan struct{} // closed when the process has exited
	waitErr error         // cmd.Wait's result, set before exited is closed
}

// StartProcess writes c.Banner to c.Log and starts the java process.
func StartProcess(c Command) (*Process, error) {
	logFile, err := os.OpenFile(c.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	fmt.Fprintln(logFile, c.Banner)

	// A JVM with an agent cannot dump the archive (it refuses to start), but it maps one.
	cds := c.CDS.serverArgs
	if slices.ContainsFunc(c.Options, func(o string) bool { return strings.HasPrefix(o, "-javaagent:") }) {
		cds = c.CDS.UseArgs
	}
	args := append(append([]string(nil), c.Options...), cds()...)
	args = append(append(args, "-cp", c.Classpath, c.Main), c.Args...)
	path, args := osproc.Niced(c.Nice, c.Java.Path, args)
	cmd := exec.Command(path, args...)
	cmd.Dir = c.Dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = osproc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		c.CDS.finish(false)
		return nil, fmt.Errorf("starting java: %w", err)
	}
	p := &Process{c: c, cmd: cmd, logFile: logFile, logFrom: logFrom, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// PID returns the process id of the JVM.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// WaitReady calls probe, every 100ms, until it succeeds, the process exits,
// ctx is done or timeout passes: then it kills the process and returns why,
// with the tail of the log; notReady says what did not happen in time ("not
// ready"). Each probe runs aside, so that the process exiting is noticed at
// once even while a probe waits.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, notReady string, probe func() error) error {
	err := p.waitReady(ctx, timeout, notReady, probe)
	if err == nil {
		return nil
	}
	p.kill()
	p.c.CDS.finish(false)
	logTail := p.logTail(40)
	p.logFile.Close()
	if m := p.c.BindFailure.FindStringSubmatch(logTail); m != nil && strings.Contains(logTail, "Address already in use") {
		port, _ := strconv.Atoi(m[1])
		err = fmt.Errorf("%w (%w)", err, &PortInUseError{Port: port})
	}
	return fmt.Errorf("%s on %s did not start: %w\n--- tail of %s ---\n%s", p.c.Name, p.c.Addr, err, p.c.Log, logTail)
}

func (p *Process) waitReady(ctx context.Context, timeout time.Duration, notReady string, probe func() error) error {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var lastErr error
	// wait returns what c delivers, or why to give up.
	wait := func(c <-chan error) (err error, giveUp bool) {
		select {
		case err := <-c:
			return err, false
		case <-p.exited:
			return fmt.Errorf("java exited: %v", p.waitErr), true
		case <-ctx.Done():
			return ctx.Err(), true
		case <-timer.C:
			return fmt.Errorf("%s within %s (last error: %v)", notReady, timeout, lastErr), true
		}
	}
	for {
		res := make(chan error, 1)
		go func() { res <- probe() }()
		err, giveUp := wait(res)
		if giveUp {
			return err
		}
		if err == nil {
			return nil
		}
		lastErr = err
		pause := make(chan error, 1)
		time.AfterFunc(100*time.Millisecond, func() { pause <- nil })
		if err, giveUp := wait(pause); giveUp {
			return err
		}
	}
}

// Stop shuts the server down: it sends SIGTERM for an orderly shutdown,
// waits up to timeout, then sends SIGKILL. It returns an error if the server
// had to be killed or had already exited on its own (with the tail of its
// log). Call it once, and not after WaitReady failed.
func (p *Process) Stop(timeout time.Duration) error {
	var errs []error
	orderly := false
	select {
	case <-p.exited:
		errs = append(errs, fmt.Errorf("%s on %s had exited before Stop (%v)\n--- tail of %s ---\n%s",
			p.c.Name, p.c.Addr, p.waitErr, p.c.Log, p.logTail(40)))
	default:
		if err := osproc.Terminate(p.cmd.Process); err != nil {
			errs = append(errs, fmt.Errorf("signalling %s: %w", p.c.Name, err))
		}
		timer := time.NewTimer(timeout)
		select {
		case <-p.exited:
			timer.Stop()
			orderly = true
		case <-timer.C:
			errs = append(errs, fmt.Errorf("%s on %s did not shut down within %s and was killed; the threads on the shutdown's way:\n%s",
				p.c.Name, p.c.Addr, timeout, p.dumpThreads()))
			p.kill()
		}
	}
	p.c.CDS.finish(orderly)
	p.logFile.Close()
	return errors.Join(errs...)
}

// dumpThreads asks the JVM for a thread dump and returns the stacks of the threads a
// stuck shutdown waits on: the shutdown hooks' and whichever stop, close, join or await.
func (p *Process) dumpThreads() string {
	from := p.logFrom
	if fi, err := p.logFile.Stat(); err == nil {
		from = fi.Size()
	}
	if err := osproc.DumpThreads(p.cmd.Process); err != nil {
		return "(" + err.Error() + ")"
	}
	f, err := os.Open(p.c.Log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	var dump []byte
	deadline := time.Now().Add(10 * time.Second) // a dump takes well under a second, but the machine may be busy
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		// Only what was written since the signal: the log before it may be large.
		if b, err := io.ReadAll(io.NewSectionReader(f, from, 1<<30)); err == nil {
			dump = b
			if bytes.Contains(dump, []byte("JNI global refs")) { // the dump's last lines
				break
			}
		}
	}
	return shutdownStacks(dump)
}

// shutdownFrame matches the stack frames of a thread a shutdown may wait on.
var shutdownFrame = regexp.MustCompile(`(?i)shutdown|\.stop|\.close|\.halt|\.join\(|awaitTermination`)

// shutdownStacks returns, from a JVM thread dump, the stacks (at most 15 frames each) of
// the threads whose frames stop, close, join, halt or await something.
func shutdownStacks(dump []byte) string {
	var out []string
	for block := range strings.SplitSeq(string(dump), "\n\n") {
		block = strings.TrimSpace(block)
		if !strings.HasPrefix(block, `"`) || !shutdownFrame.MatchString(block) {
			continue
		}
		lines := strings.Split(block, "\n")
		if len(lines) > 16 {
			lines = append(lines[:16], "\t...")
		}
		out = append(out, strings.Join(lines, "\n"))
	}
	if len(out) == 0 {
		return "(no thread dump)"
	}
	return strings.Join(out, "\n\n")
}

// kill stops the process at once and waits for it.
func (p *Process) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// logTail returns the last n lines written to the log by this process,
// without stack frames.
func (p *Process) logTail(n int) string {
	f, err := os.Open(p.c.Log)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const maxBytes = 64 << 10
	from := p.logFrom
	if fi, err := f.Stat(); err == nil && fi.Size()-from > maxBytes {
		from = fi.Size() - maxBytes
	}
	data, err := io.ReadAll(io.NewSectionReader(f, from, maxBytes))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	// Stack frames crowd out the messages that say what went wrong.
	var kept []byte
	for line := range bytes.Lines(data) {
		if t := bytes.TrimSpace(line); !bytes.HasPrefix(t, []byte("at ")) && !bytes.HasPrefix(t, []byte("... ")) {
			kept = append(kept, line...)
		}
	}
	return Tail(kept, n)
}
