package localconnect

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/internal/devenv/localsearch"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/monitoring"
)

var (
	brokerAddr string

	// search is the OpenSearch node, started by TestMain alongside the
	// broker; searchReady is closed once search or searchErr is set.
	search      *localsearch.Node
	searchErr   error
	searchReady = make(chan struct{})
)

func TestMain(m *testing.M) {
	if tier.Short() {
		close(searchReady)
		os.Exit(kafkatest.Run(m, &brokerAddr)) // the hermetic tier: no servers
	}
	go func() {
		defer close(searchReady)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		search, searchErr = localsearch.Start(ctx, localsearch.Options{})
	}()
	code := kafkatest.Run(m, &brokerAddr)
	<-searchReady
	if search != nil {
		if err := search.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "localconnect: %v\n", err)
		}
	}
	os.Exit(code)
}

func searchNode(t *testing.T) *localsearch.Node {
	t.Helper()
	<-searchReady
	if searchErr != nil {
		t.Fatalf("cannot start OpenSearch: %v", searchErr)
	}
	return search
}

func startWorker(t *testing.T, opts Options) *Worker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	w, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("worker on %s ready after %s", w.URL(), time.Since(begin).Round(time.Millisecond))
	return w
}

func stopWorker(t *testing.T, w *Worker) {
	t.Helper()
	begin := time.Now()
	if err := w.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	t.Logf("worker stopped after %s", time.Since(begin).Round(time.Millisecond))
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V4_0_0_0
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	return cfg
}

func createTopic(t *testing.T, topic string, partitions int32) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin([]string{brokerAddr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewClusterAdmin: %v", err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		t.Fatalf("CreateTopic %s: %v", topic, err)
	}
}

// produce sends values to topic, keyed like the results topic (by card).
func produce(t *testing.T, topic string, values ...string) {
	t.Helper()
	p, err := sarama.NewSyncProducer([]string{brokerAddr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewSyncProducer: %v", err)
	}
	defer p.Close()
	for i, v := range values {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{
			Topic: topic,
			Key:   sarama.StringEncoder(fmt.Sprintf("card-%d", i%2)),
			Value: sarama.StringEncoder(v),
		}); err != nil {
			t.Fatalf("SendMessage: %v", err)
		}
	}
}

