package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/buildinfo"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// roles says which components a process runs.
type roles struct {
	ingress    bool
	authorizer bool
	statements bool
	web        bool // the store's pages and the bank's statement and dashboard pages
}

func (r roles) String() string {
	switch {
	case r.ingress && r.authorizer:
		return "all"
	case r.ingress:
		return "ingress"
	case r.statements:
		return "statements"
	case r.web:
		return "web"
	default:
		return "authorizer"
	}
}

// api reports whether the process serves the bank's gRPC/REST API.
func (r roles) api() bool { return r.ingress || r.statements }

// roleCommand returns the command that runs roles r, with the flags that register adds to the
// Kafka ones (and may change r by).
func roleCommand(name string, r roles, register func(*flag.FlagSet, *config, *roles)) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		var c config
		fs := cli.NewFlagSet("codebank "+name+" [flags]", stdout, stderr)
		c.kafkaFlags(fs)
		c.demoSecretsFlag(fs)
		register(fs, &c, &r)
		if err := cli.Parse(fs, args); err != nil {
			return cli.HelpOK(err)
		}
		log, err := c.logger(stderr)
		if err != nil {
			return err
		}
		return serve(ctx, c, log, r)
	}
}

var (
	runAll = roleCommand("all", roles{ingress: true, authorizer: true}, func(fs *flag.FlagSet, c *config, r *roles) {
		c.ingressFlags(fs, ":50051", ":8080")
		c.tokenKeyFlag(fs)
		c.cardKeysFlag(fs)
		c.storageFlag(fs)
		c.lockoutFlags(fs)
		fs.BoolVar(&r.statements, "statements", true, "also run the statements processor and StatementService")
		c.sinkLagFlag(fs)
		fs.BoolVar(&r.web, "web", true, "also serve the store's and the bank's pages")
		c.webFlags(fs)
	})
	runIngress = roleCommand("ingress", roles{ingress: true}, func(fs *flag.FlagSet, c *config, _ *roles) {
		c.ingressFlags(fs, ":50051", ":8080")
		c.tokenKeyFlag(fs)
		c.cardKeysFlag(fs)
	})
	runAuthorizer = roleCommand("authorizer", roles{authorizer: true}, func(fs *flag.FlagSet, c *config, _ *roles) {
		c.storageFlag(fs)
		c.tokenKeyFlag(fs)
		c.lockoutFlags(fs)
		c.opsFlags(fs)
	})
	runStatements = roleCommand("statements", roles{statements: true}, func(fs *flag.FlagSet, c *config, _ *roles) {
		c.ingressFlags(fs, ":50052", ":8082")
		c.storageFlag(fs)
		c.sinkLagFlag(fs)
	})
	runWeb = roleCommand("web", roles{web: true}, func(fs *flag.FlagSet, c *config, _ *roles) {
		fs.StringVar(&c.HTTPAddr, "http-addr", ":8090", httpAddrUsage)
		c.serverTLSFlags(fs)
		c.storageFlag(fs)
		fs.StringVar(&c.BankAddr, "bank-addr", "localhost:50051", "gRPC address of the bank's ingress (payments, card verification)")
		fs.StringVar(&c.StatementsAddr, "statements-addr", "", "gRPC address serving statements (default: --bank-addr)")
		c.webFlags(fs)
		c.opsFlags(fs)
	})
)

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := cli.NewFlagSet("codebank setup [flags] (with --search-url, also the results indices; with --connect-url, the Connect sink)", stdout, stderr)
	c.kafkaFlags(fs)
	var sf searchFlags
	sf.register(fs, "")
	connectURL := fs.String("connect-url", "", "Kafka Connect REST URL: register the connector that indexes the results topic (needs --search-url)")
	connectCA := fs.String("connect-search-ca", "", "the CA file of --search-ca as the Connect workers see it, for the connector (default: --search-ca, for a worker on this machine)")
	replicas := fs.Int("search-replicas", 1, "replicas of each results index: 1 on a cluster, 0 on one node")
	retention := fs.Int("retention-months", 12, retentionUsage)
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	var sink analytics.Sink
	if sf.url != "" {
		s, err := sf.search()
		if err != nil {
			return err
		}
		sink = analytics.Sink{SearchURL: s.URL, SearchCA: s.CAFile, SearchUser: s.User, SearchPassword: s.Password,
			ConnectURL: *connectURL, ConnectCA: *connectCA, Index: sf.index, Replicas: *replicas, RetentionMonths: *retention}
	} else if *connectURL != "" {
		return fmt.Errorf("%w: --connect-url needs --search-url", cli.ErrUsage)
	}
	// The authorizer's topics at their live generation, when the bank has moved.
	state, err := generations.Read(ctx, c.kafka(), c.topology())
	if err != nil {
		state = generations.Initial(c.topology()) // a new cluster (or none yet: createTopics waits)
	}
	topo := state.Live(c.topology())
	if err := createTopics(ctx, c.kafka(), topo, c.storeTopology()); err != nil {
		return err
	}
	for _, t := range append(topo.All(), c.storeTopology().All()...) {
		fmt.Fprintf(stdout, "%-44s %3d partitions  key: %s\n", t.Name, t.Partitions, t.Key)
	}
	if sink.SearchURL == "" {
		return nil
	}
	lc, err := analytics.Setup(ctx, c.topology(), sink)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "results indices %s-YYYY.MM (%d replicas) read through the alias %s on %s\n", sink.Index, sink.Replicas, sink.Index, sink.SearchURL)
	switch {
	case sink.RetentionMonths == 0:
		fmt.Fprintf(stdout, "retention: none, every index is kept\n")
	case lc == analytics.None:
		fmt.Fprintf(stdout, "retention: the search server has neither ILM nor ISM: nothing deletes old indices by itself; run "+
			"`codebank analytics prune --retention-months %d` once a month (docs/operations.md, \"Search\")\n", sink.RetentionMonths)
	default:
		fmt.Fprintf(stdout, "retention: %s policy %s deletes each index %d months after its month\n", lc, sink.Index, sink.RetentionMonths)
	}
	if sink.ConnectURL != "" {
		fmt.Fprintf(stdout, "connector %s on %s: running\n", analytics.ConnectorName(c.topology()), sink.ConnectURL)
	}
	return nil
}

