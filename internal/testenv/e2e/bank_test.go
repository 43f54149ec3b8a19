package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
)

// wholeBank is every role of `codebank all` and its analytics, in the test's process, on the
// package's servers, each built as codebank builds it (banktest, internal/role): the
// authorizer, the statements processor and its view, an ingress serving statements too, the
// web role (the store's orders group and view, the dashboard's feed, the pages), and the
// Kafka Connect sink into an index of its own.
type wholeBank struct {
	d          banktest.Deployment
	auth       *banktest.Processor
	stmts      *banktest.Statements
	in         *banktest.Ingress
	web        *banktest.Web
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
	b := &wholeBank{d: d, index: analytics.DefaultIndex + "-" + strings.ToLower(name)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	b.auth = banktest.StartAuthorizer(t, d, "")
	b.stmts = banktest.StartStatements(t, d, "")
	b.in = banktest.StartIngress(t, d, banktest.IngressOptions{Config: cfg, Statements: b.stmts.Reader})
	b.cards = codebankv1.NewCardServiceClient(b.in.Conn)
	b.payments = codebankv1.NewPaymentServiceClient(b.in.Conn)
	b.statements = codebankv1.NewStatementServiceClient(b.in.Conn)
	b.web = banktest.StartWeb(t, d, b.in, web.Config{})
	wait.Until(t, time.Minute, "the dashboard's feed", func() bool { return b.web.Feed.Snapshot().Connected })

	if _, err := analytics.Setup(ctx, d.Topo, analytics.Sink{SearchURL: servers.SearchURL, ConnectURL: servers.ConnectURL, Index: b.index}); err != nil {
		t.Fatal(err)
	}
	var err error
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
