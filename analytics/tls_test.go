package analytics_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/certs"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// httpsSearch serves the search node over HTTPS, with a certificate of a test CA and HTTP basic
// authentication, as Elasticsearch does under ECK: a TLS-terminating proxy in front of the
// local node (whose security plugin is not fetchable here). It counts the requests it forwards.
type httpsSearch struct {
	URL       string
	CAFile    string
	forwarded atomic.Int64
}

const searchUser, searchPassword = "codebank-sink", "a-password-for-the-sink"

func startHTTPSSearch(t *testing.T, dir string) *httpsSearch {
	t.Helper()
	ca := certs.NewCA(t)
	target, err := url.Parse(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	s := &httpsSearch{CAFile: ca.WriteFile(t, dir)}
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != searchUser || p != searchPassword {
			w.Header().Set("WWW-Authenticate", `Basic realm="search"`)
			http.Error(w, `{"error":"unauthenticated"}`, http.StatusUnauthorized)
			return
		}
		r.Header.Del("Authorization")
		s.forwarded.Add(1)
		proxy.ServeHTTP(w, r)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Server(t, "localhost", "127.0.0.1").TLS(t)}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

// buildCodebank builds the codebank binary into dir.
func buildCodebank(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "codebank")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/codebank/codebank/cmd/codebank").CombinedOutput(); err != nil {
		t.Fatalf("build codebank: %v\n%s", err, out)
	}
	return bin
}

// TestSinkAndCLIOverHTTPS: with the search server on HTTPS under a CA of its own and a
// password, `codebank setup --search-ca --search-user --search-password-file` installs the
// indices and registers the sink with that CA; the sink indexes every payment over HTTPS; `codebank
// audit` and `codebank analytics` read them back the same way. Without the CA the CLI refuses
// the server's certificate, and a sink given another CA fails its task, saying so.
func TestSinkAndCLIOverHTTPS(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	dir := t.TempDir()
	bin := buildCodebank(t, dir)
	search := startHTTPSSearch(t, dir)
	pwFile := filepath.Join(dir, "search-password")
	if err := os.WriteFile(pwFile, []byte(searchPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	name := kafkatest.Name(t)
	d := banktest.NewDeployment(t, servers.Broker, name, 3, 2)
	index := analytics.DefaultIndex + "-" + strings.ToLower(name)
	kafkaFlags := []string{"--brokers", servers.Broker, "--topic-prefix", d.Topo.Prefix, "--partitions", "3", "--reply-partitions", "2"}
	searchFlags := []string{"--search-url", search.URL, "--search-ca", search.CAFile, "--search-user", searchUser, "--index", index}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, args...)
		cmd.Env = append(os.Environ(), "CODEBANK_SEARCH_PASSWORD_FILE="+pwFile, "CODEBANK_LOG_LEVEL=warn")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(append(append([]string{"setup", "--connect-url", servers.ConnectURL, "--search-replicas", "0"}, searchFlags...), kafkaFlags...)...)
	if err != nil || !strings.Contains(out, "read through the alias "+index) || !strings.Contains(out, "neither ILM nor ISM") {
		t.Fatalf("codebank setup over HTTPS: %v\n%s", err, out)
	}
	cfg, err := connectorConfig(analytics.ConnectorName(d.Topo))
	if err != nil {
		t.Fatal(err)
	}
	if cfg["opensearch.url"] != search.URL || cfg["opensearch.ssl.truststore.location"] != search.CAFile || cfg["opensearch.username"] != searchUser {
		t.Errorf("the connector's configuration %v, want the HTTPS URL, the CA and the user", cfg)
	}

	banktest.StartAuthorizer(t, d, "")
	banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	p := &pipeline{d: d, index: index, statuses: map[string]int{},
		cards: codebankv1.NewCardServiceClient(in.Conn), payments: codebankv1.NewPaymentServiceClient(in.Conn)}
	if p.search, err = analytics.NewClient(servers.SearchURL); err != nil {
		t.Fatal(err)
	}
	const n = 10
	before := search.forwarded.Load()
	p.pay(t, n)
	p.waitCount(t, n, time.Minute)
	if search.forwarded.Load() == before {
		t.Error("the documents reached the index without a request through the HTTPS proxy")
	}

	out, err = run(append(append([]string{"audit", "--wait", "60s"}, searchFlags...), kafkaFlags...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("index:     %d documents", n)) || !strings.Contains(out, "OK: the books balance") {
		t.Errorf("codebank audit over HTTPS: %v\n%s", err, out)
	}
	out, err = run(append([]string{"analytics", "--since", "1h"}, searchFlags...)...)
	if err != nil || !strings.Contains(out, fmt.Sprintf("total            %d", n)) {
		t.Errorf("codebank analytics over HTTPS: %v\n%s", err, out)
	}

	// Without the CA, the server's certificate is refused; without the password, the server
	// refuses the CLI.
	out, err = run("analytics", "--search-url", search.URL, "--search-user", searchUser, "--index", index)
	if err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("codebank analytics without --search-ca: %v\n%s", err, out)
	}
	noPassword := exec.Command(bin, append([]string{"analytics", "--search-password", "wrong"}, searchFlags...)...)
	if out, err := noPassword.CombinedOutput(); err == nil || !strings.Contains(string(out), "401") {
		t.Errorf("codebank analytics with a wrong password: %v\n%s", err, out)
	}

	// A sink that trusts another CA fails its task, naming the truststore, instead of retrying
	// for ever in silence.
	other := certs.NewCA(t).WriteFile(t, t.TempDir())
	wrong := name + "-wrong-ca"
	sinkCfg, err := connect.OpenSearchSinkConfig(connect.SinkParams{Topic: d.Topo.Results().Name, OpenSearchURL: search.URL, Index: index + "-wrong",
		DLQTopic: d.Topo.ResultDeadLetters().Name, Username: searchUser, Password: searchPassword, Truststore: other})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go connect.PutConnector(ctx, servers.ConnectURL, wrong, sinkCfg) // it returns once the task fails
	t.Cleanup(func() { connect.DeleteConnector(context.Background(), servers.ConnectURL, wrong) })
	wait.For(t, time.Minute, "the sink with another CA to fail its task", func() error {
		st, err := connect.ConnectorStatus(context.Background(), servers.ConnectURL, wrong)
		if err != nil {
			return err
		}
		for _, task := range st.Tasks {
			if task.State.State == connect.StateFailed && strings.Contains(task.Trace, "opensearch.ssl.truststore.location") {
				return nil
			}
		}
		return fmt.Errorf("status %+v", st)
	})
}

// connectorConfig returns a connector's configuration from Connect's REST API.
func connectorConfig(name string) (map[string]string, error) {
	resp, err := http.Get(servers.ConnectURL + "/connectors/" + name + "/config")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var cfg map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&cfg); err != nil {
		return nil, fmt.Errorf("connector %s: %s: %w", name, resp.Status, err)
	}
	return cfg, nil
}
