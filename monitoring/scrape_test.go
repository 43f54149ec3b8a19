package monitoring_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/devenv/localconnect"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/devenv/localprometheus"
	"github.com/codebank/codebank/internal/devenv/localsearch"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/monitoring"
	"github.com/codebank/codebank/monitoring/grafana"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// promql parses as Prometheus does by default: no experimental functions.
var promql = parser.NewParser(parser.Options{})

// grafanaVars are the values the tests give Grafana's built-in variables in the dashboards'
// queries: a rate window that a scrape of a few seconds fills, and a dashboard range.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h")

// expressions returns every PromQL expression of the rules and of the dashboards' Prometheus
// queries (with grafanaVars).
func expressions(t *testing.T) []monitoring.Expression {
	t.Helper()
	exprs, err := monitoring.RuleExpressions()
	if err != nil {
		t.Fatal(err)
	}
	files, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		var d struct {
			Panels []struct {
				Title   string
				Targets []struct {
					Expr       string
					Datasource struct{ Type string }
				}
			}
		}
		if err := json.Unmarshal(files[name], &d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				if tg.Datasource.Type == "prometheus" {
					exprs = append(exprs, monitoring.Expression{Where: name + ": " + p.Title, PromQL: grafanaVars.Replace(tg.Expr)})
				}
			}
		}
	}
	return exprs
}

// selectors returns the series selectors of expr, without their offsets and negative matchers, e.g.
// {__name__="up",job=~".*codebank.*"}, and whether each selects only Kubernetes series.
func selectors(expr parser.Expr) map[string]bool {
	out := map[string]bool{}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		// A negative matcher picks a state a healthy bank may never be in during the test (a
		// connector not running): the series must exist, whatever that state; a test that
		// waited for one would pass or fail by how fast the worker started.
		var positive []*labels.Matcher
		for _, m := range vs.LabelMatchers {
			if m.Type != labels.MatchNotEqual && m.Type != labels.MatchNotRegexp {
				positive = append(positive, m)
			}
		}
		bare := &parser.VectorSelector{LabelMatchers: positive}
		out[bare.String()] = monitoring.KubernetesOnly(vs.Name)
		return nil
	})
	return out
}

// TestExpressionsParse parses every expression of the rules and dashboards with Prometheus's own
// parser: no server needed.
func TestExpressionsParse(t *testing.T) {
	exprs := expressions(t)
	for _, e := range exprs {
		if _, err := promql.ParseExpr(e.PromQL); err != nil {
			t.Errorf("%s: %v\n%s", e.Where, err, e.PromQL)
		}
	}
	if len(exprs) < 40 {
		t.Errorf("only %d expressions found", len(exprs))
	}
}

