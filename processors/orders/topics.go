package orders

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/processors"
)

// Ensure creates the orders group's topics (Topics) when missing and checks the partition
// counts of existing ones, like processors.Topology.Ensure does for the bank's topics; an
// existing topic with another count is an error wrapping processors.ErrPartitionMismatch. It
// is safe to run from every replica at start-up.
func Ensure(ctx context.Context, admin sarama.ClusterAdmin, topo processors.Topology) error {
	replication := topo.Replication
	if replication <= 0 {
		replication = 1
	}
	existing, err := admin.ListTopics()
	if err != nil {
		return fmt.Errorf("list topics: %w", err)
	}
	var created []string
	for _, topic := range Topics(topo) {
		if d, ok := existing[topic.Name]; ok {
			if int(d.NumPartitions) != topic.Partitions {
				return fmt.Errorf("%s: %w: %d, want %d", topic.Name, processors.ErrPartitionMismatch, d.NumPartitions, topic.Partitions)
			}
			continue
		}
		entries := make(map[string]*string, len(topic.Config))
		for k, v := range topic.Config {
			entries[k] = &v
		}
		err := admin.CreateTopic(topic.Name, &sarama.TopicDetail{
			NumPartitions: int32(topic.Partitions), ReplicationFactor: int16(replication), ConfigEntries: entries,
		}, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fmt.Errorf("create topic %s: %w", topic.Name, err)
		}
		created = append(created, topic.Name)
	}
	return waitForTopics(ctx, admin, created)
}

// waitForTopics waits until the cluster's metadata lists every topic: creation is
// asynchronous, and goka checks the topics as soon as a processor, view or emitter starts.
// (The same wait as processors.Topology.Ensure's, which does not export it.)
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
