package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/devenv/loadgen"
	"github.com/codebank/codebank/internal/kafkaconf"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// ghzModule is the load generator of the full-pipeline benchmark: an independent gRPC load
// tool, built from the Go module proxy into the cache once.
const ghzModule = "github.com/bojand/ghz/cmd/ghz@v0.120.0"

// The reference method of the full-pipeline benchmark (BENCHMARKS.md): a fresh bank as make run
// starts it, cards issued over REST, a cold step right after (the first minute), a warm-up and
// a pause, then each rate three times for 15 s (its figures are the median run), then the
// capacity step.
var (
	fullCold     = loadgen.Step{Rate: 200, Duration: 15 * time.Second, Measure: true}
	fullWarmUp   = loadgen.Step{Rate: 1000, Duration: 30 * time.Second}
	fullIdle     = 10 * time.Second
	fullRates    = []int{200, 1000, 2000, 3000}
	fullRuns     = 3
	fullRunFor   = 15 * time.Second
	fullCapacity = loadgen.Step{Rate: 4000, Duration: 60 * time.Second, Measure: true}
)

// fullOptions configure benchFull.
type fullOptions struct {
	Codebank string
	Cards    int
	API      string // legacy or authorize
	Probes   float64
	PeakJIT  bool
	// FixedHeap starts OpenSearch's and Connect's heaps at their maximum (devBankOptions).
	FixedHeap bool
	// Prometheus also runs the local Prometheus of make run, scraping the bank every 5s; its
	// CPU counts with the rest.
	Prometheus bool
	// BrokerProps are extra broker settings.
	BrokerProps map[string]string
	// HelperNice is the niceness of OpenSearch, Connect and Prometheus, and ReadyWarmUp how
	// long the bank warms up before it is ready (devBankOptions).
	HelperNice  int
	ReadyWarmUp time.Duration
	// BankEnv is more environment for codebank all (--bank-env); BrokerGC and BrokerJVM the
	// broker's garbage collector and more JVM options (--broker-gc, --broker-jvm).
	BankEnv    []string
	BrokerGC   string
	BrokerJVM  []string
	Partitions int

	// Cold, when its rate is set, runs right after the cards are issued, before any warm-up.
	Cold loadgen.Step
	// WarmUp (when its rate is set) and Idle come next.
	WarmUp loadgen.Step
	Idle   time.Duration
	// Rates are each run Runs times for RunFor.
	Rates  []int
	Runs   int
	RunFor time.Duration
	// Steps, when set, replace Rates: each runs once (--schedule; ~ marks warm-up steps).
	Steps []loadgen.Step
	// Capacity, when its rate is set, runs last.
	Capacity loadgen.Step
	// Soak, when set, runs SoakRate for this long after the rest, in runs of a minute.
	Soak     time.Duration
	SoakRate int
	// Profile, when set, is a directory for a CPU profile of codebank all during each measured
	// step but the soak's, which printFull attributes to layers (cpuLayers).
	Profile string
}

// fullStep is what one run of the full-pipeline benchmark measured.
type fullStep struct {
	Phase     string // cold, run, capacity, soak, or step (--schedule)
	Rate      int
	Ghz       ghzReport
	CPU       map[string]float64 // percent of one core, by process
	Syscalls  map[string]int64   // read and write system calls in the run, by process
	RSS       map[string]int64   // resident memory at the run's end, by process
	AnonRSS   map[string]int64   // of it, anonymous memory (without mapped files)
	Decisions float64            // payments the authorizer decided in the run
	StmtLag   []time.Duration    // Authorize answered → the line on the statement
	IndexLag  []time.Duration    // Authorize answered → the document searchable
	Lag       float64            // the longest consumer lag at the run's end, seconds
	CatchUp   time.Duration      // from the end of the load until the books caught up
	CaughtUp  bool               // whether they did, within two minutes
	Layers    map[string]float64 // with --profile: each layer's share of codebank all's CPU (cpuLayers)
}

// syscallsPerPayment returns the read and write system calls a process made per payment
// decided in the run.
func (s fullStep) syscallsPerPayment(proc string) float64 {
	if s.Decisions <= 0 {
		return 0
	}
	return float64(s.Syscalls[proc]) / s.Decisions
}

// perPayment returns the CPU a process spent per payment decided in the run, in µs.
func (s fullStep) perPayment(proc string) float64 {
	if s.Decisions <= 0 {
		return 0
	}
	return s.CPU[proc] / 100 * s.Ghz.Total.Seconds() / s.Decisions * 1e6
}

// loadGenerator names ghz among the processes whose CPU a step reports.
const loadGenerator = "ghz"

// fullBench is one run of benchFull: the bank, its load generator and what it measured.
type fullBench struct {
	o        fullOptions
	bank     *devBank
	ghz      string
	grpcAddr string
	opsAddr  string
	dataFile string
	procs    []*loadgen.ProcStat
	probe    *prober
	stdout   io.Writer
	steps    []fullStep
	caught   books
	catchUp  time.Duration
}

