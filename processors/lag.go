package processors

import (
	"log/slog"
	"strconv"
	"sync"

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
//
// It asks Kafka at each scrape (one ListOffsets a partition and one OffsetFetch a group), so the
// figure is as fresh as the group's last commit (about a second for goka's groups). Every
// instance of a role exports its group's lag: aggregate with max by (group, topic, partition).
// When Kafka cannot be reached the metric is left out of that scrape, and the error logged.
type Lag struct {
	kc     kafkaconf.Config
	groups []GroupInputs
	log    *slog.Logger

	mu     sync.Mutex
	admin  sarama.ClusterAdmin // opened at the first scrape, again after a failure
	client sarama.Client       // the admin's: closed with it
	lag    *prometheus.GaugeVec
}

// NewLag returns the collector of groups' lag; register it with a Prometheus registry and close
// it when done.
func NewLag(kc kafkaconf.Config, groups []GroupInputs, log *slog.Logger) *Lag {
	return &Lag{kc: kc, groups: groups, log: log,
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "codebank_consumer_lag_records",
			Help: "Records between the end of each partition of a group's input and the group's committed offset, read from Kafka at each scrape.",
		}, []string{"group", "topic", "partition"})}
}

// Describe implements prometheus.Collector.
func (l *Lag) Describe(ch chan<- *prometheus.Desc) { l.lag.Describe(ch) }

// Collect implements prometheus.Collector.
func (l *Lag) Collect(ch chan<- prometheus.Metric) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lag.Reset()
	if err := l.update(); err != nil {
		l.log.Warn("consumer lag not read", "err", err)
		l.lag.Reset()
		if l.admin != nil {
			l.admin.Close()
			l.admin, l.client = nil, nil
		}
	}
	l.lag.Collect(ch)
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
	for _, g := range l.groups {
		committed, err := l.admin.ListConsumerGroupOffsets(g.Group, nil)
		if err != nil {
			return err
		}
		for _, topic := range g.Topics {
			parts, err := client.Partitions(topic)
			if err != nil {
				return err
			}
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
			}
		}
	}
	return nil
}
