package orders

import (
	"context"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/processors"
)

// Ensure creates the orders group's topics (Topics) when missing and checks the partition
// counts of existing ones, like processors.Topology.Ensure does for the bank's topics; an
// existing topic with another count is an error wrapping processors.ErrPartitionMismatch. It
// is safe to run from every replica at start-up.
func Ensure(ctx context.Context, admin sarama.ClusterAdmin, topo processors.Topology) error {
	return processors.CreateTopics(ctx, admin, topo.Replication, Topics(topo))
}
