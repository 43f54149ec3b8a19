package store

import (
	"context"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/internal/stream"
)

// Topology names the store's topics and its group in one deployment: the store's own, beside
// the bank's (processors.Topology). `codebank setup` creates both.
type Topology struct {
	// Prefix is prepended to every topic and group name.
	Prefix string
	// Partitions is the partition count of the orders' events and table (default
	// stream.DefaultPartitions).
	Partitions int
	// Replication is the replication factor of created topics.
	Replication int
}

func (t Topology) partitions() int {
	if t.Partitions <= 0 {
		return stream.DefaultPartitions
	}
	return t.Partitions
}

// Group is the orders' goka group: "<prefix>store-orders".
func (t Topology) Group() goka.Group { return goka.Group(t.Prefix + "store-orders") }

// Events carries the order events (EventCodec, JSON). Key: order id. Written by the store's
// emitter, read by the orders group. Kept a week: the table holds the state for good.
func (t Topology) Events() stream.Topic {
	return stream.Topic{Name: t.Prefix + "store-order-events", Key: "order id", Codec: EventCodec{}, Partitions: t.partitions(),
		Config: map[string]string{"retention.ms": strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)}}
}

// Table is the orders group's compacted changelog: every order's current state (OrderCodec,
// JSON). Key: order id. Written by the orders group, read by the store's views.
func (t Topology) Table() stream.Topic {
	return stream.Topic{Name: string(goka.GroupTable(t.Group())), Key: "order id", Codec: OrderCodec{}, Partitions: t.partitions(),
		Config: map[string]string{"cleanup.policy": "compact", "segment.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)}}
}

// ConsumerOrders is the orders group's name among consumers (stream.Consumer): its
// dead-letter topic is "<prefix>store-orders.store-order-events.dlq".
const ConsumerOrders = "store-orders"

// Consumers returns the store's consumers of its topics: the orders group.
func (t Topology) Consumers() []stream.Consumer {
	events := t.Events()
	return []stream.Consumer{{Name: ConsumerOrders, Inputs: []stream.Input{
		{Topic: events, DeadLetters: stream.DeadLetterTopic(t.Prefix, ConsumerOrders, events)}}}}
}

// All returns the store's topics: its events, its table and its dead-letter topic.
func (t Topology) All() []stream.Topic {
	return append([]stream.Topic{t.Events(), t.Table()}, stream.DeadLetterTopics(t.Consumers())...)
}

// Ensure creates the store's topics when missing and checks the partition counts of existing
// ones, like processors.Topology.Ensure does for the bank's: an existing topic with another
// count is an error wrapping stream.ErrPartitionMismatch.
func (t Topology) Ensure(ctx context.Context, admin sarama.ClusterAdmin) error {
	return stream.CreateTopics(ctx, admin, t.Replication, t.All())
}
