// Package connect holds what Kafka Connect needs to index Code Bank's
// results into OpenSearch: the connector configuration users apply
// (opensearch-sink.json), the Java source of the sink connector it names
// (opensearch-sink/*.java), and a client of a Connect cluster's REST API that
// registers it (PutConnector, ConnectorStatus, DeleteConnector). See README.md.
package connect

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
)

// OpenSearchSinkClass is the connector.class of the OpenSearch sink.
const OpenSearchSinkClass = "codebank.connect.OpenSearchSinkConnector"

//go:embed opensearch-sink.json
var openSearchSinkJSON []byte

//go:embed opensearch-sink/*.java
var sinkSources embed.FS

// OpenSearchSinkJSON returns opensearch-sink.json as it is, placeholders
// included.
func OpenSearchSinkJSON() []byte { return append([]byte(nil), openSearchSinkJSON...) }

// SinkParams fills the placeholders of opensearch-sink.json.
type SinkParams struct {
	// Topic is the topic (or comma-separated topics) indexed: ${TOPIC}.
	Topic string
	// OpenSearchURL is the cluster's base URL, http(s)://host:port, or
	// several separated by commas: ${OPENSEARCH_URL}.
	OpenSearchURL string
	// Index is the index or alias written to: ${INDEX}.
	Index string
	// DLQTopic receives the records that cannot be indexed: ${DLQ_TOPIC}.
	DLQTopic string

	// Username and Password, when set, sign the sink in (opensearch.username and
	// opensearch.password). Connect's REST API shows the password: on a shared worker give it
	// through a config provider instead, e.g. ${file:/etc/connect/search.properties:password}.
	Username, Password string
	// Truststore, when set, is the CA certificates (PEM) that https:// URLs are verified
	// against, as a path on the Connect workers (opensearch.ssl.truststore.location).
	Truststore string
}

var placeholderRE = regexp.MustCompile(`\$\{[A-Z_]+\}`)

// OpenSearchSinkConfig returns the configuration of opensearch-sink.json
// with its placeholders filled, in the form PUT /connectors/NAME/config
// takes.
func OpenSearchSinkConfig(p SinkParams) (map[string]string, error) {
	var config map[string]string
	if err := json.Unmarshal(openSearchSinkJSON, &config); err != nil {
		return nil, fmt.Errorf("connect: opensearch-sink.json: %w", err)
	}
	r := strings.NewReplacer(
		"${TOPIC}", p.Topic,
		"${OPENSEARCH_URL}", p.OpenSearchURL,
		"${INDEX}", p.Index,
		"${DLQ_TOPIC}", p.DLQTopic,
	)
	for k, v := range config {
		v = r.Replace(v)
		if m := placeholderRE.FindString(v); m != "" {
			return nil, fmt.Errorf("connect: opensearch-sink.json: %s has the unknown placeholder %s", k, m)
		}
		if v == "" && k != "index.name" {
			return nil, fmt.Errorf("connect: opensearch-sink.json: %s is empty: fill its placeholder", k)
		}
		config[k] = v
	}
	if p.Username != "" {
		config["opensearch.username"], config["opensearch.password"] = p.Username, p.Password
	}
	if p.Truststore != "" {
		config["opensearch.ssl.truststore.location"], config["opensearch.ssl.truststore.type"] = p.Truststore, "PEM"
	}
	return config, nil
}

// SinkSources returns the connector's Java source files by base name.
func SinkSources() (map[string][]byte, error) {
	files, err := fs.Glob(sinkSources, "opensearch-sink/*.java")
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		data, err := sinkSources.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out[strings.TrimPrefix(f, "opensearch-sink/")] = data
	}
	return out, nil
}
