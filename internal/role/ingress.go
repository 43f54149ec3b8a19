package role

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/processors"
)

// IngressConfig configures the ingress role.
type IngressConfig struct {
	// Server configures the gRPC and REST server. With Server.StatementsOnly it serves
	// StatementService alone (the statements role's API), and writes no requests.
	Server grpcgateway.Config
	// ReplyPartition is the partition of the replies topic the replica reads (negative: pick
	// one); MaxInFlight bounds the calls waiting for the authorizer (grpcgateway.BankConfig).
	ReplyPartition, MaxInFlight int
	// GRPC and HTTP are the listeners it serves gRPC and HTTP (the REST gateway, and Routes)
	// on.
	GRPC, HTTP net.Listener
	// Keys derive card tokens and CVVs (a statements-only server needs none).
	Keys card.Keys
	// APIKeys authenticate the callers (apikey.Store).
	APIKeys grpcgateway.Authenticator
	// Statements, when set, serves StatementService (Statements.Reader).
	Statements grpcgateway.StatementReader
	// Routes are served beside the REST gateway: the pages, in codebank all (Web.Pages).
	Routes []func(*http.ServeMux)
	// Now is the clock that stamps requests (default time.Now); tests set one.
	Now func() time.Time
}

// Ingress is the ingress role: the Kafka side of the API (Bank: requests out, the replica's
// partition of the replies in), and the gRPC and REST server (Server).
type Ingress struct {
	Components
	Bank   *grpcgateway.KafkaBank
	Server *grpcgateway.Server
}

// NewIngress returns the ingress role. Unless it serves statements only, it writes the
// requests to the live generation of the authorizer's topics and follows every move
// (env.Generations).
func NewIngress(cfg IngressConfig, env Env) (*Ingress, error) {
	state, _ := env.Generations.Current()
	bank, err := grpcgateway.NewKafkaBank(grpcgateway.BankConfig{Kafka: env.Kafka, Topology: state.Live(env.Topology),
		ReplyPartition: cfg.ReplyPartition, MaxInFlight: cfg.MaxInFlight}, grpcgateway.BankDeps{Registerer: env.Registerer, Log: env.Log})
	if err != nil {
		return nil, err
	}
	in := &Ingress{Bank: bank}
	in.Add("replies", bank.Run, bank.Ready)
	in.CloseWith(bank.Close)
	if !cfg.Server.StatementsOnly {
		in.Add("generation of the requests", followGenerations(env.Generations, env.Topology, bank), nil)
	}
	in.Server = grpcgateway.New(cfg.Server, grpcgateway.Deps{Bank: bank, Statements: cfg.Statements, Keys: cfg.Keys, APIKeys: cfg.APIKeys,
		Registerer: env.Registerer, Log: env.Log, Now: cfg.Now, Routes: cfg.Routes})
	in.Add("api", func(ctx context.Context) error { return in.Server.Serve(ctx, cfg.GRPC, cfg.HTTP) }, nil)
	return in, nil
}

// followGenerations points the ingress at each new live generation.
func followGenerations(gens *generations.Watcher, base processors.Topology, bank *grpcgateway.KafkaBank) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			state, changed := gens.Current()
			if err := bank.Switch(state.Live(base)); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
	}
}

// NewOps returns the operations endpoints, served on l: /healthz; /readyz, from notReady (the
// process's Components.NotReady); /metrics, from reg; and /debug/pprof/ with pprof.
func NewOps(l net.Listener, reg prometheus.Gatherer, notReady func() error, pprof bool, log *slog.Logger) Components {
	mux := http.NewServeMux()
	grpcgateway.OpsRoutes(reg, notReady, pprof)(mux)
	var c Components
	c.Add("operations endpoints", func(ctx context.Context) error {
		log.Info("operations endpoints listening", "ops", l.Addr().String())
		return serveHTTP(ctx, l, mux, nil)
	}, nil)
	return c
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
