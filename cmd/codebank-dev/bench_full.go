package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/grpc"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/devenv/loadgen"
	"github.com/codebank/codebank/internal/kafkaconf"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// ghzModule is the load generator of the full-pipeline benchmark: an independent gRPC load
// tool, built from the Go module proxy into the cache once.
const ghzModule = "github.com/bojand/ghz/cmd/ghz@v0.120.0"

// The full-pipeline benchmark's default steps: the rates of the targets, each long enough for a
// few thousand calls, and the sustained step last.
const fullSchedule = "~1000:30s,200:20s,500:20s,1000:20s,2000:20s,5000:60s"

// fullOptions configure benchFull.
type fullOptions struct {
	Codebank string
	Steps    []loadgen.Step
	Cards    int
	API      string // legacy or authorize
	Probes   float64
	PeakJIT  bool
	// Prometheus also runs the local Prometheus of make run, scraping the bank every 5s; its
	// CPU counts with the rest.
	Prometheus bool
	// BrokerProps are extra broker settings.
	BrokerProps map[string]string
}

// fullStep is what one step of the full-pipeline benchmark measured.
type fullStep struct {
	Rate      int
	Ghz       ghzReport
	CPU       map[string]float64 // percent of one core, by process
	Decisions float64            // payments the authorizer decided in the step
	StmtLag   []time.Duration    // Authorize answered → the line on the statement
	IndexLag  []time.Duration    // Authorize answered → the document searchable
	CatchUp   time.Duration      // from the end of the load until the books caught up
	CaughtUp  bool               // whether they did, within two minutes
}

// benchFull measures what users run: the whole bank of `make run` (broker, OpenSearch, Kafka
// Connect, and codebank all with statements, the store and the dashboard), loaded open loop by
// ghz at each rate, with the lag from an authorization to its statement line and to its
// searchable document sampled by probes beside the load, and the books checked at the end.
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
		OpsAddr: opsAddr, Analytics: true, BankLog: filepath.Join(dir, "codebank.log"), PeakJIT: o.PeakJIT, BrokerProps: o.BrokerProps, Prometheus: o.Prometheus}, stdout)
	if err != nil {
		return err
	}
	defer bank.stop()
	fmt.Fprintf(stdout, "Code Bank: gRPC %s, operations http://%s (CODEBANK_PPROF=true for /debug/pprof)\n", grpcAddr, opsAddr)
	procs := []*loadgen.ProcStat{
		{Name: "kafka broker", PID: bank.broker.PID()},
		{Name: "codebank all", PID: bank.proc.cmd.Process.Pid},
		{Name: "opensearch", PID: bank.node.PID()},
		{Name: "kafka connect", PID: bank.worker.PID()},
	}
	if bank.prometheus != nil {
		procs = append(procs, &loadgen.ProcStat{Name: "prometheus", PID: bank.prometheus.PID()})
	}

	conn, err := cli.Dial(grpcAddr, nil, bank.creds.Keys, false)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintf(stdout, "Issuing %d cards...\n", o.Cards)
	cards, err := issueBenchCards(ctx, []*grpc.ClientConn{conn}, o.Cards)
	if err != nil {
		return err
	}
	dataFile := filepath.Join(dir, "payments.json")
	if err := writeGhzData(dataFile, cards, o.API); err != nil {
		return err
	}
	probe, err := newProber(ctx, conn, bank.sink.SearchURL+"/"+bank.sink.Index)
	if err != nil {
		return err
	}

	idle := map[string]float64{}
	var (
		results []fullStep
		caught  books
		catchUp time.Duration
	)
	idleDone := false
	for _, step := range o.Steps {
		if step.Measure && !idleDone {
			// What the bank costs doing nothing, once warm: the baseline of every step.
			fmt.Fprintln(stdout, "Idle for 10s...")
			if idle, err = measureIdle(ctx, procs, 10*time.Second); err != nil {
				return err
			}
			idleDone = true
		}
		fmt.Fprintf(stdout, "%d/s for %s...\n", step.Rate, step.Duration)
		before, err := scrapeDecisions(opsAddr)
		if err != nil {
			return err
		}
		for _, p := range procs {
			p.Start()
		}
		probes := probe.run(ctx, step.Duration, o.Probes)
		rep, err := runGhz(ctx, ghz, grpcAddr, bank.creds.Keys.Merchant, dataFile, o.API, step)
		for _, p := range procs {
			p.Stop()
		}
		if err != nil {
			return err
		}
		// Every step ends with the books caught up (the statements and the index hold every
		// payment), so that no step pays for the backlog of the one before.
		ended := time.Now()
		if caught, err = waitCaughtUp(ctx, bank, opsAddr, 2*time.Minute); err != nil {
			return err
		}
		catchUp = time.Since(ended)
		lags := <-probes
		after, err := scrapeDecisions(opsAddr)
		if err != nil {
			return err
		}
		if !step.Measure {
			continue
		}
		r := fullStep{Rate: step.Rate, Ghz: rep, CPU: map[string]float64{}, Decisions: after - before,
			StmtLag: lags.statement, IndexLag: lags.index, CatchUp: catchUp, CaughtUp: caught.ok()}
		for _, p := range procs {
			r.CPU[p.Name] = p.CPUPercent()
		}
		results = append(results, r)
	}
	if !caught.ok() {
		fmt.Fprintf(stdout, "not caught up %s after the load: %s\n", catchUp.Round(time.Millisecond), caught)
	}
	audit := exec.CommandContext(ctx, bank.bin, "audit", "--brokers", bank.broker.Addr(),
		"--search-url", bank.sink.SearchURL, "--index", bank.sink.Index, "--wait", "30s")
	auditOut, auditErr := audit.CombinedOutput()
	printFull(stdout, results, idle, procs, caught, catchUp, strings.TrimSpace(string(auditOut)), auditErr)
	return nil
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
	Latencies   []struct {
		Percentage int           `json:"percentage"`
		Latency    time.Duration `json:"latency"`
	} `json:"latencyDistribution"`
}