// createTopics creates the bank's and the store's topics, waiting up to a minute for the
// cluster.
func createTopics(ctx context.Context, kc kafkaconf.Config, topo processors.Topology, st store.Topology) error {
	return withAdmin(ctx, kc, func(admin sarama.ClusterAdmin) (bool, error) {
		if err := topo.Ensure(ctx, admin); err != nil {
			return errors.Is(err, processors.ErrPartitionMismatch), err
		}
		err := st.Ensure(ctx, admin)
		return errors.Is(err, processors.ErrPartitionMismatch), err
	})
}

// waitForTopics waits until every topic exists with its partition count: `codebank setup`
// creates them, and a serving role never does.
func waitForTopics(ctx context.Context, kc kafkaconf.Config, topics []processors.Topic, log *slog.Logger) error {
	warned := false
	for {
		var missing []string
		err := withAdmin(ctx, kc, func(admin sarama.ClusterAdmin) (bool, error) {
			var err error
			missing, err = processors.MissingTopics(admin, topics)
			return errors.Is(err, processors.ErrPartitionMismatch), err
		})
		if err != nil || len(missing) == 0 {
			return err
		}
		if !warned {
			log.Warn("waiting for the topics: run codebank setup", "missing", missing)
			warned = true
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// withAdmin calls do with a cluster admin until it succeeds or says its error is final, for
// up to a minute while the cluster cannot be reached.
func withAdmin(ctx context.Context, kc kafkaconf.Config, do func(sarama.ClusterAdmin) (final bool, err error)) error {
	if err := kc.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
		if err == nil {
			var final bool
			final, err = do(admin)
			admin.Close()
			if err == nil || final {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka at %v: %w", kc.Brokers, err)
		case <-time.After(time.Second):
		}
	}
}

// serve runs the chosen roles until ctx ends. It builds every component first, then starts
// them together under one errgroup that owns every goroutine, and waits for them.
func serve(ctx context.Context, c config, log *slog.Logger, r roles) error {
	// Configuration, secrets first: a role refuses to start without those it needs.
	build := buildinfo.Read()
	log.Info("starting codebank", "role", r.String(), "version", build.Version, "revision", build.Revision, "config", c.logValue())
	kc, topo := c.kafka().ShareProducer(), c.topology() // one producer for the process (ShareProducer)
	reg := newRegistry()
	var keys card.Keys
	if r.ingress || r.authorizer {
		var err error
		if keys, err = c.keys(r.ingress); err != nil {
			return err
		}
	}
	if r.authorizer && (c.LockAfter > authorizer.MaxLockAfter || c.LockWindow <= 0) {
		return fmt.Errorf("%w: --lock-after must be 0 to %d and --lock-window positive, got %d and %s", cli.ErrUsage, authorizer.MaxLockAfter, c.LockAfter, c.LockWindow)
	}
	serverTLS, err := c.serverTLS()
	if err != nil {
		return err
	}
	var pages pageSecrets
	if r.web {
		if pages, err = c.pageSecrets(); err != nil {
			return err
		}
		if err := c.checkBankTransport(r); err != nil {
			return err
		}
	}
	var apiKeys *apikey.Store
	if r.api() {
		if c.APIKeysFile == "" {
			return fmt.Errorf("%w: the API keys file of the callers: set CODEBANK_API_KEYS_FILE or --api-keys-file (codebank keys new writes its lines)", cli.ErrUsage)
		}
		if apiKeys, err = apikey.Open(c.APIKeysFile, reg, log, c.checkKeysFile); err != nil {
			return err
		}
	}
	var legacy *grpcgateway.Legacy
	if c.LegacyMerchant != "" {
		name, ok := apiKeys.Set().MerchantName(c.LegacyMerchant)
		if !ok {
			return fmt.Errorf("%w: --legacy-merchant %q: no merchant key of the keys file names it", cli.ErrUsage, c.LegacyMerchant)
		}
		legacy = &grpcgateway.Legacy{Merchant: c.LegacyMerchant, MerchantName: name}
		log.Warn("serving the original contract without credentials: its callers are booked as a merchant", "merchant", c.LegacyMerchant)
	}

	// Topics: created by `codebank setup`; every role waits for them, those of the authorizer
	// at their live generation (internal/generations).
	base := topo
	if err := waitForTopics(ctx, kc, []processors.Topic{base.Generations()}, log); err != nil {
		return err
	}
	gens, err := generations.NewWatcher(ctx, kc, base)
	if err != nil {
		return err
	}
	state, _ := gens.Current()
	topo = state.Live(base)
	topics := topo.All()
	if r.web {
		topics = append(topics, c.storeTopology().All()...)
	}
	if err := waitForTopics(ctx, kc, topics, log); err != nil {
		return err
	}

	// Components, all built before any starts.
	p := process{groups: processors.NewGroupStats()}
	defer p.close(log)
	if err := reg.Register(p.groups); err != nil {
		return err
	}
	if apiKeys != nil {
		p.addChecked("api keys", apiKeys.Run, apiKeys.Ready)
	}
	p.add("generations", gens.Run, nil)
	if r.authorizer {
		a := authorizer.New(authorizer.Config{Topology: base, LockAfter: lockAfter(c.LockAfter), LockWindow: c.LockWindow}, authorizer.Deps{Keys: keys, Registerer: reg, Log: log})
		akc := kc
		akc.HotStandby = c.HotStandby
		g := &generational{gens: gens, base: base, a: a, kc: akc, storageDir: c.StorageDir, stats: p.groups, log: log}
		p.add("authorizer", g.Run, g.Ready)
	}
	var reader *statements.Reader
	if r.statements {
		sp := statements.New(statements.Config{Topology: topo}, statements.Deps{Registerer: reg, Log: log})
		// Off the synchronous path: patient consumers (--fetch-wait).
		patient := kc.Patient(c.FetchWait)
		skc := patient
		skc.HotStandby = c.HotStandby
		g, err := processors.NewGroup(skc, sp.Graph(), c.StorageDir, log)
		if err != nil {
			return err
		}
		p.groups.Add(g)
		view, err := processors.NewView(patient, topo.StatementLines(), filepath.Join(c.StorageDir, "views"), log)
		if err != nil {
			return err
		}
		reader = statements.NewReader(view)
		p.add("statements", g.Run, g.Ready)
		p.add("statements view", view.Run, view.Ready)
	}
	// Consumer lag of the groups this process runs, read from Kafka at each scrape; the
	// authorizer's at its live generation, and the previous one's while it is forwarded.
	var static []processors.GroupInputs
	if r.statements {
		static = append(static, processors.GroupInputs{Group: string(topo.StatementsGroup()),
			Topics: []string{topo.Results().Name}})
		if c.SinkLag { // Kafka Connect names a sink's group connect-<connector>
			static = append(static, processors.GroupInputs{Group: "connect-" + analytics.ConnectorName(base), Topics: []string{topo.Results().Name}})
		}
	}
	if r.web {
		st := c.storeTopology()
		static = append(static, processors.GroupInputs{Group: string(st.Group()), Topics: []string{st.Events().Name}})
	}
	lagGroups := func() []processors.GroupInputs {
		if !r.authorizer {
			return static
		}
		state, _ := gens.Current()
		tops := []processors.Topology{state.Live(base)}
		if prev, ok := state.Prev(base); ok {
			tops = append(tops, prev)
		}
		out := slices.Clone(static)
		for _, t := range tops {
			out = append(out, processors.GroupInputs{Group: string(t.AuthorizerGroup()), Topics: []string{t.PaymentRequests().Name, t.CardCommands().Name}})
		}
		return out
	}
	if r.authorizer || len(static) > 0 {
		lag := processors.NewLag(kc, lagGroups, log)
		if err := reg.Register(lag); err != nil {
			return err
		}
		p.closeWith(lag.Close)
	}

	var grpcL, httpL, opsL net.Listener
	if r.api() {
		if grpcL, err = p.listen(c.GRPCAddr); err != nil {
			return err
		}
	}
	if c.HTTPAddr != "" {
		if httpL, err = p.listen(c.HTTPAddr); err != nil {
			return err
		}
	}
	if c.OpsAddr != "" {
		if opsL, err = p.listen(c.OpsAddr); err != nil {
			return err
		}
	}
	var routes []func(*http.ServeMux)
	if r.web {
		bankAddr, statementsAddr := c.BankAddr, c.StatementsAddr
		if r.ingress { // the store is a client of the bank like any checkout: it calls this process's own port
			bankAddr, statementsAddr = cli.Loopback(grpcL.Addr().String()), cli.Loopback(grpcL.Addr().String())
		}
		pages, err := newPages(c, pages, kc, bankAddr, statementsAddr, reg, log, &p)
		if err != nil {
			return err
		}
		routes = append(routes, pages.Register)
	}
	var servers []func(context.Context) error
	switch {
	case r.api():
		bank, err := grpcgateway.NewKafkaBank(grpcgateway.BankConfig{Kafka: kc, Topology: topo, ReplyPartition: c.ReplyPartition, MaxInFlight: c.MaxInFlight},
			grpcgateway.BankDeps{Registerer: reg, Log: log})
		if err != nil {
			return err
		}
		p.add("replies", bank.Run, bank.Ready)
		p.closeWith(bank.Close)
		if r.ingress {
			p.add("generation of the requests", followGenerations(gens, base, bank), nil)
		}
		srv := grpcgateway.New(grpcgateway.Config{StatementsOnly: !r.ingress, RequestTimeout: c.RequestTimeout, Currency: c.Currency,
			Legacy: legacy, Reflection: c.Reflection, TLS: serverTLS},
			grpcgateway.Deps{Bank: bank, Statements: reader, Keys: keys, APIKeys: apiKeys, Registerer: reg, Log: log, Routes: routes})
		servers = append(servers, func(ctx context.Context) error { return srv.Serve(ctx, grpcL, httpL) })
	case httpL != nil:
		mux := http.NewServeMux()
		for _, register := range routes {
			register(mux)
		}
		log.Info("listening", "http", httpL.Addr().String())
		servers = append(servers, func(ctx context.Context) error { return serveHTTP(ctx, httpL, mux, serverTLS) })
	}
	if opsL != nil {
		ops := http.NewServeMux()
		grpcgateway.OpsRoutes(reg, p.notReady, c.Pprof)(ops)
		log.Info("operations endpoints listening", "ops", opsL.Addr().String())
		servers = append(servers, func(ctx context.Context) error { return serveHTTP(ctx, opsL, ops, nil) })
	}

	// Start, then wait: errgroup cancels ctx on the first error or on a signal.
	g, ctx := errgroup.WithContext(ctx)
	p.start(ctx, g, log)
	for _, serve := range servers {
		g.Go(func() error { return serve(ctx) })
	}
	err = g.Wait()
	log.Info("codebank stopped", "role", r.String(), "err", err)
	return err
}

// lockAfter turns the flag's "0: never" into the authorizer's.
func lockAfter(n int) int {
	if n <= 0 {
		return -1
	}
	return n
}

// pageSecrets are the web role's secrets.
type pageSecrets struct {
	storeSecret, merchantKey, pagesKey string
}

// pageSecrets reads the web role's secrets; it refuses to start without any of them.
func (c *config) pageSecrets() (pageSecrets, error) {
	var s pageSecrets
	var err error
	if s.storeSecret, err = c.storeSecret.Required("the store's secret, signing order ids and statement views (at least 32 random bytes)"); err != nil {
		return s, err
	}
	if len(s.storeSecret) < card.MinSecretBytes {
		return s, fmt.Errorf("%w: the store's secret must be at least %d bytes", cli.ErrUsage, card.MinSecretBytes)
	}
	if s.merchantKey, err = c.merchantKey.Required("the store's merchant API key"); err != nil {
		return s, err
	}
	if s.pagesKey, err = c.pagesKey.Required("the bank pages' API key (role pages)"); err != nil {
		return s, err
	}
	for _, v := range []struct{ what, secret string }{{"--store-secret", s.storeSecret}, {"--merchant-key", s.merchantKey}, {"--pages-key", s.pagesKey}} {
		if err := cli.CheckPublished(v.what, []byte(v.secret), c.DemoSecrets); err != nil {
			return s, err
		}
	}
	return s, nil
}

// newPages builds the store's and the bank's pages with what they need beside them: the
// store's orders group and orders (a view), the dashboard's feed of results, and gRPC clients
// of the bank at bankAddr (payments, with the store's merchant key; card verification, with the
// pages' key) and statementsAddr (statements, with the pages' key); it adds them to p.
func newPages(c config, secrets pageSecrets, kc kafkaconf.Config, bankAddr, statementsAddr string, reg prometheus.Registerer, log *slog.Logger, p *process) (*web.Server, error) {
	bankTLS, err := c.bankTLS()
	if err != nil {
		return nil, err
	}
	st := c.storeTopology()
	gkc := kc
	gkc.HotStandby = c.HotStandby
	g, err := processors.NewGroup(gkc, store.New(st, store.Deps{Registerer: reg, Log: log}).Graph(), c.StorageDir, log)
	if err != nil {
		return nil, err
	}
	p.groups.Add(g)
	orders, err := store.NewOrders(kc, st, filepath.Join(c.StorageDir, "orders-view"), log)
	if err != nil {
		return nil, err
	}
	p.closeWith(orders.Close)
	feed := web.NewFeed(web.FeedConfig{Kafka: kc.Patient(c.FetchWait), Topology: c.topology()}, web.FeedDeps{Registerer: reg, Log: log})
	creds := grpcgateway.CallerKeys{Merchant: secrets.merchantKey, Pages: secrets.pagesKey, Insecure: bankTLS == nil}
	bank, err := cli.Dial(bankAddr, bankTLS, creds, c.BankPlaintext)
	if err != nil {
		return nil, plaintextHint(err)
	}
	p.closeWith(bank.Close)
	stmts := bank
	if statementsAddr != "" && statementsAddr != bankAddr {
		if stmts, err = cli.Dial(statementsAddr, bankTLS, creds, c.BankPlaintext); err != nil {
			return nil, plaintextHint(err)
		}
		p.closeWith(stmts.Close)
	}
	p.add("orders", g.Run, g.Ready)
	p.add("orders view", orders.Run, orders.Ready)
	if c.OrderTTL > 0 {
		p.add("orders sweeper", func(ctx context.Context) error {
			return orders.RunSweeper(ctx, orderSweepEvery(c.OrderTTL), c.OrderTTL)
		}, nil)
	}
	p.add("dashboard feed", feed.Run, nil)
	return web.New(web.Config{OrderSecret: []byte(secrets.storeSecret), DemoCardsFile: c.DemoCardsFile,
		AttemptsPerMinute: c.PageAttempts, ReadsPerMinute: c.PageReads, ClientAddressHeader: c.ClientAddressHeader},
		web.Deps{Payments: codebankv1.NewPaymentServiceClient(bank), Cards: codebankv1.NewCardServiceClient(bank),
			Statements: codebankv1.NewStatementServiceClient(stmts), Orders: orders, Dashboard: feed, Log: log, Registerer: reg}), nil
}

// orderSweepEvery is how often the web role looks for orders to forget: a tenth of how long
// they are kept, from a second to an hour.
func orderSweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/10, time.Second), time.Hour)
}

