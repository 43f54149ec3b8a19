package stream_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

// TestGroupStats: a running group reports, from goka's stats, every partition assigned to this
// instance, its table recovered, and nothing left to recover.
func TestGroupStats(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	kc := kafkaconf.Config{Brokers: []string{brokerAddr}}
	name := kafkatest.Name(t)
	in := name + "-in"
	admin, err := sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{in, string(goka.GroupTable(goka.Group(name)))} {
		if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
			t.Fatal(err)
		}
	}
	admin.Close()
	graph := goka.DefineGroup(goka.Group(name),
		goka.Input(goka.Stream(in), new(codec.String), func(ctx goka.Context, msg any) { ctx.SetValue(msg) }),
		goka.Persist(new(codec.String)))
	// New topics: the broker's metadata may not have them yet.
	var g *stream.Group
	wait.For(t, 30*time.Second, "the group's topics", func() (err error) {
		g, err = stream.NewGroup(kc, graph, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
		return err
	})
	stats := stream.NewGroupStats()
	stats.Add(g)
	reg := prometheus.NewRegistry()
	reg.MustRegister(stats)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	if v := gauge(t, reg, "codebank_table_recovered", name); v != 0 {
		t.Errorf("recovered before the group ran: %v", v)
	}
	if err := g.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if v := gauge(t, reg, "codebank_table_recovered", name); v != 1 {
		t.Errorf("recovered = %v once ready, want 1", v)
	}
	if v := gauge(t, reg, "codebank_group_partitions_assigned", name); v != 3 {
		t.Errorf("partitions assigned = %v, want all 3", v)
	}
	if v := gauge(t, reg, "codebank_table_recovery_remaining_records", name); v != 0 {
		t.Errorf("records left to recover = %v, want 0", v)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// gauge gathers reg and sums the gauge name over the series of group.
func gauge(t *testing.T, reg *prometheus.Registry, name, group string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "group" && l.GetValue() == group {
					sum += m.GetGauge().GetValue()
				}
			}
		}
	}
	return sum
}

// TestDeadLetterSeriesFromTheStart: a consumer's dead-letter counter exists, at 0, as soon as
// its input is declared, so that a first dead letter is an increase like any other.
func TestDeadLetterSeriesFromTheStart(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := stream.NewDeadLetters(reg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	requests := stream.Topic{Name: "p-payment-requests", Codec: codecs.Bytes{}, Partitions: 1}
	d.Input("authorizer", stream.Input{Topic: requests, DeadLetters: stream.DeadLetterTopic("p-", "authorizer", requests)}, nil)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			if f.GetName() == "codebank_dead_letters_total" && m.GetCounter().GetValue() == 0 && len(m.GetLabel()) == 2 &&
				m.GetLabel()[0].GetValue() == "authorizer" && m.GetLabel()[1].GetValue() == "p-payment-requests" {
				return
			}
		}
	}
	t.Errorf("no codebank_dead_letters_total{group=\"authorizer\",topic=\"p-payment-requests\"} 0 among %d families", len(fams))
}
