package role

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"google.golang.org/grpc"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/stream"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// WebConfig configures the web role.
type WebConfig struct {
	// Pages configures the pages (the store's secret, its demo cards).
	Pages web.Config
	// Store names the store's topics and group.
	Store store.Topology
	// OrderTTL is how long the store keeps an order never paid after its last change: the
	// role sweeps its view of the orders every tenth of it (orderSweepEvery) and forgets
	// those (store.Orders.Forget). 0 keeps them.
	OrderTTL time.Duration
	// BankAddr is the gRPC address of the bank's ingress (payments, with MerchantKey; card
	// verification, with PagesKey), StatementsAddr the one serving StatementService (with
	// PagesKey; empty: BankAddr).
	BankAddr, StatementsAddr string
	MerchantKey, PagesKey    string
	// BankTLS reaches the bank over TLS; nil: plaintext, which cli.Dial refuses to an address
	// that is not loopback unless BankPlaintext.
	BankTLS       *tls.Config
	BankPlaintext bool
	// HTTP, when set, serves the pages alone on it, over TLS with TLS (codebank web). Without
	// it, the process's ingress serves them beside the REST gateway (Web.Pages.Register among
	// IngressConfig.Routes: codebank all).
	HTTP net.Listener
	TLS  *tls.Config
}

// Web is the web role: the store's orders group and its view of the orders (Orders), the
// dashboard's feed of results (Feed), and the pages (Pages), which reach the bank through its
// gRPC API like any checkout.
type Web struct {
	Components
	Pages  *web.Server
	Orders *store.Orders
	Feed   *web.Feed
}

// NewWeb returns the web role: the orders group's table under env.StorageDir and the orders
// view's under env.StorageDir/orders-view. An address of the bank that cli.Dial refuses is an
// error wrapping cli.ErrPlaintext.
func NewWeb(cfg WebConfig, env Env) (w *Web, err error) {
	w = &Web{}
	defer func() {
		if err != nil {
			w.Close()
			w = nil
		}
	}()
	g, err := stream.NewGroup(env.group(), store.New(cfg.Store, store.Deps{Registerer: env.Registerer, Log: env.Log}).Graph(), env.StorageDir, env.Log)
	if err != nil {
		return w, err
	}
	if w.Orders, err = store.NewOrders(env.Kafka, cfg.Store, filepath.Join(env.StorageDir, "orders-view"), env.Log); err != nil {
		return w, err
	}
	w.CloseWith(w.Orders.Close)
	w.Feed = web.NewFeed(web.FeedConfig{Kafka: env.patient(), Topology: env.Topology}, web.FeedDeps{Registerer: env.Registerer, Log: env.Log})
	creds := grpcgateway.CallerKeys{Merchant: cfg.MerchantKey, Pages: cfg.PagesKey, Insecure: cfg.BankTLS == nil}
	dial := func(addr string) (*grpc.ClientConn, error) {
		conn, err := cli.Dial(addr, cfg.BankTLS, creds, cfg.BankPlaintext)
		if err == nil {
			w.CloseWith(conn.Close)
		}
		return conn, err
	}
	bank, err := dial(cfg.BankAddr)
	if err != nil {
		return w, err
	}
	stmts := bank
	if cfg.StatementsAddr != "" && cfg.StatementsAddr != cfg.BankAddr {
		if stmts, err = dial(cfg.StatementsAddr); err != nil {
			return w, err
		}
	}
	env.runGroup(&w.Components, "orders", g)
	w.Add("orders view", w.Orders.Run, w.Orders.Ready)
	if cfg.OrderTTL > 0 {
		w.AddEvery("orders sweeper", orderSweepEvery(cfg.OrderTTL), func(ctx context.Context) { w.Orders.Forget(ctx, cfg.OrderTTL) }, nil)
	}
	w.Add("dashboard feed", w.Feed.Run, nil)
	w.lagOf(func() []stream.GroupInputs {
		return []stream.GroupInputs{{Group: string(cfg.Store.Group()), Topics: []string{cfg.Store.Events().Name}}}
	})
	w.Pages = web.New(cfg.Pages, web.Deps{Payments: codebankv1.NewPaymentServiceClient(bank), Cards: codebankv1.NewCardServiceClient(bank),
		Statements: codebankv1.NewStatementServiceClient(stmts), Orders: w.Orders, Dashboard: w.Feed, Log: env.Log, Registerer: env.Registerer})
	if cfg.HTTP != nil {
		mux := http.NewServeMux()
		w.Pages.Register(mux)
		w.Add("pages", func(ctx context.Context) error {
			env.Log.Info("listening", "http", cfg.HTTP.Addr().String())
			return serveHTTP(ctx, cfg.HTTP, mux, cfg.TLS)
		}, nil)
	}
	return w, nil
}

// DefaultOrderTTL is how long the store keeps an order never paid, by default (WebConfig.OrderTTL).
const DefaultOrderTTL = 24 * time.Hour

// orderSweepEvery is how often the web role looks for orders to forget: a tenth of how long
// they are kept, from a second to an hour.
func orderSweepEvery(ttl time.Duration) time.Duration {
	return min(max(ttl/10, time.Second), time.Hour)
}
