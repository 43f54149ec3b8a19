package role

import (
	"path/filepath"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors/statements"
)

// StatementsConfig configures the statements role.
type StatementsConfig struct {
	// SinkLag also exports the consumer lag of the search sink, Kafka Connect's group on the
	// results topic, where the sink runs.
	SinkLag bool
}

// Statements is the statements role: the statements group, and the view of its lines that
// StatementService reads (Reader). Off the synchronous path, both are patient consumers
// (Env.FetchWait).
type Statements struct {
	Components
	Reader *statements.Reader
}

// NewStatements returns the statements role, its group's table under env.StorageDir and its
// view's under env.StorageDir/views.
func NewStatements(cfg StatementsConfig, env Env) (*Statements, error) {
	topo := env.Topology
	sp := statements.New(statements.Config{Topology: topo}, statements.Deps{Registerer: env.Registerer, Log: env.Log})
	g, err := stream.NewGroup(env.group().Patient(env.FetchWait), sp.Graph(), env.StorageDir, env.Log)
	if err != nil {
		return nil, err
	}
	view, err := stream.NewView(env.patient(), topo.StatementLines(), filepath.Join(env.StorageDir, "views"), env.Log)
	if err != nil {
		return nil, err
	}
	s := &Statements{Reader: statements.NewReader(view)}
	env.runGroup(&s.Components, "statements", g)
	s.Add("statements view", view.Run, view.Ready)
	lag := []stream.GroupInputs{{Group: string(topo.StatementsGroup()), Topics: []string{topo.Results().Name}}}
	if cfg.SinkLag { // Kafka Connect names a sink's group connect-<connector>
		lag = append(lag, stream.GroupInputs{Group: "connect-" + analytics.ConnectorName(topo), Topics: []string{topo.Results().Name}})
	}
	s.lagOf(func() []stream.GroupInputs { return lag })
	return s, nil
}
