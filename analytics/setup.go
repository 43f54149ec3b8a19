package analytics

import (
	"context"
	"fmt"
	"time"

	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/processors"
)

// Sink says where Kafka Connect indexes the results topic, and how the indices are kept.
type Sink struct {
	// SearchURL is the Elasticsearch or OpenSearch URL; SearchCA, SearchUser and SearchPassword
	// reach it over HTTPS with a CA of its own, signed in (Search).
	SearchURL, SearchCA, SearchUser, SearchPassword string
	// ConnectURL is the Kafka Connect REST URL; empty: no connector is registered.
	ConnectURL string
	// ConnectCA is the CA file (PEM) as the Connect workers see it, for the connector's
	// truststore; default SearchCA (a worker on this machine).
	ConnectCA string
	// Index is the alias read, and the prefix of the monthly indices (default DefaultIndex).
	Index string
	// Replicas and RetentionMonths are the indices' (Indices).
	Replicas, RetentionMonths int
}

// Search returns how to reach the search server.
func (s Sink) Search() Search {
	return Search{URL: s.SearchURL, CAFile: s.SearchCA, User: s.SearchUser, Password: s.SearchPassword}
}

// Indices returns how the results are kept.
func (s Sink) Indices() Indices {
	return Indices{Alias: s.Index, Replicas: s.Replicas, RetentionMonths: s.RetentionMonths}
}

// ConnectorName is the name of the deployment's sink connector.
func ConnectorName(topo processors.Topology) string {
	return topo.Prefix + "codebank-results-opensearch"
}

// Setup installs the indices' template and lifecycle (Indices.Ensure), then registers (or
// updates) the sink connector that indexes the results topic, and waits until it runs. It
// returns the lifecycle that deletes old indices (None: Prune must). Safe to run again.
func Setup(ctx context.Context, topo processors.Topology, s Sink) (Lifecycle, error) {
	if s.Index == "" {
		s.Index = DefaultIndex
	}
	c, err := s.Search().Client()
	if err != nil {
		return None, err
	}
	lc, err := s.Indices().Ensure(ctx, c, time.Now())
	if err != nil {
		return None, err
	}
	if s.ConnectURL == "" {
		return lc, nil
	}
	ca := s.ConnectCA
	if ca == "" {
		ca = s.SearchCA
	}
	cfg, err := connect.OpenSearchSinkConfig(connect.SinkParams{
		Topic: topo.Results().Name, OpenSearchURL: s.SearchURL, Index: s.Index, DLQTopic: topo.ResultDeadLetters().Name,
		Username: s.SearchUser, Password: s.SearchPassword, Truststore: ca,
	})
	if err != nil {
		return None, err
	}
	if err := connect.PutConnector(ctx, s.ConnectURL, ConnectorName(topo), cfg); err != nil {
		return None, fmt.Errorf("register connector: %w", err)
	}
	return lc, nil
}
