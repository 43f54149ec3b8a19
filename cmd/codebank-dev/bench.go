package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/devenv/loadgen"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank-dev bench [flags]", stdout, stderr)
	codebank := fs.String("codebank", "", "the codebank binary to run (default: built into a temporary directory)")
	schedule := fs.String("schedule", "~2000:30s,7000:60s,10000:60s", "load steps RATE:DURATION, comma-separated; ~ marks warm-up steps (default: 30 s for the processes to settle after the cards are issued, then the two rates of the targets)")
	ncards := fs.Int("cards", 100_000, "cards issued before the load")
	hotFraction := fs.Float64("hot-fraction", 0.01, "fraction of cards that are hot")
	hotShare := fs.Float64("hot-share", 0.2, "share of payments that go to hot cards")
	api := fs.String("api", "authorize", "API to load: authorize (codebank.v1) or legacy (payment.PaymentService)")
	instances := fs.Int("instances", 1, "ingress+authorizer process pairs to start")
	combined := fs.Bool("combined", false, "run each ingress+authorizer pair as one process (codebank all --statements=false --web=false)")
	partitions := fs.Int("partitions", 6, "partitions of the card-keyed topics")
	acks := fs.String("acks", "all", "producer acks of the started processes: all or leader")
	flush := fs.Duration("flush-frequency", 0, "producer flush frequency of the started processes")
	maxInFlight := fs.Int("max-inflight", 20_000, "most requests outstanding at once")
	conns := fs.Int("conns", 4, "gRPC connections per ingress")
	profile := fs.String("profile", "", "directory for CPU profiles of the started processes and the load generator (loadgen.pprof) during the last step; with --full: of codebank all during each measured step but the soak's, with where its CPU went by layer")
	addr := fs.String("addr", "", "load an already running Code Bank at this gRPC address instead of starting one")
	gomaxprocs := fs.String("gomaxprocs", "1", "GOMAXPROCS of the started processes: 1, as they share the machine's cores with the broker and each other (empty: Go's default)")
	gogc := fs.Int("gogc", 400, "GOGC of the started processes and the load generator: fewer collections for more memory")
	brokerProps := fs.String("broker-props", "", "extra broker settings, k=v,k=v (e.g. num.io.threads=2)")
	recovery := fs.Int("recovery", 0, "instead of the load: measure the recovery of an authorizer table of this many accounts")
	scale := fs.Int("scale", 0, "instead of the load: with an authorizer table of this many accounts, measure the pause of codebank partitions grow and the failover of two authorizers with and without hot standby")
	full := fs.Bool("full", false, "instead of the synchronous path: the whole bank of make run (with analytics and Prometheus), loaded by ghz by the reference method of BENCHMARKS.md (cold 200/s for 15s, warm-up 1000/s for 30s, 10s idle, each of --rates --runs times for 15s, then --capacity), with statement and index lag and the CPU per payment of every process; --cards defaults to 1000, --api to legacy; --schedule replaces --rates")
	rates := fs.String("rates", "200,1000,2000,3000", "with --full: the rates each run --runs times")
	runs := fs.Int("runs", 3, "with --full: runs of 15s at each rate; the median run is reported")
	capacity := fs.String("capacity", "4000:60s", "with --full: the capacity step, RATE:DURATION, after the rates (empty: none)")
	cold := fs.Bool("cold", true, "with --full: 200/s for 15s right after the cards are issued, before any warm-up (the first minute)")
	soak := fs.Duration("soak", 0, "with --full: after the rest, --soak-rate for this long in runs of a minute (e.g. 30m), with each minute's latency, memory and lag")
	soakRate := fs.Int("soak-rate", 1000, "with --full: the rate of --soak")
	probes := fs.Float64("probes", 2, "with --full: payments a second that measure the statement and index lag beside the load")
	peakJIT := fs.Bool("peak-jit", false, "with --full: OpenSearch and Kafka Connect compile fully (C2), as codebank-dev run --peak-jit")
	fixedHeap := fs.Bool("fixed-heap", true, "with --full: OpenSearch's and Connect's heaps start at their maximum, as codebank-dev run --fixed-heap (false: they grow)")
	helperNice := fs.Int("helper-nice", DefaultHelperNice, "with --full: niceness of OpenSearch, Kafka Connect and Prometheus, as codebank-dev run --helper-nice")
	brokerGC := fs.String("broker-gc", "", "with --full: the broker's garbage collector, g1 (default) or parallel")
	brokerJVM := fs.String("broker-jvm", "", "with --full: more JVM options of the broker, space-separated (e.g. -XX:TieredStopAtLevel=1)")
	bankEnv := fs.String("bank-env", "", "with --full: more environment for codebank all, K=V,K=V (e.g. GOMAXPROCS=1,GOGC=200), to compare settings")
	warm := fs.Duration("warm-up", DefaultWarmUp, "with --full: how long the bank warms up before it is ready, as codebank-dev run --warm-up")
	withPrometheus := fs.Bool("prometheus", true, "with --full: also run the local Prometheus of make run (scraping every 5s, rules loaded), its CPU counted")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	if *full {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		o := fullOptions{Codebank: *codebank, Cards: 1000, API: "legacy", Probes: *probes, PeakJIT: *peakJIT, FixedHeap: *fixedHeap, Prometheus: *withPrometheus, HelperNice: *helperNice, ReadyWarmUp: *warm,
			WarmUp: fullWarmUp, Idle: fullIdle, Runs: *runs, RunFor: fullRunFor, Soak: *soak, SoakRate: *soakRate}
		if *cold {
			o.Cold = fullCold
		}
		if set["cards"] {
			o.Cards = *ncards
		}
		if set["api"] {
			o.API = *api
		}
		o.BrokerProps = parseProps(*brokerProps)
		o.BrokerGC, o.BrokerJVM = *brokerGC, strings.Fields(*brokerJVM)
		if set["partitions"] {
			o.Partitions = *partitions
		}
		for k, v := range parseProps(*bankEnv) {
			o.BankEnv = append(o.BankEnv, k+"="+v)
		}
		if o.Profile = *profile; o.Profile != "" {
			o.BankEnv = append(o.BankEnv, "CODEBANK_PPROF=true")
		}
		var err error
		if set["schedule"] {
			if o.Steps, err = loadgen.ParseSchedule(*schedule); err != nil {
				return err
			}
		} else {
			for _, r := range strings.Split(*rates, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(r))
				if err != nil || n <= 0 {
					return fmt.Errorf("--rates: %q is not a rate", r)
				}
				o.Rates = append(o.Rates, n)
			}
		}
		if *capacity != "" {
			steps, err := loadgen.ParseSchedule(*capacity)
			if err != nil || len(steps) != 1 {
				return fmt.Errorf("--capacity: want RATE:DURATION, got %q", *capacity)
			}
			o.Capacity = steps[0]
		}
		return benchFull(ctx, stdout, o)
	}
	os.Setenv("GOGC", strconv.Itoa(*gogc)) // inherited by the started processes
	debug.SetGCPercent(*gogc)
	if *scale > 0 {
		return benchScale(ctx, stdout, *codebank, *scale, *partitions)
	}
	if *recovery > 0 {
		// The authorizer recovers alone beside the broker: Go's own GOMAXPROCS unless asked.
		procs := ""
		fs.Visit(func(f *flag.Flag) {
			if f.Name == "gomaxprocs" {
				procs = *gomaxprocs
			}
		})
		return benchRecovery(ctx, stdout, *codebank, *recovery, *partitions, procs)
	}
	steps, err := loadgen.ParseSchedule(*schedule)
	if err != nil {
		return err
	}
	if *api != "authorize" && *api != "legacy" {
		return fmt.Errorf("--api must be authorize or legacy")
	}

	// Start-up: a broker and the processes, unless a running bank was given.
	var procs []*loadgen.ProcStat
	addrs := []string{*addr}
	var pprofAddrs []string
	var ingressHTTP []string // the started ingresses' operations addresses, for their metrics
	// The keys to call a running bank with: the environment's, or make run's.
	keys := grpcgateway.CallerKeys{Merchant: os.Getenv("CODEBANK_MERCHANT_KEY"), Admin: os.Getenv("CODEBANK_ADMIN_KEY"), Insecure: true}
	if keys.Merchant == "" {
		if m, err := readEnvFile(filepath.Join(".data", "credentials.env")); err == nil {
			keys.Merchant, keys.Admin = m["CODEBANK_MERCHANT_KEY"], m["CODEBANK_ADMIN_KEY"]
		}
	}
	var legsBefore legTotals
	method := "Authorize"
	if *api == "legacy" {
		method = "legacy.Payment"
	}
	if *addr == "" {
		dir, err := os.MkdirTemp("", "codebank-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		fmt.Fprintf(stdout, "Starting Kafka...\n")
		broker, err := localkafka.Start(ctx, localkafka.Options{DataDir: filepath.Join(dir, "kafka"), HeapMB: 1024, ExtraProperties: parseProps(*brokerProps)})
		if err != nil {
			return err
		}
		defer broker.Stop()
		procs = append(procs, &loadgen.ProcStat{Name: "kafka broker", PID: broker.PID()})
		self := *codebank
		if self == "" {
			if self, err = buildCodebank(ctx, dir); err != nil {
				return err
			}
		}
		creds, err := loadDevCredentials(filepath.Join(dir, "credentials"))
		if err != nil {
			return err
		}
		keys = creds.Keys
		childEnv := creds.Env
		if *gomaxprocs != "" {
			childEnv = append(childEnv, "GOMAXPROCS="+*gomaxprocs)
		}
		setup := []string{"--brokers", broker.Addr(), "--partitions", strconv.Itoa(*partitions), "--reply-partitions", strconv.Itoa(max(8, *instances)),
			"--acks", *acks, "--flush-frequency", flush.String(), "--log-level", "warn"}
		common := append(setup, "--pprof")
		if *api == "legacy" {
			common = append(common, "--legacy-merchant", devMerchant)
		}
		if out, err := exec.CommandContext(ctx, self, append([]string{"setup"}, setup...)...).CombinedOutput(); err != nil {
			return fmt.Errorf("setup: %v: %s", err, out)
		}
		addrs = nil
		for i := 0; i < *instances; i++ {
			ops, grpcAddr, httpAddr := freeAddr(), freeAddr(), freeAddr()
			storage := filepath.Join(dir, fmt.Sprintf("authorizer-%d", i))
			if *combined {
				p, err := startChild(self, filepath.Join(dir, fmt.Sprintf("all-%d.log", i)), childEnv,
					append([]string{"all", "--statements=false", "--web=false", "--storage-dir", storage, "--grpc-addr", grpcAddr, "--http-addr", httpAddr,
						"--ops-addr", ops, "--reply-partition", strconv.Itoa(i)}, common...)...)
				if err != nil {
					return err
				}
				defer p.stop()
				if err := p.waitReady(ctx, "http://"+ops+"/readyz", time.Minute); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Instance %d: gRPC %s, operations %s (metrics, pprof)\n", i, grpcAddr, ops)
				procs = append(procs, &loadgen.ProcStat{Name: fmt.Sprintf("ingress+authorizer %d", i), PID: p.cmd.Process.Pid})
				addrs = append(addrs, grpcAddr)
				pprofAddrs = append(pprofAddrs, ops)
				ingressHTTP = append(ingressHTTP, ops)
				continue
			}
			inOps := freeAddr()
			a, err := startChild(self, filepath.Join(dir, fmt.Sprintf("authorizer-%d.log", i)), childEnv,
				append([]string{"authorizer", "--storage-dir", storage, "--ops-addr", ops}, common...)...)
			if err != nil {
				return err
			}
			defer a.stop()
			in, err := startChild(self, filepath.Join(dir, fmt.Sprintf("ingress-%d.log", i)), childEnv,
				append([]string{"ingress", "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--ops-addr", inOps, "--reply-partition", strconv.Itoa(i)}, common...)...)
			if err != nil {
				return err
			}
			defer in.stop()
			if err := a.waitReady(ctx, "http://"+ops+"/readyz", time.Minute); err != nil {
				return err
			}
			if err := in.waitReady(ctx, "http://"+inOps+"/readyz", time.Minute); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Instance %d: ingress gRPC %s, operations %s; authorizer operations %s (metrics, pprof)\n", i, grpcAddr, inOps, ops)
			procs = append(procs, &loadgen.ProcStat{Name: fmt.Sprintf("authorizer %d", i), PID: a.cmd.Process.Pid},
				&loadgen.ProcStat{Name: fmt.Sprintf("ingress %d", i), PID: in.cmd.Process.Pid})
			addrs = append(addrs, grpcAddr)
			pprofAddrs = append(pprofAddrs, ops, inOps)
			ingressHTTP = append(ingressHTTP, inOps)
		}
	}
	procs = append(procs, &loadgen.ProcStat{Name: "load generator", PID: os.Getpid()})

	var clients []*grpc.ClientConn
	for _, a := range addrs {
		for i := 0; i < *conns; i++ {
			c, err := cli.Dial(a, nil, keys, false)
			if err != nil {
				return err
			}
			defer c.Close()
			clients = append(clients, c)
		}
	}

	// Cards.
	fmt.Fprintf(stdout, "Issuing %d cards...\n", *ncards)
	start := time.Now()
	cards, err := issueBenchCards(ctx, clients, *ncards)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Issued %d cards in %v (%.0f/s)\n", len(cards), time.Since(start).Round(time.Millisecond), float64(len(cards))/time.Since(start).Seconds())

	// Load.
	hot := max(1, int(float64(len(cards))**hotFraction))
	pick := func(r *rand.Rand) *benchCard {
		if r.Float64() < *hotShare {
			return &cards[r.IntN(hot)]
		}
		return &cards[hot+r.IntN(len(cards)-hot)]
	}
	var rngs sync.Pool
	rngs.New = func() any { return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())) }
	var next atomic.Uint64
	do := func(ctx context.Context, seq int) loadgen.Outcome {
		r := rngs.Get().(*rand.Rand)
		c := pick(r)
		amount := 100 + r.Int64N(20_000)
		rngs.Put(r)
		conn := clients[next.Add(1)%uint64(len(clients))]
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		var err error
		if *api == "legacy" {
			_, err = paymentpb.NewPaymentServiceClient(conn).Payment(ctx, &paymentpb.PaymentRequest{
				CreditCard: &paymentpb.PaymentRequest_CreditCard{Name: c.holder, Number: c.number, ExpirationMonth: c.month, ExpirationYear: c.year, Cvv: c.cvvInt},
				Amount:     float64(amount) / 100, Store: "Bench Store", Description: "bench"})
		} else {
			_, err = codebankv1.NewPaymentServiceClient(conn).Authorize(ctx, &codebankv1.AuthorizeRequest{
				Card:        &codebankv1.CardDetails{Number: c.number, HolderName: c.holder, ExpiryMonth: c.month, ExpiryYear: c.year, Cvv: c.cvv},
				AmountCents: amount, Store: "Bench Store", Description: "bench"})
		}
		if err != nil {
			return loadgen.Outcome{Err: status.Code(err).String()}
		}
		return loadgen.Outcome{}
	}

	// Resource accounting and profiles cover the last measured step.
	last := len(steps) - 1
	lastStart := time.Duration(0)
	for _, s := range steps[:last] {
		lastStart += s.Duration
	}
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		select {
		case <-time.After(lastStart):
		case <-sampleCtx.Done():
			return
		}
		for _, p := range procs {
			p.Start()
		}
		legsBefore, _ = scrapeLegs(ingressHTTP, method)
		if *profile != "" {
			for i, a := range pprofAddrs {
				go fetchProfile(a, filepath.Join(*profile, fmt.Sprintf("cpu-%d.pprof", i)), min(30*time.Second, steps[last].Duration-5*time.Second))
			}
			go profileSelf(filepath.Join(*profile, "loadgen.pprof"), min(30*time.Second, steps[last].Duration-5*time.Second))
		}
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				for _, p := range procs {
					p.Sample()
				}
			case <-sampleCtx.Done():
				return
			}
		}
	}()
	fmt.Fprintf(stdout, "Load: %s, %s API, %d%% of payments on %d hot cards\n", *schedule, *api, int(*hotShare*100), hot)
	results := loadgen.Run(ctx, steps, *maxInFlight, do)
	for _, p := range procs {
		p.Stop()
	}
	stopSampling()
	sampler.Wait()
	legsAfter, err := scrapeLegs(ingressHTTP, method)

	printBench(stdout, results, procs, *instances, *partitions, *acks, *flush)
	if len(ingressHTTP) > 0 && err == nil && legsBefore != nil && len(results) > 0 {
		printLegs(stdout, legsBefore, legsAfter, results[len(results)-1].Mean())
	}
	return nil
}

