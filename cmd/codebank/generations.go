package main

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
)

// generational runs the authorizer on the live generation of its topics
// (internal/generations), and follows every move: while one is under way it decides nothing;
// once a generation is live it decides there, and forwards what is left in the previous
// generation's inputs into it.
type generational struct {
	gens       *generations.Watcher
	base       processors.Topology
	a          *authorizer.Processor // of the base generation; At gives the others
	kc         kafkaconf.Config
	storageDir string
	stats      *stream.GroupStats
	log        *slog.Logger

	deciding atomic.Pointer[stream.Group] // nil while a move is under way
}

// Ready reports whether the live generation's group has recovered its table and decides.
func (g *generational) Ready() bool {
	d := g.deciding.Load()
	return d != nil && d.Ready()
}

// Run runs the groups of each state in turn until ctx ends or one fails.
func (g *generational) Run(ctx context.Context) error {
	for {
		state, changed := g.gens.Current()
		runCtx, stop := context.WithCancel(ctx)
		eg, egCtx := errgroup.WithContext(runCtx)
		var removes []func()
		start := func(grp *stream.Group) {
			removes = append(removes, g.stats.Add(grp))
			eg.Go(func() error { return grp.Run(egCtx) })
		}
		if !state.Switching {
			live := state.Live(g.base)
			d, err := g.a.At(live).Group(g.kc, g.storageDir, g.log)
			if err != nil {
				stop()
				return err
			}
			g.deciding.Store(d)
			start(d)
			if prev, ok := state.Prev(g.base); ok {
				f, err := stream.NewGroup(g.kc, g.a.At(prev).ForwardGraph(live), g.storageDir, g.log)
				if err != nil {
					stop()
					eg.Wait()
					return err
				}
				start(f)
			}
			g.log.Info("authorizer deciding", "state", state.String())
		} else {
			g.deciding.Store(nil)
			g.log.Info("authorizer paused for a move between generations", "state", state.String())
		}
		var err error
		select {
		case <-ctx.Done():
		case <-egCtx.Done(): // a group failed
		case <-changed:
		}
		stop()
		err = eg.Wait()
		g.deciding.Store(nil)
		for _, remove := range removes {
			remove()
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !errors.Is(err, context.Canceled) {
			return err
		}
	}
}

// followGenerations points the ingress at each new live generation.
func followGenerations(gens *generations.Watcher, base processors.Topology, bank *grpcgateway.KafkaBank) func(context.Context) error {
	return func(ctx context.Context) error {
		for {
			state, changed := gens.Current()
			if err := bank.Switch(state.Live(base)); err != nil {
				return err
			}
			select {
			case <-ctx.Done():
				return nil
			case <-changed:
			}
		}
	}
}
