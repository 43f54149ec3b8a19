package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/devenv/jvm"
	"github.com/codebank/codebank/internal/devenv/localconnect"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/devenv/localprometheus"
	"github.com/codebank/codebank/internal/devenv/localsearch"
	"github.com/codebank/codebank/monitoring"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// grpcurl is the gRPC command-line client the printed examples run, from the Go module proxy.
const grpcurl = "github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3"

// demoCard is a card seeded by `codebank-dev run`, kept in DATA_DIR/demo-cards.json so that the
// same cards are shown after a restart.
type demoCard struct {
	Number string `json:"number"`
	Holder string `json:"holder"`
	Expiry string `json:"expiry"`
	CVV    string `json:"cvv"`
}

var demoHolders = []struct {
	name  string
	limit int64
}{
	{"Maria Silva", 100_000},
	{"Joao Souza", 500_000},
	{"Ana Costa", 20_000},
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank-dev run [flags]", stdout, stderr)
	dataDir := fs.String("data-dir", ".data", "where the local servers' data, the processors' storage and the demo cards are kept")
	codebank := fs.String("codebank", "", "the codebank binary to run (default: built into DATA_DIR/bin)")
	grpcAddr := fs.String("grpc-addr", "127.0.0.1:50051", "gRPC listen address of the bank (loopback: a development bank is for this machine)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "REST and pages listen address of the bank")
	opsAddr := fs.String("ops-addr", "127.0.0.1:9090", "/healthz, /readyz and /metrics listen address of the bank")
	kafkaPort := fs.Int("kafka-port", 9092, "port of the local Kafka broker")
	withAnalytics := fs.Bool("analytics", true, "also run OpenSearch and Kafka Connect, indexing every authorization (false: lighter)")
	searchPort := fs.Int("search-port", 9200, "HTTP port of the local OpenSearch")
	connectPort := fs.Int("connect-port", 8083, "REST port of the local Kafka Connect worker")
	withPrometheus := fs.Bool("prometheus", true, "also run Prometheus, scraping the bank's operations port with the rules and alerts of monitoring/prometheus/rules.yaml")
	prometheusPort := fs.Int("prometheus-port", 9091, "HTTP port of the local Prometheus (the bank's operations port has 9090)")
	peakJIT := fs.Bool("peak-jit", false, "start OpenSearch and Kafka Connect with full JIT compilation (C1 then C2): a slower start, and minutes of compiling before they use less CPU under load")
	warm := fs.Duration("warm-up", DefaultWarmUp, "before saying it is ready, ask the bank about a card of its own for this long, from 100 to 1,000 calls a second, so that the first checkouts meet warm servers (0: skip)")
	fixedHeap := fs.Bool("fixed-heap", true, "start the heaps of OpenSearch and Connect at their maximum, as servers run in production: they do not step up in a long run (false: they grow as needed; the broker's grows either way)")
	helperNice := fs.Int("helper-nice", DefaultHelperNice, "niceness of OpenSearch, Kafka Connect and Prometheus, off a payment's path: they yield the CPU to the broker and the bank (0: same priority)")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	bank, err := startDevBank(ctx, devBankOptions{DataDir: *dataDir, Codebank: *codebank, GRPCAddr: *grpcAddr, HTTPAddr: *httpAddr,
		OpsAddr: *opsAddr, KafkaPort: *kafkaPort, Analytics: *withAnalytics, SearchPort: *searchPort, ConnectPort: *connectPort,
		Prometheus: *withPrometheus, PrometheusPort: *prometheusPort, PeakJIT: *peakJIT, FixedHeap: *fixedHeap, HelperNice: *helperNice, WarmUp: *warm}, stdout)
	if err != nil {
		return err
	}
	defer bank.stop()
	printReady(stdout, *grpcAddr, *httpAddr, *opsAddr, bank.cards, bank.creds, bank.sink, bank.prometheus)
	select {
	case <-ctx.Done():
		return nil
	case err := <-bank.proc.exited:
		bank.proc.exited <- err
		return fmt.Errorf("codebank stopped: %v", err)
	}
}

// DefaultHelperNice is the niceness of the development bank's servers off a payment's path
// (BENCHMARKS.md: the helpers' priority).
const DefaultHelperNice = 10

// devBankOptions say where a development bank keeps its data and listens.
type devBankOptions struct {
	DataDir, Codebank           string
	GRPCAddr, HTTPAddr, OpsAddr string
	KafkaPort                   int // 0: any free port
	Analytics                   bool
	SearchPort, ConnectPort     int               // 0: any free port
	Prometheus                  bool              // also run Prometheus, scraping the bank
	PrometheusPort              int               // 0: any free port
	BankLog                     string            // the bank's output (empty: stderr)
	PeakJIT                     bool              // OpenSearch and Connect compile fully (C2): for long runs
	FixedHeap                   bool              // OpenSearch's and Connect's heaps start at their maximum (helperHeap)
	BrokerProps                 map[string]string // broker settings over the development defaults
	// HelperNice is the niceness of the servers off a payment's path (OpenSearch, Kafka
	// Connect, Prometheus): on a machine they share with the broker and the bank, they yield
	// the CPU to what a checkout waits for, and catch up when it is idle.
	HelperNice int
	// WarmUp is how long the bank is asked about a card of its own before it is ready
	// (warmUp).
	WarmUp time.Duration
	// BankEnv is more environment for codebank all (e.g. GOGC=200), for experiments.
	BankEnv []string
	// Partitions is the partition count of the card-keyed topics on a fresh broker (0: setup's
	// default).
	Partitions int
	// BrokerGC is the broker's garbage collector (localkafka.Options.GC) and BrokerJVM more
	// JVM options of it, for experiments.
	BrokerGC  string
	BrokerJVM []string
}

// helperHeap is the heap of OpenSearch and Connect: with FixedHeap, at its maximum from the
// start, untouched. Touched at start (-XX:+AlwaysPreTouch), their heaps made the first seconds
// after ready slow in 5 runs of 7, for a reason not found. The broker's heap grows: fixed and
// touched, it held the broker's RSS flat in a soak, but its p99 under a full machine was worse
// in 4 pairs of 5 (BENCHMARKS.md, "Memory taken at start"); `--broker-jvm "-Xms512m
// -XX:+AlwaysPreTouch"` brings it back.
func (o devBankOptions) helperHeap() jvm.HeapMode {
	if o.FixedHeap {
		return jvm.HeapFixed
	}
	return jvm.HeapGrows
}

// devBank is what `make run` starts: a local broker, with analytics an OpenSearch node and a
// Kafka Connect worker, `codebank all` on them with the development credentials, seeded with
// the demo cards, and a Prometheus scraping it. The full-pipeline benchmark starts the same.
type devBank struct {
	bin        string // the codebank binary
	broker     *localkafka.Broker
	node       *localsearch.Node
	worker     *localconnect.Worker
	proc       *child // codebank all
	prometheus *localprometheus.Server
	creds      devCredentials
	sink       *analytics.Sink
	cards      []demoCard
	stops      []func()
}

// startDevBank starts a development bank and returns once it is ready, its demo cards issued.
func startDevBank(ctx context.Context, o devBankOptions, stdout io.Writer) (_ *devBank, err error) {
	abs, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, err
	}
	d := &devBank{}
	defer func() {
		if err != nil {
			d.stop()
		}
	}()
	bin := o.Codebank
	if bin == "" {
		fmt.Fprintln(stdout, "Building codebank...")
		if bin, err = buildCodebank(ctx, filepath.Join(abs, "bin")); err != nil {
			return nil, err
		}
	}
	d.bin = bin

	fmt.Fprintf(stdout, "Starting a local Kafka broker (data in %s)...\n", filepath.Join(abs, "kafka"))
	// One network thread and two request threads, instead of Kafka's three and eight: on a
	// machine of a few cores that the broker shares with the bank, fewer threads handing
	// requests to each other cost less CPU (BENCHMARKS.md, the whole bank).
	props := map[string]string{"num.network.threads": "1", "num.io.threads": "2"}
	maps.Copy(props, o.BrokerProps)
	// The controller's port is picked free (and picked again if another process takes it first):
	// only the broker itself dials it, and a port fixed beside --kafka-port could be taken.
	kopts := localkafka.Options{DataDir: filepath.Join(abs, "kafka"), Port: o.KafkaPort, ExtraProperties: props, GC: o.BrokerGC, JVMOptions: o.BrokerJVM}
	if d.broker, err = localkafka.Start(ctx, kopts); err != nil {
		return nil, fmt.Errorf("start local Kafka: %w", err)
	}
	d.stops = append(d.stops, func() {
		fmt.Fprintln(stdout, "Stopping the local Kafka broker...")
		d.broker.Stop()
	})
	setup := []string{"setup", "--brokers", d.broker.Addr()}
	all := []string{"all", "--brokers", d.broker.Addr()}
	if o.Partitions > 0 {
		setup = append(setup, "--partitions", strconv.Itoa(o.Partitions))
		all = append(all, "--partitions", strconv.Itoa(o.Partitions))
	}
	if o.Analytics {
		fmt.Fprintf(stdout, "Starting OpenSearch and Kafka Connect (--analytics=false skips them)...\n")
		if d.node, d.worker, err = startAnalytics(ctx, abs, d.broker.Addr(), o); err != nil {
			return nil, err
		}
		d.stops = append(d.stops, func() {
			fmt.Fprintln(stdout, "Stopping Kafka Connect and OpenSearch...")
			d.worker.Stop()
			d.node.Stop()
		})
		d.sink = &analytics.Sink{SearchURL: d.node.URL(), ConnectURL: d.worker.URL(), Index: analytics.DefaultIndex}
		// One node: no replica (it could never be placed); the local server has no ISM, so
		// setup says that `codebank analytics prune` keeps the retention.
		setup = append(setup, "--search-url", d.sink.SearchURL, "--connect-url", d.sink.ConnectURL, "--index", d.sink.Index, "--search-replicas", "0")
		all = append(all, "--sink-lag")
	}
	// Quiet, readable logs unless asked otherwise; the development secrets and keys, made on
	// the first run; the original contract for the demo merchant, and reflection for grpcurl.
	var env []string
	for name, value := range map[string]string{"log-format": "text", "log-level": "warn"} {
		if _, ok := os.LookupEnv(cli.EnvName(name)); !ok {
			env = append(env, cli.EnvName(name)+"="+value)
		}
	}
	if d.creds, err = loadDevCredentials(abs); err != nil {
		return nil, fmt.Errorf("development credentials: %w", err)
	}
	env = append(env, d.creds.Env...)
	setupCmd := exec.CommandContext(ctx, bin, setup...)
	setupCmd.Env = append(os.Environ(), env...)
	out, err := setupCmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("codebank setup: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "retention: ") {
			fmt.Fprintln(stdout, "Search index "+line)
		}
	}

	cardsFile := filepath.Join(abs, "demo-cards.json")
	if d.proc, err = startChild(bin, o.BankLog, append(env, o.BankEnv...), append(all, "--storage-dir", filepath.Join(abs, "authorizer"),
		"--grpc-addr", o.GRPCAddr, "--http-addr", o.HTTPAddr, "--ops-addr", o.OpsAddr, "--demo-cards", cardsFile,
		"--legacy-merchant", devMerchant, "--reflection")...); err != nil {
		return nil, err
	}
	d.stops = append(d.stops, func() { d.proc.stop() })
	if o.Prometheus && havePrometheus(ctx, stdout) {
		fmt.Fprintf(stdout, "Starting Prometheus (data in %s; --prometheus=false skips it)...\n", filepath.Join(abs, "prometheus"))
		connectMetrics := ""
		if d.worker != nil {
			connectMetrics = d.worker.MetricsAddr()
		}
		if d.prometheus, err = startPrometheus(ctx, filepath.Join(abs, "prometheus"), o.PrometheusPort, cli.Loopback(o.OpsAddr), connectMetrics, o.HelperNice); err != nil {
			return nil, err
		}
		d.stops = append(d.stops, func() {
			fmt.Fprintln(stdout, "Stopping Prometheus...")
			d.prometheus.Stop()
		})
	}
	if err := d.proc.waitReady(ctx, "http://"+cli.Loopback(o.OpsAddr)+"/readyz", 3*time.Minute); err != nil {
		return nil, err
	}
	if d.cards, err = seedDemoCards(ctx, o.GRPCAddr, d.creds.Keys, cardsFile); err != nil {
		return nil, fmt.Errorf("seed demo cards: %w", err)
	}
	if o.WarmUp > 0 {
		fmt.Fprintf(stdout, "Warming up for %s (--warm-up=0 skips it)...\n", o.WarmUp)
		if err := warmUp(ctx, o.GRPCAddr, d.creds.Keys, filepath.Join(abs, "warm-up-card.json"), o.WarmUp); err != nil {
			return nil, fmt.Errorf("warm up: %w", err)
		}
	}
	return d, nil
}

