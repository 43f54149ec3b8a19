package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/internal/stream"
)

// process is the components of one codebank process: built one by one, then started together.
type process struct {
	components []component
	closers    []func() error
	groups     *stream.GroupStats // the goka groups' figures, registered by serve
}

// component is one part of a process: it runs until ctx ends, and says when it is ready (nil:
// at once), or why it is not (check).
type component struct {
	name  string
	run   func(context.Context) error
	ready func() bool
	check func() error
}

func (p *process) add(name string, run func(context.Context) error, ready func() bool) {
	p.components = append(p.components, component{name: name, run: run, ready: ready})
}

// addChecked adds a component that says why it is not ready: check returns nil when it is.
func (p *process) addChecked(name string, run func(context.Context) error, check func() error) {
	p.components = append(p.components, component{name: name, run: run, check: check})
}

// closeWith adds what close releases, in reverse order.
func (p *process) closeWith(f func() error) { p.closers = append(p.closers, f) }

// listen listens on addr; the listener is closed with the process.
func (p *process) listen(addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	p.closeWith(func() error {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			return err
		}
		return nil
	})
	return l, nil
}

// notReady returns nil when every component is ready, else why the first that is not is not.
func (p *process) notReady() error {
	for _, c := range p.components {
		if c.check != nil {
			if err := c.check(); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
		}
		if c.ready != nil && !c.ready() {
			return fmt.Errorf("starting: %s is recovering its state or reaching Kafka", c.name)
		}
	}
	return nil
}

// ready reports whether every component is ready.
func (p *process) ready() bool { return p.notReady() == nil }

// start runs every component under g, and logs once when all are ready.
func (p *process) start(ctx context.Context, g *errgroup.Group, log *slog.Logger) {
	for _, c := range p.components {
		g.Go(func() error {
			if err := c.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		})
	}
	g.Go(func() error {
		names := make([]string, len(p.components))
		for i, c := range p.components {
			names[i] = c.name
		}
		for !p.ready() {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(100 * time.Millisecond):
			}
		}
		log.Info("codebank ready", "components", strings.Join(names, ", "))
		return nil
	})
}

// close releases what the components held, last first, and logs what fails.
func (p *process) close(log *slog.Logger) {
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i](); err != nil {
			log.Warn("close", "err", err)
		}
	}
}