// benchFull measures what users run: the whole bank of `make run` (broker, OpenSearch, Kafka
// Connect, Prometheus, and codebank all with statements, the store and the dashboard), loaded
// open loop by ghz with the reference method's flags, with the lag from an authorization to its
// statement line and to its searchable document sampled by probes beside the load, and the
// books checked at the end.
func benchFull(ctx context.Context, stdout io.Writer, o fullOptions) error {
	ghz, err := installGhz(ctx, stdout)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "codebank-bench-full-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	grpcAddr, httpAddr, opsAddr := freeAddr(), freeAddr(), freeAddr()
	bank, err := startDevBank(ctx, devBankOptions{DataDir: dir, Codebank: o.Codebank, GRPCAddr: grpcAddr, HTTPAddr: httpAddr,
		OpsAddr: opsAddr, Analytics: true, BankLog: filepath.Join(dir, "codebank.log"), PeakJIT: o.PeakJIT, FixedHeap: o.FixedHeap, BrokerProps: o.BrokerProps, Prometheus: o.Prometheus, HelperNice: o.HelperNice, WarmUp: o.ReadyWarmUp, BankEnv: o.BankEnv, BrokerGC: o.BrokerGC, BrokerJVM: o.BrokerJVM, Partitions: o.Partitions}, stdout)
	if err != nil {
		return err
	}
	defer bank.stop()
	fmt.Fprintf(stdout, "Code Bank is ready: gRPC %s, operations http://%s (CODEBANK_PPROF=true for /debug/pprof)\n", grpcAddr, opsAddr)
	b := &fullBench{o: o, bank: bank, ghz: ghz, grpcAddr: grpcAddr, opsAddr: opsAddr, stdout: stdout}
	b.procs = []*loadgen.ProcStat{
		{Name: "codebank all", PID: bank.proc.cmd.Process.Pid},
		{Name: "kafka broker", PID: bank.broker.PID()},
		{Name: "opensearch", PID: bank.node.PID()},
		{Name: "kafka connect", PID: bank.worker.PID()},
	}
	if bank.prometheus != nil {
		b.procs = append(b.procs, &loadgen.ProcStat{Name: "prometheus", PID: bank.prometheus.PID()})
	}

	fmt.Fprintf(stdout, "Issuing %d cards over REST...\n", o.Cards)
	cards, err := issueCardsREST(ctx, "http://"+httpAddr, bank.creds.Keys.Admin, o.Cards)
	if err != nil {
		return err
	}
	b.dataFile = filepath.Join(dir, "payments.json")
	if err := writeGhzData(b.dataFile, cards, o.API); err != nil {
		return err
	}
	conn, err := cli.Dial(grpcAddr, nil, bank.creds.Keys, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	if b.probe, err = newProber(ctx, conn, bank.sink.SearchURL+"/"+bank.sink.Index); err != nil {
		return err
	}

	if o.Cold.Rate > 0 {
		if err := b.run(ctx, "cold", o.Cold); err != nil {
			return err
		}
	}
	if o.WarmUp.Rate > 0 {
		if err := b.run(ctx, "warm-up", o.WarmUp); err != nil {
			return err
		}
	}
	idle := map[string]float64{}
	if o.Idle > 0 {
		// What the bank costs doing nothing, once warm.
		fmt.Fprintf(stdout, "Idle for %s...\n", o.Idle)
		if idle, err = measureIdle(ctx, b.procs, o.Idle); err != nil {
			return err
		}
	}
	for _, step := range o.Steps {
		phase := "step"
		if !step.Measure {
			phase = "warm-up"
		}
		if err := b.run(ctx, phase, step); err != nil {
			return err
		}
	}
	for _, rate := range o.Rates {
		for range o.Runs {
			if err := b.run(ctx, "run", loadgen.Step{Rate: rate, Duration: o.RunFor, Measure: true}); err != nil {
				return err
			}
		}
	}
	if o.Capacity.Rate > 0 {
		if err := b.run(ctx, "capacity", o.Capacity); err != nil {
			return err
		}
	}
	for end := time.Now().Add(o.Soak); o.Soak > 0 && time.Now().Before(end); {
		if err := b.run(ctx, "soak", loadgen.Step{Rate: o.SoakRate, Duration: time.Minute, Measure: true}); err != nil {
			return err
		}
	}
	if !b.caught.ok() {
		fmt.Fprintf(stdout, "not caught up %s after the load: %s\n", b.catchUp.Round(time.Millisecond), b.caught)
	}
	audit := exec.CommandContext(ctx, bank.bin, "audit", "--brokers", bank.broker.Addr(),
		"--search-url", bank.sink.SearchURL, "--index", bank.sink.Index, "--wait", "30s")
	auditOut, auditErr := audit.CombinedOutput()
	printFull(stdout, b.steps, idle, b.procs, b.caught, b.catchUp, strings.TrimSpace(string(auditOut)), auditErr)
	return nil
}

// run loads the bank at step's rate for its duration and, when the step is measured, keeps what
// it measured. Every run ends with the books caught up (the statements and the index hold
// every payment), so that no run pays for the backlog of the one before.
func (b *fullBench) run(ctx context.Context, phase string, step loadgen.Step) error {
	fmt.Fprintf(b.stdout, "%s: %d/s for %s...\n", phase, step.Rate, step.Duration)
	before, err := scrapeDecisions(b.opsAddr)
	if err != nil {
		return err
	}
	for _, p := range b.procs {
		p.Start()
	}
	probes := b.probe.run(ctx, step.Duration, b.o.Probes)
	var profiled chan string
	if b.o.Profile != "" && step.Measure && phase != "soak" && step.Duration > 2*time.Second {
		// The profile covers the step but its last second, so that it ends before the load.
		file := filepath.Join(b.o.Profile, fmt.Sprintf("codebank-%02d-%s-%d.pprof", len(b.steps)+1, phase, step.Rate))
		profiled = make(chan string, 1)
		go func() {
			fetchProfile(b.opsAddr, file, step.Duration-time.Second)
			profiled <- file
		}()
	}
	rep, err := runGhz(ctx, b.ghz, b.grpcAddr, b.bank.creds.Keys.Merchant, b.dataFile, b.o.API, step)
	for _, p := range b.procs {
		p.Stop()
	}
	if err != nil {
		return err
	}
	var layers map[string]float64
	if profiled != nil {
		file := <-profiled
		var perr error
		if layers, perr = readLayers(file); perr != nil {
			fmt.Fprintf(b.stdout, "  no profile of codebank all: %v\n", perr)
		}
	}
	ended := time.Now()
	lag := maxConsumerLag(b.opsAddr)
	if b.caught, err = waitCaughtUp(ctx, b.bank, b.opsAddr, 2*time.Minute); err != nil {
		return err
	}
	b.catchUp = time.Since(ended)
	lags := <-probes
	after, err := scrapeDecisions(b.opsAddr)
	if err != nil {
		return err
	}
	fmt.Fprintf(b.stdout, "  %.0f/s, p50 %s ms, p99 %s ms, p99.9 %s ms, %d errors\n", rep.Rps, ms(rep.percentile(50)), ms(rep.percentile(99)), ms(rep.percentile(99.9)), rep.errors())
	if rep.slow != "" {
		fmt.Fprintf(b.stdout, "  calls over %s ms by the second they began: %s\n", ms(slowCall), rep.slow)
	}
	if !step.Measure {
		return nil
	}
	r := fullStep{Phase: phase, Rate: step.Rate, Ghz: rep, CPU: map[string]float64{}, Syscalls: map[string]int64{}, RSS: map[string]int64{}, AnonRSS: map[string]int64{}, Decisions: after - before,
		StmtLag: lags.statement, IndexLag: lags.index, Lag: lag, CatchUp: b.catchUp, CaughtUp: b.caught.ok(), Layers: layers}
	for _, p := range b.procs {
		r.CPU[p.Name] = p.CPUPercent()
		r.Syscalls[p.Name] = p.Syscalls()
		r.RSS[p.Name], _ = loadgen.RSS(p.PID)
		r.AnonRSS[p.Name], _ = loadgen.AnonRSS(p.PID)
	}
	if rep.cpu >= 0 {
		r.CPU[loadGenerator] = rep.cpu
	}
	b.steps = append(b.steps, r)
	return nil
}

// maxConsumerLag returns the longest consumer lag the bank reports (its groups, in seconds),
// or -1 when it cannot be read.
func maxConsumerLag(opsAddr string) float64 {
	fams, err := scrapeMetrics(opsAddr)
	if err != nil {
		return -1
	}
	lag := 0.0
	for _, m := range fams["codebank_consumer_lag_seconds"].GetMetric() {
		lag = max(lag, m.GetGauge().GetValue())
	}
	return lag
}

// issueCardsREST issues n cards through the REST API (POST /v1/cards) with the admin key, each
// with a limit of 1e10 cents, as the reference method does.
func issueCardsREST(ctx context.Context, baseURL, adminKey string, n int) ([]benchCard, error) {
	cards := make([]benchCard, n)
	var (
		wg    sync.WaitGroup
		next  atomic.Int64
		first atomic.Value
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil || first.Load() != nil {
					return
				}
				c, err := issueCardREST(ctx, client, baseURL, adminKey, fmt.Sprintf("Bench Holder %d", i))
				if err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				cards[i] = c
			}
		}()
	}
	wg.Wait()
	if err, _ := first.Load().(error); err != nil {
		return nil, err
	}
	return cards, ctx.Err()
}

