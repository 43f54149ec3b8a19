package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
	"github.com/codebank/codebank/web"
)

// roles says which components a process runs.
type roles struct {
	ingress    bool
	authorizer bool
	statements bool
	web        bool // the store's pages, beside the API
}

func (r roles) String() string {
	switch {
	case r.ingress && r.authorizer:
		return "all"
	case r.ingress:
		return "ingress"
	case r.statements:
		return "statements"
	default:
		return "authorizer"
	}
}

// api reports whether the process serves a gRPC/REST API.
func (r roles) api() bool { return r.ingress || r.statements }

func runAll(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("all", "all [flags]", stderr)
	c.kafkaFlags(fs)
	c.ingressFlags(fs)
	c.authorizerFlags(fs, "")
	r := roles{ingress: true, authorizer: true}
	fs.BoolVar(&r.statements, "statements", true, "also run the statements processor and StatementService")
	fs.BoolVar(&r.web, "web", true, "also serve the store's pages")
	c.storeFlags(fs)
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, r, nil)
}

func runIngress(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("ingress", "ingress [flags]", stderr)
	c.kafkaFlags(fs)
	c.ingressFlags(fs)
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, roles{ingress: true}, nil)
}

func runAuthorizer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("authorizer", "authorizer [flags]", stderr)
	c.kafkaFlags(fs)
	c.authorizerFlags(fs, ":8081")
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, roles{authorizer: true}, nil)
}

func runStatements(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("statements", "statements [flags]", stderr)
	c.kafkaFlags(fs)
	c.ingressFlags(fs)
	c.authorizerFlags(fs, "")
	fs.Lookup("grpc-addr").DefValue, fs.Lookup("http-addr").DefValue = ":50052", ":8082"
	c.GRPCAddr, c.HTTPAddr = ":50052", ":8082"
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, log, roles{statements: true}, nil)
}

func runSetup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("setup", "setup [flags]", stderr)
	c.kafkaFlags(fs)
	var sink analytics.Sink
	fs.StringVar(&sink.SearchURL, "search-url", "", "Elasticsearch/OpenSearch URL: create the results index template there")
	fs.StringVar(&sink.ConnectURL, "connect-url", "", "Kafka Connect REST URL: register the connector that indexes the results topic (needs --search-url)")
	fs.StringVar(&sink.Index, "index", analytics.DefaultIndex, "index the results topic is indexed into")
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	if err := ensureTopics(ctx, c.kafka(), c.topology()); err != nil {
		return err
	}
	for _, t := range c.topology().All() {
		fmt.Fprintf(stdout, "%-32s %3d partitions  key: %s\n", t.Name, t.Partitions, t.Key)
	}
	if sink.ConnectURL != "" && sink.SearchURL == "" {
		return fmt.Errorf("%w: --connect-url needs --search-url", errUsage)
	}
	if sink.SearchURL != "" {
		if err := analytics.Setup(ctx, c.topology(), sink); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "index template %s* on %s\n", sink.Index, sink.SearchURL)
		if sink.ConnectURL != "" {
			fmt.Fprintf(stdout, "connector %s on %s: running\n", analytics.ConnectorName(c.topology()), sink.ConnectURL)
		}
	}
	return nil
}

