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
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/buildinfo"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/role"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
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

// flagGroup registers a group of a serving role's flags (config.go); r is the roles its command
// runs, which codebank all's --statements and --web change.
type flagGroup func(c *config, fs *flag.FlagSet, r *roles)

// flags is the flagGroup of a config method that registers flags.
func flags(register func(*config, *flag.FlagSet)) flagGroup {
	return func(c *config, fs *flag.FlagSet, _ *roles) { register(c, fs) }
}

// The flag groups of the serving roles.
var (
	tokenKeyFlag = flags((*config).tokenKeyFlag)
	cardKeysFlag = flags((*config).cardKeysFlag)
	storageFlag  = flags((*config).storageFlag)
	lockoutFlags = flags((*config).lockoutFlags)
	sinkLagFlag  = flags((*config).sinkLagFlag)
	webFlags     = flags((*config).webFlags)
	opsFlags     = flags((*config).opsFlags)
)

// apiFlags are the flags of a role that serves the bank's API, listening by default on grpcAddr
// and httpAddr.
func apiFlags(grpcAddr, httpAddr string) flagGroup {
	return func(c *config, fs *flag.FlagSet, _ *roles) { c.ingressFlags(fs, grpcAddr, httpAddr) }
}

// alsoFlags are codebank all's --statements and --web.
func alsoFlags(_ *config, fs *flag.FlagSet, r *roles) {
	fs.BoolVar(&r.statements, "statements", true, "also run the statements processor and StatementService")
	fs.BoolVar(&r.web, "web", true, "also serve the store's and the bank's pages")
}

// bankClientFlags are the web role's own: its listener, and where the bank is.
func bankClientFlags(c *config, fs *flag.FlagSet, _ *roles) {
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8090", httpAddrUsage)
	c.serverTLSFlags(fs)
	fs.StringVar(&c.BankAddr, "bank-addr", "localhost:50051", "gRPC address of the bank's ingress (payments, card verification)")
	fs.StringVar(&c.StatementsAddr, "statements-addr", "", "gRPC address serving statements (default: --bank-addr)")
}

// roleCommand returns the command that runs roles r, with the Kafka flags and groups.
func roleCommand(name string, r roles, groups ...flagGroup) func(context.Context, []string, io.Writer, io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		var c config
		fs := cli.NewFlagSet("codebank "+name+" [flags]", stdout, stderr)
		c.kafkaFlags(fs)
		c.demoSecretsFlag(fs)
		r := r
		for _, register := range groups {
			register(&c, fs, &r)
		}
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

// The serving roles and their flags.
var (
	runAll = roleCommand("all", roles{ingress: true, authorizer: true},
		apiFlags(":50051", ":8080"), tokenKeyFlag, cardKeysFlag, storageFlag, lockoutFlags, alsoFlags, sinkLagFlag, webFlags)
	runIngress    = roleCommand("ingress", roles{ingress: true}, apiFlags(":50051", ":8080"), tokenKeyFlag, cardKeysFlag)
	runAuthorizer = roleCommand("authorizer", roles{authorizer: true}, storageFlag, tokenKeyFlag, lockoutFlags, opsFlags)
	runStatements = roleCommand("statements", roles{statements: true}, apiFlags(":50052", ":8082"), storageFlag, sinkLagFlag)
	runWeb        = roleCommand("web", roles{web: true}, bankClientFlags, storageFlag, webFlags, opsFlags)
)

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, sf := bookFlags("codebank setup [flags] (with --search-url, also the results indices; with --connect-url, the Connect sink)", stdout, stderr)
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
			return errors.Is(err, stream.ErrPartitionMismatch), err
		}
		err := st.Ensure(ctx, admin)
		return errors.Is(err, stream.ErrPartitionMismatch), err
	})
}

