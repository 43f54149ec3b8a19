// Package processors is the bank's side of Kafka: this file declares every topic of the bank,
// with its key, codec and partition count, every consumer of them and its dead-letter topics,
// and creates them all in one step (Topology.Ensure). The bank's processors live in the
// sub-packages: authorizer (balances and decisions) and, downstream of it, statements.
//
// Its main type is Topology, which names one deployment's topics. The plumbing the processors
// are built with (topics, groups, views, dead letters, lag) is not the bank's and lives apart,
// in internal/stream, which the store (web/store) builds on too.
package processors

import (
	"context"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
)

// DefaultReplyPartitions is the partition count of the replies topic when a topology names
// none (the card-keyed topics have stream.DefaultPartitions).
const DefaultReplyPartitions = 8

// Topology names the topics and groups of one Code Bank deployment and says how many
// partitions they have. Prefix separates deployments that share a cluster (and tests that
// share a broker).
type Topology struct {
	// Prefix is prepended to every topic and group name.
	Prefix string
	// Partitions is the partition count of the card-keyed topics: payment requests, card
	// commands and the authorizer table, which goka needs co-partitioned, and results. It caps
	// the number of authorizer instances doing work and cannot grow in place.
	Partitions int
	// ReplyPartitions is the partition count of the replies topic: each ingress replica reads
	// one partition, so it caps how many replicas get a partition of their own.
	ReplyPartitions int
	// Replication is the replication factor of created topics.
	Replication int
	// Generation is the generation of the authorizer's card-keyed topics (payment requests,
	// card commands, its table and their dead letters): 0 or 1 for the first, whose names have
	// no suffix; generation n > 1 names them with "-g<n>" (payment-requests-g2, authorizer-g2,
	// authorizer-g2-table). `codebank partitions grow` creates a new generation with more
	// partitions and moves the bank to it; internal/generations keeps which one is live.
	Generation int
	// AuthorizerPartitions is the partition count of the generation's card-keyed topics
	// (default Partitions).
	AuthorizerPartitions int
}

// At returns the topology of another generation of the authorizer's topics, with partitions
// partitions.
func (t Topology) At(generation, partitions int) Topology {
	t.Generation, t.AuthorizerPartitions = generation, partitions
	return t
}

// generational names a topic or group of the authorizer's generation.
func (t Topology) generational(name string) string {
	if t.Generation > 1 {
		return name + "-g" + strconv.Itoa(t.Generation)
	}
	return name
}

func (t Topology) authorizerPartitions() int {
	if t.AuthorizerPartitions > 0 {
		return t.AuthorizerPartitions
	}
	return t.partitions()
}

func (t Topology) partitions() int {
	if t.Partitions <= 0 {
		return stream.DefaultPartitions
	}
	return t.Partitions
}

func (t Topology) replyPartitions() int {
	if t.ReplyPartitions <= 0 {
		return DefaultReplyPartitions
	}
	return t.ReplyPartitions
}

// PaymentRequests carries payment attempts accepted by the ingress. Key: card token. Value:
// eventsv1.PaymentRequested. Written by the ingress, read by the authorizer.
func (t Topology) PaymentRequests() stream.Topic {
	return stream.Topic{Name: t.Prefix + t.generational("payment-requests"), Key: "card token", Codec: codecs.PaymentRequested, Partitions: t.authorizerPartitions(),
		Config: map[string]string{"retention.ms": strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)}}
}

// CardCommands carries commands about cards (issue, get, block, unblock, verify) and the
// operations that give credit back (reversals, refunds, bill payments). Key: card token. Value:
// eventsv1.CardCommand. Written by the ingress, read by the authorizer; co-partitioned with
// PaymentRequests so one authorizer instance owns a card for both.
func (t Topology) CardCommands() stream.Topic {
	return stream.Topic{Name: t.Prefix + t.generational("card-commands"), Key: "card token", Codec: codecs.CardCommand, Partitions: t.authorizerPartitions(),
		Config: map[string]string{"retention.ms": strconv.FormatInt((7 * 24 * time.Hour).Milliseconds(), 10)}}
}

// AuthorizerGroup is the consumer group of the authorizer.
func (t Topology) AuthorizerGroup() goka.Group {
	return goka.Group(t.Prefix + t.generational("authorizer"))
}

// AuthorizerTable is the authorizer's compacted changelog: every card's account, the single
// source of truth for balances. Key: card token. Value: eventsv1.Account.
func (t Topology) AuthorizerTable() stream.Topic {
	return stream.Topic{Name: string(goka.GroupTable(t.AuthorizerGroup())), Key: "card token", Codec: codecs.Account, Partitions: t.authorizerPartitions(),
		Config: map[string]string{"cleanup.policy": "compact", "segment.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)}}
}

// AuthorizerTopics returns the topics of the authorizer's generation: its inputs, their
// dead letters and its table.
func (t Topology) AuthorizerTopics() []stream.Topic {
	requests, commands := t.PaymentRequests(), t.CardCommands()
	return []stream.Topic{requests, commands, t.AuthorizerTable(),
		t.DeadLetters(ConsumerAuthorizer, requests), t.DeadLetters(ConsumerAuthorizer, commands)}
}

// Generations records which generation of the authorizer's topics is live, and which one is
// kept for rollback (internal/generations). Key: "authorizer". Value: JSON. One partition,
// compacted.
func (t Topology) Generations() stream.Topic {
	return stream.Topic{Name: t.Prefix + "generations", Key: "authorizer", Codec: codecs.Bytes{}, Partitions: 1,
		Config: map[string]string{"cleanup.policy": "compact"}}
}

// Results carries the decision on every payment attempt, approved or rejected, and every
// reversal, refund and bill payment carried out, as JSON (codecs.Result). Key: card token. Written by the authorizer, read by the statements
// processor and Kafka Connect.
func (t Topology) Results() stream.Topic {
	return stream.Topic{Name: t.Prefix + "payment-results", Key: "card token", Codec: codecs.ResultCodec{}, Partitions: t.partitions(),
		Config: map[string]string{"retention.ms": strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10)}}
}

// ResultDeadLetters receives the results records Kafka Connect could not index, unchanged, with
// Connect's __connect.errors.* headers saying why. Written by Kafka Connect (errors.tolerance=all),
// read by people. Kept for 30 days.
func (t Topology) ResultDeadLetters() stream.Topic {
	return stream.Topic{Name: t.Prefix + "payment-results-dlq", Key: "as in payment-results", Codec: codecs.ResultCodec{}, Partitions: 1,
		Config: map[string]string{"retention.ms": strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10)}}
}

