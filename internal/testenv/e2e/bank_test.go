package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// wholeBank is every component of `codebank all` and its analytics, in the test's process, on
// the package's servers: the authorizer, the statements processor and its view, an ingress
// serving statements too, the store's orders group and store, the dashboard's feed, and the
// Kafka Connect sink into an index of its own.
type wholeBank struct {
	d          banktest.Deployment
	auth       *banktest.Processor
	stmts      *banktest.Processor
	ordersGrp  *banktest.Processor
	in         *banktest.Ingress
	orders     *store.Orders
	feedReg    *prometheus.Registry
	index      string
	search     *elastic.Client
	cards      codebankv1.CardServiceClient
	payments   codebankv1.PaymentServiceClient
	statements codebankv1.StatementServiceClient
}

func startWholeBank(t *testing.T, cfg grpcgateway.Config) *wholeBank {
	t.Helper()
	name := kafkatest.Name(t)
	d := banktest.NewDeployment(t, servers.Broker, name, 3, 2)
	b := &wholeBank{d: d, index: analytics.DefaultIndex + "-" + strings.ToLower(name), feedReg: prometheus.NewRegistry()}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b.auth = banktest.StartAuthorizer(t, d, "")
	b.stmts = banktest.StartStatements(t, d, "")
	reader := banktest.StartStatementsView(t, d)
	b.in = banktest.StartIngress(t, d, banktest.IngressOptions{Config: cfg, Statements: reader})
	b.cards = codebankv1.NewCardServiceClient(b.in.Conn)
	b.payments = codebankv1.NewPaymentServiceClient(b.in.Conn)
	b.statements = codebankv1.NewStatementServiceClient(b.in.Conn)

	ordersReg := prometheus.NewRegistry()
	g, err := stream.NewGroup(d.Kafka, store.New(d.Store, store.Deps{Registerer: ordersReg, Log: banktest.Logger()}).Graph(), t.TempDir(), banktest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	b.ordersGrp = banktest.Run(t, g, "orders processor", ordersReg)
	if b.orders, err = store.NewOrders(d.Kafka, d.Store, "", banktest.Logger()); err != nil {
		t.Fatal(err)
	}
	feed := web.NewFeed(web.FeedConfig{Kafka: d.Kafka, Topology: d.Topo}, web.FeedDeps{Registerer: b.feedReg, Log: banktest.Logger()})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- b.orders.Run(runCtx) }()
	go func() { done <- feed.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("store or feed stopped with: %v", err)
			}
		}
		b.orders.Close()
	})
	wait.Until(t, time.Minute, "the orders and the dashboard's feed", func() bool { return b.orders.Ready() && feed.Snapshot().Connected })

	if _, err := analytics.Setup(ctx, d.Topo, analytics.Sink{SearchURL: servers.SearchURL, ConnectURL: servers.ConnectURL, Index: b.index}); err != nil {
		t.Fatal(err)
	}
	if b.search, err = analytics.NewClient(servers.SearchURL); err != nil {
		t.Fatal(err)
	}
	return b
}

// auditConfig is the audit of the bank's topics and index.
func (b *wholeBank) auditConfig(t *testing.T) audit.Config {
	return audit.Config{Kafka: b.d.Kafka, Topo: b.d.Topo, Search: b.search, Index: b.index,
		Consumers: b.d.Store.Consumers()}
}

// balanced audits the books until they balance (consumers and Connect catch up) and returns
// the report; it fails the test with the discrepancies when they do not within a minute.
func (b *wholeBank) balanced(t *testing.T) *audit.Report {
	t.Helper()
	return balanced(t, b.auditConfig(t))
}

func balanced(t *testing.T, cfg audit.Config) *audit.Report {
	t.Helper()
	var rep *audit.Report
	wait.For(t, time.Minute, "the books to balance after the load", func() error {
		var err error
		if rep, err = audit.Run(context.Background(), cfg); err != nil {
			t.Fatalf("audit: %v", err)
		}
		if !rep.OK() {
			var sb strings.Builder
			rep.Write(&sb, 20)
			return errors.New(sb.String())
		}
		return nil
	})
	return rep
}

// Short names for the harness's helpers.
var (
	ctxT    = banktest.Ctx
	issue   = banktest.Issue
	details = banktest.Details
	used    = banktest.Used
)
