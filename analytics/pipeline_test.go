package analytics_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// pipeline is one deployment of Code Bank whose results Kafka Connect indexes.
type pipeline struct {
	d        banktest.Deployment
	index    string
	search   *elastic.Client
	cards    codebankv1.CardServiceClient
	payments codebankv1.PaymentServiceClient
	statuses map[string]int
}

func startPipeline(t testing.TB) *pipeline {
	t.Helper()
	name := kafkatest.Name(t)
	d := banktest.NewDeployment(t, servers.Broker, name, 3, 2)
	banktest.StartAuthorizer(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{})
	p := &pipeline{d: d, index: analytics.DefaultIndex + "-" + strings.ToLower(name), statuses: map[string]int{},
		cards: codebankv1.NewCardServiceClient(in.Conn), payments: codebankv1.NewPaymentServiceClient(in.Conn)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := analytics.Setup(ctx, d.Topo, analytics.Sink{SearchURL: servers.SearchURL, ConnectURL: servers.ConnectURL, Index: p.index}); err != nil {
		t.Fatal(err)
	}
	var err error
	if p.search, err = analytics.NewClient(servers.SearchURL); err != nil {
		t.Fatal(err)
	}
	return p
}

// pay makes n payments: a mix of approvals, rejections for credit and CVV, and unknown cards.
func (p *pipeline) pay(t testing.TB, n int) {
	t.Helper()
	ctx := context.Background()
	c, err := p.cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: "Maria Silva", LimitCents: 50_000})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		d := &codebankv1.CardDetails{Number: c.GetCard().GetNumber(), HolderName: "Maria Silva", ExpiryMonth: c.GetCard().GetExpiryMonth(),
			ExpiryYear: c.GetCard().GetExpiryYear(), Cvv: c.GetCvv()}
		amount := int64(1000 + i)
		switch i % 5 {
		case 1:
			amount = 1_000_000 // over the limit
		case 2:
			d.Cvv = fmt.Sprintf("%03d", (mustAtoi(d.Cvv)+1)%1000)
		case 3:
			d.Number = "4111111111111111"
		}
		r, err := p.payments.Authorize(ctx, &codebankv1.AuthorizeRequest{Card: d, AmountCents: amount, Store: []string{"Code Store", "Padaria"}[i%2], Description: "x"})
		if err != nil {
			t.Fatal(err)
		}
		p.statuses[strings.ToLower(strings.TrimPrefix(r.GetStatus().String(), "PAYMENT_STATUS_"))]++
	}
}

func mustAtoi(s string) int {
	n := 0
	for _, r := range s {
		n = n*10 + int(r-'0')
	}
	return n
}

// waitCount waits until the index holds want documents, and fails if it holds more.
func (p *pipeline) waitCount(t *testing.T, want int64, within time.Duration) {
	t.Helper()
	ctx := context.Background()
	wait.For(t, within, fmt.Sprintf("the index to hold %d documents", want), func() error {
		p.search.Refresh(p.index).Do(ctx)
		got, err := p.search.Count(p.index).Do(ctx)
		if err != nil {
			return err
		}
		if got > want {
			t.Fatalf("index holds %d documents, more than the %d authorizations", got, want)
		}
		if got < want {
			return fmt.Errorf("it holds %d", got)
		}
		return nil
	})
}

func (p *pipeline) countByStatus(t *testing.T) map[string]int {
	t.Helper()
	res, err := p.search.Search(p.index).Size(0).Aggregation("s", elastic.NewTermsAggregation().Field("status")).Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	agg, _ := res.Aggregations.Terms("s")
	for _, b := range agg.Buckets {
		out[fmt.Sprint(b.Key)] = int(b.DocCount)
	}
	return out
}

// connectREST calls the Kafka Connect REST API.
func connectREST(t *testing.T, method, path string) {
	t.Helper()
	req, _ := http.NewRequest(method, servers.ConnectURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, body)
	}
}