// Replies carries the answer to each request back to the ingress replica waiting for it. Key:
// the request's reply key, chosen by the replica so that it hashes to the replica's own
// partition. Value: eventsv1.Reply. Replies matter for seconds, so they are kept for an hour.
func (t Topology) Replies() stream.Topic {
	return stream.Topic{Name: t.Prefix + "payment-replies", Key: "reply key (ingress replica)", Codec: codecs.Reply, Partitions: t.replyPartitions(),
		Config: map[string]string{"retention.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)}}
}

// StatementsGroup is the consumer group of the statements processor. (The group of the same
// processor in its earlier form, which kept a table of pages, was "statements": under a group
// of another name it starts from the oldest results retained and writes their lines.)
func (t Topology) StatementsGroup() goka.Group { return goka.Group(t.Prefix + "statement-lines") }

// StatementLines holds every approved purchase as a line of its card's statement, one record
// each, kept for good (compacted). Key: "card token|approved at, µs, 16 digits|payment digest"
// (statements.LineKey): a card's lines sort by time, and a month is a range of keys. Value:
// eventsv1.StatementLine. Written by the statements processor, read by statement views.
func (t Topology) StatementLines() stream.Topic {
	return stream.Topic{Name: t.Prefix + "statement-lines", Key: "card token|approved at|payment digest", Codec: codecs.StatementLine, Partitions: t.partitions(),
		Config: map[string]string{"cleanup.policy": "compact", "segment.ms": strconv.FormatInt(time.Hour.Milliseconds(), 10)}}
}

// The consumers of Code Bank's topics, by the name their dead-letter topics carry.
const (
	ConsumerAuthorizer = "authorizer" // the authorizer group
	ConsumerStatements = "statements" // the statements group
	ConsumerIngress    = "ingress"    // each ingress replica's reader of its replies partition
	ConsumerDashboard  = "dashboard"  // the dashboard page's feed of results
	ConsumerConnect    = "connect"    // Kafka Connect's sink into the search index
)

// DeadLetters is the dead-letter topic of consumer for input: "<prefix><consumer>.<input>.dlq",
// e.g. "authorizer.payment-requests.dlq". It receives, unchanged (key, value and headers), each
// record of input that the consumer could not decode or that broke its contract, with headers
// naming the source topic, partition, offset and the error (stream.DeadLetterHeaders).
// Read by people; kept 30 days.
func (t Topology) DeadLetters(consumer string, input stream.Topic) stream.Topic {
	return stream.DeadLetterTopic(t.Prefix, consumer, input)
}

func (t Topology) input(consumer string, topic stream.Topic) stream.Input {
	return stream.Input{Topic: topic, DeadLetters: t.DeadLetters(consumer, topic)}
}

// Consumers returns every consumer of the bank's topics with the topics it reads. (The store
// declares its own: store.Consumers.)
func (t Topology) Consumers() []stream.Consumer {
	results := t.Results()
	return []stream.Consumer{
		{Name: ConsumerAuthorizer, Inputs: []stream.Input{t.input(ConsumerAuthorizer, t.PaymentRequests()), t.input(ConsumerAuthorizer, t.CardCommands())}},
		{Name: ConsumerStatements, Inputs: []stream.Input{t.input(ConsumerStatements, results)}},
		{Name: ConsumerIngress, Inputs: []stream.Input{t.input(ConsumerIngress, t.Replies())}},
		{Name: ConsumerDashboard, Inputs: []stream.Input{t.input(ConsumerDashboard, results)}},
		{Name: ConsumerConnect, Inputs: []stream.Input{{Topic: results, DeadLetters: t.ResultDeadLetters()}}},
	}
}

// Input returns the input of consumer that reads topic; it panics when there is none, a
// mistake in the code that names them.
func (t Topology) Input(consumer string, topic stream.Topic) stream.Input {
	for _, c := range t.Consumers() {
		for _, in := range c.Inputs {
			if c.Name == consumer && in.Topic.Name == topic.Name {
				return in
			}
		}
	}
	panic("processors: " + consumer + " does not read " + topic.Name)
}

// All returns every topic of the deployment.
func (t Topology) All() []stream.Topic {
	return append([]stream.Topic{t.PaymentRequests(), t.CardCommands(), t.AuthorizerTable(), t.Results(), t.Replies(), t.StatementLines(), t.Generations()},
		stream.DeadLetterTopics(t.Consumers())...)
}

// Ensure creates every missing topic and checks the partition counts of existing ones. It is
// safe to run from every replica at start-up.
func (t Topology) Ensure(ctx context.Context, admin sarama.ClusterAdmin) error {
	return stream.CreateTopics(ctx, admin, t.Replication, t.All())
}
