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

	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
	"github.com/codebank/codebank/processors/statements"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// Secret is the bank secret of test deployments.
const Secret = "integration-test-secret-of-the-bank"

// Keys returns the card keys of test deployments.
func Keys(t testing.TB) card.Keys {
	k, err := card.NewKeys(Secret)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Logger returns a logger that writes warnings and errors to stderr.
func Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// Deployment is one Code Bank deployment inside a test: its Kafka configuration and topics.
type Deployment struct {
	Kafka kafkaconf.Config
	Topo  processors.Topology
}

// NewDeployment creates the topics of a deployment named prefix on the broker.
func NewDeployment(t testing.TB, broker, prefix string, partitions, replyPartitions int) Deployment {
	t.Helper()
	d := Deployment{
		Kafka: kafkaconf.Config{Brokers: []string{broker}, ClientID: "test"},
		Topo:  processors.Topology{Prefix: prefix + "-", Partitions: partitions, ReplyPartitions: replyPartitions, Replication: 1},
	}
	admin, err := newAdmin(d.Kafka)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := d.Topo.Ensure(context.Background(), admin); err != nil {
		t.Fatal(err)
	}
	return d
}

// StartAuthorizer runs an authorizer instance with its storage in dir (t.TempDir() when
// empty) and waits until it has recovered its partitions. It is stopped when the test ends.
func StartAuthorizer(t testing.TB, d Deployment, dir string, opts ...authorizer.Option) *Processor {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	reg := prometheus.NewRegistry()
	opts = append([]authorizer.Option{authorizer.WithLogger(Logger()), authorizer.WithRegisterer(reg)}, opts...)
	p := authorizer.New(d.Topo, Keys(t), opts...)
	proc, err := goka.NewProcessor(d.Kafka.Brokers, p.Graph(), d.Kafka.ProcessorOptions(dir, Logger())...)
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, proc, "authorizer", reg)
}

// Ingress is a running ingress replica.
type Ingress struct {
	Bank     *grpcgateway.KafkaBank
	Server   *grpcgateway.Server
	Conn     *grpc.ClientConn
	HTTPURL  string
	GRPCAddr string
	// Registry holds the replica's metrics.
	Registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan error
}

// StartIngress runs an ingress replica reading replyPartition of the replies topic (negative:
// pick one) and returns it with a gRPC client connection. It is stopped when the test ends.
func StartIngress(t testing.TB, d Deployment, replyPartition int, cfg grpcgateway.Config, opts ...grpcgateway.Option) *Ingress {
	t.Helper()
	return StartIngressWith(t, d, grpcgateway.BankConfig{ReplyPartition: replyPartition}, cfg, opts...)
}

// StartIngressWith is StartIngress with the bank's whole configuration (its registry and logger
// are the test's).
func StartIngressWith(t testing.TB, d Deployment, bc grpcgateway.BankConfig, cfg grpcgateway.Config, opts ...grpcgateway.Option) *Ingress {
	t.Helper()
	reg := prometheus.NewRegistry()
	bc.Registerer, bc.Log = reg, Logger()
	bank, err := grpcgateway.NewKafkaBank(d.Kafka, d.Topo, Keys(t), bc)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpcgateway.New(cfg, bank, Keys(t), reg, Logger(), opts...)
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := &Ingress{Bank: bank, Server: srv, HTTPURL: "http://" + hl.Addr().String(), GRPCAddr: gl.Addr().String(), Registry: reg,
		cancel: cancel, done: make(chan error, 2)}
	go func() { in.done <- bank.Run(ctx) }()
	go func() { in.done <- srv.ServeListeners(ctx, gl, hl) }()
	in.Conn, err = grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Conn.Close()
		cancel()
		for i := 0; i < 2; i++ {
			if err := <-in.done; err != nil {
				t.Errorf("ingress stopped with: %v", err)
			}
		}
		bank.Close()
	})
	// Wait for the HTTP side to answer, so tests can use both at once.
	for i := 0; i < 50; i++ {
		if resp, err := http.Get(in.HTTPURL + "/healthz"); err == nil {
			resp.Body.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return in
}

// Processor is a running goka processor.
type Processor struct {
	Proc *goka.Processor
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
	proc, err := goka.NewProcessor(d.Kafka.Brokers, statements.New(d.Topo, reg, Logger()).Graph(), d.Kafka.ProcessorOptions(dir, Logger())...)
	if err != nil {
		t.Fatal(err)
	}
	return Run(t, proc, "statements processor", reg)
}

// Run runs a goka processor until the test ends and waits until it is ready; reg is where
// its metrics are.
func Run(t testing.TB, proc *goka.Processor, what string, reg *prometheus.Registry) *Processor {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p := &Processor{Proc: proc, Registry: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- proc.Run(ctx) }()
	t.Cleanup(func() { p.Stop(t) })
	readyCtx, readyCancel := context.WithTimeout(ctx, 60*time.Second)
	defer readyCancel()
	if err := proc.WaitForReadyContext(readyCtx); err != nil {
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
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("processor stopped with: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("processor did not stop within 60s")
	}
}

// StartStatementsView runs a view of the statements table and returns its reader once the
// view has recovered. It is stopped when the test ends.
func StartStatementsView(t testing.TB, d Deployment) *statements.Reader {
	t.Helper()
	table := d.Topo.StatementsTable()
	view, err := goka.NewView(d.Kafka.Brokers, goka.Table(table.Name), codecs.Lenient(table.Codec), d.Kafka.ViewOptions(t.TempDir(), Logger())...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- view.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("view stopped with: %v", err)
		}
	})
	r := statements.NewReader(view)
	for deadline := time.Now().Add(60 * time.Second); !r.Ready(); {
		if time.Now().After(deadline) {
			t.Fatal("statements view not recovered within 60s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return r
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
func Used(t testing.TB, cards codebankv1.CardServiceClient, number string) int64 {
	t.Helper()
	resp, err := cards.GetCard(Ctx(t), &codebankv1.GetCardRequest{Number: number})
	if err != nil {
		t.Fatalf("GetCard: %v", err)
	}
	return resp.GetCard().GetUsedCents()
}
