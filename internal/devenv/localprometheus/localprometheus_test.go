package localprometheus

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

func start(t *testing.T, o Options) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute) // a first fetch included
	defer cancel()
	begin := time.Now()
	s, err := Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s ready on %s after %s", s.Installation().Version, s.URL(), time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// query returns the values of an instant query, by the value of label.
func query(s *Server, expr, label string) (map[string]string, error) {
	resp, err := http.Get(s.URL() + "/api/v1/query?query=" + url.QueryEscape(expr))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status, Error string
		Data          struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	if body.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", expr, body.Error)
	}
	out := map[string]string{}
	for _, r := range body.Data.Result {
		out[r.Metric[label]] = fmt.Sprint(r.Value[1])
	}
	return out, nil
}

// TestScrapesTargetsAndEvaluatesRules starts a server on a target that serves a counter, and
// reads back the scraped counter and a recording rule's series through the query API.
func TestScrapesTargetsAndEvaluatesRules(t *testing.T) {
	tier.Servers(t, "Prometheus")
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "localprometheus_test_total", Help: "A counter of the test."})
	reg.MustRegister(c)
	c.Add(42)
	target := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer target.Close()

	rules := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: test
    rules:
      - record: localprometheus:test:doubled
        expr: 2 * localprometheus_test_total
`), 0o644); err != nil {
		t.Fatal(err)
	}
	s := start(t, Options{ScrapeInterval: 200 * time.Millisecond, RuleFiles: []string{rules},
		Jobs: []Job{{Name: "test", Targets: []string{strings.TrimPrefix(target.URL, "http://")}}}})

	for expr, want := range map[string]string{
		`localprometheus_test_total{job="test"}`: "42",
		`localprometheus:test:doubled`:           "84",
		`up{job="test"}`:                         "1",
	} {
		wait.For(t, 30*time.Second, expr+" = "+want, func() error {
			got, err := query(s, expr, "job")
			if err != nil {
				return err
			}
			if got["test"] != want {
				return fmt.Errorf("got %v", got)
			}
			return nil
		})
	}
}

// TestWebUI loads the web UI and the scripts it links to, which come from packages of their own.
func TestWebUI(t *testing.T) {
	tier.Servers(t, "Prometheus")
	s := start(t, Options{})
	if s.Installation().Dir == "" {
		t.Logf("prometheus from PATH (%s): its web UI is its own", s.Installation().Prometheus)
	}
	for _, path := range []string{"/graph", "/classic/graph", "/classic/static/jquery/jquery.min.js", "/classic/static/rickshaw/rickshaw.min.js"} {
		if s.Installation().Dir == "" && strings.HasPrefix(path, "/classic/") {
			continue
		}
		resp, err := http.Get(s.URL() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s", path, resp.Status)
		}
	}
}

// TestDataDirKeepsSeries restarts a server on the same directory, and on the same port.
func TestDataDirKeepsSeries(t *testing.T) {
	tier.Servers(t, "Prometheus")
	dir := t.TempDir()
	first := start(t, Options{DataDir: dir})
	port := first.port
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); err != nil {
		t.Fatalf("series directory after Stop: %v", err)
	}
	second := start(t, Options{DataDir: dir, Port: port})
	if second.URL() != first.URL() {
		t.Errorf("URL = %s, want %s", second.URL(), first.URL())
	}
}

// TestPortInUse fails with the server's own words when the port is taken.
func TestPortInUse(t *testing.T) {
	tier.Servers(t, "Prometheus")
	busy := httptest.NewServer(http.NotFoundHandler())
	defer busy.Close()
	n := busy.Listener.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Port: n})
	if err == nil {
		s.Stop()
		t.Fatal("Start on a taken port succeeded")
	}
	if !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("error = %v, want it to quote the server's log", err)
	}
}

func TestPromtool(t *testing.T) {
	tier.Servers(t, "Prometheus's promtool")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	in, err := Fetch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	good := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n"
	bad := "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up ==\n"
	os.WriteFile(filepath.Join(dir, "good.yaml"), []byte(good), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte(bad), 0o644)
	if out, err := in.RunPromtool(ctx, dir, "check", "rules", "good.yaml"); err != nil {
		t.Errorf("check rules good.yaml: %v", err)
	} else if !strings.Contains(out, "SUCCESS") {
		t.Errorf("check rules good.yaml said %q", out)
	}
	if _, err := in.RunPromtool(ctx, dir, "check", "rules", "bad.yaml"); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("check rules bad.yaml: error %v, want one naming the file", err)
	}
}

func TestWebDepends(t *testing.T) {
	got := webDepends("adduser, fonts-glyphicons-halflings, libjs-bootstrap4, libjs-jquery (>= 3.5.1~), libjs-popper.js | libjs-x, libc6 (>= 2.34)")
	want := "fonts-glyphicons-halflings libjs-bootstrap4 libjs-jquery libjs-popper.js"
	if strings.Join(got, " ") != want {
		t.Errorf("webDepends = %v, want %s", got, want)
	}
}

func TestConfigYAML(t *testing.T) {
	b, err := configYAML(Options{ScrapeInterval: 1500 * time.Millisecond, RuleFiles: []string{"/r.yaml"},
		Jobs: []Job{{Name: "codebank", Targets: []string{"127.0.0.1:9090"}}}})
	if err != nil {
		t.Fatal(err)
	}
	want := `global:
    scrape_interval: 1500ms
    scrape_timeout: 1500ms
    evaluation_interval: 1500ms
rule_files:
    - /r.yaml
scrape_configs:
    - job_name: codebank
      static_configs:
        - targets:
            - 127.0.0.1:9090
`
	if string(b) != want {
		t.Errorf("config:\n%s\nwant:\n%s", b, want)
	}
	if _, err := configYAML(Options{Jobs: []Job{{Name: "x"}}}); err == nil {
		t.Error("a job without targets was accepted")
	}
}
