package analytics_test

import (
	"os"
	"testing"

	"github.com/codebank/codebank/internal/kafkatest"
)

// servers are the real servers every test of the package shares: a search node, a Kafka broker
// and a Kafka Connect worker.
var servers kafkatest.Servers

func TestMain(m *testing.M) {
	os.Exit(kafkatest.RunWithAnalytics(m, &servers, "analytics-test-connect"))
}
