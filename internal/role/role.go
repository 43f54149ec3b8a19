// Package role builds Code Bank's serving roles: one constructor a role, which the production
// binary (`codebank all`, `ingress`, `authorizer`, `statements`, `web`: cmd/codebank, serve.go)
// and the integration tests (internal/testenv/banktest) both call, so that a test runs what
// production runs.
//
//   - NewAuthorizer: the authorizer group, on the live generation of its topics (authorizer.go)
//   - NewStatements: the statements group and the view StatementService reads (statements.go)
//   - NewIngress: the Kafka side of the API (requests out, replies in) and the gRPC and REST
//     server, of the ingress or of StatementService alone (ingress.go)
//   - NewWeb: the store's orders group and view, the dashboard's feed, the pages and their
//     clients of the bank (web.go)
//   - NewOps: the operations endpoints (/healthz, /readyz, /metrics) (ingress.go)
//
// Each returns the Components it runs, built but not started, with what the other roles need
// of it (the statements' Reader, the pages' routes). What every role of one process shares
// (Kafka, the topology, the generations of the authorizer's topics, storage, metrics, log) is
// an Env. A process adds the roles' components into one Components and runs them together
// (Components.Run), under one errgroup that owns every goroutine.
package role

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
)

// Env is what the roles of one process share.
type Env struct {
	// Kafka reaches the cluster. The roles of a process share its producer when it is
	// kafkaconf.Config.ShareProducer's.
	Kafka kafkaconf.Config
	// Topology is the deployment's, at the base generation of the authorizer's topics;
	// Generations says which generation is live.
	Topology processors.Topology
	// Generations follows the live generation of the authorizer's topics, which the
	// authorizer decides on and the ingress writes to. Its Run is a component of the process
	// (NewGenerations).
	Generations *generations.Watcher
	// StorageDir holds the local storage of the process's groups and views.
	StorageDir string
	// HotStandby makes the groups keep a copy of every partition's table
	// (kafkaconf.Config.HotStandby).
	HotStandby bool
	// FetchWait is how long the consumers off the synchronous path (the statements, their view,
	// the dashboard's feed) wait to fill a fetch (kafkaconf.Config.Patient).
	FetchWait time.Duration
	// Groups exports the figures of the process's goka groups; the roles add theirs.
	Groups *stream.GroupStats
	// Registerer receives the metrics of every component.
	Registerer prometheus.Registerer
	// Log is the process's logger.
	Log *slog.Logger
}

// group returns the Kafka configuration of a goka group of the process: with its tables'
// hot standby when asked.
func (e Env) group() kafkaconf.Config {
	kc := e.Kafka
	kc.HotStandby = e.HotStandby
	return kc
}

// patient returns the Kafka configuration of a consumer off the synchronous path.
func (e Env) patient() kafkaconf.Config { return e.Kafka.Patient(e.FetchWait) }

// runGroup adds a goka group to c: exported in Groups while it runs.
func (e Env) runGroup(c *Components, name string, g *stream.Group) {
	remove := func() {}
	if e.Groups != nil {
		remove = e.Groups.Add(g)
	}
	c.Add(name, g.Run, g.Ready)
	c.CloseWith(func() error { remove(); return nil })
}

// NewGenerations returns the watcher of the live generation of the authorizer's topics (for
// Env.Generations), having read it once, and the component that follows it.
func NewGenerations(ctx context.Context, kc kafkaconf.Config, base processors.Topology) (*generations.Watcher, Components, error) {
	gens, err := generations.NewWatcher(ctx, kc, base)
	if err != nil {
		return nil, Components{}, err
	}
	var c Components
	c.Add("generations", gens.Run, nil)
	return gens, c, nil
}

// component is one part of a role: it runs until its context ends, and says when it is ready
// (nil: at once), or why it is not (check).
type component struct {
	name  string
	run   func(context.Context) error
	ready func() bool
	check func() error
}

// Components are what one or more roles run, and what to release once they have stopped. The
// zero value holds nothing; Add adds.
type Components struct {
	list    []component
	closers []func() error
	lag     []func() []stream.GroupInputs
}

// Add adds a component that runs until ctx ends; ready reports whether it is ready (nil: at
// once).
func (c *Components) Add(name string, run func(context.Context) error, ready func() bool) {
	c.list = append(c.list, component{name: name, run: run, ready: ready})
}

// AddChecked adds a component that says why it is not ready: check returns nil when it is.
func (c *Components) AddChecked(name string, run func(context.Context) error, check func() error) {
	c.list = append(c.list, component{name: name, run: run, check: check})
}

// AddEvery adds a component that calls do every interval until its context ends; check, when
// set, says why it is not ready.
func (c *Components) AddEvery(name string, interval time.Duration, do func(context.Context), check func() error) {
	c.AddChecked(name, func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				do(ctx)
			}
		}
	}, check)
}

// Include adds every component of more, its closers and its consumer groups.
func (c *Components) Include(more Components) {
	c.list = append(c.list, more.list...)
	c.closers = append(c.closers, more.closers...)
	c.lag = append(c.lag, more.lag...)
}

// CloseWith adds what Close releases, last added first.
func (c *Components) CloseWith(f func() error) { c.closers = append(c.closers, f) }

// lagOf adds consumer groups whose lag the process exports (ExportLag).
func (c *Components) lagOf(groups func() []stream.GroupInputs) { c.lag = append(c.lag, groups) }

// Names returns the names of the components, in order.
func (c Components) Names() []string {
	names := make([]string, len(c.list))
	for i, x := range c.list {
		names[i] = x.name
	}
	return names
}

// NotReady returns nil when every component is ready, else why the first that is not is not.
func (c Components) NotReady() error {
	for _, x := range c.list {
		if x.check != nil {
			if err := x.check(); err != nil {
				return fmt.Errorf("%s: %w", x.name, err)
			}
		}
		if x.ready != nil && !x.ready() {
			return fmt.Errorf("starting: %s is recovering its state or reaching Kafka", x.name)
		}
	}
	return nil
}

// Run runs every component until ctx ends or one fails (then the others are stopped and its
// error, naming it, returned), and logs once when all are ready. It returns once every
// component has returned.
func (c Components) Run(ctx context.Context, log *slog.Logger) error {
	g, ctx := errgroup.WithContext(ctx)
	for _, x := range c.list {
		g.Go(func() error {
			if err := x.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", x.name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		for c.NotReady() != nil {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
		log.Info("codebank ready", "components", strings.Join(c.Names(), ", "))
		return nil
	})
	return g.Wait()
}

// Close releases what the components held, last first, and returns what failed.
func (c Components) Close() error {
	var errs []error
	for i := len(c.closers) - 1; i >= 0; i-- {
		errs = append(errs, c.closers[i]())
	}
	return errors.Join(errs...)
}

// ExportLag registers on env.Registerer the consumer lag of the groups the components run
// (stream.Lag, read from Kafka at each scrape), and closes its connection with them; it does
// nothing when they run no group.
func (c *Components) ExportLag(env Env) error {
	if len(c.lag) == 0 {
		return nil
	}
	sources := c.lag
	lag := stream.NewLag(env.Kafka, func() []stream.GroupInputs {
		var out []stream.GroupInputs
		for _, groups := range sources {
			out = append(out, groups()...)
		}
		return out
	}, env.Log)
	if err := env.Registerer.Register(lag); err != nil {
		return err
	}
	c.CloseWith(lag.Close)
	return nil
}

// Listen listens on addr; the listener is closed with the components.
func (c *Components) Listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	c.CloseWith(func() error {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return l, nil
}
