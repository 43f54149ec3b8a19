package e2e_test

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/kafkaconf"
)

// scanner looks for card numbers wherever the bank keeps or shows data: every record of every
// topic (read through a consumer, so that compression cannot hide one), every byte of a
// directory, the documents of a search index, a metrics endpoint. A number is found as it is,
// grouped as on a card (5454 5406 8756 8555) and in dashed groups (5454-5406-8756-8555).
type scanner struct {
	needles [][]byte
}

func newScanner(numbers ...string) *scanner {
	s := &scanner{}
	for _, n := range numbers {
		s.needles = append(s.needles, []byte(n), []byte(card.Grouped(n)), []byte(strings.ReplaceAll(card.Grouped(n), " ", "-")))
	}
	return s
}

// in returns where, when b holds a needle.
func (s *scanner) in(where string, b []byte) []string {
	for _, n := range s.needles {
		if bytes.Contains(b, n) {
			return []string{where}
		}
	}
	return nil
}

// topics reads every partition of every topic of the cluster, from its first record to its
// last, keys, values and headers.
func (s *scanner) topics(t *testing.T, kc kafkaconf.Config) []string {
	t.Helper()
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	topics, err := client.Topics()
	if err != nil {
		t.Fatal(err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	var found []string
	records := 0
	for _, topic := range topics {
		parts, err := client.Partitions(topic)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range parts {
			oldest, err1 := client.GetOffset(topic, p, sarama.OffsetOldest)
			newest, err2 := client.GetOffset(topic, p, sarama.OffsetNewest)
			if err1 != nil || err2 != nil {
				t.Fatalf("offsets of %s/%d: %v %v", topic, p, err1, err2)
			}
			if newest <= oldest {
				continue
			}
			pc, err := consumer.ConsumePartition(topic, p, oldest)
			if err != nil {
				t.Fatal(err)
			}
			for done := false; !done; {
				select {
				case m := <-pc.Messages():
					records++
					where := topic
					found = append(found, s.in(where+" (key)", m.Key)...)
					found = append(found, s.in(where, m.Value)...)
					for _, h := range m.Headers {
						found = append(found, s.in(where+" (header "+string(h.Key)+")", h.Value)...)
					}
					done = m.Offset >= newest-1
				case <-time.After(30 * time.Second):
					t.Fatalf("reading %s/%d stopped short of offset %d", topic, p, newest)
				}
			}
			pc.Close()
		}
	}
	t.Logf("scanned %d records of %d topics", records, len(topics))
	return found
}

// files reads every byte of every file under the paths (files or directories).
func (s *scanner) files(t *testing.T, paths ...string) []string {
	t.Helper()
	var found []string
	n := 0
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n++
			found = append(found, s.in(path, b)...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n == 0 {
		t.Fatalf("no file under %v", paths)
	}
	return found
}

// index reads every document of a search index.
func (s *scanner) index(t *testing.T, c *elastic.Client, index string) []string {
	t.Helper()
	ctx := context.Background()
	c.Refresh(index).Do(ctx)
	res, err := c.Search(index).Size(10_000).Do(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, h := range res.Hits.Hits {
		found = append(found, s.in(index+"/"+h.Id, h.Source)...)
	}
	if len(res.Hits.Hits) == 0 {
		t.Fatalf("index %s holds no document to scan", index)
	}
	return found
}

// metrics reads the metrics a process serves.
func (s *scanner) metrics(t *testing.T, urls ...string) []string {
	t.Helper()
	var found []string
	for _, u := range urls {
		resp, err := http.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), "# TYPE") {
			t.Fatalf("GET %s = %d", u, resp.StatusCode)
		}
		found = append(found, s.in(u, b)...)
	}
	return found
}