// waitForTopics waits until every topic exists with its partition count: `codebank setup`
// creates them, and a serving role never does.
func waitForTopics(ctx context.Context, kc kafkaconf.Config, topics []stream.Topic, log *slog.Logger) error {
	warned := false
	for {
		var missing []string
		err := withAdmin(ctx, kc, func(admin sarama.ClusterAdmin) (bool, error) {
			var err error
			missing, err = stream.MissingTopics(admin, topics)
			return errors.Is(err, stream.ErrPartitionMismatch), err
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
	kc := c.kafka().ShareProducer() // one producer for the process (ShareProducer)
	reg := newRegistry()
	var keys card.Keys
	if r.ingress || r.authorizer {
		var err error
		if keys, err = c.keys(r.ingress); err != nil {
			return err
		}
	}
	var authz authorizer.Config
	if r.authorizer {
		var err error
		if authz, err = c.lockout(); err != nil {
			return err
		}
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
	var legacy *grpcgateway.Legacy
	if r.api() {
		if apiKeys, legacy, err = c.callers(reg, log); err != nil {
			return err
		}
	}

	// Topics: created by `codebank setup`; every role waits for them, those of the authorizer
	// at their live generation (internal/generations).
	base := c.topology()
	if err := waitForTopics(ctx, kc, []stream.Topic{base.Generations()}, log); err != nil {
		return err
	}
	gens, watch, err := role.NewGenerations(ctx, kc, base)
	if err != nil {
		return err
	}
	state, _ := gens.Current()
	topics := state.Live(base).All()
	if r.web {
		topics = append(topics, c.storeTopology().All()...)
	}
	if err := waitForTopics(ctx, kc, topics, log); err != nil {
		return err
	}

	// Components, all built before any starts: one constructor a role (internal/role).
	var p role.Components
	defer func() {
		if err := p.Close(); err != nil {
			log.Warn("close", "err", err)
		}
	}()
	var grpcL, httpL, opsL net.Listener
	if r.api() {
		if grpcL, err = p.Listen(c.GRPCAddr); err != nil {
			return err
		}
	}
	if c.HTTPAddr != "" {
		if httpL, err = p.Listen(c.HTTPAddr); err != nil {
			return err
		}
	}
	if c.OpsAddr != "" {
		if opsL, err = p.Listen(c.OpsAddr); err != nil {
			return err
		}
	}
	env := role.Env{Kafka: kc, Topology: base, Generations: gens, StorageDir: c.StorageDir, HotStandby: c.HotStandby, FetchWait: c.FetchWait,
		Groups: stream.NewGroupStats(), Registerer: reg, Log: log}
	if err := reg.Register(env.Groups); err != nil {
		return err
	}
	if apiKeys != nil {
		p.AddEvery("api keys", apikey.ReloadInterval, func(context.Context) { apiKeys.Reload() }, apiKeys.Ready)
	}
	p.Include(watch)
	if r.authorizer {
		p.Include(role.NewAuthorizer(authz, authorizer.Deps{Keys: keys}, env))
	}
	var reader *statements.Reader
	if r.statements {
		s, err := role.NewStatements(role.StatementsConfig{SinkLag: c.SinkLag}, env)
		if err != nil {
			return err
		}
		p.Include(s.Components)
		reader = s.Reader
	}
	var routes []func(*http.ServeMux)
	if r.web {
		cfg, err := c.webConfig(pages, r, grpcL, httpL, serverTLS)
		if err != nil {
			return err
		}
		w, err := role.NewWeb(cfg, env)
		if err != nil {
			return plaintextHint(err)
		}
		p.Include(w.Components)
		if cfg.HTTP == nil { // codebank all: the ingress serves the pages
			routes = append(routes, w.Pages.Register)
		}
	}
	if r.api() {
		in, err := role.NewIngress(role.IngressConfig{Server: grpcgateway.Config{StatementsOnly: !r.ingress, RequestTimeout: c.RequestTimeout,
			Currency: c.Currency, Legacy: legacy, Reflection: c.Reflection, TLS: serverTLS},
			ReplyPartition: c.ReplyPartition, MaxInFlight: c.MaxInFlight, GRPC: grpcL, HTTP: httpL,
			Keys: keys, APIKeys: apiKeys, Statements: reader, Routes: routes}, env)
		if err != nil {
			return err
		}
		p.Include(in.Components)
	}
	// Consumer lag of the groups this process runs, read from Kafka at each scrape.
	if err := p.ExportLag(env); err != nil {
		return err
	}
	if opsL != nil {
		p.Include(role.NewOps(opsL, reg, func() error { return p.NotReady() }, c.Pprof, log))
	}

	// Run until ctx ends (a signal) or a component fails.
	err = p.Run(ctx, log)
	log.Info("codebank stopped", "role", r.String(), "err", err)
	return err
}

// callers returns the API keys of the callers of a role that serves the bank's API, and the
// original contract's callers when --legacy-merchant names one of the keys file's merchants.
func (c *config) callers(reg prometheus.Registerer, log *slog.Logger) (*apikey.Store, *grpcgateway.Legacy, error) {
	if c.APIKeysFile == "" {
		return nil, nil, fmt.Errorf("%w: the API keys file of the callers: set CODEBANK_API_KEYS_FILE or --api-keys-file (codebank keys new writes its lines)", cli.ErrUsage)
	}
	apiKeys, err := apikey.Open(c.APIKeysFile, reg, log, c.checkKeysFile)
	if err != nil || c.LegacyMerchant == "" {
		return apiKeys, nil, err
	}
	name, ok := apiKeys.Set().MerchantName(c.LegacyMerchant)
	if !ok {
		return nil, nil, fmt.Errorf("%w: --legacy-merchant %q: no merchant key of the keys file names it", cli.ErrUsage, c.LegacyMerchant)
	}
	log.Warn("serving the original contract without credentials: its callers are booked as a merchant", "merchant", c.LegacyMerchant)
	return apiKeys, &grpcgateway.Legacy{Merchant: c.LegacyMerchant, MerchantName: name}, nil
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

// webConfig returns the web role's configuration: its pages reach the bank at --bank-addr and
// --statements-addr, or, in codebank all, at this process's own gRPC listener, like any
// checkout; in codebank web they are served on httpL.
func (c *config) webConfig(secrets pageSecrets, r roles, grpcL, httpL net.Listener, serverTLS *tls.Config) (role.WebConfig, error) {
	bankTLS, err := c.bankTLS()
	if err != nil {
		return role.WebConfig{}, err
	}
	cfg := role.WebConfig{Pages: web.Config{OrderSecret: []byte(secrets.storeSecret), DemoCardsFile: c.DemoCardsFile,
		AttemptsPerMinute: c.PageAttempts, ReadsPerMinute: c.PageReads, ClientAddressHeader: c.ClientAddressHeader},
		Store: c.storeTopology(), OrderTTL: c.OrderTTL,
		BankAddr: c.BankAddr, StatementsAddr: c.StatementsAddr, MerchantKey: secrets.merchantKey, PagesKey: secrets.pagesKey,
		BankTLS: bankTLS, BankPlaintext: c.BankPlaintext, HTTP: httpL, TLS: serverTLS}
	if r.ingress { // the store is a client of the bank like any checkout: it calls this process's own port
		cfg.BankAddr, cfg.StatementsAddr = cli.Loopback(grpcL.Addr().String()), cli.Loopback(grpcL.Addr().String())
		cfg.HTTP, cfg.TLS = nil, nil
	}
	return cfg, nil
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
