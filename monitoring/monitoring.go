// Package monitoring is what watches Code Bank: the Prometheus recording and alerting rules
// (prometheus/rules.yaml, with the promtool unit tests of every alert in
// prometheus/rules_test.yaml) and the Grafana dashboards (grafana/, built from Go), each alert
// explained in docs/runbook.md.
//
// Rules holds the rules file, ConnectJMXExporter how a Kafka Connect worker exposes the series
// the sink's alerts read, for the Prometheus of `make run` and for manifests that carry it;
// RuleExpressions lists its expressions. The package's tests hold the rules and dashboards to the
// bank: promtool checks and tests the rules, and a real Prometheus scrapes a running `codebank
// all` under payments, against which every expression must parse, evaluate, and select series
// (KubernetesOnly names the metrics that exist only on a cluster).
package monitoring

import (
	_ "embed"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Rules is prometheus/rules.yaml.
//
//go:embed prometheus/rules.yaml
var Rules []byte

// ConnectJMXExporter is connect/jmx-exporter.yaml: the configuration of the Prometheus JMX
// exporter agent on the Kafka Connect workers of the results sink, whose series the sink's
// alerts read.
//
//go:embed connect/jmx-exporter.yaml
var ConnectJMXExporter []byte

// Expression is a PromQL expression and where it is used.
type Expression struct {
	Where  string // "rules.yaml: CodeBankDeadLetters", "codebank-overview.json: Dead letters"
	PromQL string
}

// RuleExpressions returns the expression of every recording and alerting rule of Rules.
func RuleExpressions() ([]Expression, error) {
	var f struct {
		Groups []struct {
			Name  string
			Rules []struct{ Record, Alert, Expr string }
		}
	}
	if err := yaml.Unmarshal(Rules, &f); err != nil {
		return nil, fmt.Errorf("rules.yaml: %w", err)
	}
	var out []Expression
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			out = append(out, Expression{Where: "rules.yaml: " + r.Record + r.Alert, PromQL: strings.TrimSpace(r.Expr)})
		}
	}
	return out, nil
}

// KubernetesOnly reports whether metric exists only on Kubernetes: kube-state-metrics' kube_*
// and the kubelet's (cAdvisor) container_*. Their expressions are evaluated by promtool over
// series like a cluster's (prometheus/rules_test.yaml and kubernetes_test.yaml) instead of
// against a local scrape.
func KubernetesOnly(metric string) bool {
	return strings.HasPrefix(metric, "kube_") || strings.HasPrefix(metric, "container_")
}
