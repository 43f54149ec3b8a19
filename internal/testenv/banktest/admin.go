package banktest

import (
	"testing"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/kafkaconf"
)

func newAdmin(kc kafkaconf.Config) (sarama.ClusterAdmin, error) {
	return sarama.NewClusterAdmin(kc.Brokers, kc.Sarama())
}

// EndOffsets returns the sum over partitions of a topic's high water marks: how many records
// were ever written to it.
func EndOffsets(t testing.TB, kc kafkaconf.Config, topic string) int64 {
	t.Helper()
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	for _, p := range parts {
		off, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		sum += off
	}
	return sum
}

// PartitionsOfKey returns, for a topic, the partitions holding at least one record with key.
func PartitionsOfKey(t testing.TB, kc kafkaconf.Config, topic, key string) []int32 {
	t.Helper()
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var found []int32
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		start, err := client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if end <= start {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, start)
		if err != nil {
			t.Fatal(err)
		}
		for msg := range pc.Messages() {
			if string(msg.Key) == key {
				found = append(found, p)
				break
			}
			if msg.Offset >= end-1 {
				break
			}
		}
		pc.Close()
	}
	return found
}

// DeleteGroup deletes a consumer group and its committed offsets.
func DeleteGroup(t testing.TB, kc kafkaconf.Config, group string) {
	t.Helper()
	admin, err := newAdmin(kc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.DeleteConsumerGroup(group); err != nil {
		t.Fatalf("delete group %s: %v", group, err)
	}
}
