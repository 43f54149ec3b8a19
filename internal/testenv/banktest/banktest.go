// Package banktest runs Code Bank's components in-process against a real Kafka broker, for
// integration tests: an authorizer instance (StartAuthorizer) and an ingress replica
// (StartIngress) serving gRPC and HTTP on free loopback ports; and, for the analytics side,
// the broker, search node and Kafka Connect worker a test package shares (RunWithAnalytics).
package banktest

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
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

// StartAuthorizer runs an authorizer instance with its storage in dir (t.TempDir() when
// empty) and waits until it has recovered its partitions. It is stopped when the test ends.
func StartAuthorizer(t testing.TB, d Deployment, dir string) *Processor {
	t.Helper()
	return StartAuthorizerWith(t, d, dir, authorizer.Deps{})
}

// StartAuthorizerWith is StartAuthorizer with some of the authorizer's collaborators (its clock);
// the others are the test's.
func StartAuthorizerWith(t testing.TB, d Deployment, dir string, deps authorizer.Deps) *Processor {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	deps.Keys, deps.Registerer, deps.Log = Keys(t), reg, Logger()
	g, err := authorizer.New(authorizer.Config{Topology: d.Topo}, deps).Group(d.Kafka, dir, Logger())
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, g, "authorizer", reg)
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
	// Statements, when set, serves StatementService.
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

// StartIngress runs an ingress replica, serving gRPC and HTTP (with the operations endpoints)
// on free loopback ports, and returns it with a gRPC client connection. It is stopped when the
// test ends.
func StartIngress(t testing.TB, d Deployment, o IngressOptions) *Ingress {
	t.Helper()
	reg := prometheus.NewRegistry()
	bank, err := grpcgateway.NewKafkaBank(grpcgateway.BankConfig{Kafka: d.Kafka, Topology: d.Topo, ReplyPartition: o.ReplyPartition, MaxInFlight: o.MaxInFlight},
		grpcgateway.BankDeps{Registerer: reg, Log: Logger()})
	if err != nil {
		t.Fatal(err)
	}
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
	srv := grpcgateway.New(o.Config, grpcgateway.Deps{Bank: bank, Statements: o.Statements, Keys: keys, APIKeys: o.APIKeys,
		Registerer: reg, Log: o.Log, Now: o.Now,
		Routes: []func(*http.ServeMux){grpcgateway.OpsRoutes(reg, func() error {
			if !bank.Ready() {
				return errors.New("not connected to Kafka")
			}
			return nil
		}, false)}})
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Ingress{Bank: bank, Server: srv, HTTPURL: "http://" + hl.Addr().String(), GRPCAddr: gl.Addr().String(), Registry: reg}
	done := make(chan error, 2)
	go func() { done <- bank.Run(ctx) }()
	go func() { done <- srv.Serve(ctx, gl, hl) }()
	if in.Conn, err = grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(Callers)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Conn.Close()
		cancel()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("ingress stopped with: %v", err)
			}
		}
		bank.Close()
	})
	return in
}

// Processor is a running goka processor.
type Processor struct {
	Group *stream.Group
	// Registry holds the processor's metrics.
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan error
}

// StartStatements runs a statements processor instance with its storage in dir (t.TempDir()
// when empty) and waits until it is ready. It is stopped when the test ends.
func StartStatements(t testing.TB, d Deployment, dir string) *Processor {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	g, err := stream.NewGroup(d.Kafka, statements.New(statements.Config{Topology: d.Topo}, statements.Deps{Registerer: reg, Log: Logger()}).Graph(), dir, Logger())
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, g, "statements processor", reg)
}

// Run runs a group until the test ends and waits until it is ready; reg is where its metrics
// are.
func Run(t testing.TB, g *stream.Group, what string, reg *prometheus.Registry) *Processor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Processor{Group: g, Registry: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- g.Run(ctx) }()
	t.Cleanup(func() { p.Stop(t) })
	readyCtx, readyCancel := context.WithTimeout(ctx, 60*time.Second)
	defer readyCancel()
	if err := g.WaitReady(readyCtx); err != nil {
		t.Fatalf("%s not ready: %v", what, err)
	}
	return p
}

// Stop stops the instance and waits for it; safe to call twice.
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
			t.Errorf("processor stopped with: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("processor did not stop within 60s")
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

// StartStatementsView runs a view of the statements table and returns its reader once the
// view has recovered. It is stopped when the test ends.
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
