package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// buildCodebank builds the production binary, codebank, into dir and returns its path: the
// developer tools run the bank exactly as it ships. It needs the go command (as `make run` does).
func buildCodebank(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "codebank")
	cmd := exec.CommandContext(ctx, "go", "build", "-ldflags", buildStamp(ctx), "-o", bin, "github.com/codebank/codebank/cmd/codebank")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build codebank: %v\n%s", err, out)
	}
	return bin, nil
}

// buildStamp returns the linker flags that stamp the binary with the checkout's version and
// revision (internal/buildinfo), as `make build` does; none outside a git checkout.
func buildStamp(ctx context.Context) string {
	git := func(args ...string) string {
		out, err := exec.CommandContext(ctx, "git", args...).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	const pkg = "github.com/codebank/codebank/internal/buildinfo"
	var flags []string
	if v := git("describe", "--tags", "--always", "--dirty"); v != "" {
		flags = append(flags, "-X "+pkg+".version="+v)
	}
	if r := git("rev-parse", "HEAD"); r != "" {
		flags = append(flags, "-X "+pkg+".revision="+r)
	}
	return strings.Join(flags, " ")
}

// child is a codebank process started by a developer tool.
type child struct {
	cmd    *exec.Cmd
	exited chan error
}

// startChild starts bin with args and the environment plus env, its output to logFile (or to
// stderr when logFile is empty).
func startChild(bin, logFile string, env []string, args ...string) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if logFile != "" {
		f, err := os.Create(logFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		cmd.Stdout, cmd.Stderr = f, f
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM} // not outliving its tool
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start codebank %s: %w", args[0], err)
	}
	c := &child{cmd: cmd, exited: make(chan error, 1)}
	go func() { c.exited <- cmd.Wait() }()
	return c, nil
}

// stop asks the process to stop (SIGTERM) and waits up to 30 s before killing it.
func (c *child) stop() error {
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		return err
	case <-time.After(30 * time.Second):
		c.cmd.Process.Kill()
		return <-c.exited
	}
}

// waitReady waits until url answers 200, the process exits, or ctx ends.
func (c *child) waitReady(ctx context.Context, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready within %v", url, timeout)
		}
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("codebank exited before it was ready: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