func issueCardREST(ctx context.Context, client *http.Client, baseURL, adminKey, holder string) (benchCard, error) {
	body, _ := json.Marshal(map[string]any{"holder_name": holder, "limit_cents": "10000000000"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/cards", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+adminKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return benchCard{}, fmt.Errorf("issue card: %w", err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return benchCard{}, fmt.Errorf("issue card: %s: %s", resp.Status, raw)
	}
	var out codebankv1.IssueCardResponse
	if err := protojson.Unmarshal(raw, &out); err != nil {
		return benchCard{}, fmt.Errorf("issue card: %w", err)
	}
	c := out.GetCard()
	cvv, _ := strconv.Atoi(out.GetCvv())
	return benchCard{number: c.GetNumber(), holder: holder, cvv: out.GetCvv(), month: c.GetExpiryMonth(), year: c.GetExpiryYear(), cvvInt: int32(cvv)}, nil
}

// measureIdle returns what each process costs doing nothing for d, in percent of one core.
func measureIdle(ctx context.Context, procs []*loadgen.ProcStat, d time.Duration) (map[string]float64, error) {
	for _, p := range procs {
		p.Start()
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(d):
	}
	idle := map[string]float64{}
	for _, p := range procs {
		p.Stop()
		idle[p.Name] = p.CPUPercent()
	}
	return idle, nil
}

// installGhz builds ghz into the cache, once, and returns its path.
func installGhz(ctx context.Context, stdout io.Writer) (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	_, version, _ := strings.Cut(ghzModule, "@")
	bin := filepath.Join(cache, "codebank", "ghz-"+version)
	if _, err := os.Stat(filepath.Join(bin, "ghz")); err == nil {
		return filepath.Join(bin, "ghz"), nil
	}
	fmt.Fprintf(stdout, "Building %s...\n", ghzModule)
	cmd := exec.CommandContext(ctx, "go", "install", ghzModule)
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	cmd.Dir = os.TempDir() // outside this module: ghz's own go.mod decides its dependencies
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go install %s: %v\n%s", ghzModule, err, out)
	}
	return filepath.Join(bin, "ghz"), nil
}

