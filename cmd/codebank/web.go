package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/orders"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
)

// startStore runs what the store needs beside its pages: its orders topics, processor and
// store (a view), and the dashboard's feed of results; and returns the pages' server, calling
// the bank at bankAddr (payments) and statementsAddr (statements).
func startStore(ctx context.Context, g *errgroup.Group, c config, kc kafkaconf.Config, topo processors.Topology, bankAddr, statementsAddr string,
	reg prometheus.Registerer, log *slog.Logger, ready *[]func() bool) (*web.Server, error) {
	if c.StoreSecret != "" && len(c.StoreSecret) < 16 {
		return nil, fmt.Errorf("%w: --store-secret (CODEBANK_STORE_SECRET) must be at least 16 bytes", errUsage)
	}
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		return nil, fmt.Errorf("connect to Kafka: %w", err)
	}
	err = orders.Ensure(ctx, admin, topo)
	admin.Close()
	if err != nil {
		return nil, err
	}
	dead := processors.NewDeadLetters(reg, log)
	proc, err := goka.NewProcessor(kc.Brokers, orders.New(topo, dead).Graph(), kc.ProcessorOptions(c.StorageDir, log)...)
	if err != nil {
		return nil, fmt.Errorf("create orders processor: %w", err)
	}
	store, err := orders.NewStore(kc, topo, filepath.Join(c.StorageDir, "orders-view"), log)
	if err != nil {
		return nil, err
	}
	feed := web.NewFeed(kc, topo, dead, log)
	g.Go(func() error {
		if err := proc.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("orders processor: %s", card.Redact(err.Error()))
		}
		return nil
	})
	g.Go(func() error {
		defer store.Close()
		return store.Run(ctx)
	})
	g.Go(func() error { return feed.Run(ctx) })
	*ready = append(*ready, proc.Recovered, store.Ready)

	bank, err := dial(bankAddr)
	if err != nil {
		return nil, err
	}
	stmts := bank
	if statementsAddr != bankAddr {
		if stmts, err = dial(statementsAddr); err != nil {
			return nil, err
		}
	}
	g.Go(func() error {
		<-ctx.Done()
		bank.Close()
		stmts.Close()
		return nil
	})
	return web.New(web.Config{OrderSecret: []byte(c.StoreSecret)}, web.Deps{
		Payments: codebankv1.NewPaymentServiceClient(bank), Statements: codebankv1.NewStatementServiceClient(stmts),
		Orders: store, Dashboard: feed, Log: log, Registerer: reg,
	}), nil
}

// runWeb runs the store, statement and dashboard pages alone, in front of a bank elsewhere.
func runWeb(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c config
	fs := newFlagSet("web", "web [flags]", stderr)
	c.kafkaFlags(fs)
	fs.StringVar(&c.HTTPAddr, "http-addr", ":8090", "listen address of the pages, /healthz, /readyz and /metrics")
	fs.StringVar(&c.StorageDir, "storage-dir", "/var/lib/codebank", "directory of the orders' local storage")
	bankAddr := fs.String("bank-addr", "localhost:50051", "gRPC address of the bank's ingress (payments)")
	statementsAddr := fs.String("statements-addr", "", "gRPC address serving statements (default: --bank-addr)")
	c.storeFlags(fs)
	if err := parse(fs, args); err != nil {
		return helpOK(err)
	}
	if *statementsAddr == "" {
		*statementsAddr = *bankAddr
	}
	log, err := c.logger(stderr)
	if err != nil {
		return err
	}
	log.Info("starting codebank", "role", "web", "config", c.logValue())
	kc, topo := c.kafka(), c.topology()
	reg := newRegistry()
	if err := ensureTopics(ctx, kc, topo); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	var ready []func() bool
	srv, err := startStore(ctx, g, c, kc, topo, *bankAddr, *statementsAddr, reg, log, &ready)
	if err != nil {
		return err
	}
	mux := opsMux(reg, ready, "recovering orders", c.Pprof)
	mux.Handle("/", srv.Handler())
	l, err := net.Listen("tcp", c.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen HTTP: %w", err)
	}
	log.Info("store listening", "http", l.Addr().String())
	g.Go(func() error { return serveHTTP(ctx, l, mux) })
	return g.Wait()
}
