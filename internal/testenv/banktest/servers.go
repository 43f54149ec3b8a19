package banktest

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/devenv/localconnect"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/devenv/localsearch"
	"github.com/codebank/codebank/internal/testenv/tier"
)

// Servers are the real servers a test package of the analytics side shares: a Kafka broker, a
// search node and a Kafka Connect worker.
type Servers struct {
	// Broker is the broker's address, SearchURL the search node's, ConnectURL the worker's REST
	// URL.
	Broker, SearchURL, ConnectURL string

	search     *localsearch.Node
	searchOpts localsearch.Options
}

// RunWithAnalytics starts a broker, a search node and a Kafka Connect worker (its group
// connectGroup) for the tests of a package, fills *s, runs m, stops them and returns the exit
// code. Like kafkatest.Run, it fails the tests, never skips them, when a server does not start:
//
//	func TestMain(m *testing.M) { os.Exit(banktest.RunWithAnalytics(m, &servers, "mypkg-connect")) }
func RunWithAnalytics(m *testing.M, s *Servers, connectGroup string) int {
	if tier.Short() {
		return m.Run() // the hermetic tier: no servers, and the tests that need them skip
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir, err := os.MkdirTemp("", "banktest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	broker, err := localkafka.Start(ctx, localkafka.Options{})
	if err != nil {
		fmt.Fprintf(os.Stderr, "banktest: cannot start a Kafka broker: %v\n", err)
		return 1
	}
	defer broker.Stop()
	s.Broker = broker.Addr()
	// A data dir and a port of its own, so a test can stop the node and start it again.
	s.searchOpts = localsearch.Options{DataDir: filepath.Join(dir, "search"), HTTPPort: freePort()}
	if s.search, err = localsearch.Start(ctx, s.searchOpts); err != nil {
		fmt.Fprintf(os.Stderr, "banktest: cannot start the search server: %v\n", err)
		return 1
	}
	defer func() { s.search.Stop() }()
	s.SearchURL = s.search.URL()
	worker, err := localconnect.Start(ctx, localconnect.Options{Brokers: s.Broker, GroupID: connectGroup})
	if err != nil {
		fmt.Fprintf(os.Stderr, "banktest: cannot start Kafka Connect: %v\n", err)
		return 1
	}
	defer worker.Stop()
	s.ConnectURL = worker.URL()
	return m.Run()
}

// StopSearch stops the search node, for a test of an outage.
func (s *Servers) StopSearch() error { return s.search.Stop() }

// StartSearch starts the search node again, on its data and its port.
func (s *Servers) StartSearch(ctx context.Context) error {
	node, err := localsearch.Start(ctx, s.searchOpts)
	if err != nil {
		return err
	}
	s.search = node
	return nil
}

// FreePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func FreePort() int { return freePort() }

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
