package analytics

import (
	"context"
	"fmt"

	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/processors"
)

// Sink says where Kafka Connect indexes the results topic.
type Sink struct {
	// SearchURL is the Elasticsearch or OpenSearch URL.
	SearchURL string
	// ConnectURL is the Kafka Connect REST URL.
	ConnectURL string
	// Index is the index written to (default DefaultIndex).
	Index string
}

// ConnectorName is the name of the deployment's sink connector.
func ConnectorName(topo processors.Topology) string {
	return topo.Prefix + "codebank-results-opensearch"
}

// Setup creates the index template, then registers (or updates) the sink connector that indexes
// the results topic, and waits until it runs. Safe to run again.
func Setup(ctx context.Context, topo processors.Topology, s Sink) error {
	if s.Index == "" {
		s.Index = DefaultIndex
	}
	c, err := NewClient(s.SearchURL)
	if err != nil {
		return err
	}
	if err := EnsureTemplate(ctx, c, s.Index); err != nil {
		return err
	}
	if s.ConnectURL == "" {
		return nil
	}
	cfg, err := connect.OpenSearchSinkConfig(connect.SinkParams{
		Topic: topo.Results().Name, OpenSearchURL: s.SearchURL, Index: s.Index, DLQTopic: topo.ResultDeadLetters().Name,
	})
	if err != nil {
		return err
	}
	if err := connect.PutConnector(ctx, s.ConnectURL, ConnectorName(topo), cfg); err != nil {
		return fmt.Errorf("register connector: %w", err)
	}
	return nil
}
