// Package stream is the goka and Kafka plumbing Code Bank's consumers build on, apart from
// any one of them: the bank's processors (processors/...) and the store (web/store) alike. It
// knows topics, groups and records, not payments.
//
//   - Topic declares one topic (name, key, codec, partitions, settings); CreateTopics and
//     MissingTopics create and check a topology's topics; Input and Consumer name who reads
//     what and where its dead letters go (this file).
//   - Group and View are the one way to build and run a goka group or view (run.go).
//   - DeadLetters is the guard every consumer reads its inputs through (deadletter.go).
//   - Lag exports the consumer lag of groups, read from Kafka at every scrape (lag.go).
//   - Deps are what every component built on it reports to: metrics and log.
//
// Which topics exist is the business of the topologies that use it: processors.Topology for
// the bank, store.Topology for the store.
package stream

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
)

// Deps are what a component built on stream reports to: the collaborators of the bank's and
// the store's consumers (statements.Deps, store.Deps, web.FeedDeps, grpcgateway.BankDeps).
type Deps struct {
	// Registerer receives the component's metrics, codebank_dead_letters_total among them
	// (default: a private registry).
	Registerer prometheus.Registerer
	// Log is the logger (default slog.Default()).
	Log *slog.Logger
}

// WithDefaults returns d with a private registry and slog.Default() where it has none.
func (d Deps) WithDefaults() Deps {
	if d.Registerer == nil {
		d.Registerer = prometheus.NewRegistry()
	}
	if d.Log == nil {
		d.Log = slog.Default()
	}
	return d
}

// DefaultPartitions is the partition count of a keyed topic whose topology names none, suited
// to one machine.
const DefaultPartitions = 6

// Topic is one Kafka topic, declared once with its key, codec, partitions and settings.
type Topic struct {
	// Name is the topic's name.
	Name string
	// Key says what the record key is.
	Key string
	// Codec encodes and decodes record values.
	Codec goka.Codec
	// Partitions is the partition count.
	Partitions int
	// Config holds topic-level settings such as cleanup.policy.
	Config map[string]string
}

// Input is a topic a consumer reads and the dead-letter topic where it copies the records of it
// that it cannot use.
type Input struct {
	Topic       Topic
	DeadLetters Topic
}

// Consumer is one reader of a topology's topics.
type Consumer struct {
	// Name is the consumer's name, the one its dead-letter topics carry.
	Name string
	// Inputs are the topics it reads.
	Inputs []Input
}

// DeadLetterTopic is the dead-letter topic of consumer for input in a deployment whose names
// start with prefix: "<prefix><consumer>.<input>.dlq", e.g. "authorizer.payment-requests.dlq".
// It receives, unchanged (key, value and headers), each record of input that the consumer could
// not decode or that broke its contract, with headers naming the source topic, partition,
// offset and the error (DeadLetterHeaders). Read by people; kept 30 days.
func DeadLetterTopic(prefix, consumer string, input Topic) Topic {
	return Topic{Name: prefix + consumer + "." + strings.TrimPrefix(input.Name, prefix) + ".dlq", Key: "as in " + input.Name,
		Codec: codecs.Bytes{}, Partitions: 1,
		Config: map[string]string{"retention.ms": strconv.FormatInt((30 * 24 * time.Hour).Milliseconds(), 10)}}
}

// DeadLetterTopics returns the dead-letter topics of consumers.
func DeadLetterTopics(consumers []Consumer) []Topic {
	var out []Topic
	for _, c := range consumers {
		for _, in := range c.Inputs {
			out = append(out, in.DeadLetters)
		}
	}
	return out
}

// ErrPartitionMismatch is returned by CreateTopics and MissingTopics when an existing topic has
// another partition count than its declaration: goka cannot co-partition it, and it cannot be fixed in place.
var ErrPartitionMismatch = errors.New("topic has a different partition count")

// CreateTopics creates the missing topics among topics (with replication, 1 when 0) and checks
// the partition counts of existing ones: another count is an error wrapping
// ErrPartitionMismatch. It returns once every created topic is visible in the cluster's
// metadata. The bank's topology (processors.Topology.Ensure) and the store's use it.
func CreateTopics(ctx context.Context, admin sarama.ClusterAdmin, replication int, topics []Topic) error {
	if replication <= 0 {
		replication = 1
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var created []string
	for _, topic := range topics {
		if err := ctx.Err(); err != nil {
			return err
		}
		if d, ok := existing[topic.Name]; ok {
			if int(d.NumPartitions) != topic.Partitions {
				return fmt.Errorf("%s: %w: %d, want %d", topic.Name, ErrPartitionMismatch, d.NumPartitions, topic.Partitions)
			}
			continue
		}
		entries := make(map[string]*string, len(topic.Config))
		for k, v := range topic.Config {
			entries[k] = &v
		}
		err := admin.CreateTopic(topic.Name, &sarama.TopicDetail{
			NumPartitions:     int32(topic.Partitions),
			ReplicationFactor: int16(replication),
			ConfigEntries:     entries,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic.Name, err)
		}
		created = append(created, topic.Name)
	}
	return waitForTopics(ctx, admin, created)
}

// MissingTopics returns the names of the topics among topics that do not exist, and an error
// wrapping ErrPartitionMismatch when one exists with another partition count.
func MissingTopics(admin sarama.ClusterAdmin, topics []Topic) ([]string, error) {
	existing, err := admin.ListTopics()
	if err != nil {
		return nil, fmt.Errorf("list topics: %w", err)
	}
	var missing []string
	for _, topic := range topics {
		d, ok := existing[topic.Name]
		switch {
		case !ok:
			missing = append(missing, topic.Name)
		case int(d.NumPartitions) != topic.Partitions:
			return nil, fmt.Errorf("%s: %w: %d, want %d", topic.Name, ErrPartitionMismatch, d.NumPartitions, topic.Partitions)
		}
	}
	return missing, nil
}

// waitForTopics waits until the cluster's metadata lists every topic: creation is
// asynchronous, and goka checks the topics as soon as a processor starts.
func waitForTopics(ctx context.Context, admin sarama.ClusterAdmin, names []string) error {
	for deadline := time.Now().Add(30 * time.Second); len(names) > 0; {
		meta, err := admin.DescribeTopics(names)
		if err == nil {
			missing := names[:0]
			for _, m := range meta {
				if !errors.Is(m.Err, sarama.ErrNoError) || len(m.Partitions) == 0 {
					missing = append(missing, m.Name)
				}
			}
			if names = missing; len(names) == 0 {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("topics %v not visible 30s after creation: %v", names, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return nil
}