// TestIndexEveryAuthorizationOnce: N authorizations make N documents, by status as decided;
// replaying the whole topic leaves N.
func TestIndexEveryAuthorizationOnce(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	p := startPipeline(t)
	const n = 40
	p.pay(t, n)
	p.waitCount(t, n, time.Minute)
	if got := p.countByStatus(t); got["approved"] != p.statuses["approved"] || got["rejected"] != p.statuses["rejected"] {
		t.Fatalf("index by status %v, authorizer decided %v", got, p.statuses)
	}
	// No full card number in any document.
	res, err := p.search.Search(p.index).Size(n).Do(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range res.Hits.Hits {
		if strings.Contains(string(h.Source), "4111111111111111") || strings.Contains(string(h.Source), `"number"`) {
			t.Fatalf("document %s holds a card number: %s", h.Id, h.Source)
		}
		var doc map[string]any
		json.Unmarshal(h.Source, &doc)
		if key := fmt.Sprint(doc["card_token"], ":", doc["merchant"], ":", doc["transaction_id"]); doc["payment_key"] != h.Id || key != h.Id {
			t.Fatalf("document id %s is not its payment key %v (%s)", h.Id, doc["payment_key"], key)
		}
	}

	// Replay the topic from the start: Connect forgets its offsets and reads everything again.
	name := analytics.ConnectorName(p.d.Topo)
	connectREST(t, "PUT", "/connectors/"+name+"/stop")
	waitState(t, name, "STOPPED")
	connectREST(t, "DELETE", "/connectors/"+name+"/offsets")
	connectREST(t, "PUT", "/connectors/"+name+"/resume")
	// Every document is written again (its version goes up), and the count stays N.
	wait.For(t, time.Minute, "every document to be written again after the replay", func() error {
		p.search.Refresh(p.index).Do(context.Background())
		r, err := p.search.Search(p.index).Size(n).Version(true).Do(context.Background())
		if err != nil {
			return err
		}
		rewritten := 0
		for _, h := range r.Hits.Hits {
			if h.Version != nil && *h.Version >= 2 {
				rewritten++
			}
		}
		if rewritten < n {
			return fmt.Errorf("%d of %d were", rewritten, n)
		}
		return nil
	})
	p.waitCount(t, n, 10*time.Second)
}

func waitState(t *testing.T, name, state string) {
	t.Helper()
	wait.For(t, 30*time.Second, "connector "+name+" to be "+state, func() error {
		st, err := connect.ConnectorStatus(context.Background(), servers.ConnectURL, name)
		if err != nil {
			return err
		}
		if st.Connector.State != state {
			return fmt.Errorf("it is %s", st.Connector.State)
		}
		return nil
	})
}

// TestSearchServerDown: payments made while the search server is down are all indexed once it
// is back, from Connect's offsets.
func TestSearchServerDown(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	p := startPipeline(t)
	p.pay(t, 10)
	p.waitCount(t, 10, time.Minute)
	if err := servers.StopSearch(); err != nil {
		t.Fatal(err)
	}
	p.pay(t, 15)
	time.Sleep(2 * time.Second) // the connector meets the outage and retries
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := servers.StartSearch(ctx); err != nil {
		t.Fatal(err)
	}
	p.waitCount(t, 25, 2*time.Minute)
}

// TestDeadLetters: a record the sink cannot index goes to the dead-letter topic with the
// reason, and the records after it are indexed.
func TestDeadLetters(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	p := startPipeline(t)
	producer, err := sarama.NewSyncProducer([]string{servers.Broker}, p.d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	for _, v := range []string{`{"transaction_id":"bad-1","amount_cents":"a lot"}`, `not json`} {
		if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: p.d.Topo.Results().Name, Key: sarama.StringEncoder("tok"), Value: sarama.StringEncoder(v)}); err != nil {
			t.Fatal(err)
		}
	}
	p.pay(t, 5)
	p.waitCount(t, 5, time.Minute)

	consumer, err := sarama.NewConsumer([]string{servers.Broker}, p.d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(p.d.Topo.ResultDeadLetters().Name, 0, sarama.OffsetOldest)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	for i, want := range []string{"a lot", "not json"} {
		select {
		case msg := <-pc.Messages():
			reason := ""
			for _, h := range msg.Headers {
				if string(h.Key) == "__connect.errors.exception.message" {
					reason = string(h.Value)
				}
			}
			if !strings.Contains(string(msg.Value), want) || reason == "" {
				t.Errorf("dead letter %d = %s (reason %q), want the record holding %q with a reason", i, msg.Value, reason, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("dead letter %d not found", i)
		}
	}
}
