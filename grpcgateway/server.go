// Package grpcgateway is Code Bank's ingress: the gRPC services (codebank.v1 CardService and
// PaymentService, and the original bank's payment.PaymentService) and the same API as
// REST/JSON through grpc-gateway. It authenticates every caller by API key and checks it
// against the one table of who may call what (access.go), validates every request, writes it
// to Kafka keyed by card token and answers once the authorizer's reply comes back. REST calls
// go through the same gRPC server in process, so they meet the same checks.
//
// Its main types are Server, which serves gRPC and HTTP, and KafkaBank, which carries requests
// to the authorizer and routes replies back (with a Correlator).
//
// Metrics (registered by New):
//
//	codebank_ingress_requests_total{method,code}  gRPC calls finished, by method and status code
//	codebank_ingress_request_seconds{method}      gRPC call latency
//	codebank_ingress_inflight                     calls in progress
//	codebank_ingress_http_requests_total{code}    HTTP requests served by the gateway, by status
//	codebank_ingress_denied_total{method,code}    calls refused: UNAUTHENTICATED or PERMISSION_DENIED
package grpcgateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	goruntime "runtime"
	"slices"
	"strconv"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/paymentid"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// Config configures the ingress.
type Config struct {
	// StatementsOnly leaves out the card and payment services (the original contract's too): a
	// server of StatementService alone.
	StatementsOnly bool
	// RequestTimeout bounds the wait for the authorizer's answer (default 5s).
	RequestTimeout time.Duration
	// Currency is the ISO 4217 code of new cards (default "BRL").
	Currency string
	// BIN is the issuer prefix of new card numbers (default card.DefaultBIN).
	BIN string
	// CardYears is how many years new cards are valid (default 5).
	CardYears int
	// MaxMessageBytes bounds a gRPC request message and a REST request body (default
	// DefaultMaxMessageBytes); a larger one is refused (RESOURCE_EXHAUSTED, HTTP 413).
	MaxMessageBytes int
	// MaxConcurrentStreams bounds the calls one gRPC connection may have open at once (default
	// DefaultMaxConcurrentStreams); further calls on it wait for one to finish.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a call's headers (gRPC metadata, or REST request headers), counted
	// as HTTP/2 does: name, value and 32 bytes a field (default DefaultMaxHeaderBytes). Larger
	// ones are refused before the API key is looked at: the gRPC server advertises the limit
	// and resets a stream over it, REST answers 431.
	MaxHeaderBytes int
	// Legacy, when set, serves the original bank's contract, whose callers carry no key and
	// are booked as its merchant: meant to sit behind a mesh that authenticates them.
	Legacy *Legacy
	// Reflection serves gRPC server reflection (open to every caller).
	Reflection bool
	// TLS, when set, serves gRPC and HTTP over TLS (mutual TLS when it asks for client
	// certificates).
	TLS *tls.Config
}

// Legacy is the merchant the original contract's callers are booked as.
type Legacy struct {
	// Merchant is its id, MerchantName its name.
	Merchant, MerchantName string
}

// Defaults of Config's limits. Every request of the API fits in a few hundred bytes, and its
// headers in a few hundred more. The README's "Limits" states them (TestReadmeStatesTheLimits).
const (
	DefaultMaxMessageBytes      = 64 << 10
	DefaultMaxConcurrentStreams = 5000
	DefaultMaxHeaderBytes       = 8 << 10
)

