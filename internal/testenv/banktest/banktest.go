// Package banktest runs Code Bank's roles in-process against a real Kafka broker, for
// integration tests, each built by the constructor `codebank` builds it with (internal/role):
// an authorizer instance (StartAuthorizer), a statements instance (StartStatements), an
// ingress replica (StartIngress) serving gRPC, HTTP and its operations endpoints on free
// loopback ports, and the web role (StartWeb); and, for the analytics side, the broker,
// search node and Kafka Connect worker a test package shares (RunWithAnalytics).
package banktest

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/role"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// The secrets of test deployments: the tokenization key and the card keys (as
// CODEBANK_TOKEN_KEY and CODEBANK_CARD_KEYS take them).
const (
	TokenKey = "integration tests' tokenization key: 32+ bytes"
	CardKeys = "t1:integration tests' card key t1: 32+ bytes"
)

// Keys returns the card keys of test deployments.
func Keys(t testing.TB) card.Keys {
	ck, err := card.ParseCardKeys(CardKeys)
	if err != nil {
		t.Fatal(err)
	}
	k, err := card.NewKeys([]byte(TokenKey), ck...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Logger returns a logger that writes warnings and errors to stderr.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Deployment is one Code Bank deployment inside a test: its Kafka configuration and the
// topics of the bank and of its store.
type Deployment struct {
	Kafka kafkaconf.Config
	Topo  processors.Topology
	Store store.Topology
}

// NewDeployment creates the topics of a deployment named prefix on the broker, as `codebank
// setup` does: the bank's and the store's.
func NewDeployment(t testing.TB, broker, prefix string, partitions, replyPartitions int) Deployment {
	t.Helper()
	tier.Servers(t, "a Kafka broker")
	d := Deployment{
		Kafka: kafkaconf.Config{Brokers: []string{broker}, ClientID: "test"},
		Topo:  processors.Topology{Prefix: prefix + "-", Partitions: partitions, ReplyPartitions: replyPartitions, Replication: 1},
		Store: store.Topology{Prefix: prefix + "-", Partitions: partitions, Replication: 1},
	}
	admin, err := newAdmin(d.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := d.Topo.Ensure(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	if err := d.Store.Ensure(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	return d
}

// process is the components of one role in a test, built by its constructor in
// internal/role as `codebank` builds them, with what they share (role.Env): a producer of
// their own (kafkaconf.Config.ShareProducer), a follower of the live generation of the
// authorizer's topics, metrics on reg.
type process struct {
	env   role.Env
	reg   *prometheus.Registry
	comps role.Components
}

// newProcess returns the process of a role with its storage in dir (t.TempDir() when empty)
// and its metrics on reg.
func newProcess(t testing.TB, d Deployment, dir string, reg *prometheus.Registry, log *slog.Logger) *process {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	kc := d.Kafka.ShareProducer()
	gens, watch, err := role.NewGenerations(Ctx(t), kc, d.Topo)
	if err != nil {
		t.Fatal(err)
	}
	groups := stream.NewGroupStats()
	reg.MustRegister(groups)
	p := &process{env: role.Env{Kafka: kc, Topology: d.Topo, Generations: gens, StorageDir: dir, Groups: groups, Registerer: reg, Log: log}, reg: reg}
	p.comps.Include(watch)
	return p
}

// listen listens on a free loopback port, closed with the process.
func (p *process) listen(t testing.TB) net.Listener {
	t.Helper()
	l, err := p.comps.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// start exports the lag of the process's groups, runs its components until the test ends and
// waits until they are ready.
func (p *process) start(t testing.TB, what string) *Processor {
	t.Helper()
	if err := p.comps.ExportLag(p.env); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Processor{Registry: p.reg, comps: p.comps, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.comps.Run(ctx, p.env.Log) }()
	t.Cleanup(func() { r.Stop(t) })
	wait.For(t, time.Minute, what+" to be ready", func() error {
		select {
		case err := <-r.done:
			r.done <- err
			t.Fatalf("%s stopped: %v", what, err)
		default:
		}
		return p.comps.NotReady()
	})
	return r
}

// StartAuthorizer runs an authorizer instance (role.NewAuthorizer) with its storage in dir
// (t.TempDir() when empty) and waits until it has recovered its partitions. It is stopped when
// the test ends.
func StartAuthorizer(t testing.TB, d Deployment, dir string) *Processor {
	t.Helper()
	return StartAuthorizerWith(t, d, dir, authorizer.Deps{})
}

// StartAuthorizerWith is StartAuthorizer with some of the authorizer's collaborators (its clock);
// the others are the test's.
func StartAuthorizerWith(t testing.TB, d Deployment, dir string, deps authorizer.Deps) *Processor {
	t.Helper()
	p := newProcess(t, d, dir, prometheus.NewRegistry(), Logger())
	deps.Keys = Keys(t)
	p.comps.Include(role.NewAuthorizer(authorizer.Config{}, deps, p.env))
	return p.start(t, "authorizer")
}

// Ingress is a running ingress replica.
type Ingress struct {
	Bank   *grpcgateway.KafkaBank
	Server *grpcgateway.Server
	// Conn is a client connection that sends, with each call, the test key of a role that may
	// make it (Callers).
	Conn     *grpc.ClientConn
	HTTPURL  string
	GRPCAddr string
	// OpsURL serves its operations endpoints (/healthz, /readyz, /metrics).
	OpsURL string
	// Registry holds the replica's metrics.
	Registry *prometheus.Registry
}

// IngressOptions say how a test's ingress replica differs from the default one.
type IngressOptions struct {
	// ReplyPartition is the partition of the replies topic it reads (negative: pick one).
	ReplyPartition int
	// MaxInFlight bounds its calls waiting for the authorizer (default: the bank's).
	MaxInFlight int
	// Config configures its server. Unless NoLegacy, it serves the original contract, booking its
	// callers as Merchant.
	Config   grpcgateway.Config
	NoLegacy bool
	// Statements, when set, serves StatementService (Statements.Reader).
	Statements grpcgateway.StatementReader
	// APIKeys authenticate its callers (default: the test deployment's, APIKeys).
	APIKeys grpcgateway.Authenticator
	// Keys derive its card tokens and CVVs (default: the test deployment's, Keys).
	Keys *card.Keys
	// Log is its logger (default: Logger).
	Log *slog.Logger
	// Now is its clock (default time.Now): it stamps requests, and says which bills are due.
	Now func() time.Time
}

// StartIngress runs an ingress replica (role.NewIngress), serving gRPC, HTTP and its operations
// endpoints on free loopback ports, and returns it, once ready, with a gRPC client connection.
// It is stopped when the test ends.
func StartIngress(t testing.TB, d Deployment, o IngressOptions) *Ingress {
	t.Helper()
	if o.Config.Legacy == nil && !o.NoLegacy {
		o.Config.Legacy = &grpcgateway.Legacy{Merchant: Merchant, MerchantName: MerchantName}
	}
	if o.APIKeys == nil {
		o.APIKeys = APIKeys(t)
	}
	keys := Keys(t)
	if o.Keys != nil {
		keys = *o.Keys
	}
	if o.Log == nil {
		o.Log = Logger()
	}
	reg := prometheus.NewRegistry()
	p := newProcess(t, d, "", reg, o.Log)
	gl, hl, ol := p.listen(t), p.listen(t), p.listen(t)
	in, err := role.NewIngress(role.IngressConfig{Server: o.Config, ReplyPartition: o.ReplyPartition, MaxInFlight: o.MaxInFlight,
		GRPC: gl, HTTP: hl, Keys: keys, APIKeys: o.APIKeys, Statements: o.Statements, Now: o.Now}, p.env)
	if err != nil {
		t.Fatal(err)
	}
	p.comps.Include(in.Components)
	p.comps.Include(role.NewOps(ol, reg, func() error { return p.comps.NotReady() }, false, o.Log))
	r := &Ingress{Bank: in.Bank, Server: in.Server, HTTPURL: "http://" + hl.Addr().String(), GRPCAddr: gl.Addr().String(),
		OpsURL: "http://" + ol.Addr().String(), Registry: reg}
	p.start(t, "ingress")
	if r.Conn, err = grpc.NewClient(r.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(Callers)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Conn.Close() }) // before the replica stops: cleanups run last first
	return r
}

// Processor is a running role.
type Processor struct {
	// Registry holds the role's metrics.
	Registry *prometheus.Registry
	comps    role.Components
	cancel   context.CancelFunc
	done     chan error
}

// Statements is a running statements role: the group and the view StatementService reads.
type Statements struct {
	*Processor
	// Reader reads the view, for an ingress (IngressOptions.Statements).
	Reader *statements.Reader
}

// StartStatements runs a statements instance (role.NewStatements: the group and its view) with
// its storage in dir (t.TempDir() when empty) and waits until it is ready. It is stopped when
// the test ends.
func StartStatements(t testing.TB, d Deployment, dir string) *Statements {
	t.Helper()
	p := newProcess(t, d, dir, prometheus.NewRegistry(), Logger())
	s, err := role.NewStatements(role.StatementsConfig{}, p.env)
	if err != nil {
		t.Fatal(err)
	}
	p.comps.Include(s.Components)
	return &Statements{Processor: p.start(t, "statements"), Reader: s.Reader}
}

// Web is a running web role.
type Web struct {
	*Processor
	// Orders is its view of the orders, Feed the dashboard's feed of results.
	Orders *store.Orders
	Feed   *web.Feed
	// URL serves the pages.
	URL string
}

// StartWeb runs the web role (role.NewWeb) with the pages config, a client of the bank at in
// with the test deployment's store and pages keys, serving the pages on a free loopback port,
// and waits until it is ready. It is stopped when the test ends.
func StartWeb(t testing.TB, d Deployment, in *Ingress, pages web.Config) *Web {
	t.Helper()
	p := newProcess(t, d, "", prometheus.NewRegistry(), Logger())
	hl := p.listen(t)
	w, err := role.NewWeb(role.WebConfig{Pages: pages, Store: d.Store, OrderTTL: role.DefaultOrderTTL, BankAddr: in.GRPCAddr,
		MerchantKey: MerchantKey, PagesKey: PagesKey, HTTP: hl}, p.env)
	if err != nil {
		t.Fatal(err)
	}
	p.comps.Include(w.Components)
	return &Web{Processor: p.start(t, "web"), Orders: w.Orders, Feed: w.Feed, URL: "http://" + hl.Addr().String()}
}

// Run runs a group alone until the test ends and waits until it is ready; reg is where its
// metrics are.
func Run(t testing.TB, g *stream.Group, what string, reg *prometheus.Registry) *Processor {
	t.Helper()
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	p := &process{env: role.Env{Registerer: reg, Log: Logger()}, reg: reg}
	p.comps.Add(what, g.Run, g.Ready)
	return p.start(t, what)
}

// Stop stops the instance, waits for it and releases what it held; safe to call twice.
func (p *Processor) Stop(t testing.TB) {
	t.Helper()
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("stopped with: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("did not stop within 60s")
	}
	if err := p.comps.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// StartView runs a view of table until the test ends and returns it once it has recovered.
func StartView(t testing.TB, d Deployment, table stream.Topic) *stream.View {
	t.Helper()
	view, err := stream.NewView(d.Kafka, table, t.TempDir(), Logger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("view stopped with: %v", err)
		}
	})
	wait.Until(t, time.Minute, "the view of "+table.Name+" to recover", view.Ready)
	return view
}

// StartStatementsView runs a view of the statements table alone and returns its reader once the
// view has recovered, for an ingress that outlives the statements instances of a test
// (StartStatements has a view of its own). It is stopped when the test ends.
func StartStatementsView(t testing.TB, d Deployment) *statements.Reader {
	t.Helper()
	return statements.NewReader(StartView(t, d, d.Topo.StatementLines()))
}

// Value returns the value of the counter or gauge name with exactly these labels in reg; 0
// when there is none.
func Value(t testing.TB, reg prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	metric:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metric
				}
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// Ctx returns a context for one call of a test: it ends after 30 s or with the test.
func Ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Issue issues a card through the card service and returns it with its CVV.
func Issue(t testing.TB, cards codebankv1.CardServiceClient, holder string, limit int64) *codebankv1.IssueCardResponse {
	t.Helper()
	resp, err := cards.IssueCard(Ctx(t), &codebankv1.IssueCardRequest{HolderName: holder, LimitCents: limit})
	if err != nil {
		t.Fatalf("IssueCard: %v", err)
	}
	return resp
}

// Details returns what a checkout sends to pay with an issued card.
func Details(c *codebankv1.IssueCardResponse) *codebankv1.CardDetails {
	return &codebankv1.CardDetails{Number: c.GetCard().GetNumber(), HolderName: c.GetCard().GetHolderName(),
		ExpiryMonth: c.GetCard().GetExpiryMonth(), ExpiryYear: c.GetCard().GetExpiryYear(), Cvv: c.GetCvv()}
}

// Used returns a card's used credit, read through the card service.
func Used(t testing.TB, cards codebankv1.CardServiceClient, c *codebankv1.IssueCardResponse) int64 {
	t.Helper()
	resp, err := cards.GetCard(Ctx(t), &codebankv1.GetCardRequest{CardId: c.GetCard().GetCardId()})
	if err != nil {
		t.Fatalf("GetCard: %v", err)
	}
	return resp.GetCard().GetUsedCents()
}
