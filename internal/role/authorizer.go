package role

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	"github.com/codebank/codebank/processors/authorizer"
)

// NewAuthorizer returns the authorizer role: the authorizer group (authorizer.New with cfg and
// deps) on the live generation of its topics, following every move between generations
// (env.Generations), its table kept under env.StorageDir. cfg.Topology is env's; deps'
// registerer and logger, when unset, are env's. Its consumer lag is that of the live
// generation's group, and of the previous one's while it is forwarded.
func NewAuthorizer(cfg authorizer.Config, deps authorizer.Deps, env Env) Components {
	cfg.Topology = env.Topology
	if deps.Registerer == nil {
		deps.Registerer = env.Registerer
	}
	if deps.Log == nil {
		deps.Log = env.Log
	}
	g := &generational{gens: env.Generations, base: env.Topology, a: authorizer.New(cfg, deps), kc: env.group(),
		storageDir: env.StorageDir, stats: env.Groups, log: env.Log}
	var c Components
	c.Add("authorizer", g.Run, g.Ready)
	c.lagOf(g.lagGroups)
	return c
}

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
	stats      *stream.GroupStats // nil: the groups' figures are not exported
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
			if g.stats != nil {
				removes = append(removes, g.stats.Add(grp))
			}
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

// lagGroups returns the authorizer's groups at the live generation, and the previous one's
// while it is forwarded, with their inputs.
func (g *generational) lagGroups() []stream.GroupInputs {
	state, _ := g.gens.Current()
	tops := []processors.Topology{state.Live(g.base)}
	if prev, ok := state.Prev(g.base); ok {
		tops = append(tops, prev)
	}
	out := make([]stream.GroupInputs, 0, len(tops))
	for _, t := range tops {
		out = append(out, stream.GroupInputs{Group: string(t.AuthorizerGroup()), Topics: []string{t.PaymentRequests().Name, t.CardCommands().Name}})
	}
	return out
}
