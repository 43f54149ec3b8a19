package stream_test

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

var brokerAddr string

func TestMain(m *testing.M) { os.Exit(kafkatest.Run(m, &brokerAddr)) }

// lagOf gathers reg and returns codebank_consumer_lag_records by "topic/partition" of group.
func lagOf(t *testing.T, reg *prometheus.Registry, group string) map[string]float64 {
	return gaugesOf(t, reg, "codebank_consumer_lag_records", group)
}

// gaugesOf gathers reg and returns the gauge name by "topic/partition" of group.
func gaugesOf(t *testing.T, reg *prometheus.Registry, name, group string) map[string]float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["group"] == group {
				out[l["topic"]+"/"+l["partition"]] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestLag: the lag of a group is, per partition, the records after its committed offset, or
// every record when it has committed none, and in seconds the age of the record at that offset;
// it follows the commits; and a bank that cannot reach Kafka serves its other metrics without
// it.
func TestLag(t *testing.T) {
	tier.Servers(t, "a Kafka broker")
	kc := kafkaconf.Config{Brokers: []string{brokerAddr}}
	topic, group := kafkatest.Name(t)+"-in", kafkatest.Name(t)+"-group"
	cfg := kc.Sarama()
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	client, err := sarama.NewClient(kc.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	producer, err := sarama.NewSyncProducerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	// Record i of partition 0 is 100-i seconds old, those of partition 1 are 50 seconds old.
	start := time.Now()
	for p, n := range map[int32]int{0: 10, 1: 4} {
		for i := range n {
			at := start.Add(-time.Duration(100-i) * time.Second)
			if p == 1 {
				at = start.Add(-50 * time.Second)
			}
			if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: topic, Partition: p, Value: sarama.StringEncoder("x"), Timestamp: at}); err != nil {
				t.Fatal(err)
			}
		}
	}
	commit := func(partition int32, offset int64) {
		t.Helper()
		om, err := sarama.NewOffsetManagerFromClient(group, client)
		if err != nil {
			t.Fatal(err)
		}
		pom, err := om.ManagePartition(topic, partition)
		if err != nil {
			t.Fatal(err)
		}
		pom.MarkOffset(offset, "")
		om.Commit()
		pom.Close()
		om.Close()
	}

	lag := stream.NewLag(kc, func() []stream.GroupInputs {
		return []stream.GroupInputs{{Group: group, Topics: []string{topic}}}
	}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer lag.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(lag)
	// The topic is new: until the broker's metadata has it everywhere a scrape may leave the
	// lag out (and log why), as it does whenever Kafka cannot answer.
	wait.For(t, 30*time.Second, "the lag of a group that has committed nothing", func() error {
		if got := lagOf(t, reg, group); got[topic+"/0"] != 10 || got[topic+"/1"] != 4 || len(got) != 2 {
			return fmt.Errorf("lag %v, want 10 and 4 (every record)", got)
		}
		return nil
	})
	// Seconds: the scrape comes a little after start, hence the margin above.
	ages := func(want0, want1 float64) {
		t.Helper()
		elapsed := time.Since(start).Seconds() + 1
		got := gaugesOf(t, reg, "codebank_consumer_lag_seconds", group)
		for part, want := range map[string]float64{topic + "/0": want0, topic + "/1": want1} {
			if g, ok := got[part]; !ok || g < want || (want > 0 && g > want+elapsed) || (want == 0 && g != 0) {
				t.Errorf("lag of %s: %v s, want %v s (up to %.0f s more)", part, g, want, elapsed)
			}
		}
	}
	ages(100, 50)
	commit(0, 7)
	if got := lagOf(t, reg, group); got[topic+"/0"] != 3 || got[topic+"/1"] != 4 {
		t.Errorf("after committing 7 of 10 on partition 0: lag %v, want 3 and 4", got)
	}
	ages(93, 50)
	commit(0, 10)
	commit(1, 4)
	if got := lagOf(t, reg, group); got[topic+"/0"] != 0 || got[topic+"/1"] != 0 {
		t.Errorf("caught up: lag %v, want 0 and 0", got)
	}
	ages(0, 0)
	if got := gaugesOf(t, reg, "codebank_group_partitions", group); len(got) != 1 || got["/"] != 2 {
		t.Errorf("partitions of the group: %v, want 2", got)
	}

	// Kafka out of reach: no lag series, the rest of the registry still gathers.
	down := stream.NewLag(kafkaconf.Config{Brokers: []string{"127.0.0.1:1"}}, func() []stream.GroupInputs {
		return []stream.GroupInputs{{Group: group, Topics: []string{topic}}}
	},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	defer down.Close()
	other := prometheus.NewCounter(prometheus.CounterOpts{Name: "other_total", Help: "x"})
	reg2 := prometheus.NewRegistry()
	reg2.MustRegister(down, other)
	fams, err := reg2.Gather()
	if err != nil || len(fams) != 1 || fams[0].GetName() != "other_total" {
		t.Errorf("with Kafka down: gathered %d families, %v; want only other_total", len(fams), err)
	}
}
