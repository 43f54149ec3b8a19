package e2e_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/localconnect"
	"github.com/codebank/codebank/internal/localkafka"
	"github.com/codebank/codebank/internal/localsearch"
)

// The servers every test of the package shares, and the codebank binary.
var (
	brokerAddr string
	searchURL  string
	connectURL string
	binary     string
)

func TestMain(m *testing.M) {
	code := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "e2e-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "codebank")
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/codebank/codebank/cmd/codebank")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "cannot build codebank for the end-to-end tests: %v\n", err)
			return 1
		}
		broker, err := localkafka.Start(ctx, localkafka.Options{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start a Kafka broker for the end-to-end tests: %v\n", err)
			return 1
		}
		defer broker.Stop()
		brokerAddr = broker.Addr()
		node, err := localsearch.Start(ctx, localsearch.Options{DataDir: filepath.Join(dir, "search"), HTTPPort: freePort()})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start the search server for the end-to-end tests: %v\n", err)
			return 1
		}
		defer node.Stop()
		searchURL = node.URL()
		worker, err := localconnect.Start(ctx, localconnect.Options{Brokers: brokerAddr, GroupID: "e2e-test-connect"})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start Kafka Connect for the end-to-end tests: %v\n", err)
			return 1
		}
		defer worker.Stop()
		connectURL = worker.URL()
		return m.Run()
	}()
	os.Exit(code)
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	n, _ := strconv.Atoi(p)
	return n
}
