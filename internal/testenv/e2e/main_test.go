package e2e_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/tier"
)

// servers are the real servers every test of the package shares; binary is the codebank
// binary, built for the tests that run the bank as processes.
var (
	servers banktest.Servers
	binary  string
)

func TestMain(m *testing.M) {
	if tier.Short() {
		// Every test here needs the whole bank on real servers: none is in the hermetic tier.
		flag.Set("test.run", "^$")
		os.Exit(m.Run())
	}
	os.Exit(func() int {
		dir, err := os.MkdirTemp("", "e2e-test-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		binary = filepath.Join(dir, "codebank")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		build := exec.CommandContext(ctx, "go", "build", "-o", binary, "github.com/codebank/codebank/cmd/codebank")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "cannot build codebank for the end-to-end tests: %v\n", err)
			return 1
		}
		return banktest.RunWithAnalytics(m, &servers, "e2e-test-connect")
	}())
}
