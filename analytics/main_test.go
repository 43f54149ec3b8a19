package analytics_test

import (
	"os"
	"testing"

	"github.com/codebank/codebank/internal/testenv/banktest"
)

// servers are the real servers every test of the package shares: a search node, a Kafka broker
// and a Kafka Connect worker.
var servers banktest.Servers

func TestMain(m *testing.M) {
	os.Exit(banktest.RunWithAnalytics(m, &servers, "analytics-test-connect"))
}