// stop stops what was started, the bank first.
func (d *devBank) stop() {
	for i := len(d.stops) - 1; i >= 0; i-- {
		d.stops[i]()
	}
	d.stops = nil
}

// havePrometheus reports whether a Prometheus can be had: Debian's package, fetched into the
// cache, else one on PATH (localprometheus.Fetch). When none can, the bank runs without it, and
// one line on w says why and what to install.
func havePrometheus(ctx context.Context, w io.Writer) bool {
	if _, err := localprometheus.Fetch(ctx, ""); err != nil {
		fmt.Fprintf(w, "Prometheus not started, the bank runs without it: %s (install Debian's prometheus package, or put prometheus and promtool on PATH; --prometheus=false hides this line)\n",
			firstLine(err.Error()))
		return false
	}
	return true
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// startPrometheus starts a Prometheus in dir on port that scrapes the operations port opsAddr
// (job "codebank") and, when set, the Kafka Connect worker's metrics at connectAddr (job
// "connect") every 5 s, and evaluates the rules of monitoring/prometheus/rules.yaml, written into
// dir at each start so that they are the code's.
func startPrometheus(ctx context.Context, dir string, port int, opsAddr, connectAddr string, nice int) (*localprometheus.Server, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	rules := filepath.Join(dir, "rules.yaml")
	if err := os.WriteFile(rules, monitoring.Rules, 0o644); err != nil {
		return nil, err
	}
	jobs := []localprometheus.Job{{Name: "codebank", Targets: []string{opsAddr}}}
	if connectAddr != "" {
		jobs = append(jobs, localprometheus.Job{Name: "connect", Targets: []string{connectAddr}})
	}
	p, err := localprometheus.Start(ctx, localprometheus.Options{DataDir: dir, Port: port, RuleFiles: []string{rules},
		Retention: 7 * 24 * time.Hour, Jobs: jobs, Nice: nice})
	if err != nil {
		return nil, fmt.Errorf("start local Prometheus: %w", err)
	}
	return p, nil
}

// startAnalytics starts the local OpenSearch node and Kafka Connect worker, in parallel.
func startAnalytics(ctx context.Context, dataDir, brokers string, o devBankOptions) (*localsearch.Node, *localconnect.Worker, error) {
	var (
		node    *localsearch.Node
		worker  *localconnect.Worker
		nodeErr error
		wg      sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		node, nodeErr = localsearch.Start(ctx, localsearch.Options{DataDir: filepath.Join(dataDir, "opensearch"), HTTPPort: o.SearchPort, PeakJIT: o.PeakJIT, Heap: o.helperHeap(), Nice: o.HelperNice})
	}()
	worker, err := localconnect.Start(ctx, localconnect.Options{DataDir: filepath.Join(dataDir, "connect"), Brokers: brokers, RESTPort: o.ConnectPort, PeakJIT: o.PeakJIT, Heap: o.helperHeap(), Nice: o.HelperNice,
		Metrics: monitoring.ConnectJMXExporter})
	wg.Wait()
	if err != nil || nodeErr != nil {
		if worker != nil {
			worker.Stop()
		}
		if node != nil {
			node.Stop()
		}
		return nil, nil, fmt.Errorf("start analytics servers: %w", errors.Join(err, nodeErr))
	}
	return node, worker, nil
}

// seedDemoCards returns the demo cards, issuing them the first time.
func seedDemoCards(ctx context.Context, grpcAddr string, keys grpcgateway.CallerKeys, file string) ([]demoCard, error) {
	conn, err := cli.Dial(cli.Loopback(grpcAddr), nil, keys, false)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := codebankv1.NewCardServiceClient(conn)
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	var cards []demoCard
	if b, err := os.ReadFile(file); err == nil {
		if err := json.Unmarshal(b, &cards); err != nil {
			return nil, fmt.Errorf("read %s: %w", file, err)
		}
		if len(cards) > 0 {
			_, err := client.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: cards[0].Number})
			if err == nil {
				return cards, nil
			}
			if status.Code(err) != codes.NotFound {
				return nil, err
			}
		}
		cards = nil // the Kafka data was wiped: issue new ones
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, h := range demoHolders {
		resp, err := client.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: h.name, LimitCents: h.limit})
		if err != nil {
			return nil, err
		}
		cd := resp.GetCard()
		cards = append(cards, demoCard{Number: cd.GetNumber(), Holder: cd.GetHolderName(),
			Expiry: fmt.Sprintf("%02d/%02d", cd.GetExpiryMonth(), cd.GetExpiryYear()%100), CVV: resp.GetCvv()})
	}
	b, _ := json.MarshalIndent(cards, "", "  ")
	return cards, os.WriteFile(file, b, 0o600)
}

