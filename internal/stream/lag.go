package stream

import (
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/internal/kafkaconf"
)

// GroupInputs names a consumer group and the topics it reads.
type GroupInputs struct {
	Group  string
	Topics []string
}

// Lag exports, at each scrape, how far consumer groups are behind their inputs:
//
//	codebank_consumer_lag_records{group,topic,partition}  records between a partition's end and the group's committed offset
//	codebank_consumer_lag_seconds{group,topic,partition}  age of the oldest record the group has not committed; 0 when caught up
//	codebank_group_partitions{group}                      partitions of the group's input (its largest topic): each needs an owner
//
// It asks Kafka at each scrape (one ListOffsets a partition and one OffsetFetch a group, and
// for the partitions behind one Fetch a broker of the records at the committed offsets), so the
// figure is as fresh as the group's last commit (about a second for goka's groups). Every
// instance of a role exports its group's lag: aggregate with max by (group, topic, partition).
// When Kafka cannot be reached the metric is left out of that scrape, and the error logged.
type Lag struct {
	kc     kafkaconf.Config
	groups func() []GroupInputs
	log    *slog.Logger

	mu     sync.Mutex
	admin  sarama.ClusterAdmin // opened at the first scrape, again after a failure
	client sarama.Client       // the admin's: closed with it
	lag    *prometheus.GaugeVec
	age    *prometheus.GaugeVec
	parts  *prometheus.GaugeVec
	all    gauges
	now    func() time.Time
}

// NewLag returns the collector of the lag of the groups that groups returns at each scrape;
// register it with a Prometheus registry and close it when done.
func NewLag(kc kafkaconf.Config, groups func() []GroupInputs, log *slog.Logger) *Lag {
	l := &Lag{kc: kc, groups: groups, log: log,
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codebank_consumer_lag_records",
			Help: "Records between the end of each partition of a group's input and the group's committed offset, read from Kafka at each scrape.",
		}, []string{"group", "topic", "partition"}),
		age: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codebank_consumer_lag_seconds",
			Help: "Age of the oldest record of each partition of a group's input that the group has not committed (its timestamp to now); 0 when caught up.",
		}, []string{"group", "topic", "partition"}),
		parts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codebank_group_partitions",
			Help: "Partitions of a group's input (of its topic with the most): each needs an instance that processes it.",
		}, []string{"group"}),
		now: time.Now}
	l.all = gauges{l.lag, l.age, l.parts}
	return l
}

// Describe implements prometheus.Collector.
func (l *Lag) Describe(ch chan<- *prometheus.Desc) { l.all.describe(ch) }

// Collect implements prometheus.Collector.
func (l *Lag) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.all.scrape(ch, func() {
		if err := l.update(); err != nil {
			l.log.Warn("consumer lag not read", "err", err)
			l.all.reset()
			if l.admin != nil {
				l.admin.Close()
				l.admin, l.client = nil, nil
			}
		}
	})
}

// Close closes the collector's connection to Kafka.
func (l *Lag) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.admin == nil {
		return nil
	}
	err := l.admin.Close()
	l.admin, l.client = nil, nil
	return err
}

func (l *Lag) update() error {
	if l.admin == nil {
		cfg := l.kc.Sarama()
		cfg.ClientID += "-lag"
		client, err := sarama.NewClient(l.kc.Brokers, cfg)
		if err != nil {
			return err
		}
		if l.admin, err = sarama.NewClusterAdminFromClient(client); err != nil {
			client.Close()
			return err
		}
		l.client = client
	}
	client := l.client
	var behind []position // where groups are behind: the age of the record there is fetched
	for _, g := range l.groups() {
		committed, err := l.admin.ListConsumerGroupOffsets(g.Group, nil)
		if err != nil {
			return err
		}
		most := 0
		for _, topic := range g.Topics {
			parts, err := client.Partitions(topic)
			if err != nil {
				return err
			}
			most = max(most, len(parts))
			for _, p := range parts {
				end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
				if err != nil {
					return err
				}
				// No commit yet: the group starts at the oldest record (kafkaconf).
				from := int64(-1)
				if b := committed.GetBlock(topic, p); b != nil {
					from = b.Offset
				}
				if from < 0 {
					if from, err = client.GetOffset(topic, p, sarama.OffsetOldest); err != nil {
						return err
					}
				}
				l.lag.WithLabelValues(g.Group, topic, strconv.Itoa(int(p))).Set(float64(max(end-from, 0)))
				if end > from {
					behind = append(behind, position{group: g.Group, topic: topic, partition: p, offset: from})
				} else {
					l.age.WithLabelValues(g.Group, topic, strconv.Itoa(int(p))).Set(0)
				}
			}
		}
		l.parts.WithLabelValues(g.Group).Set(float64(most))
	}
	return l.ages(behind)
}

// position is a group's committed offset in one partition.
type position struct {
	group, topic string
	partition    int32
	offset       int64
}

// ages sets the lag in seconds of the positions: the age of the record at each, fetched with
// one Fetch a leader. A position whose record is gone (deleted by retention meanwhile) or not
// returned is left out of this scrape.
func (l *Lag) ages(behind []position) error {
	byLeader := map[*sarama.Broker][]position{}
	for _, b := range behind {
		leader, err := l.client.Leader(b.topic, b.partition)
		if err != nil {
			return err
		}
		byLeader[leader] = append(byLeader[leader], b)
	}
	now := l.now()
	for leader, ps := range byLeader {
		req := &sarama.FetchRequest{Version: 11, MaxWaitTime: 0, MinBytes: 1, MaxBytes: 1 << 20, SessionID: 0, SessionEpoch: -1}
		for _, b := range ps {
			req.AddBlock(b.topic, b.partition, b.offset, 64<<10, -1)
		}
		resp, err := leader.Fetch(req)
		if err != nil {
			return err
		}
		for _, b := range ps {
			at, ok := recordTime(resp.GetBlock(b.topic, b.partition), b.offset)
			if !ok {
				continue
			}
			l.age.WithLabelValues(b.group, b.topic, strconv.Itoa(int(b.partition))).Set(max(now.Sub(at).Seconds(), 0))
		}
	}
	return nil
}

// recordTime returns the timestamp of the first record at or after offset in a fetched block.
func recordTime(block *sarama.FetchResponseBlock, offset int64) (time.Time, bool) {
	if block == nil || block.Err != sarama.ErrNoError {
		return time.Time{}, false
	}
	for _, rs := range block.RecordsSet {
		if rs.RecordBatch == nil {
			continue
		}
		batch := rs.RecordBatch
		for _, r := range batch.Records {
			if batch.FirstOffset+r.OffsetDelta >= offset {
				if batch.LogAppendTime {
					return batch.MaxTimestamp, true
				}
				return batch.FirstTimestamp.Add(r.TimestampDelta), true
			}
		}
	}
	return time.Time{}, false
}