func (c Config) withDefaults() Config {
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Currency == "" {
		c.Currency = "BRL"
	}
	if c.BIN == "" {
		c.BIN = card.DefaultBIN
	}
	if c.CardYears <= 0 {
		c.CardYears = 5
	}
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if c.MaxConcurrentStreams == 0 {
		c.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if c.MaxHeaderBytes <= 0 {
		c.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return c
}

// Server serves the ingress's gRPC and HTTP APIs.
type Server struct {
	cfg  Config
	deps Deps
	bank Bank
	keys card.Keys
	log  *slog.Logger
	now  func() time.Time

	auth       Authenticator
	grpc       *grpc.Server
	health     *health.Server
	http       *http.Server
	inproc     *memListener // REST calls reach inprocGRPC through it
	inprocGRPC *grpc.Server
	inprocConn *grpc.ClientConn
	metrics    serverMetrics
	statements StatementReader
	paymentIDs *paymentid.Sealer // nil without a tokenization key (a statements-only server)
}

// Deps are the Server's collaborators.
type Deps struct {
	// Bank carries requests to the authorizer (KafkaBank).
	Bank Bank
	// Statements, when set, serves codebank.v1.StatementService.
	Statements StatementReader
	// Keys derive card tokens and CVVs (a statements-only server needs none).
	Keys card.Keys
	// APIKeys authenticate callers (apikey.Store); without them every call but the open ones
	// is refused.
	APIKeys Authenticator
	// Registerer receives the metrics of the package doc (default: a private registry).
	Registerer prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
	// Now is the clock that stamps requests (default time.Now); tests set one.
	Now func() time.Time
	// Routes are added to the HTTP server beside the REST gateway under /v1/: the process's
	// operations endpoints (OpsRoutes), the store's pages.
	Routes []func(*http.ServeMux)
}

// New returns a Server.
func New(cfg Config, deps Deps) *Server {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if deps.Registerer == nil {
		deps.Registerer = prometheus.NewRegistry()
	}
	s := &Server{cfg: cfg.withDefaults(), deps: deps, bank: deps.Bank, keys: deps.Keys, auth: deps.APIKeys, log: deps.Log, now: deps.Now,
		statements: deps.Statements}
	s.metrics = newServerMetrics(deps.Registerer)
	if deps.Keys.Tokenizes() {
		s.paymentIDs, _ = paymentid.ForKeys(deps.Keys) // fails only for a key of another size than AES's
	}
	opts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.metrics.interceptor, s.authUnary),
		grpc.ChainStreamInterceptor(s.authStream),
		grpc.MaxRecvMsgSize(s.cfg.MaxMessageBytes),
		grpc.MaxConcurrentStreams(s.cfg.MaxConcurrentStreams),
		// Clients may ping an idle connection at most every 10 s; one that pings more often is
		// disconnected (GOAWAY "too_many_pings") instead of keeping the server busy.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// The server pings a connection silent for 2 minutes and drops it if no answer comes
		// within 20 s: a vanished client does not hold its connection for good.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second}),
		// A connection must complete its HTTP/2 handshake within 10 s.
		grpc.ConnectionTimeout(10 * time.Second),
		// Calls run on a few long-lived goroutines whose stacks have grown to a call's needs,
		// instead of a new goroutine per call growing its stack every time (one more goroutine
		// is started when all are busy).
		grpc.NumStreamWorkers(uint32(goruntime.GOMAXPROCS(0))),
	}
	// Two servers of the same services, interceptors and limits: the public one, over TLS when
	// configured, and the one REST calls reach in memory (no network, so no TLS to terminate).
	// Headers over the limit are refused by the transport, before any interceptor: a key of
	// any size is never hashed, logged or counted. REST requests meet the limit first
	// (LimitHeaders); the gateway renames some of their headers, longer, so the in-memory
	// server allows twice as much.
	s.health = health.NewServer()
	s.inprocGRPC = s.newGRPCServer(slices.Concat(opts, []grpc.ServerOption{grpc.MaxHeaderListSize(uint32(2 * s.cfg.MaxHeaderBytes))}))
	opts = append(opts, grpc.MaxHeaderListSize(uint32(s.cfg.MaxHeaderBytes)))
	if s.cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.cfg.TLS)))
	}
	s.grpc = s.newGRPCServer(opts)
	if s.cfg.Reflection {
		reflection.Register(s.grpc)
	}
	s.http = NewHTTPServer(s.httpHandler(), s.cfg.RequestTimeout)
	s.http.TLSConfig = s.cfg.TLS
	return s
}

// newGRPCServer returns a gRPC server of the ingress's services.
func (s *Server) newGRPCServer(opts []grpc.ServerOption) *grpc.Server {
	srv := grpc.NewServer(opts...)
	if !s.cfg.StatementsOnly {
		codebankv1.RegisterCardServiceServer(srv, cardService{Server: s})
		codebankv1.RegisterPaymentServiceServer(srv, paymentService{Server: s})
		if s.cfg.Legacy != nil {
			paymentpb.RegisterPaymentServiceServer(srv, legacyService{Server: s})
		}
	}
	if s.statements != nil {
		codebankv1.RegisterStatementServiceServer(srv, statementService{Server: s})
	}
	healthpb.RegisterHealthServer(srv, s.health)
	return srv
}

func (s *Server) httpHandler() http.Handler {
	gw := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
			MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
		}),
	)
	// REST calls are gRPC calls to this server over an in-memory connection: they meet the
	// same authentication, access table, limits and metrics as any other.
	s.inproc = newMemListener()
	conn, err := grpc.NewClient("passthrough:///in-process",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.inproc.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err) // only a malformed target fails here
	}
	s.inprocConn = conn
	ctx := context.Background()
	if !s.cfg.StatementsOnly {
		_ = codebankv1.RegisterCardServiceHandlerClient(ctx, gw, codebankv1.NewCardServiceClient(conn))
		_ = codebankv1.RegisterPaymentServiceHandlerClient(ctx, gw, codebankv1.NewPaymentServiceClient(conn))
	}
	if s.statements != nil {
		_ = codebankv1.RegisterStatementServiceHandlerClient(ctx, gw, codebankv1.NewStatementServiceClient(conn))
	}

	mux := http.NewServeMux()
	mux.Handle("/", s.metrics.countHTTP(LimitHeaders(LimitBody(gw, int64(s.cfg.MaxMessageBytes)), s.cfg.MaxHeaderBytes)))
	// The contract, for anyone: it holds no secret, and a checkout's developer reads it before
	// having a key.
	mux.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(codebankv1.OpenAPI)
	})
	for _, register := range s.deps.Routes {
		register(mux)
	}
	return mux
}

