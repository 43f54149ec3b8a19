package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/cli"
)

// TestCLIPlaintextOnlyToLoopback: without a CA, the CLI sends its keys (and card data) only to
// a loopback address; to any other it refuses before connecting, naming --plaintext, and with
// --plaintext it connects. The address 0.0.0.0 reaches this machine but is not loopback.
func TestCLIPlaintextOnlyToLoopback(t *testing.T) {
	credentials := filepath.Join(t.TempDir(), "credentials.env")
	if err := os.WriteFile(credentials, []byte("CODEBANK_ADMIN_KEY=cb_ops-1_not-a-real-key-but-a-key-nonetheless-1234\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CODEBANK_PLAINTEXT", "false")
	l, err := net.Listen("tcp", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	target := "0.0.0.0:" + port
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return program.Run(ctx, append([]string{"cards", "get", "gzNcUY7KgaoXOFX_qNg2gQ", "--addr", target, "--timeout", "5s", "--credentials", credentials}, args...), io.Discard, io.Discard)
	}
	if err := run(); !errors.Is(err, cli.ErrPlaintext) || !strings.Contains(err.Error(), "--plaintext") {
		t.Errorf("plaintext to %s = %v, want a refusal naming --plaintext", target, err)
	}
	l.(*net.TCPListener).SetDeadline(time.Now()) // a connection made would be queued already
	if c, err := l.Accept(); err == nil {
		c.Close()
		t.Fatal("the CLI connected before refusing")
	}

	l.(*net.TCPListener).SetDeadline(time.Time{})
	got := make(chan []byte, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		b := make([]byte, 24)
		n, _ := io.ReadFull(c, b)
		got <- b[:n]
	}()
	if err := run("--plaintext"); errors.Is(err, cli.ErrPlaintext) {
		t.Errorf("with --plaintext: %v", err)
	}
	select {
	case b := <-got:
		if !bytes.HasPrefix(b, []byte("PRI * HTTP/2.0")) {
			t.Errorf("with --plaintext the listener read %q, want the CLI's HTTP/2 preface", b)
		}
	case <-time.After(30 * time.Second):
		t.Error("with --plaintext the CLI never connected")
	}
}

// TestWebPlaintextOnlyToLoopback: the web role refuses, before it reaches for Kafka, to call a
// bank that is not loopback in plaintext, naming --bank-plaintext; with it, or with the bank's
// CA, it goes on.
func TestWebPlaintextOnlyToLoopback(t *testing.T) {
	long := strings.Repeat("s", 40)
	base := []string{"web", "--store-secret", long, "--merchant-key", "m", "--pages-key", "p", "--brokers", "127.0.0.1:1", "--ops-addr", "", "--http-addr", "127.0.0.1:0",
		"--storage-dir", t.TempDir(), "--log-level", "error"}
	t.Setenv("CODEBANK_BANK_PLAINTEXT", "false")
	run := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // the transport is checked before anything waits
		defer cancel()
		return program.Run(ctx, append(base, args...), io.Discard, io.Discard)
	}
	for _, args := range [][]string{
		{"--bank-addr", "codebank:50051"},
		{"--bank-addr", "localhost:50051", "--statements-addr", "dns:///statements:50052"},
	} {
		if err := run(args...); !errors.Is(err, cli.ErrPlaintext) || !strings.Contains(err.Error(), "--bank-plaintext") {
			t.Errorf("web %v = %v, want a refusal naming --bank-plaintext", args, err)
		}
	}
	for _, args := range [][]string{
		{"--bank-addr", "codebank:50051", "--statements-addr", "dns:///statements:50052", "--bank-plaintext"},
		{"--bank-addr", "localhost:50051", "--statements-addr", "127.0.0.1:50052"},
	} {
		if err := run(args...); err == nil || errors.Is(err, cli.ErrPlaintext) {
			t.Errorf("web %v = %v, want it to go on to Kafka (unreachable here)", args, err)
		}
	}
}
