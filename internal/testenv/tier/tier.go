// Package tier sorts Code Bank's tests in two tiers. `go test -short ./...` (make unit) runs the
// hermetic one: every test that needs no server (no JVM, broker, search node, Connect worker,
// Prometheus or browser), pure logic and goka's tester, in under a minute. `make test` runs
// every test, against the real servers the tests start themselves.
//
// A test that needs servers calls Servers first (the harness does it for the tests that go
// through it: kafkatest.Run, banktest.NewDeployment); a TestMain that starts servers asks
// Short before it does.
package tier

import (
	"flag"
	"testing"
)

// Servers skips t in the hermetic tier: it needs the real servers named (e.g. "a Kafka
// broker"). Outside it, it does nothing: a test never skips in `make test`.
func Servers(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs " + what + ": not in the hermetic tier (-short); make test runs it")
	}
}

// Short reports whether the hermetic tier was asked for (-short), from a TestMain, before any
// server is started: it parses the test flags if m.Run has not yet.
func Short() bool {
	if !flag.Parsed() {
		flag.Parse()
	}
	return testing.Short()
}