// Serve serves gRPC on grpcL and HTTP on httpL until ctx ends, then stops gracefully: calls in
// progress get their answers.
func (s *Server) Serve(ctx context.Context, grpcL, httpL net.Listener) error {
	s.log.Info("ingress listening", "grpc", grpcL.Addr().String(), "http", httpL.Addr().String())
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.grpc.Serve(grpcL) })
	g.Go(func() error { return s.inprocGRPC.Serve(s.inproc) })
	g.Go(func() error {
		serve := s.http.Serve
		if s.cfg.TLS != nil {
			serve = func(l net.Listener) error { return s.http.ServeTLS(l, "", "") }
		}
		if err := serve(httpL); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		s.health.Shutdown()
		shutdownCtx, cancel := context.WithTimeout(context.Background(), s.cfg.RequestTimeout+time.Second)
		defer cancel()
		stopped := make(chan struct{})
		go func() { s.grpc.GracefulStop(); s.inprocGRPC.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-shutdownCtx.Done():
			s.grpc.Stop()
			s.inprocGRPC.Stop()
		}
		err := s.http.Shutdown(shutdownCtx)
		s.inprocConn.Close()
		return err
	})
	return g.Wait()
}

// NewHTTPServer returns an http.Server for handler whose timeouts bound what a slow or idle
// client can hold: headers within 10 s, the whole request within 30 s, the answer written
// within requestTimeout and 10 s, and an idle keep-alive connection for 2 minutes.
func NewHTTPServer(handler http.Handler, requestTimeout time.Duration) *http.Server {
	return &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      requestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

// LimitBody refuses a request whose body is over max bytes: with 413 and a message at once when
// its Content-Length says so, and by failing the read (http.MaxBytesReader) when it does not.
func LimitBody(next http.Handler, max int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > max {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, `{"code":%d,"message":"request body of %d bytes is over the limit of %d bytes"}`+"\n", codes.ResourceExhausted, r.ContentLength, max)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, max)
		next.ServeHTTP(w, r)
	})
}

// LimitHeaders refuses a request whose headers are over max bytes, counted as HTTP/2 counts a
// header list (name, value and 32 bytes a field), with 431 and a message, before next looks at
// any of them.
func LimitHeaders(next http.Handler, max int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		size := 0
		for name, values := range r.Header {
			for _, v := range values {
				size += len(name) + len(v) + 32
			}
		}
		if size > max {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusRequestHeaderFieldsTooLarge)
			fmt.Fprintf(w, `{"code":%d,"message":"request headers of %d bytes are over the limit of %d bytes"}`+"\n", codes.ResourceExhausted, size, max)
			return
		}
		next.ServeHTTP(w, r)
	})
}

type serverMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inflight prometheus.Gauge
	http     *prometheus.CounterVec
	denied   *prometheus.CounterVec
}

func newServerMetrics(r prometheus.Registerer) serverMetrics {
	m := serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_ingress_requests_total", Help: "gRPC calls finished, by method and status code.",
		}, []string{"method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "codebank_ingress_request_seconds", Help: "gRPC call latency, by method.",
			Buckets: []float64{.0005, .001, .002, .003, .005, .0075, .01, .015, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"method"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "codebank_ingress_inflight", Help: "gRPC calls in progress.",
		}),
		http: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_ingress_http_requests_total", Help: "HTTP requests served by the REST gateway, by status code.",
		}, []string{"code"}),
		denied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "codebank_ingress_denied_total", Help: "Calls refused for want of a valid API key (UNAUTHENTICATED) or of the right role (PERMISSION_DENIED), by method.",
		}, []string{"method", "code"}),
	}
	r.MustRegister(m.requests, m.latency, m.inflight, m.http, m.denied)
	return m
}

func (m serverMetrics) interceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	m.inflight.Inc()
	resp, err := handler(ctx, req)
	m.inflight.Dec()
	method := methodLabel(info.FullMethod)
	m.requests.WithLabelValues(method, status.Code(err).String()).Inc()
	m.latency.WithLabelValues(method).Observe(time.Since(start).Seconds())
	return resp, err
}

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.code = code
	r.ResponseWriter.WriteHeader(code)
}

func (m serverMetrics) countHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		m.http.WithLabelValues(strconv.Itoa(rec.code)).Inc()
	})
}