// writeGhzData writes the messages ghz sends, one per card, round robin: small amounts, so
// that most payments are approved and land on statements.
func writeGhzData(file string, cards []benchCard, api string) error {
	var msgs []any
	for i, c := range cards {
		amount := int64(100 + i%900)
		if api == "legacy" {
			msgs = append(msgs, map[string]any{
				"creditCard": map[string]any{"name": c.holder, "number": c.number, "expirationMonth": c.month,
					"expirationYear": c.year, "cvv": c.cvvInt},
				"amount": float64(amount) / 100, "store": "Code Store", "description": "bench"})
			continue
		}
		msgs = append(msgs, map[string]any{
			"card": map[string]any{"number": c.number, "holder_name": c.holder, "expiry_month": c.month,
				"expiry_year": c.year, "cvv": c.cvv},
			"amount_cents": amount, "description": "bench"})
	}
	b, err := json.Marshal(msgs)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o600)
}

// ghzReport is the part of ghz's JSON report the benchmark reads.
type ghzReport struct {
	Count       int64          `json:"count"`
	Total       time.Duration  `json:"total"`
	Rps         float64        `json:"rps"`
	Errors      map[string]int `json:"errorDistribution"`
	StatusCodes map[string]int `json:"statusCodeDistribution"`
	Details     []struct {
		Timestamp time.Time     `json:"timestamp"`
		Latency   time.Duration `json:"latency"`
	} `json:"details"`
	latencies []time.Duration // sorted, from Details
	slow      string          // the seconds with the most slow calls, from Details
	cpu       float64         // ghz's own CPU while it sent the load, % of one core (-1: not read)
}

// slowCall is the latency a call of the tail targets is slow at (BENCHMARKS.md: p99 ≤ 25 ms at
// 200/s in the first 15 s), and slowSeconds how many of the worst seconds a step reports.
const (
	slowCall    = 25 * time.Millisecond
	slowSeconds = 3
)

// slowest says in which seconds of a step (counted from its first call, whose time of day it
// gives, to compare with the servers' logs) the calls slower than slowCall began, the worst
// slowSeconds of them, with the longest call of each: one stall shows as one second, a step
// slow throughout as many. Empty without slow calls.
func (r ghzReport) slowest() string {
	if len(r.Details) == 0 {
		return ""
	}
	start := r.Details[0].Timestamp
	for _, d := range r.Details {
		if d.Timestamp.Before(start) {
			start = d.Timestamp
		}
	}
	type second struct {
		at, slow int
		longest  time.Duration
	}
	by := map[int]*second{}
	for _, d := range r.Details {
		if d.Latency <= slowCall {
			continue
		}
		at := int(d.Timestamp.Sub(start) / time.Second)
		if by[at] == nil {
			by[at] = &second{at: at}
		}
		by[at].slow++
		by[at].longest = max(by[at].longest, d.Latency)
	}
	if len(by) == 0 {
		return ""
	}
	worst := slices.SortedFunc(maps.Values(by), func(a, b *second) int { return cmp.Or(b.slow-a.slow, a.at-b.at) })
	parts := []string{"from " + start.Format("15:04:05.000")}
	for _, s := range worst[:min(len(worst), slowSeconds)] {
		parts = append(parts, fmt.Sprintf("second %d: %d (longest %s ms)", s.at, s.slow, ms(s.longest)))
	}
	return strings.Join(parts, ", ")
}

// percentile returns the latency at p percent of the calls (nearest rank), or 0 without calls.
func (r ghzReport) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(r.latencies)))) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