// percentile returns the latency at p percent, or 0 when ghz did not report it.
func (r ghzReport) percentile(p int) time.Duration {
	for _, l := range r.Latencies {
		if l.Percentage == p {
			return l.Latency
		}
	}
	return 0
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

// runGhz runs one step open loop: ghz paces the calls at the rate with enough workers that a
// slow answer does not delay the next call (one worker per 5 ms of the rate's second, at least
// 50), over four connections.
func runGhz(ctx context.Context, ghz, addr, merchantKey, dataFile, api string, step loadgen.Step) (ghzReport, error) {
	call := "payment.PaymentService/Payment"
	args := []string{"--insecure", "--format", "json", "--rps", strconv.Itoa(step.Rate), "--duration", step.Duration.String(),
		"--concurrency", strconv.Itoa(max(50, step.Rate/5)), "--connections", "4", "--timeout", "10s", "--duration-stop", "wait", "--data-file", dataFile}
	if api != "legacy" {
		call = "codebank.v1.PaymentService/Authorize"
		md, _ := json.Marshal(map[string]string{"authorization": "Bearer " + merchantKey})
		args = append(args, "--metadata", string(md))
	}
	args = append(args, "--call", call, addr)
	cmd := exec.CommandContext(ctx, ghz, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil && stdout.Len() == 0 {
		return ghzReport{}, fmt.Errorf("ghz: %v: %s", err, stderr.String())
	}
	var rep ghzReport
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		return ghzReport{}, fmt.Errorf("ghz report: %v", err)
	}
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

// printFull prints the table of every step, the CPU of each process, and the books.
func printFull(w io.Writer, steps []fullStep, idle map[string]float64, procs []*loadgen.ProcStat, caught books, catchUp time.Duration, audit string, auditErr error) {
	fmt.Fprintf(w, "\nThe whole bank of make run (broker, OpenSearch, Kafka Connect, codebank all), ghz open loop, %d cores\n\n", numCPU())
	fmt.Fprintf(w, "| rate/s | achieved/s | errors | p50 ms | p90 ms | p99 ms | CPU %% of one core (all but ghz) | CPU µs/payment | statement lag p50/p99 ms | index lag p50/p99 ms | caught up after the step |\n")
	fmt.Fprintf(w, "|---:|---:|---|---:|---:|---:|---:|---:|---|---|---|\n")
	for _, s := range steps {
		var cpu float64
		for _, p := range procs {
			cpu += s.CPU[p.Name]
		}
		errs := "0"
		if n := s.Ghz.errors(); n > 0 {
			var parts []string
			for msg, c := range s.Ghz.Errors {
				parts = append(parts, fmt.Sprintf("%d× %.120s", c, msg))
			}
			sort.Strings(parts)
			errs = strings.Join(parts, "; ")
		}
		perPayment := 0.0
		if s.Decisions > 0 {
			perPayment = cpu / 100 * s.Ghz.Total.Seconds() / s.Decisions * 1e6
		}
		up := s.CatchUp.Round(10 * time.Millisecond).String()
		if !s.CaughtUp {
			up = "NOT within " + up
		}
		fmt.Fprintf(w, "| %d | %.0f | %s | %s | %s | %s | %.0f | %.0f | %s / %s (n=%d) | %s / %s (n=%d) | %s |\n",
			s.Rate, s.Ghz.Rps, errs, ms(s.Ghz.percentile(50)), ms(s.Ghz.percentile(90)), ms(s.Ghz.percentile(99)), cpu, perPayment,
			ms(quantile(s.StmtLag, 0.5)), ms(quantile(s.StmtLag, 0.99)), len(s.StmtLag),
			ms(quantile(s.IndexLag, 0.5)), ms(quantile(s.IndexLag, 0.99)), len(s.IndexLag), up)
	}
	fmt.Fprintf(w, "\n| process | CPU %% of one core: idle, then by step |\n|---|---|\n")
	for _, p := range procs {
		cells := []string{fmt.Sprintf("idle: %.0f", idle[p.Name])}
		for _, s := range steps {
			cells = append(cells, fmt.Sprintf("%d/s: %.0f", s.Rate, s.CPU[p.Name]))
		}
		fmt.Fprintf(w, "| %s | %s |\n", p.Name, strings.Join(cells, ", "))
	}
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