// checkBankTransport refuses, before anything starts, a web role that would send keys and card
// data to the bank in plaintext over the network (cli.CheckPlaintext).
func (c *config) checkBankTransport(r roles) error {
	if r.ingress { // the pages call this process's own port
		return nil
	}
	for _, addr := range []string{c.BankAddr, c.StatementsAddr} {
		if addr == "" {
			continue
		}
		if err := cli.CheckPlaintext(addr, c.BankCA != "", c.BankPlaintext); err != nil {
			return plaintextHint(err)
		}
	}
	return nil
}

// plaintextHint adds to a refusal of plaintext what the web role's flags can do about it.
func plaintextHint(err error) error {
	if errors.Is(err, cli.ErrPlaintext) {
		return fmt.Errorf("%w; give the bank's CA (--bank-ca), or --bank-plaintext inside a network that encrypts or isolates the hop (a service mesh)", err)
	}
	return err
}

// newRegistry returns the process's metrics registry, with the Go runtime's and the process's
// own collectors and the build's (codebank_build_info).
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Read().Collector())
	return reg
}

// serveHTTP serves handler on l, over TLS when tlsConfig is set, until ctx ends, then shuts down
// gracefully.
func serveHTTP(ctx context.Context, l net.Listener, handler http.Handler, tlsConfig *tls.Config) error {
	srv := grpcgateway.NewHTTPServer(handler, 30*time.Second)
	if tlsConfig != nil {
		srv.TLSConfig = tlsConfig
		l = tls.NewListener(l, tlsConfig)
	}
	done := make(chan error, 1)
	go func() {
		<-ctx.Done()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- srv.Shutdown(shutdownCtx)
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return <-done
}