// helpOK turns the help request into a clean exit.
func helpOK(err error) error {
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

// ensureTopics creates the deployment's topics, waiting up to a minute for the cluster.
func ensureTopics(ctx context.Context, kc kafkaconf.Config, topo processors.Topology) error {
	if err := kc.Validate(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
		if err == nil {
			err = topo.Ensure(ctx, admin)
			admin.Close()
			if err == nil || errors.Is(err, processors.ErrPartitionMismatch) {
				return err
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("create topics: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// started is what serve hands to an onReady callback.
type started struct {
	grpcAddr string
	httpAddr string
	web      *web.Server // nil without the store
}

// serve runs the chosen roles until ctx ends. onReady, when set, runs once everything is up.
func serve(ctx context.Context, c config, log *slog.Logger, r roles, onReady func(context.Context, started) error) error {
	// Configuration.
	log.Info("starting codebank", "role", r.String(), "config", c.logValue())
	keys, err := c.keys(log)
	if err != nil {
		return err
	}
	// One producer for every processor and emitter of the process (see ShareProducer).
	kc, topo := c.kafka().ShareProducer(), c.topology()
	reg := newRegistry()

	// Topics.
	if err := ensureTopics(ctx, kc, topo); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	ready := []func() bool{}

	// Authorizer.
	if r.authorizer {
		a := authorizer.New(topo, keys, authorizer.WithRegisterer(reg), authorizer.WithLogger(log))
		proc, err := goka.NewProcessor(kc.Brokers, a.Graph(), kc.ProcessorOptions(c.StorageDir, log)...)
		if err != nil {
			return fmt.Errorf("create authorizer: %w", err)
		}
		g.Go(func() error {
			if err := proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("authorizer: %s", card.Redact(err.Error())) // goka's errors name record keys
			}
			return nil
		})
		g.Go(func() error {
			if err := proc.WaitForReadyContext(ctx); err == nil {
				log.Info("authorizer ready", "group", topo.AuthorizerGroup())
			}
			return nil
		})
		ready = append(ready, proc.Recovered)
	}

	// Statements: the processor, and a view of its table that serves the API.
	var srvOpts []grpcgateway.Option
	if r.statements {
		sp := statements.New(topo, reg, log)
		proc, err := goka.NewProcessor(kc.Brokers, sp.Graph(), kc.ProcessorOptions(c.StorageDir, log)...)
		if err != nil {
			return fmt.Errorf("create statements processor: %w", err)
		}
		view, err := goka.NewView(kc.Brokers, goka.Table(topo.StatementsTable().Name), codecs.Lenient(topo.StatementsTable().Codec),
			kc.ViewOptions(filepath.Join(c.StorageDir, "views"), log)...)
		if err != nil {
			return fmt.Errorf("create statements view: %w", err)
		}
		g.Go(func() error {
			if err := proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("statements processor: %s", card.Redact(err.Error()))
			}
			return nil
		})
		g.Go(func() error {
			if err := view.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return fmt.Errorf("statements view: %w", err)
			}
			return nil
		})
		reader := statements.NewReader(view)
		ready = append(ready, proc.Recovered, reader.Ready)
		srvOpts = append(srvOpts, grpcgateway.WithStatements(reader))
		if !r.ingress {
			srvOpts = append(srvOpts, grpcgateway.WithoutPayments())
		}
	}

	// The API, or the authorizer's own health and metrics endpoint.
	st := started{}
	if r.api() {
		bank, err := grpcgateway.NewKafkaBank(kc, topo, keys, grpcgateway.BankConfig{
			ReplyPartition: c.ReplyPartition, MaxInFlight: c.MaxInFlight, Registerer: reg, Log: log})
		if err != nil {
			return err
		}
		defer bank.Close()
		g.Go(func() error { return bank.Run(ctx) })
		ready = append(ready, bank.Ready)
		if c.Pprof {
			srvOpts = append(srvOpts, grpcgateway.WithHTTPHandler(registerPprof))
		}
		gl, err := net.Listen("tcp", c.GRPCAddr)
		if err != nil {
			return fmt.Errorf("listen gRPC: %w", err)
		}
		hl, err := net.Listen("tcp", c.HTTPAddr)
		if err != nil {
			gl.Close()
			return fmt.Errorf("listen HTTP: %w", err)
		}
		st = started{grpcAddr: gl.Addr().String(), httpAddr: hl.Addr().String()}
		if r.web {
			// The store is a client of the bank like any checkout: it calls this process's own
			// gRPC port.
			self := loopback(st.grpcAddr)
			if st.web, err = startStore(ctx, g, c, kc, topo, self, self, reg, log, &ready); err != nil {
				return err
			}
			srvOpts = append(srvOpts, grpcgateway.WithHTTPHandler(st.web.Register))
		}
		srv := grpcgateway.New(c.ingress(), readyBank{bank, ready}, keys, reg, log, srvOpts...)
		g.Go(func() error { return srv.ServeListeners(ctx, gl, hl) })
	} else if c.AuthorizerHTTPAddr != "" {
		g.Go(func() error { return serveOps(ctx, c.AuthorizerHTTPAddr, reg, ready, c.Pprof, log) })
	}

	if onReady != nil {
		g.Go(func() error {
			for !allReady(ready) {
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(100 * time.Millisecond):
				}
			}
			return onReady(ctx, st)
		})
	}

	// Shutdown: errgroup cancels ctx on the first error or on a signal.
	err = g.Wait()
	log.Info("codebank stopped", "role", r.String(), "err", err)
	return err
}

func allReady(checks []func() bool) bool {
	for _, ok := range checks {
		if !ok() {
			return false
		}
	}
	return true
}

// readyBank is the ingress's bank, ready only when every component of the process is.
type readyBank struct {
	*grpcgateway.KafkaBank
	checks []func() bool
}

func (b readyBank) Ready() bool { return allReady(b.checks) }

// newRegistry returns the process's metrics registry, with the Go runtime's and the process's
// own collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// opsMux serves /healthz, /readyz (ready when every check is; notReady says why not) and
// /metrics, and /debug/pprof/ with withPprof.
func opsMux(reg *prometheus.Registry, ready []func() bool, notReady string, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	if withPprof {
		registerPprof(mux)
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if !allReady(ready) {
			http.Error(w, "not ready: "+notReady, http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return mux
}

// serveHTTP serves handler on l until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, l net.Listener, handler http.Handler) error {
	srv := grpcgateway.NewHTTPServer(handler, 30*time.Second)
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

// serveOps serves the ops endpoints of a process without the ingress.
func serveOps(ctx context.Context, addr string, reg *prometheus.Registry, ready []func() bool, withPprof bool, log *slog.Logger) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen HTTP: %w", err)
	}
	log.Info("ops endpoint listening", "http", l.Addr().String())
	return serveHTTP(ctx, l, opsMux(reg, ready, "recovering state", withPprof))
}

// registerPprof serves the runtime profiles under /debug/pprof/.
func registerPprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