type benchCard struct {
	number, holder, cvv string
	month, year, cvvInt int32
}

func issueBenchCards(ctx context.Context, clients []*grpc.ClientConn, n int) ([]benchCard, error) {
	cards := make([]benchCard, n)
	var wg sync.WaitGroup
	var next atomic.Int64
	errs := make(chan error, 256)
	for w := 0; w < 256; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(n) || ctx.Err() != nil {
					return
				}
				holder := fmt.Sprintf("Bench Holder %d", i)
				cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
				resp, err := codebankv1.NewCardServiceClient(clients[i%int64(len(clients))]).IssueCard(cctx, &codebankv1.IssueCardRequest{HolderName: holder, LimitCents: 100_000_000_000})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("issue card: %w", err)
					return
				}
				c := resp.GetCard()
				cvv, _ := strconv.Atoi(resp.GetCvv())
				cards[i] = benchCard{number: c.GetNumber(), holder: holder, cvv: resp.GetCvv(), month: c.GetExpiryMonth(), year: c.GetExpiryYear(), cvvInt: int32(cvv)}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	return cards, nil
}

func printBench(w io.Writer, results []loadgen.Result, procs []*loadgen.ProcStat, instances, partitions int, acks string, flush time.Duration) {
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 1, 64) }
	fmt.Fprintf(w, "\nSetup: %d ingress+authorizer pair(s), %d partitions, acks=%s, flush=%v, GOGC=%s, %d cores\n",
		instances, partitions, acks, flush, os.Getenv("GOGC"), numCPU())
	fmt.Fprintf(w, "\n| target/s | achieved/s | sent | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |\n|---:|---:|---:|---|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		var errs []string
		for code, n := range r.Errors {
			errs = append(errs, fmt.Sprintf("%s:%d", code, n))
		}
		sort.Strings(errs)
		e := strings.Join(errs, " ")
		if e == "" {
			e = "0"
		}
		fmt.Fprintf(w, "| %d | %.0f | %d | %s | %s | %s | %s | %s | %s |\n", r.Step.Rate, r.Achieved(), r.Sent, e,
			ms(r.Quantile(0.5)), ms(r.Quantile(0.9)), ms(r.Quantile(0.99)), ms(r.Quantile(0.999)), ms(r.Quantile(1)))
	}
	fmt.Fprintf(w, "\n| process (last step) | CPU %% of one core | max RSS MB |\n|---|---:|---:|\n")
	for _, p := range procs {
		fmt.Fprintf(w, "| %s | %.0f | %.0f |\n", p.Name, p.CPUPercent(), float64(p.MaxRSS())/(1<<20))
	}
}

// parseProps reads k=v,k=v.
func parseProps(s string) map[string]string {
	props := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			props[k] = v
		}
	}
	return props
}

func numCPU() int {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return max(1, strings.Count(string(b), "processor\t:"))
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer l.Close()
	return l.Addr().String()
}

func fetchProfile(addr, file string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	os.MkdirAll(filepath.Dir(file), 0o755)
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	io.Copy(f, resp.Body)
}

// profileSelf writes a CPU profile of the load generator itself, over d.
func profileSelf(file string, d time.Duration) {
	os.MkdirAll(filepath.Dir(file), 0o755)
	f, err := os.Create(file)
	if err != nil {
		return
	}
	defer f.Close()
	if pprof.StartCPUProfile(f) != nil {
		return
	}
	time.Sleep(d)
	pprof.StopCPUProfile()
}