// waitConsumed waits until the sink connector name has committed offsets up
// to the end of every partition of topic: it has handled every record.
func waitConsumed(t *testing.T, name, topic string) {
	t.Helper()
	client, err := sarama.NewClient([]string{brokerAddr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	defer client.Close()
	admin, err := sarama.NewClusterAdminFromClient(client)
	if err != nil {
		t.Fatalf("NewClusterAdminFromClient: %v", err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatalf("Partitions: %v", err)
	}
	wait.For(t, time.Minute, "connector "+name+" to consume "+topic, func() error {
		var behind []string
		offsets, err := admin.ListConsumerGroupOffsets("connect-"+name, map[string][]int32{topic: parts})
		if err != nil {
			t.Fatalf("ListConsumerGroupOffsets: %v", err)
		}
		for _, p := range parts {
			end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err != nil {
				t.Fatalf("GetOffset: %v", err)
			}
			if b := offsets.GetBlock(topic, p); b == nil || b.Offset < end {
				behind = append(behind, fmt.Sprintf("partition %d at %v of %d", p, b, end))
			}
		}
		if len(behind) > 0 {
			return fmt.Errorf("behind: %v", behind)
		}
		return nil
	})
}

// consume returns the first n records of topic (one partition).
func consume(t *testing.T, topic string, n int) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer([]string{brokerAddr}, saramaConfig())
	if err != nil {
		t.Fatalf("NewConsumer: %v", err)
	}
	defer c.Close()
	var pc sarama.PartitionConsumer
	// The dead letter topic appears with the first dead letter.
	wait.For(t, 30*time.Second, "topic "+topic, func() (err error) {
		pc, err = c.ConsumePartition(topic, 0, sarama.OffsetOldest)
		return err
	})
	defer pc.Close()
	deadline := time.After(60 * time.Second)
	var out []*sarama.ConsumerMessage
	for len(out) < n {
		select {
		case m := <-pc.Messages():
			out = append(out, m)
		case err := <-pc.Errors():
			t.Fatalf("consuming %s: %v", topic, err)
		case <-deadline:
			t.Fatalf("%d of %d records on %s within 60s", len(out), n, topic)
		}
	}
	return out
}

func header(m *sarama.ConsumerMessage, key string) string {
	for _, h := range m.Headers {
		if string(h.Key) == key {
			return string(h.Value)
		}
	}
	return ""
}

// documents returns the index's documents by id, after a refresh.
func documents(t *testing.T, es *elastic.Client, index string) map[string]map[string]any {
	t.Helper()
	ctx := context.Background()
	if _, err := es.Refresh(index).Do(ctx); err != nil {
		t.Fatalf("refresh %s: %v", index, err)
	}
	res, err := es.Search(index).Size(100).Do(ctx)
	if err != nil {
		t.Fatalf("search %s: %v", index, err)
	}
	docs := map[string]map[string]any{}
	for _, h := range res.Hits.Hits {
		var src map[string]any
		if err := json.Unmarshal(h.Source, &src); err != nil {
			t.Fatalf("document %s: %v", h.Id, err)
		}
		docs[h.Id] = src
	}
	return docs
}

func ids(docs map[string]map[string]any) []string {
	var out []string
	for id := range docs {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

func result(id, status string, cents int) string {
	return fmt.Sprintf(`{"payment_key":"tok:%s","transaction_id":%q,"card_token":"tok","card_masked":"545454******1234","card_bin":"545454",`+
		`"status":%q,"amount_cents":%d,"amount":%d.%02d,"currency":"BRL","store":"Corner Bakery","description":"bread",`+
		`"channel":"api","requested_at":"2026-11-25T10:00:00.000000Z","authorized_at":"2026-11-25T10:00:00.004000Z",`+
		`"processing_ms":4,"available_cents":100000,"limit_cents":200000}`, id, id, status, cents, cents/100, cents%100)
}

// TestOpenSearchSink runs the connector of connect/opensearch-sink.json on a
// distributed worker against OpenSearch.
func TestOpenSearchSink(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	ctx := context.Background()
	node := searchNode(t)
	es, err := elastic.NewClient(elastic.SetURL(node.URL()), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		t.Fatalf("elastic.NewClient: %v", err)
	}
	group := kafkatest.Name(t)
	w := startWorker(t, Options{Brokers: brokerAddr, GroupID: group, Metrics: monitoring.ConnectJMXExporter})
	defer func() { w.Stop() }()

	// monthly is the configuration of opensearch-sink.json as it is: an index a month, named by
	// each record's authorized_at. sinkConfig writes to one index, named index, for the
	// subtests of everything else.
	monthly := func(topic, index string) map[string]string {
		t.Helper()
		c, err := connect.OpenSearchSinkConfig(connect.SinkParams{
			Topic: topic, OpenSearchURL: node.URL(), Index: index, DLQTopic: topic + "-dlq",
		})
		if err != nil {
			t.Fatalf("OpenSearchSinkConfig: %v", err)
		}
		return c
	}
	sinkConfig := func(topic, index string) map[string]string {
		t.Helper()
		c := monthly(topic, index)
		c["index.date.field"] = ""
		return c
	}

	// Each record goes to the index of its authorized_at's month, in UTC; a record without a
	// time that names an index is a dead letter.
	t.Run("MonthlyIndices", func(t *testing.T) {
		name := kafkatest.Name(t)
		topic, index := name, strings.ToLower(name)
		createTopic(t, topic, 1)
		december := strings.Replace(result("tx-dec", "approved", 10), `"authorized_at":"2026-11-25T10:00:00.004000Z"`, `"authorized_at":"2026-12-01T00:00:00.000000Z"`, 1)
		offset := strings.Replace(result("tx-offset", "approved", 11), `"authorized_at":"2026-11-25T10:00:00.004000Z"`, `"authorized_at":"2026-12-01T00:30:00-01:00"`, 1)
		bad := strings.Replace(result("tx-bad-time", "approved", 12), `"authorized_at":"2026-11-25T10:00:00.004000Z"`, `"authorized_at":"yesterday"`, 1)
		produce(t, topic, result("tx-nov", "approved", 9), december, offset, bad)
		if err := w.PutConnector(ctx, name, monthly(topic, index)); err != nil {
			t.Fatalf("PutConnector: %v", err)
		}
		dead := consume(t, topic+"-dlq", 1)
		waitConsumed(t, name, topic)
		if got := header(dead[0], "__connect.errors.exception.message"); !strings.Contains(got, "ISO 8601") || string(dead[0].Value) != bad {
			t.Errorf("dead letter %s: %q, want the record with a bad time and why", dead[0].Value, got)
		}
		for idx, want := range map[string][]string{index + "-2026.11": {"tok:tx-nov"}, index + "-2026.12": {"tok:tx-dec", "tok:tx-offset"}} {
			if got := ids(documents(t, es, idx)); !slices.Equal(got, want) {
				t.Errorf("%s holds %v, want %v", idx, got, want)
			}
		}
	})

	// The same record twice (a producer retry, a redelivery) and another:
	// two documents, whose ids are the transaction ids.
	t.Run("DocumentIDIsPaymentKey", func(t *testing.T) {
		name := kafkatest.Name(t)
		topic, index := name, strings.ToLower(name)
		createTopic(t, topic, 2)
		a, b := result("tx-a", "approved", 1234), result("tx-b", "rejected", 99)
		produce(t, topic, a, a, b)
		begin := time.Now()
		if err := w.PutConnector(ctx, name, sinkConfig(topic, index)); err != nil {
			t.Fatalf("PutConnector: %v", err)
		}
		t.Logf("connector running after %s", time.Since(begin).Round(time.Millisecond))
		waitConsumed(t, name, topic)
		t.Logf("records indexed after %s", time.Since(begin).Round(time.Millisecond))

		docs := documents(t, es, index)
		if got := ids(docs); !slices.Equal(got, []string{"tok:tx-a", "tok:tx-b"}) {
			t.Fatalf("document ids %v, want [tok:tx-a tok:tx-b]", got)
		}
		if g, _ := json.Marshal(docs["tok:tx-a"]); string(g) != mustCanon(t, a) {
			t.Errorf("document tx-a = %s, want %s", g, mustCanon(t, a))
		}
		if n, err := es.Count(index).Do(ctx); err != nil || n != 2 {
			t.Errorf("count = %d (%v), want 2", n, err)
		}

		// Putting the same configuration again is a no-op that succeeds.
		if err := connect.PutConnector(ctx, w.URL(), name, sinkConfig(topic, index)); err != nil {
			t.Errorf("second PutConnector: %v", err)
		}
		st, err := connect.ConnectorStatus(ctx, w.URL(), name)
		if err != nil || !st.Running() || st.Type != "sink" {
			t.Errorf("ConnectorStatus = %+v, %v", st, err)
		}
		if err := connect.DeleteConnector(ctx, w.URL(), name); err != nil {
			t.Errorf("DeleteConnector: %v", err)
		}
		if _, err := connect.ConnectorStatus(ctx, w.URL(), name); !errors.Is(err, connect.ErrNotFound) {
			t.Errorf("ConnectorStatus after delete: %v, want ErrNotFound", err)
		}
	})

	// Records the sink cannot index go to the dead letter queue with the
	// reason in headers; the connector goes on with the next records.
	t.Run("DeadLetters", func(t *testing.T) {
		name := kafkatest.Name(t)
		topic, index := name, strings.ToLower(name)
		createTopic(t, topic, 1)
		if _, err := es.CreateIndex(index).BodyString(
			`{"settings":{"number_of_shards":1,"number_of_replicas":0},` +
				`"mappings":{"properties":{"amount_cents":{"type":"long"},"transaction_id":{"type":"keyword"}}}}`).Do(ctx); err != nil {
			t.Fatalf("create index: %v", err)
		}
		bad := []string{
			`{"transaction_id":"tx-bad-json",`,                         // not JSON
			`{"payment_key":"tok:tx-conflict","amount_cents":"a lot"}`, // refused by the mapping
			`{"amount_cents":5}`,                                       // no payment_key
		}
		produce(t, topic, result("tx-c", "approved", 500), bad[0], bad[1], bad[2], result("tx-d", "approved", 700))
		if err := w.PutConnector(ctx, name, sinkConfig(topic, index)); err != nil {
			t.Fatalf("PutConnector: %v", err)
		}
		dead := consume(t, topic+"-dlq", 3)
		waitConsumed(t, name, topic)

		wantReason := []string{"not valid JSON", "mapper_parsing_exception", `no string or integer field "payment_key"`}
		for i, m := range dead {
			t.Logf("dead letter %d: %s; headers: %s=%s, %s=%s, %s=%s", i, m.Value,
				"stage", header(m, "__connect.errors.stage"),
				"class", header(m, "__connect.errors.exception.class.name"),
				"message", header(m, "__connect.errors.exception.message"))
			if string(m.Value) != bad[i] {
				t.Errorf("dead letter %d is %q, want %q", i, m.Value, bad[i])
			}
			if got := header(m, "__connect.errors.topic"); got != topic {
				t.Errorf("dead letter %d: __connect.errors.topic = %q, want %q", i, got, topic)
			}
			if got := header(m, "__connect.errors.offset"); got != fmt.Sprint(i+1) {
				t.Errorf("dead letter %d: __connect.errors.offset = %q, want %d", i, got, i+1)
			}
			if got := header(m, "__connect.errors.exception.class.name"); got != "org.apache.kafka.connect.errors.DataException" {
				t.Errorf("dead letter %d: exception class %q", i, got)
			}
			if got := header(m, "__connect.errors.exception.message"); !strings.Contains(got, wantReason[i]) {
				t.Errorf("dead letter %d: exception message %q does not contain %q", i, got, wantReason[i])
			}
			if got := header(m, "__connect.errors.connector.name"); got != name {
				t.Errorf("dead letter %d: connector name %q", i, got)
			}
		}
		if got := ids(documents(t, es, index)); !slices.Equal(got, []string{"tok:tx-c", "tok:tx-d"}) {
			t.Errorf("document ids %v, want [tok:tx-c tok:tx-d]", got)
		}
		if st, err := connect.ConnectorStatus(ctx, w.URL(), name); err != nil || !st.Running() {
			t.Errorf("after dead letters: ConnectorStatus = %+v, %v", st, err)
		}
	})

	// While OpenSearch is unavailable, records wait in Kafka: the batch is
	// retried and offsets do not move, then everything is indexed.
	t.Run("OutageRetries", func(t *testing.T) {
		name := kafkatest.Name(t)
		topic, index := name, strings.ToLower(name)
		createTopic(t, topic, 1)
		produce(t, topic, result("tx-g", "approved", 3), result("tx-h", "approved", 4))
		target, _ := url.Parse(node.URL())
		proxy := httputil.NewSingleHostReverseProxy(target)
		var up atomic.Bool
		var refused atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			if !up.Load() {
				refused.Add(1)
				http.Error(rw, `{"error":"unavailable"}`, http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(rw, r)
		}))
		defer srv.Close()
		c := sinkConfig(topic, index)
		c["opensearch.url"] = "http://127.0.0.1:1," + srv.URL // the first refuses connections
		c["retry.backoff.ms"] = "100"
		if err := w.PutConnector(ctx, name, c); err != nil {
			t.Fatalf("PutConnector: %v", err)
		}
		wait.Until(t, 30*time.Second, "the connector to send 3 requests or more", func() bool { return refused.Load() >= 3 })
		time.Sleep(1500 * time.Millisecond) // more than offset.flush.interval.ms
		if st, err := connect.ConnectorStatus(ctx, w.URL(), name); err != nil || !st.Running() {
			t.Errorf("during the outage: ConnectorStatus = %+v, %v", st, err)
		}
		if exists, err := es.IndexExists(index).Do(ctx); err != nil || exists {
			t.Errorf("index %s exists during the outage (%v)", index, err)
		}
		up.Store(true)
		waitConsumed(t, name, topic)
		if got := ids(documents(t, es, index)); !slices.Equal(got, []string{"tok:tx-g", "tok:tx-h"}) {
			t.Errorf("document ids %v, want [tok:tx-g tok:tx-h]", got)
		}
		t.Logf("%d requests refused during the outage", refused.Load())
	})

	// A configuration the connector refuses fails PutConnector with the
	// worker's reason.
	t.Run("InvalidConfig", func(t *testing.T) {
		c := sinkConfig("t-unused", "unused")
		c["opensearch.url"] = "ftp://example"
		err := w.PutConnector(ctx, kafkatest.Name(t), c)
		if err == nil || !strings.Contains(err.Error(), "must start with http://") {
			t.Errorf("PutConnector with a bad URL: %v", err)
		}
	})

	// A restarted worker of the same group resumes its connectors and their
	// offsets from Kafka: no PUT, no reindexing of what was done.
	t.Run("RestartResumes", func(t *testing.T) {
		name := kafkatest.Name(t)
		topic, index := name, strings.ToLower(name)
		createTopic(t, topic, 1)
		produce(t, topic, result("tx-e", "approved", 1))
		if err := w.PutConnector(ctx, name, sinkConfig(topic, index)); err != nil {
			t.Fatalf("PutConnector: %v", err)
		}
		waitConsumed(t, name, topic)
		stopWorker(t, w)
		// Documents changed behind the worker's back stay so: only new
		// records are indexed after the restart.
		if _, err := es.Delete().Index(index).Id("tok:tx-e").Refresh("true").Do(ctx); err != nil {
			t.Fatalf("delete: %v", err)
		}
		produce(t, topic, result("tx-f", "approved", 2))

		w = startWorker(t, Options{Brokers: brokerAddr, GroupID: group, Metrics: monitoring.ConnectJMXExporter})
		wait.For(t, time.Minute, "the connector to run after the restart", func() error {
			st, err := connect.ConnectorStatus(ctx, w.URL(), name)
			if err == nil && !st.Running() {
				err = fmt.Errorf("status %+v", st)
			}
			return err
		})
		waitConsumed(t, name, topic)
		if got := ids(documents(t, es, index)); !slices.Equal(got, []string{"tok:tx-f"}) {
			t.Errorf("document ids %v, want [tok:tx-f]", got)
		}
	})
	// The worker's metrics, through the JMX exporter agent: the connectors' and tasks' states,
	// and the dead letters of the subtests above.
	t.Run("Metrics", func(t *testing.T) {
		wait.For(t, 30*time.Second, "the sink's series on the worker's metrics", func() error {
			body, err := get(&http.Client{Timeout: 5 * time.Second}, "http://"+w.MetricsAddr()+"/metrics")
			if err != nil {
				return err
			}
			for _, want := range []string{`kafka_connect_connector_status{connector="`, `status="running"`, `kafka_connect_connector_task_status{connector="`,
				`kafka_connect_task_error_metrics_deadletterqueue_produce_requests{connector="`, "kafka_connect_worker_connector_count"} {
				if !strings.Contains(string(body), want) {
					return fmt.Errorf("no %s in:\n%s", want, body)
				}
			}
			return nil
		})
	})
	// This last stop is cleanup, and what RestartResumes needs of a stop it checked there. A
	// worker that outlives the grace period here (Kafka Connect 4.1.1 once took longer than
	// 30 s, on a busy machine, right after a restart) is killed, and the threads its shutdown
	// waited on are logged.
	if err := w.Stop(); err != nil {
		t.Logf("Stop: %v", err)
	}
}

// mustCanon re-encodes a JSON object with sorted keys, as encoding/json
// writes maps.
func mustCanon(t *testing.T, s string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func TestStartNeedsBrokers(t *testing.T) {
	if _, err := Start(context.Background(), Options{}); err == nil || !strings.Contains(err.Error(), "Brokers") {
		t.Errorf("Start without brokers: %v", err)
	}
}

func TestWorkerProperties(t *testing.T) {
	p := workerProperties("127.0.0.1:9092", "g1", 8083, "/c/plugins")
	for _, want := range []string{
		"bootstrap.servers=127.0.0.1:9092\n",
		"group.id=g1\n",
		"config.storage.topic=g1-configs\n",
		"offset.storage.topic=g1-offsets\n",
		"status.storage.topic=g1-status\n",
		"offset.storage.replication.factor=1\n",
		"listeners=http://127.0.0.1:8083\n",
		"plugin.path=/c/plugins\n",
		"value.converter=org.apache.kafka.connect.storage.StringConverter\n",
	} {
		if !strings.Contains(p, want) {
			t.Errorf("worker.properties lacks %q:\n%s", want, p)
		}
	}
}
