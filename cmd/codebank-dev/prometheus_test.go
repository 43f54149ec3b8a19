package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/codebank/codebank/internal/devenv/osproc"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

// promScrapes checks that the Prometheus at url has the job "codebank" up and Code Bank's rules
// loaded.
func promScrapes(url string) error {
	var up struct {
		Data struct {
			Result []struct{ Value [2]any }
		}
	}
	if err := getJSON(url+`/api/v1/query?query=up%7Bjob%3D%22codebank%22%7D`, &up); err != nil {
		return err
	}
	if len(up.Data.Result) != 1 || up.Data.Result[0].Value[1] != "1" {
		return fmt.Errorf("up{job=\"codebank\"} = %+v, want 1", up.Data.Result)
	}
	var rules struct {
		Data struct {
			Groups []struct{ Rules []struct{ Name string } }
		}
	}
	if err := getJSON(url+"/api/v1/rules", &rules); err != nil {
		return err
	}
	var names []string
	for _, g := range rules.Data.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Name)
		}
	}
	if !strings.Contains(strings.Join(names, " "), "CodeBankDeadLetters") {
		return fmt.Errorf("rules loaded: %v; want Code Bank's", names)
	}
	return nil
}

func getJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// TestStartPrometheus starts the Prometheus of `make run` on a stand-in for the bank's
// operations port and finds it scraped, with the rules loaded, at the helpers' lower priority;
// then again on the same directory, as a second `make run` does.
func TestStartPrometheus(t *testing.T) {
	tier.Servers(t, "Prometheus")
	reg := prometheus.NewRegistry()
	ops := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer ops.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	for range 2 {
		p, err := startPrometheus(ctx, dir, 0, strings.TrimPrefix(ops.URL, "http://"), "", DefaultHelperNice)
		if err != nil {
			t.Fatal(err)
		}
		// Relative to the test's own niceness (make test may itself run niced), at most 19.
		own, err := osproc.Niceness(os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if n, err := osproc.Niceness(p.PID()); err != nil || n != min(own+DefaultHelperNice, 19) {
			t.Errorf("Prometheus runs at niceness %d (%v), want %d", n, err, min(own+DefaultHelperNice, 19))
		}
		wait.For(t, 30*time.Second, "Prometheus to scrape the bank", func() error { return promScrapes(p.URL()) })
		if err := p.Stop(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRunWithoutPrometheus: where Prometheus can be neither fetched (no apt-get) nor found on
// PATH, make run goes on without it and says so in one line.
func TestRunWithoutPrometheus(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("CODEBANK_CACHE_DIR", t.TempDir())
	var out strings.Builder
	if havePrometheus(context.Background(), &out) {
		t.Fatal("a Prometheus was found with an empty PATH")
	}
	if lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "Prometheus not started, the bank runs without it: ") ||
		!strings.Contains(lines[0], "no prometheus on PATH") {
		t.Errorf("it says %q, want one line saying why", out.String())
	}
}
