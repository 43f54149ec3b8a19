package connect

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestOpenSearchSinkConfig(t *testing.T) {
	c, err := OpenSearchSinkConfig(SinkParams{
		Topic: "results", OpenSearchURL: "http://127.0.0.1:9200", Index: "results-v1", DLQTopic: "results-dlq",
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"connector.class":                   OpenSearchSinkClass,
		"topics":                            "results",
		"opensearch.url":                    "http://127.0.0.1:9200",
		"index.name":                        "results-v1",
		"index.date.field":                  "authorized_at",
		"index.date.format":                 "yyyy.MM",
		"document.id.field":                 "payment_key",
		"value.converter":                   "org.apache.kafka.connect.storage.StringConverter",
		"errors.tolerance":                  "all",
		"errors.deadletterqueue.topic.name": "results-dlq",
		"errors.deadletterqueue.context.headers.enable": "true",
	} {
		if c[k] != want {
			t.Errorf("%s = %q, want %q", k, c[k], want)
		}
	}
	for k, v := range c {
		if strings.Contains(v, "${") {
			t.Errorf("%s keeps a placeholder: %q", k, v)
		}
	}

	if c["opensearch.username"] != "" || c["opensearch.ssl.truststore.location"] != "" {
		t.Errorf("credentials or a truststore nobody asked for: %v", c)
	}
	c, err = OpenSearchSinkConfig(SinkParams{Topic: "t", OpenSearchURL: "https://h:9200", Index: "i", DLQTopic: "d",
		Username: "sink", Password: "secret", Truststore: "/etc/search/ca.crt"})
	if err != nil || c["opensearch.username"] != "sink" || c["opensearch.password"] != "secret" ||
		c["opensearch.ssl.truststore.location"] != "/etc/search/ca.crt" || c["opensearch.ssl.truststore.type"] != "PEM" {
		t.Errorf("with credentials and a CA: %v, %v", c, err)
	}

	// An empty index means the topic's name.
	if c, err := OpenSearchSinkConfig(SinkParams{Topic: "t", OpenSearchURL: "http://h:9200", DLQTopic: "d"}); err != nil || c["index.name"] != "" {
		t.Errorf("empty index: %v, %v", c, err)
	}
	if _, err := OpenSearchSinkConfig(SinkParams{Topic: "t", Index: "i", DLQTopic: "d"}); err == nil || !strings.Contains(err.Error(), "opensearch.url") {
		t.Errorf("without a URL: %v", err)
	}
}

func TestFiles(t *testing.T) {
	var raw map[string]any
	if err := json.Unmarshal(OpenSearchSinkJSON(), &raw); err != nil {
		t.Fatalf("opensearch-sink.json: %v", err)
	}
	for k, v := range raw {
		if _, ok := v.(string); !ok {
			t.Errorf("%s is %T: the Connect REST API takes strings only", k, v)
		}
	}
	src, err := SinkSources()
	if err != nil {
		t.Fatal(err)
	}
	if len(src) != 3 || !strings.Contains(string(src["Trust.java"]), "class Trust") || !strings.Contains(string(src["OpenSearchSinkConnector.java"]), "class OpenSearchSinkConnector") ||
		!strings.Contains(string(src["OpenSearchSinkTask.java"]), "class OpenSearchSinkTask") {
		t.Errorf("sources: %d files", len(src))
	}
	if !strings.Contains(string(src["OpenSearchSinkConnector.java"]), "package "+strings.TrimSuffix(OpenSearchSinkClass, ".OpenSearchSinkConnector")+";") {
		t.Error("OpenSearchSinkClass does not match the Java package")
	}
}