// TestKubernetesExpressionsAreUnitTested checks that every dashboard query of Kubernetes-only
// series, which no local scrape has, is evaluated by promtool in kubernetes_test.yaml, and every
// rule over such series is an alert tested in rules_test.yaml.
func TestKubernetesExpressionsAreUnitTested(t *testing.T) {
	b, err := os.ReadFile("prometheus/kubernetes_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Tests []struct {
			PromQLExprTest []struct{ Expr string } `yaml:"promql_expr_test"`
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	tested := map[string]bool{}
	for _, tc := range f.Tests {
		for _, e := range tc.PromQLExprTest {
			if p, err := promql.ParseExpr(e.Expr); err == nil {
				tested[p.String()] = true
			}
		}
	}
	alerts := alertTests(t)
	for _, e := range expressions(t) {
		p, err := promql.ParseExpr(e.PromQL)
		if err != nil {
			continue // TestExpressionsParse says so
		}
		k8s := false
		for _, only := range selectors(p) {
			k8s = k8s || only
		}
		switch {
		case !k8s:
		case strings.HasPrefix(e.Where, "rules.yaml: "):
			if name := strings.TrimPrefix(e.Where, "rules.yaml: "); !alerts[name].fires {
				t.Errorf("%s reads Kubernetes-only series and has no promtool test where it fires", e.Where)
			}
		case !tested[p.String()]:
			t.Errorf("%s reads Kubernetes-only series: add its query to prometheus/kubernetes_test.yaml\n%s", e.Where, p.String())
		}
	}
}

// TestEveryExpressionSelectsScrapedSeries runs `codebank all` on a broker of its own, with a
// search node and a Kafka Connect worker running the results sink (its metrics through the JMX
// exporter agent, as on Kubernetes), has a real Prometheus scrape the bank and the worker every
// second (with the rules loaded) while payments flow, and then checks every expression of the
// rules and dashboards against that Prometheus: it parses, evaluates without error, and each of
// its series selectors matches a series of the scrape (or of the rules evaluated over it).
// Selectors of Kubernetes-only series are left to promtool.
func TestEveryExpressionSelectsScrapedSeries(t *testing.T) {
	tier.Servers(t, "Prometheus and a Kafka broker")
	begin := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	dir := t.TempDir()

	// Start-up: the binary, the broker and Connect, the search node and Prometheus's files, at once.
	var (
		bin    = filepath.Join(dir, "codebank")
		broker *localkafka.Broker
		worker *localconnect.Worker
		node   *localsearch.Node
	)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		out, err := exec.CommandContext(gctx, "go", "build", "-o", bin, "github.com/codebank/codebank/cmd/codebank").CombinedOutput()
		if err != nil {
			return fmt.Errorf("build codebank: %v\n%s", err, out)
		}
		return nil
	})
	g.Go(func() (err error) {
		if broker, err = localkafka.Start(gctx, localkafka.Options{}); err != nil {
			return err
		}
		worker, err = localconnect.Start(gctx, localconnect.Options{Brokers: broker.Addr(), GroupID: "monitoring-test-connect", Metrics: monitoring.ConnectJMXExporter})
		return err
	})
	g.Go(func() (err error) {
		node, err = localsearch.Start(gctx, localsearch.Options{})
		return err
	})
	g.Go(func() error {
		_, err := localprometheus.Fetch(gctx, "")
		return err
	})
	err := g.Wait()
	if broker != nil {
		t.Cleanup(func() { broker.Stop() })
	}
	if worker != nil {
		t.Cleanup(func() { worker.Stop() })
	}
	if node != nil {
		t.Cleanup(func() { node.Stop() })
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("codebank built, broker, Connect, search and Prometheus ready after %s", time.Since(begin).Round(time.Millisecond))

	topo := processors.Topology{Partitions: 2, ReplyPartitions: 1}
	common := []string{"--brokers", broker.Addr(), "--partitions", "2", "--reply-partitions", "1"}
	if out, err := exec.CommandContext(ctx, bin, append([]string{"setup", "--search-url", node.URL(), "--connect-url", worker.URL(), "--search-replicas", "0"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	grpcAddr, httpAddr, opsAddr := freeAddr(), freeAddr(), freeAddr()
	stopBank := startBank(t, bin, filepath.Join(dir, "bank.log"), append([]string{"all", "--storage-dir", filepath.Join(dir, "storage"),
		"--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--ops-addr", opsAddr, "--request-timeout", "2s", "--max-inflight", strconv.Itoa(maxInFlight), "--sink-lag"}, common...))
	defer stopBank()

	rules, err := filepath.Abs("prometheus/rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	prom, err := localprometheus.Start(ctx, localprometheus.Options{ScrapeInterval: time.Second, RuleFiles: []string{rules},
		Jobs: []localprometheus.Job{{Name: "codebank", Targets: []string{opsAddr}}, {Name: "connect", Targets: []string{worker.MetricsAddr()}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prom.Stop() })
	waitReady(t, "http://"+opsAddr+"/readyz", filepath.Join(dir, "bank.log"))
	t.Logf("bank ready, Prometheus scraping it and Connect, after %s", time.Since(begin).Round(time.Millisecond))

	// Payments of every kind, a poison record for the authorizer and one for the results' readers
	// (the statements and the sink, which dead-letters it), and a store checkout.
	pay(t, grpcAddr)
	poison(t, broker.Addr(), topo.PaymentRequests().Name)
	poison(t, broker.Addr(), topo.Results().Name)
	checkout(t, httpAddr)
	t.Logf("load sent after %s", time.Since(begin).Round(time.Millisecond))

	// The sink paused for a moment, so that its states other than running are scraped too.
	api := promAPI{url: prom.URL()}
	sink := analytics.ConnectorName(topo)
	connectPut(t, worker.URL()+"/connectors/"+sink+"/pause")
	wait.For(t, time.Minute, "the paused sink to be scraped", func() error {
		var res []any
		if _, err := api.get(ctx, "query", url.Values{"query": {`kafka_connect_connector_task_status{status="paused"}`}}, &struct{ Result *[]any }{&res}); err != nil {
			return err
		}
		if len(res) == 0 {
			return errors.New("no paused task yet")
		}
		return nil
	})
	connectPut(t, worker.URL()+"/connectors/"+sink+"/resume")

	// Every selector must match a series of the scrape; series appear within a scrape or an
	// evaluation of the rules, so wait for the last of them.
	exprs := expressions(t)
	wanted := map[string][]string{} // selector -> where
	var k8sOnly []string
	for _, e := range exprs {
		p, err := promql.ParseExpr(e.PromQL)
		if err != nil {
			t.Errorf("%s: %v", e.Where, err)
			continue
		}
		for sel, only := range selectors(p) {
			if only {
				k8sOnly = append(k8sOnly, sel)
				continue
			}
			wanted[sel] = append(wanted[sel], e.Where)
		}
	}
	var missing []string
	patience := time.Now().Add(30 * time.Second) // then the ones still missing are errors
	wait.For(t, time.Minute, "every selector to match scraped series", func() error {
		missing = missing[:0]
		for sel := range wanted {
			var series []map[string]string
			_, err := api.get(ctx, "series", url.Values{"match[]": {sel}, "start": {unix(begin)}, "end": {unix(time.Now())}}, &series)
			if err != nil {
				t.Fatalf("series %s: %v", sel, err)
			}
			if len(series) == 0 {
				missing = append(missing, sel)
			}
		}
		if len(missing) > 0 && time.Now().Before(patience) {
			return fmt.Errorf("%d selectors match nothing yet: %v", len(missing), missing)
		}
		return nil
	})
	sort.Strings(missing)
	for _, sel := range missing {
		t.Errorf("%s matches no scraped series; used by %s", sel, strings.Join(slices.Compact(slices.Sorted(slices.Values(wanted[sel]))), ", "))
	}
	k8sOnly = slices.Compact(slices.Sorted(slices.Values(k8sOnly)))
	t.Logf("%d selectors matched scraped series; %d Kubernetes-only selectors left to promtool: %v", len(wanted)-len(missing), len(k8sOnly), k8sOnly)

	// Every expression evaluates without error or warning.
	for _, e := range exprs {
		warnings, err := api.get(ctx, "query", url.Values{"query": {e.PromQL}}, nil)
		if err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v %v\n%s", e.Where, err, warnings, e.PromQL)
		}
	}
	t.Logf("%d expressions evaluated; whole test %s", len(exprs), time.Since(begin).Round(time.Millisecond))
}

// promAPI is a client of Prometheus's HTTP API (/api/v1).
type promAPI struct{ url string }

// get calls endpoint with params and decodes the answer's data into data (unless nil); it
// returns the answer's warnings, and its error, if any, as an error.
func (a promAPI) get(ctx context.Context, endpoint string, params url.Values, data any) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.url+"/api/v1/"+endpoint+"?"+params.Encode(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Status, ErrorType, Error string
		Warnings                 []string
		Data                     json.RawMessage
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", endpoint, resp.Status, err)
	}
	if body.Status != "success" {
		return body.Warnings, fmt.Errorf("%s: %s", body.ErrorType, body.Error)
	}
	if data != nil {
		if err := json.Unmarshal(body.Data, data); err != nil {
			return body.Warnings, err
		}
	}
	return body.Warnings, nil
}

func unix(t time.Time) string { return fmt.Sprintf("%.3f", float64(t.UnixMilli())/1000) }

// startBank starts the codebank binary with args, its output to logFile, and returns its stop.
func startBank(t *testing.T, bin, logFile string, args []string) func() {
	t.Helper()
	log, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), append(banktest.Env(t), "CODEBANK_LOG_FORMAT=text", "CODEBANK_LOG_LEVEL=warn")...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitReady(t *testing.T, url, logFile string) {
	t.Helper()
	wait.For(t, 2*time.Minute, "codebank all to be ready", func() error {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		b, _ := os.ReadFile(logFile)
		return fmt.Errorf("%v; its log ends:\n%s", err, b[max(0, len(b)-2000):])
	})
}

// maxInFlight is the bank's limit of calls waiting for the authorizer: low, so that bursts of
// calls meet it.
const maxInFlight = 2

// pay issues cards and makes payments of every outcome: approvals, rejections (over the limit,
// a wrong CVV), invalid requests, calls refused over the limit of calls in flight, calls whose
// deadline passes before the answer, and a call without an API key.
func pay(t *testing.T, grpcAddr string) {
	t.Helper()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cards := codebankv1.NewCardServiceClient(conn)
	payments := codebankv1.NewPaymentServiceClient(conn)
	rich := banktest.Issue(t, cards, "Maria Silva", 10_000_000)
	poor := banktest.Issue(t, cards, "Ana Costa", 1_000)

	authorize := func(ctx context.Context, tx string, c *codebankv1.CardDetails, cents int64) error {
		_, err := payments.Authorize(ctx, &codebankv1.AuthorizeRequest{TransactionId: tx, Card: c, AmountCents: cents,
			Store: "Code Store", Description: "Produtos: caneca"})
		return err
	}
	// A careful client: refused for the bank's load, or left without an answer within the
	// bank's deadline (a busy machine), it asks again with the same id, which returns the final
	// outcome.
	retrying := func(tx string, c *codebankv1.CardDetails, cents int64) error {
		for {
			err := authorize(banktest.Ctx(t), tx, c, cents)
			if code := status.Code(err); code != codes.ResourceExhausted && code != codes.DeadlineExceeded {
				return err
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wrongCVV := banktest.Details(rich)
	wrongCVV.Cvv = map[bool]string{true: "000", false: "111"}[wrongCVV.Cvv != "000"]
	var g errgroup.Group
	for w := range 4 {
		g.Go(func() error {
			for i := range 40 {
				tx := fmt.Sprintf("w%d-%d", w, i)
				var err error
				switch i % 4 {
				case 0, 1:
					err = retrying(tx, banktest.Details(rich), 1_234)
				case 2:
					err = retrying(tx, banktest.Details(poor), 5_000) // over its limit: rejected
				case 3:
					err = retrying(tx, wrongCVV, 500) // rejected
				}
				if err != nil {
					return fmt.Errorf("%s: %w", tx, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// Bursts over the limit of calls in flight, until the bank refuses one.
	wait.For(t, 30*time.Second, "a call refused over the limit of calls in flight", func() error {
		var burst errgroup.Group
		var refused atomic.Bool
		for i := range 8 * maxInFlight {
			burst.Go(func() error {
				err := authorize(banktest.Ctx(t), fmt.Sprintf("burst-%d-%d", time.Now().UnixNano(), i), banktest.Details(rich), 100)
				refused.CompareAndSwap(false, status.Code(err) == codes.ResourceExhausted)
				return nil
			})
		}
		burst.Wait()
		if !refused.Load() {
			return errors.New("none refused")
		}
		return nil
	})
	// Calls that fail: invalid, too short a deadline, no key.
	for i := range 10 {
		authorize(banktest.Ctx(t), fmt.Sprintf("invalid-%d", i), banktest.Details(rich), -1)
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		authorize(ctx, fmt.Sprintf("hurried-%d", i), banktest.Details(rich), 100)
		cancel()
	}
	anonymous, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer anonymous.Close()
	codebankv1.NewPaymentServiceClient(anonymous).Authorize(banktest.Ctx(t), &codebankv1.AuthorizeRequest{TransactionId: "anonymous", Card: banktest.Details(rich), AmountCents: 100})
}

// poison writes a record that does not decode to the authorizer's input: it is dead-lettered.
func poison(t *testing.T, brokerAddr, topic string) {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	p, err := sarama.NewSyncProducer([]string{brokerAddr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder("poison"),
		Value: sarama.ByteEncoder("not a payment request")}); err != nil {
		t.Fatal(err)
	}
}

// checkout posts an incomplete form to the Code Store's checkout: an invalid checkout.
func checkout(t *testing.T, httpAddr string) {
	t.Helper()
	resp, err := http.PostForm("http://"+httpAddr+"/checkout", url.Values{"product": {"stoneware-mug"}, "quantity": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("incomplete checkout: %s, want 422", resp.Status)
	}
}

// connectPut sends a PUT without a body to Kafka Connect's REST API.
func connectPut(t *testing.T, u string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("PUT %s: %s", u, resp.Status)
	}
}

func freeAddr() string { return fmt.Sprintf("127.0.0.1:%d", banktest.FreePort()) }
