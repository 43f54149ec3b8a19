package analytics_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/localconnect"
	"github.com/codebank/codebank/internal/localkafka"
	"github.com/codebank/codebank/internal/localsearch"
)

// The servers every test of the package shares: a search node, a Kafka broker and a Kafka
// Connect worker, all real.
var (
	searchURL   string
	brokerAddr  string
	connectURL  string
	searchNode  *localsearch.Node
	searchOpts  localsearch.Options
	serversDone []func()
)

func TestMain(m *testing.M) {
	code := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "analytics-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		broker, err := localkafka.Start(ctx, localkafka.Options{})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start a Kafka broker for the analytics tests: %v\n", err)
			return 1
		}
		defer broker.Stop()
		brokerAddr = broker.Addr()
		// A fixed data dir and port, so a test can stop the node and start it again.
		searchOpts = localsearch.Options{DataDir: filepath.Join(dir, "search"), HTTPPort: freePort()}
		searchNode, err = localsearch.Start(ctx, searchOpts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start the search server for the analytics tests: %v\n", err)
			return 1
		}
		defer func() { searchNode.Stop() }()
		searchURL = searchNode.URL()
		worker, err := localconnect.Start(ctx, localconnect.Options{Brokers: brokerAddr, GroupID: "analytics-test-connect"})
		if err != nil {
			fmt.Fprintf(os.Stderr, "cannot start Kafka Connect for the analytics tests: %v\n", err)
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