func (r ghzReport) errors() int {
	n := 0
	for code, c := range r.StatusCodes {
		if code != "OK" {
			n += c
		}
	}
	return n
}

// runGhz runs one step open loop with the reference method's flags: `--insecure --async -c 200
// --connections 4 --rps R -z D --timeout 5s`, on the original contract's Payment (or on
// Authorize with the merchant's key). It also passes `--duration-stop wait`: at the end of the
// duration ghz otherwise closes its connections under the calls still in flight and counts
// them as errors (Unavailable, "use of closed network connection"), which are its own.
func runGhz(ctx context.Context, ghz, addr, merchantKey, dataFile, api string, step loadgen.Step) (ghzReport, error) {
	call := "payment.PaymentService/Payment"
	args := []string{"--insecure", "--async", "-c", "200", "--connections", "4", "--rps", strconv.Itoa(step.Rate), "-z", step.Duration.String(),
		"--timeout", "5s", "--duration-stop", "wait", "--format", "json", "--data-file", dataFile}
	if api != "legacy" {
		call = "codebank.v1.PaymentService/Authorize"
		md, _ := json.Marshal(map[string]string{"authorization": "Bearer " + merchantKey})
		args = append(args, "--metadata", string(md))
	}
	args = append(args, "--call", call, addr)
	cmd := exec.CommandContext(ctx, ghz, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		return ghzReport{}, fmt.Errorf("ghz: %v", err)
	}
	// ghz's CPU while it sends the load, not while it waits for the last calls and writes its
	// report: it shares the two cores with the bank, and what it takes counts in whether they
	// are full.
	self := &loadgen.ProcStat{Name: loadGenerator, PID: cmd.Process.Pid}
	self.Start()
	cpu := make(chan float64, 1)
	go func() {
		select {
		case <-time.After(step.Duration):
			self.Stop()
			cpu <- max(self.CPUPercent(), -1) // negative when ghz had already ended
		case <-ctx.Done():
			cpu <- -1
		}
	}()
	err := cmd.Wait()
	var ghzCPU float64
	select {
	case ghzCPU = <-cpu:
	case <-time.After(time.Second): // ghz ended well before its duration: no reading
		ghzCPU = -1
	}
	if err != nil && stdout.Len() == 0 {
		return ghzReport{}, fmt.Errorf("ghz: %v: %s", err, stderr.String())
	}
	var rep ghzReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return ghzReport{}, fmt.Errorf("ghz report: %v", err)
	}
	rep.cpu = ghzCPU
	for _, d := range rep.Details {
		rep.latencies = append(rep.latencies, d.Latency)
	}
	rep.slow = rep.slowest()
	rep.Details = nil
	slices.Sort(rep.latencies)
	return rep, nil
}

// scrapeDecisions returns the payments the authorizer has decided (every status).
func scrapeDecisions(opsAddr string) (float64, error) {
	fams, err := scrapeMetrics(opsAddr)
	if err != nil {
		return 0, err
	}
	return counterSum(fams, "codebank_authorizer_decisions_total", "", ""), nil
}

// counterSum adds up the series of a counter, only those whose label is value when label is
// not empty.
func counterSum(fams map[string]*dto.MetricFamily, name, label, value string) float64 {
	var n float64
	for _, m := range fams[name].GetMetric() {
		if label == "" || slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == label && l.GetValue() == value }) {
			n += m.GetCounter().GetValue()
		}
	}
	return n
}

