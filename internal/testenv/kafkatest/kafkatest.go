// Package kafkatest shares one real Kafka broker, started with localkafka,
// among the integration tests of a test package.
//
// Start the broker from TestMain with Run and name each test's topics and
// consumer groups with Name, so tests do not see each other's data:
//
//	var brokerAddr string
//
//	func TestMain(m *testing.M) { os.Exit(kafkatest.Run(m, &brokerAddr)) }
//
//	func TestSomething(t *testing.T) {
//		topic := kafkatest.Name(t) + "-events"
//		...
//	}
package kafkatest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/testenv/tier"
)

// startTimeout bounds the broker's start-up, including a first download of
// its jars on a machine with an empty cache.
const startTimeout = 15 * time.Minute

// maxNameLen keeps names well below Kafka's 249-character topic name limit,
// leaving room for suffixes.
const maxNameLen = 100

// Run starts one broker with a fresh temporary data dir and free ports,
// stores its address ("127.0.0.1:PORT") in *addr, runs m.Run(), stops the
// broker and returns the exit code. Use it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(kafkatest.Run(m, &brokerAddr)) }
//
// Under -short (the hermetic tier, package tier) it starts no broker, and leaves *addr empty.
// If the broker cannot start, Run prints why (the error says what to install
// if Java or Maven is missing) and returns 1: the tests fail, they are never
// skipped.
func Run(m *testing.M, addr *string) int {
	if tier.Short() {
		return m.Run() // the hermetic tier: no broker, and the tests that need one skip
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	b, err := localkafka.Start(ctx, localkafka.Options{})
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafkatest: cannot start a Kafka broker for the integration tests: %v\n", err)
		return 1
	}
	*addr = b.Addr()
	defer func() {
		if err := b.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
		}
	}()
	return m.Run()
}

// Name returns a name unique to this run of the test, for use as a topic or
// consumer group name or prefix: "t-<sanitized test name>-<6 random hex
// digits>". Only characters legal in Kafka topic names are used.
func Name(t testing.TB) string {
	var r [3]byte
	if _, err := rand.Read(r[:]); err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return "t-" + sanitize(t.Name()) + "-" + hex.EncodeToString(r[:])
}

// sanitize maps s to letters, digits, '_' and '-', collapsing runs of other
// characters (such as the '/' of subtests) into one '-'. It avoids '.',
// which Kafka treats as colliding with '_' in metric names.
func sanitize(s string) string {
	var b strings.Builder
	dash := false
	for _, c := range s {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
		switch {
		case ok:
			b.WriteRune(c)
			dash = c == '-'
		case !dash:
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > maxNameLen {
		out = strings.TrimRight(out[:maxNameLen], "-")
	}
	if out == "" {
		out = "test"
	}
	return out
}
