package localsearch

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/internal/devenv/jvm"
	"github.com/codebank/codebank/internal/testenv/tier"
)

func start(t *testing.T, opts Options) *Node {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	begin := time.Now()
	n, err := Start(ctx, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Logf("node on %s ready after %s", n.URL(), time.Since(begin).Round(time.Millisecond))
	return n
}

func stop(t *testing.T, n *Node) {
	t.Helper()
	begin := time.Now()
	if err := n.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	t.Logf("node stopped after %s", time.Since(begin).Round(time.Millisecond))
}

func newClient(t *testing.T, n *Node) *elastic.Client {
	t.Helper()
	c, err := elastic.NewClient(elastic.SetURL(n.URL()), elastic.SetSniff(false), elastic.SetHealthcheck(false))
	if err != nil {
		t.Fatalf("elastic.NewClient: %v", err)
	}
	return c
}

type result struct {
	TransactionID string `json:"transaction_id"`
	Status        string `json:"status"`
	AmountCents   int64  `json:"amount_cents"`
	Store         string `json:"store"`
}

// TestIndexSearchRestart indexes a document through an index template with
// the Elasticsearch 7 client, finds it, and finds it again after a restart
// on the same DataDir.
func TestIndexSearchRestart(t *testing.T) {
	tier.Servers(t, "an OpenSearch node")
	ctx := context.Background()
	dataDir := t.TempDir()
	const index, id = "results-2026.11", "tx-0001"

	n := start(t, Options{DataDir: dataDir})
	defer n.Stop()
	if !strings.HasPrefix(n.URL(), "http://127.0.0.1:") || n.URL() != "http://"+n.HostPort() {
		t.Errorf("URL() = %s, HostPort() = %s", n.URL(), n.HostPort())
	}
	c := newClient(t, n)

	// The version Elasticsearch 7 clients check.
	v, err := c.ElasticsearchVersion(n.URL())
	if err != nil || v != "7.10.2" {
		t.Errorf("ElasticsearchVersion = %q, %v; want 7.10.2", v, err)
	}

	tmpl := `{
	  "index_patterns": ["results-*"],
	  "template": {
	    "settings": {"number_of_shards": 1, "number_of_replicas": 0},
	    "mappings": {"properties": {
	      "transaction_id": {"type": "keyword"},
	      "status": {"type": "keyword"},
	      "amount_cents": {"type": "long"},
	      "store": {"type": "text", "fields": {"raw": {"type": "keyword"}}}
	    }}
	  }
	}`
	if _, err := c.IndexPutIndexTemplate("results").BodyString(tmpl).Do(ctx); err != nil {
		t.Fatalf("put index template: %v", err)
	}
	if _, err := c.CreateIndex(index).Do(ctx); err != nil {
		t.Fatalf("create index: %v", err)
	}
	doc := result{TransactionID: id, Status: "approved", AmountCents: 1234, Store: "Corner Bakery"}
	if _, err := c.Index().Index(index).Id(id).BodyJson(doc).Refresh("true").Do(ctx); err != nil {
		t.Fatalf("index: %v", err)
	}
	// The template's mapping applies. (The client's GetMapping service asks
	// for the typed /INDEX/_mapping/_all, which OpenSearch 2 no longer has.)
	m, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: "GET", Path: "/" + index + "/_mapping"})
	if err != nil {
		t.Fatalf("get mapping: %v", err)
	}
	if !strings.Contains(string(m.Body), `"status":{"type":"keyword"}`) {
		t.Errorf("mapping does not come from the template: %s", m.Body)
	}

	search := func(c *elastic.Client) {
		t.Helper()
		res, err := c.Search(index).Query(elastic.NewBoolQuery().
			Filter(elastic.NewTermQuery("status", "approved")).
			Must(elastic.NewMatchQuery("store", "bakery"))).Do(ctx)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		if res.TotalHits() != 1 || res.Hits.Hits[0].Id != id {
			t.Fatalf("search found %d hits, want the document %s", res.TotalHits(), id)
		}
		var got result
		if err := json.Unmarshal(res.Hits.Hits[0].Source, &got); err != nil || got != doc {
			t.Errorf("found %+v (%v), want %+v", got, err, doc)
		}
	}
	search(c)
	stop(t, n)
	if _, err := os.Stat(filepath.Join(dataDir, "data")); err != nil {
		t.Fatalf("Stop removed a caller's DataDir: %v", err)
	}

	n = start(t, Options{DataDir: dataDir})
	defer n.Stop()
	search(newClient(t, n))
	stop(t, n)
}

func TestTempDataDir(t *testing.T) {
	tier.Servers(t, "an OpenSearch node")
	n := start(t, Options{HeapMB: 384})
	dir := n.DataDir()
	for _, f := range []string{"config/opensearch.yml", "node.log", "data"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
	// No security plugin: plain HTTP without credentials.
	resp, err := http.Get(n.URL() + "/_cat/plugins")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("GET /_cat/plugins: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	stop(t, n)
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temp DataDir %s still there after Stop (err %v)", dir, err)
	}
}

func TestStartFailsOnBusyPort(t *testing.T) {
	tier.Servers(t, "an OpenSearch node")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	n, err := Start(ctx, Options{HTTPPort: port})
	if err == nil {
		n.Stop()
		t.Fatalf("Start on busy port %d succeeded", port)
	}
	var busy *jvm.PortInUseError
	if !errors.As(err, &busy) || busy.Port != port || !strings.Contains(err.Error(), "tail of") {
		t.Errorf("error does not show the node's output: %v", err)
	}
	t.Logf("error as expected: %v", err)
}

func TestNodeConfig(t *testing.T) {
	c := nodeConfig("/d", 9201)
	for _, want := range []string{
		"discovery.type: \"single-node\"\n",
		"network.host: \"127.0.0.1\"\n",
		"http.port: 9201\n",
		"compatibility.override_main_response_version: true\n",
		"cluster.routing.allocation.disk.threshold_enabled: false\n",
		"path.data: \"/d/data\"\n",
	} {
		if !strings.Contains(c, want) {
			t.Errorf("opensearch.yml lacks %q:\n%s", want, c)
		}
	}
	if strings.Contains(c, "plugins.security") {
		t.Error("opensearch.yml configures the security plugin")
	}
}