func printReady(w io.Writer, grpcAddr, httpAddr, opsAddr string, cards []demoCard, creds devCredentials, sink *analytics.Sink, prom *localprometheus.Server) {
	fmt.Fprintln(w, "\nDemo cards:")
	fmt.Fprintf(w, "  %-19s  %-12s  %-5s  %-3s\n", "NUMBER", "HOLDER", "EXP", "CVV")
	for _, d := range cards {
		fmt.Fprintf(w, "  %-19s  %-12s  %-5s  %-3s\n", card.Grouped(d.Number), d.Holder, d.Expiry, d.CVV)
	}
	fmt.Fprintf(w, `
API keys (kept in %s, which the codebank CLI reads by itself):
  merchant %s (%s): CODEBANK_MERCHANT_KEY=%s
  admin:            CODEBANK_ADMIN_KEY=%s
`, creds.CredentialsFile, devMerchant, devMerchantName, creds.Keys.Merchant, creds.Keys.Admin)
	d := cards[0]
	cli, at := "go run ./cmd/codebank", ""
	if port(grpcAddr) != ":50051" {
		at = " --addr localhost" + port(grpcAddr)
	}
	fmt.Fprintf(w, `
Try it:
  %[1]s pay --card %[2]s --holder %[3]q --exp %[4]s --cvv %[5]s --amount 12.34%[13]s
  %[1]s cards get %[2]s%[13]s
  %[1]s statement %[2]s%[13]s
  curl -s localhost%[6]s/v1/payments -H 'authorization: Bearer %[7]s' -d '{"card":{"number":"%[2]s","holder_name":"%[3]s","expiry_month":%[8]s,"expiry_year":%[9]s,"cvv":"%[5]s"},"amount_cents":1234,"description":"Produtos: livro"}'
  go run %[10]s -plaintext -H 'authorization: Bearer %[11]s' -d '{"number":"%[2]s"}' localhost%[12]s codebank.v1.CardService/LookupCard

`, cli, d.Number, d.Holder, d.Expiry, d.CVV, port(httpAddr), creds.Keys.Merchant, strings.TrimLeft(d.Expiry[:2], "0"), "20"+d.Expiry[3:],
		grpcurl, creds.Keys.Admin, port(grpcAddr), at)
	if sink != nil {
		fmt.Fprintf(w, `
Analytics: every authorization is indexed by Kafka Connect (%s) into %s/%s
  go run ./cmd/codebank analytics --search-url %s
  curl -s '%s/%s/_search?size=3&sort=authorized_at:desc'
  Kibana 8: curl -X POST KIBANA/api/saved_objects/_import?overwrite=true -H 'kbn-xsrf: true' --form file=@analytics/kibana/codebank-dashboard-kibana8.ndjson
`, sink.ConnectURL, sink.SearchURL, sink.Index, sink.SearchURL, sink.SearchURL, sink.Index)
	}
	fmt.Fprintf(w, "\nCode Store: http://localhost%s/   statement: http://localhost%s/statement   dashboard: http://localhost%s/dashboard\n",
		port(httpAddr), port(httpAddr), port(httpAddr))
	fmt.Fprintf(w, "Operations: http://localhost%s/metrics, /healthz, /readyz\n", port(opsAddr))
	if prom != nil {
		fmt.Fprintf(w, "Prometheus: http://localhost%s (the bank's and Kafka Connect's metrics every 5 s; rules and alerts of monitoring/prometheus/rules.yaml; Grafana is not started: its dashboards are monitoring/grafana/dashboards/*.json)\n",
			port(prom.Addr()))
	}
	fmt.Fprintf(w, "Code Bank is ready: gRPC localhost%s, REST http://localhost%s (Ctrl-C stops it; state is kept in .data)\n",
		port(grpcAddr), port(httpAddr))
}

func port(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return addr[i:]
	}
	return addr
}
