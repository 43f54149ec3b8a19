package monitoring_test

import (
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codebank/codebank/internal/devenv/localprometheus"
	"github.com/codebank/codebank/internal/testenv/tier"
)

var (
	promOnce sync.Once
	promIn   *localprometheus.Installation
	promErr  error
)

// promtool runs promtool in prometheus/, fetching it the first time.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	promOnce.Do(func() { promIn, promErr = localprometheus.Fetch(ctx, "") })
	if promErr != nil {
		t.Fatal(promErr)
	}
	out, err := promIn.RunPromtool(ctx, "prometheus", args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPromtoolCheckRules(t *testing.T) {
	tier.Servers(t, "Prometheus's promtool")
	t.Log(promtool(t, "check", "rules", "rules.yaml"))
}

// TestPromtoolTestRules runs the unit tests of every alert (rules_test.yaml) and of the
// dashboards' Kubernetes panels (kubernetes_test.yaml).
func TestPromtoolTestRules(t *testing.T) {
	tier.Servers(t, "Prometheus's promtool")
	t.Log(promtool(t, "test", "rules", "rules_test.yaml", "kubernetes_test.yaml"))
}

// alertTest is what rules_test.yaml holds about one alert.
type alertTest struct {
	fires, silent bool // an eval_time where it must fire; one where it must not
}

// alertTests reads rules_test.yaml's alert tests by alert name.
func alertTests(t *testing.T) map[string]alertTest {
	t.Helper()
	b, err := os.ReadFile("prometheus/rules_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	out := map[string]alertTest{}
	for _, tc := range f.Tests {
		for _, a := range tc.AlertRuleTest {
			at := out[a.Alertname]
			if len(a.ExpAlerts) > 0 {
				at.fires = true
			} else {
				at.silent = true
			}
			out[a.Alertname] = at
		}
	}
	return out
}

// alertNames returns the alerts of rules.yaml.
func alertNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllSubmatch(b, -1) {
		names = append(names, string(m[1]))
	}
	if len(names) == 0 {
		t.Fatal("no alert in rules.yaml")
	}
	return names
}

// TestEveryAlertIsTestedAndExplained checks that each alert has a promtool test where it fires
// and one where it must not, a paragraph in docs/runbook.md under its name, and a runbook_url
// that points there.
func TestEveryAlertIsTestedAndExplained(t *testing.T) {
	tests := alertTests(t)
	runbook, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	rules, err := os.ReadFile("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range alertNames(t) {
		if !tests[name].fires || !tests[name].silent {
			t.Errorf("%s: rules_test.yaml needs an eval_time where it fires and one where it must not (has %+v)", name, tests[name])
		}
		if !regexp.MustCompile(`(?m)^### ` + name + `\n\n\S`).Match(runbook) {
			t.Errorf("%s: docs/runbook.md has no paragraph under \"### %s\"", name, name)
		}
		if !strings.Contains(string(rules), "docs/runbook.md#"+strings.ToLower(name)+"\n") {
			t.Errorf("%s: its runbook_url does not end in docs/runbook.md#%s", name, strings.ToLower(name))
		}
	}
	for name := range tests {
		if !strings.Contains(string(rules), "- alert: "+name+"\n") {
			t.Errorf("rules_test.yaml tests %s, which rules.yaml does not have", name)
		}
	}
}
