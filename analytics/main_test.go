package analytics_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/localsearch"
)

var searchURL string

func TestMain(m *testing.M) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	node, err := localsearch.Start(ctx, localsearch.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "cannot start the search server for the analytics tests: %v\n", err)
		os.Exit(1)
	}
	searchURL = node.URL()
	code := m.Run()
	node.Stop()
	os.Exit(code)
}