// scrapeMetrics reads the metrics a process serves on its operations address.
func scrapeMetrics(opsAddr string) (map[string]*dto.MetricFamily, error) {
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Get("http://" + opsAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// books compares what the authorizer published with what reached the statements and the index.
type books struct {
	approved, lines    float64 // approvals decided; purchases put on statements
	results, documents int64   // records of the results topic; documents in the index
	err                error   // a count that could not be read
}

func (c books) ok() bool {
	return c.err == nil && c.lines >= c.approved && c.documents >= c.results
}

func (c books) String() string {
	return fmt.Sprintf("%.0f approvals, %.0f statement lines; %d results, %d documents", c.approved, c.lines, c.results, c.documents)
}

// waitCaughtUp waits until every approval is on a statement and every result in the index.
func waitCaughtUp(ctx context.Context, bank *devBank, opsAddr string, timeout time.Duration) (books, error) {
	cfg := kafkaconf.Config{Brokers: []string{bank.broker.Addr()}}.Sarama()
	client, err := sarama.NewClient([]string{bank.broker.Addr()}, cfg)
	if err != nil {
		return books{}, err
	}
	defer client.Close()
	deadline := time.Now().Add(timeout)
	for {
		var c books
		c.err = func() error {
			fams, err := scrapeMetrics(opsAddr)
			if err != nil {
				return err
			}
			c.approved = counterSum(fams, "codebank_authorizer_decisions_total", "status", "approved")
			c.lines = counterSum(fams, "codebank_statements_lines_total", "", "")
			parts, err := client.Partitions("payment-results")
			if err != nil {
				return err
			}
			for _, p := range parts {
				off, err := client.GetOffset("payment-results", p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				c.results += off
			}
			c.documents, err = countDocuments(ctx, bank.sink.SearchURL+"/"+bank.sink.Index)
			return err
		}()
		if c.ok() || time.Now().After(deadline) {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countDocuments returns the number of searchable documents of an index.
func countDocuments(ctx context.Context, indexURL string) (int64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, indexURL+"/_count", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		Count int64 `json:"count"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return 0, err
	}
	return r.Count, nil
}

// prober samples, beside the load, how long an authorization takes to reach the card's
// statement and the search index: it pays with cards of its own and asks for the statement
// (which waits for the card's latest approval) and polls the index for the payment's key.
type prober struct {
	payments   codebankv1.PaymentServiceClient
	statements codebankv1.StatementServiceClient
	indexURL   string
	cards      []benchCard
	ids        []string
	n          int
}

type probeLags struct{ statement, index []time.Duration }

func newProber(ctx context.Context, conn *grpc.ClientConn, indexURL string) (*prober, error) {
	p := &prober{payments: codebankv1.NewPaymentServiceClient(conn), statements: codebankv1.NewStatementServiceClient(conn), indexURL: indexURL}
	cards := codebankv1.NewCardServiceClient(conn)
	for range 10 {
		resp, err := cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: "Probe Holder", LimitCents: 1_000_000_000})
		if err != nil {
			return nil, err
		}
		c := resp.GetCard()
		p.cards = append(p.cards, benchCard{number: c.GetNumber(), holder: c.GetHolderName(), month: c.GetExpiryMonth(), year: c.GetExpiryYear(), cvv: resp.GetCvv()})
		p.ids = append(p.ids, c.GetCardId())
	}
	return p, nil
}

// run probes at rate per second for d, and then sends what it measured.
func (p *prober) run(ctx context.Context, d time.Duration, rate float64) <-chan probeLags {
	out := make(chan probeLags, 1)
	go func() {
		var (
			mu   sync.Mutex
			lags probeLags
			wg   sync.WaitGroup
		)
		tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
		defer tick.Stop()
		end := time.After(d)
	loop:
		for {
			select {
			case <-ctx.Done():
				break loop
			case <-end:
				break loop
			case <-tick.C:
				p.n++
				i := p.n % len(p.cards)
				wg.Add(1)
				go func(i, n int) {
					defer wg.Done()
					st, ix, err := p.probe(ctx, i, n)
					if err != nil {
						return
					}
					mu.Lock()
					lags.statement, lags.index = append(lags.statement, st), append(lags.index, ix)
					mu.Unlock()
				}(i, p.n)
			}
		}
		wg.Wait()
		out <- lags
	}()
	return out
}

// probe makes one payment and measures its two lags.
func (p *prober) probe(ctx context.Context, i, n int) (stmt, index time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c := p.cards[i]
	tx := fmt.Sprintf("probe-%d-%d", time.Now().UnixNano(), n)
	resp, err := p.payments.Authorize(ctx, &codebankv1.AuthorizeRequest{TransactionId: tx, AmountCents: 1, Description: "probe",
		Card: &codebankv1.CardDetails{Number: c.number, HolderName: c.holder, ExpiryMonth: c.month, ExpiryYear: c.year, Cvv: c.cvv}})
	if err != nil {
		return 0, 0, err
	}
	answered := time.Now()
	if resp.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		return 0, 0, errors.New("probe not approved")
	}
	var wg sync.WaitGroup
	var stmtErr, indexErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			st, err := p.statements.GetStatement(ctx, &codebankv1.GetStatementRequest{CardId: p.ids[i], PageSize: 1000})
			if err != nil {
				stmtErr = err
				return
			}
			if slices.ContainsFunc(st.GetLines(), func(l *codebankv1.StatementLine) bool { return l.GetTransactionId() == tx }) {
				stmt = time.Since(answered)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	key := codecs.PaymentKey(p.ids[i], devMerchant, tx)
	for {
		if found, err := searchKey(ctx, p.indexURL, key); err != nil {
			indexErr = err
			break
		} else if found {
			index = time.Since(answered)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	wg.Wait()
	return stmt, index, errors.Join(stmtErr, indexErr)
}

// searchKey reports whether the document of a payment key is searchable.
func searchKey(ctx context.Context, indexURL, key string) (bool, error) {
	body, _ := json.Marshal(map[string]any{"size": 0, "query": map[string]any{"term": map[string]any{"payment_key": key}}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, indexURL+"/_search", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	var r struct {
		Hits struct {
			Total struct {
				Value int `json:"value"`
			} `json:"total"`
		} `json:"hits"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return false, err
	}
	return r.Hits.Total.Value > 0, nil
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[int(q*float64(len(s)-1)+0.5)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64)
}

// printFull prints every run, the median of each rate's runs, the CPU of each process, the soak's
// curve and the books.
func printFull(w io.Writer, steps []fullStep, idle map[string]float64, procs []*loadgen.ProcStat, caught books, catchUp time.Duration, audit string, auditErr error) {
	fmt.Fprintf(w, "\nThe whole bank of make run, ghz open loop (--async -c 200 --connections 4 --timeout 5s), %d cores\n\n", numCPU())
	names := make([]string, len(procs), len(procs)+1)
	for i, p := range procs {
		names[i] = p.Name
	}
	names = append(names, loadGenerator)
	fmt.Fprintf(w, "| run | rate/s | achieved/s | errors | p50 ms | p99 ms | p99.9 ms | CPU µs/payment: %s | statement lag p50/p99 ms | index lag p50/p99 ms | caught up after |\n",
		strings.Join(names, ", "))
	fmt.Fprintf(w, "|---|---:|---:|---|---:|---:|---:|---|---|---|---|\n")
	for _, s := range steps {
		up := s.CatchUp.Round(10 * time.Millisecond).String()
		if !s.CaughtUp {
			up = "NOT within " + up
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s | %s | %s | %s | %s | %s / %s | %s / %s | %s |\n",
			s.Phase, s.Rate, s.Ghz.Rps, errorsOf(s.Ghz), ms(s.Ghz.percentile(50)), ms(s.Ghz.percentile(99)), ms(s.Ghz.percentile(99.9)),
			perPaymentCells(s, names), ms(quantile(s.StmtLag, 0.5)), ms(quantile(s.StmtLag, 0.99)),
			ms(quantile(s.IndexLag, 0.5)), ms(quantile(s.IndexLag, 0.99)), up)
	}

	// The median of each rate's runs, figure by figure.
	var rates []int
	byRate := map[int][]fullStep{}
	for _, s := range steps {
		if s.Phase != "run" {
			continue
		}
		if byRate[s.Rate] == nil {
			rates = append(rates, s.Rate)
		}
		byRate[s.Rate] = append(byRate[s.Rate], s)
	}
	if len(rates) > 0 {
		fmt.Fprintf(w, "\nMedian of the runs at each rate:\n\n| rate/s | runs | achieved/s | errors | p50 ms | p99 ms | p99.9 ms | CPU µs/payment: %s | read+write system calls/payment |\n|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
			strings.Join(names, ", "))
		for _, rate := range rates {
			runs := byRate[rate]
			med := func(f func(fullStep) float64) float64 { return medianOf(runs, f) }
			lat := func(p float64) string {
				return strconv.FormatFloat(med(func(s fullStep) float64 { return float64(s.Ghz.percentile(p).Microseconds()) / 1000 }), 'f', 1, 64)
			}
			var cpu, sys []string
			for _, n := range names {
				cpu = append(cpu, fmt.Sprintf("%.0f", med(func(s fullStep) float64 { return s.perPayment(n) })))
				if n == loadGenerator { // its system calls are not counted
					sys = append(sys, "–")
					continue
				}
				sys = append(sys, fmt.Sprintf("%.1f", med(func(s fullStep) float64 { return s.syscallsPerPayment(n) })))
			}
			fmt.Fprintf(w, "| %d | %d | %.0f | %.0f | %s | %s | %s | %s | %s |\n", rate, len(runs), med(func(s fullStep) float64 { return s.Ghz.Rps }),
				med(func(s fullStep) float64 { return float64(s.Ghz.errors()) }), lat(50), lat(99), lat(99.9), strings.Join(cpu, ", "), strings.Join(sys, ", "))
		}
	}

	fmt.Fprintf(w, "\n| process | CPU %% of one core: idle, then by run |\n|---|---|\n")
	for _, n := range names {
		cells := []string{fmt.Sprintf("idle: %.0f", idle[n])}
		for _, s := range steps {
			cells = append(cells, fmt.Sprintf("%s %d/s: %.0f", s.Phase, s.Rate, s.CPU[n]))
		}
		fmt.Fprintf(w, "| %s | %s |\n", n, strings.Join(cells, ", "))
	}
	// Whether the machine was full: every process above together, against its cores.
	cells := []string{fmt.Sprintf("idle: %.0f", sumCPU(idle))}
	for _, s := range steps {
		cells = append(cells, fmt.Sprintf("%s %d/s: %.0f", s.Phase, s.Rate, sumCPU(s.CPU)))
	}
	fmt.Fprintf(w, "| all of them, of %d%% | %s |\n", 100*numCPU(), strings.Join(cells, ", "))
	printLayers(w, steps)
	printSoak(w, steps, names)

	state := "caught up"
	if !caught.ok() {
		state = "NOT caught up"
	}
	fmt.Fprintf(w, "\nAfter the load: %s %s after it ended (%s).\n", state, catchUp.Round(10*time.Millisecond), caught)
	if auditErr != nil {
		fmt.Fprintf(w, "codebank audit FAILED (%v):\n%s\n", auditErr, audit)
	} else {
		fmt.Fprintf(w, "codebank audit: %s\n", audit)
	}
}

// printSoak prints the soak's curve: each minute's latency, errors, longest consumer lag and
// the resident memory of each process; then the p99 of its last five minutes against its first
// five, and the growth of each process's memory.
func printSoak(w io.Writer, steps []fullStep, names []string) {
	var soak []fullStep
	for _, s := range steps {
		if s.Phase == "soak" {
			soak = append(soak, s)
		}
	}
	if len(soak) == 0 {
		return
	}
	servers := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == loadGenerator }) // ghz's memory is not read
	fmt.Fprintf(w, "\nSoak at %d/s, a run a minute:\n\n| minute | achieved/s | errors | p50 ms | p99 ms | p99.9 ms | longest consumer lag s | CPU µs/payment: %s | RSS MB: %s |\n|---:|---:|---:|---:|---:|---:|---:|---|---|\n",
		soak[0].Rate, strings.Join(names, ", "), strings.Join(servers, ", "))
	for i, s := range soak {
		var cpu, rss []string
		for _, n := range names {
			cpu = append(cpu, fmt.Sprintf("%.0f", s.perPayment(n)))
		}
		for _, n := range servers {
			rss = append(rss, fmt.Sprintf("%.0f", float64(s.RSS[n])/(1<<20)))
		}
		fmt.Fprintf(w, "| %d | %.0f | %s | %s | %s | %s | %.2f | %s | %s |\n", i+1, s.Ghz.Rps, errorsOf(s.Ghz), ms(s.Ghz.percentile(50)),
			ms(s.Ghz.percentile(99)), ms(s.Ghz.percentile(99.9)), s.Lag, strings.Join(cpu, ", "), strings.Join(rss, ", "))
	}
	k := min(5, len(soak)/2)
	if k == 0 {
		return
	}
	p99 := func(runs []fullStep) float64 {
		var all []time.Duration
		for _, r := range runs {
			all = append(all, r.Ghz.latencies...)
		}
		slices.Sort(all)
		return float64(ghzReport{latencies: all}.percentile(99).Microseconds()) / 1000
	}
	first, last := p99(soak[:k]), p99(soak[len(soak)-k:])
	fmt.Fprintf(w, "\np99 of the first %d minutes %.1f ms, of the last %d %.1f ms (%+.0f%%).\n", k, first, k, last, (last/first-1)*100)
	// A process's RSS swings with its collector's cycles from one sample to the next: the
	// medians of the first and last k minutes say more than two single samples.
	medianMB := func(runs []fullStep, n string, mem func(fullStep) map[string]int64) float64 {
		return medianOf(runs, func(r fullStep) float64 { return float64(mem(r)[n]) / (1 << 20) })
	}
	rss := func(r fullStep) map[string]int64 { return r.RSS }
	anon := func(r fullStep) map[string]int64 { return r.AnonRSS }
	// The CPU a process spends per payment, first minutes against last: a process whose work
	// grows with what it holds (an index merging, a table compacting) shows here first.
	medianCPU := func(runs []fullStep, n string) float64 {
		return medianOf(runs, func(r fullStep) float64 { return r.perPayment(n) })
	}
	var cpu []string
	for _, n := range names {
		f, l := medianCPU(soak[:k], n), medianCPU(soak[len(soak)-k:], n)
		cpu = append(cpu, fmt.Sprintf("%s %.0f → %.0f", n, f, l))
	}
	fmt.Fprintf(w, "CPU µs/payment, median of the first %d minutes → of the last %d: %s.\n", k, k, strings.Join(cpu, ", "))
	for _, n := range names {
		a, b := soak[0].RSS[n], soak[len(soak)-1].RSS[n]
		if a > 0 {
			mf, ml := medianMB(soak[:k], n, rss), medianMB(soak[len(soak)-k:], n, rss)
			af, al := medianMB(soak[:k], n, anon), medianMB(soak[len(soak)-k:], n, anon)
			fmt.Fprintf(w, "RSS of %s: %.0f MB after the first minute, %.0f MB at the end (%+.1f%%); median of the first %d minutes %.0f MB, of the last %d %.0f MB (%+.1f%%); without mapped files %.0f → %.0f MB (%+.1f%%).\n",
				n, float64(a)/(1<<20), float64(b)/(1<<20), (float64(b)/float64(a)-1)*100, k, mf, k, ml, (ml/mf-1)*100, af, al, (al/af-1)*100)
		}
	}
}

// sumCPU adds up the CPU of every process, in % of one core.
func sumCPU(cpu map[string]float64) float64 {
	var sum float64
	for _, c := range cpu {
		sum += c
	}
	return sum
}

// medianOf returns the median of f over runs (the upper one of an even count); runs is not
// empty.
func medianOf(runs []fullStep, f func(fullStep) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	return v[len(v)/2]
}

// errorsOf sums a run's errors by gRPC code.
func errorsOf(r ghzReport) string {
	if r.errors() == 0 {
		return "0"
	}
	var parts []string
	for code, c := range r.StatusCodes {
		if code != "OK" {
			parts = append(parts, fmt.Sprintf("%d %s", c, code))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

func perPaymentCells(s fullStep, names []string) string {
	cells := make([]string, len(names))
	for i, n := range names {
		cells[i] = fmt.Sprintf("%.0f", s.perPayment(n))
	}
	return strings.Join(cells, ", ")
}
