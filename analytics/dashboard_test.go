package analytics_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/testenv/tier"
)

// The dashboards, each for the versions it imports into (kibana/README.md): classic
// visualizations of Kibana 7.10 for OpenSearch Dashboards 2.x, and Lens for Kibana 8.
const (
	dashboardFile        = "kibana/codebank-dashboard.ndjson"
	kibana8DashboardFile = "kibana/codebank-dashboard-kibana8.ndjson"
)

// savedObject is one line of a Kibana saved-objects export.
type savedObject struct {
	Type       string         `json:"type"`
	ID         string         `json:"id"`
	Attributes map[string]any `json:"attributes"`
	References []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"references"`
	MigrationVersion     map[string]string `json:"migrationVersion"`
	CoreMigrationVersion string            `json:"coreMigrationVersion"`
	TypeMigrationVersion string            `json:"typeMigrationVersion"`
}

func readDashboard(t *testing.T) []savedObject { return readSavedObjects(t, dashboardFile) }

func readSavedObjects(t *testing.T, file string) []savedObject {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var objs []savedObject
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		var o savedObject
		if err := json.Unmarshal(sc.Bytes(), &o); err != nil {
			t.Fatalf("line %d is not a JSON object: %v", line, err)
		}
		if o.Type == "" || o.ID == "" || o.Attributes["title"] == nil {
			t.Fatalf("line %d lacks type, id or title", line)
		}
		objs = append(objs, o)
	}
	return objs
}

// TestDashboardFile checks the saved objects' structure: every reference resolves, every
// embedded JSON string parses, every panel has its reference.
func TestDashboardFile(t *testing.T) {
	objs := readDashboard(t)
	byKey := map[string]savedObject{}
	types := map[string]int{}
	for _, o := range objs {
		byKey[o.Type+"/"+o.ID] = o
		types[o.Type]++
	}
	if types["index-pattern"] != 1 || types["dashboard"] != 1 || types["visualization"] != 9 {
		t.Fatalf("objects by type = %v, want 1 index pattern, 1 dashboard, 9 visualizations", types)
	}
	for _, o := range objs {
		for _, r := range o.References {
			if _, ok := byKey[r.Type+"/"+r.ID]; !ok {
				t.Errorf("%s %s refers to missing %s %s", o.Type, o.ID, r.Type, r.ID)
			}
		}
		for _, key := range []string{"visState", "uiStateJSON", "panelsJSON", "optionsJSON", "fieldFormatMap", "fields"} {
			if s, ok := o.Attributes[key].(string); ok && !json.Valid([]byte(s)) {
				t.Errorf("%s %s: %s is not JSON", o.Type, o.ID, key)
			}
		}
		if meta, ok := o.Attributes["kibanaSavedObjectMeta"].(map[string]any); ok {
			if s, _ := meta["searchSourceJSON"].(string); !json.Valid([]byte(s)) {
				t.Errorf("%s %s: searchSourceJSON is not JSON", o.Type, o.ID)
			}
		}
	}
	ip := byKey["index-pattern/codebank-payments"]
	if ip.Attributes["timeFieldName"] != "authorized_at" || ip.Attributes["title"] != analytics.DefaultIndex {
		t.Errorf("index pattern = %v, want the alias %s", ip.Attributes, analytics.DefaultIndex)
	}
	// A Kibana 7.10 export, which OpenSearch Dashboards 2.x imports (and Kibana 9 refuses).
	for _, o := range objs {
		for typ, v := range o.MigrationVersion {
			if !strings.HasPrefix(v, "7.") {
				t.Errorf("%s %s: migration version %s %s, want 7.x (OpenSearch Dashboards imports Kibana 7.10's objects)", o.Type, o.ID, typ, v)
			}
		}
		if o.CoreMigrationVersion != "" || o.TypeMigrationVersion != "" {
			t.Errorf("%s %s: Kibana 8's migration versions in a file for OpenSearch Dashboards", o.Type, o.ID)
		}
	}
	var dash savedObject
	for _, o := range objs {
		if o.Type == "dashboard" {
			dash = o
		}
	}
	var panels []struct {
		PanelRefName string `json:"panelRefName"`
	}
	if err := json.Unmarshal([]byte(dash.Attributes["panelsJSON"].(string)), &panels); err != nil {
		t.Fatal(err)
	}
	refs := map[string]bool{}
	for _, r := range dash.References {
		refs[r.Name] = true
	}
	for _, p := range panels {
		if !refs[p.PanelRefName] {
			t.Errorf("panel %s has no reference", p.PanelRefName)
		}
	}
	if len(panels) != 9 {
		t.Errorf("dashboard has %d panels, want 9", len(panels))
	}
	// The refunds panel and net sales, and the panels of authorizations leave operations out.
	for _, o := range objs {
		meta, _ := o.Attributes["kibanaSavedObjectMeta"].(map[string]any)
		src, _ := meta["searchSourceJSON"].(string)
		vs, _ := o.Attributes["visState"].(string)
		switch {
		case o.Type != "visualization":
		case o.ID == "codebank-refunds":
			if !strings.Contains(src, "kind:(reversal OR refund)") {
				t.Errorf("the refunds panel selects %s", src)
			}
		case o.ID == "codebank-net-sales-by-store":
			if !strings.Contains(vs, `"net_amount"`) {
				t.Errorf("net sales sum %s", vs)
			}
		case !strings.Contains(src+vs, purchasesOnly):
			t.Errorf("%s counts reversals, refunds and bill payments as authorizations", o.ID)
		}
	}
	// Every field a panel uses is mapped by the index template (a sum over a missing field
	// would quietly be 0).
	tmpl, err := analytics.Indices{}.Template()
	if err != nil {
		t.Fatal(err)
	}
	mapped := tmpl["template"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
	for _, o := range objs {
		if o.Type != "visualization" {
			continue
		}
		var fields []string
		var collect func(any)
		collect = func(x any) {
			switch n := x.(type) {
			case map[string]any:
				for k, v := range n {
					if f, ok := v.(string); ok && (k == "field" || k == "time_field") {
						fields = append(fields, f)
					}
					collect(v)
				}
			case []any:
				for _, v := range n {
					collect(v)
				}
			}
		}
		var vs any
		json.Unmarshal([]byte(o.Attributes["visState"].(string)), &vs)
		collect(vs)
		if len(fields) == 0 {
			t.Errorf("%s uses no field", o.ID)
		}
		for _, f := range fields {
			if mapped[f] == nil {
				t.Errorf("%s uses field %q, which the index template does not map", o.ID, f)
			}
		}
	}
	raw, _ := os.ReadFile(dashboardFile)
	for _, forbidden := range []string{"card_number", "credit_card_number", `"number"`} {
		if strings.Contains(string(raw), forbidden) {
			t.Errorf("dashboard mentions %s", forbidden)
		}
	}
}

// visAgg is one aggregation of a classic visualization's visState.
type visAgg struct {
	ID     string         `json:"id"`
	Type   string         `json:"type"`
	Schema string         `json:"schema"`
	Params map[string]any `json:"params"`
}

// rawAgg is an aggregation written as the JSON the search API takes.
type rawAgg map[string]any

func (r rawAgg) Source() (any, error) { return map[string]any(r), nil }

// panelSearch turns a visualization into the search Kibana runs for it: its query, and its
// aggregations (buckets nested in order, metrics at the leaves; TSVB filter ratios as a pair
// of filters per interval).
func panelSearch(t *testing.T, o savedObject) (elastic.Query, rawAgg) {
	t.Helper()
	var vs struct {
		Type   string         `json:"type"`
		Aggs   []visAgg       `json:"aggs"`
		Params map[string]any `json:"params"`
	}
	if err := json.Unmarshal([]byte(o.Attributes["visState"].(string)), &vs); err != nil {
		t.Fatal(err)
	}
	var src struct {
		Query struct {
			Query string `json:"query"`
		} `json:"query"`
	}
	meta := o.Attributes["kibanaSavedObjectMeta"].(map[string]any)
	if err := json.Unmarshal([]byte(meta["searchSourceJSON"].(string)), &src); err != nil {
		t.Fatal(err)
	}
	var query elastic.Query = elastic.NewMatchAllQuery()
	if src.Query.Query != "" {
		query = elastic.NewQueryStringQuery(src.Query.Query)
	}

	if vs.Type == "metrics" {
		sub := map[string]any{}
		for _, series := range vs.Params["series"].([]any) {
			for _, m := range series.(map[string]any)["metrics"].([]any) {
				mm := m.(map[string]any)
				if mm["type"] != "filter_ratio" {
					t.Fatalf("%s: unsupported TSVB metric %v", o.ID, mm["type"])
				}
				for _, side := range []string{"numerator", "denominator"} {
					q := mm[side].(map[string]any)["query"].(string)
					sub[side] = map[string]any{"filter": map[string]any{"query_string": map[string]any{"query": q}}}
				}
			}
		}
		return query, rawAgg{"date_histogram": map[string]any{"field": vs.Params["time_field"], "fixed_interval": vs.Params["interval"]}, "aggs": sub}
	}

	leaves := map[string]any{}
	var buckets []visAgg
	for _, a := range vs.Aggs {
		switch {
		case a.Schema != "metric":
			buckets = append(buckets, a)
		case a.Type == "count":
		case a.Type == "sum" || a.Type == "avg":
			leaves["m"+a.ID] = map[string]any{a.Type: map[string]any{"field": a.Params["field"]}}
		case a.Type == "percentiles":
			leaves["m"+a.ID] = map[string]any{"percentiles": map[string]any{"field": a.Params["field"], "percents": a.Params["percents"]}}
		default:
			t.Fatalf("%s: unsupported metric %s", o.ID, a.Type)
		}
	}
	node := rawAgg{"filter": map[string]any{"match_all": map[string]any{}}, "aggs": leaves}
	for i := len(buckets) - 1; i >= 0; i-- {
		b := buckets[i]
		var body map[string]any
		switch b.Type {
		case "date_histogram":
			body = map[string]any{"date_histogram": map[string]any{"field": b.Params["field"], "fixed_interval": "1m", "min_doc_count": 1}}
		case "terms":
			terms := map[string]any{"field": b.Params["field"], "size": b.Params["size"]}
			if ob := fmt.Sprint(b.Params["orderBy"]); leaves["m"+ob] != nil {
				terms["order"] = map[string]any{"inner>m" + ob: b.Params["order"]}
			}
			body = map[string]any{"terms": terms}
		default:
			t.Fatalf("%s: unsupported bucket aggregation %s", o.ID, b.Type)
		}
		body["aggs"] = map[string]any{"inner": map[string]any(node)}
		node = rawAgg(body)
	}
	return query, node
}

// checkAggregation reports whether a panel's aggregation result has data: a bucket with
// documents, and a value in every metric.
func checkAggregation(t *testing.T, id string, raw json.RawMessage) {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	docs, values := 0.0, 0
	var walk func(any)
	walk = func(x any) {
		switch n := x.(type) {
		case map[string]any:
			if c, ok := n["doc_count"].(float64); ok {
				docs = max(docs, c)
			}
			if val, ok := n["value"]; ok {
				if val == nil {
					t.Errorf("%s: a metric has no value: %v", id, n)
				}
				values++
			}
			if vals, ok := n["values"].(map[string]any); ok {
				for p, val := range vals {
					if val == nil {
						t.Errorf("%s: percentile %s has no value", id, p)
					}
				}
				values++
			}
			for _, c := range n {
				walk(c)
			}
		case []any:
			for _, c := range n {
				walk(c)
			}
		}
	}
	walk(v)
	if docs == 0 {
		t.Errorf("%s: no bucket holds documents: %s", id, raw)
	}
}

// TestDashboardPanelsRun runs the aggregation behind every panel of both dashboards (Lens for
// Kibana 8, classic visualizations for OpenSearch Dashboards) against the real search server,
// through the alias, on monthly indices made with the index template and holding results
// records.
func TestDashboardPanelsRun(t *testing.T) {
	tier.Servers(t, "OpenSearch")
	ctx := context.Background()
	c, err := analytics.NewClient(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	ix := analytics.Indices{Alias: analytics.DefaultIndex + "-dashboard-test"}
	now := time.Now().UTC()
	if _, err := ix.Ensure(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	index := ix.Alias
	bulk := c.Bulk().Refresh("true")
	stores := []string{"Code Store", "Padaria", "Livraria"}
	for i := 0; i < 60; i++ {
		at := now.Add(-time.Duration(i) * time.Minute)
		r := codecs.Result{TransactionID: fmt.Sprint("tx-", i), CardToken: "tok", CardMasked: "545454******0001", CardBIN: "545454",
			Status: "approved", AmountCents: int64(100 * (i + 1)), Amount: json.Number(fmt.Sprintf("%d.00", i+1)), Currency: "BRL",
			Store: stores[i%3], Description: "d", Channel: "api",
			RequestedAt: at.Format(time.RFC3339Nano), AuthorizedAt: at.Format(time.RFC3339Nano),
			ProcessingMs: float64(i%7) + 0.5}
		if i%4 == 0 {
			r.Status, r.Reason = "rejected", []string{"insufficient_credit", "cvv_mismatch"}[i%8/4]
		}
		r.Merchant = []string{"code-store", "padaria", "livraria"}[i%3]
		if i%2 == 0 {
			r.Kind = codecs.KindPurchase // and every other one as written before kinds
			r.NetAmount = json.Number(fmt.Sprintf("%d.00", r.NetCents()/100))
		}
		bulk.Add(elastic.NewBulkIndexRequest().Index(ix.IndexOf(at)).Id(r.TransactionID).Doc(r)) // as the sink names it
	}
	// Reversals and refunds of the first purchases, and a bill payment.
	for i, kind := range []string{codecs.KindReversal, codecs.KindRefund, codecs.KindRefund, codecs.KindBillPayment} {
		at := now.Add(-time.Duration(i) * time.Minute)
		r := codecs.Result{Kind: kind, TransactionID: fmt.Sprint("tx-", i+1), OperationID: fmt.Sprint("op-", i), CardToken: "tok", Status: "approved",
			AmountCents: 50, Amount: "0.50", Currency: "BRL", Merchant: "code-store", Store: "Code Store", Channel: "api",
			RequestedAt: at.Format(time.RFC3339Nano), AuthorizedAt: at.Format(time.RFC3339Nano), ProcessingMs: 1}
		if kind == codecs.KindBillPayment {
			r.TransactionID, r.Merchant, r.Store = "", "", ""
		}
		r.NetAmount = json.Number(fmt.Sprintf("%.2f", float64(r.NetCents())/100))
		bulk.Add(elastic.NewBulkIndexRequest().Index(ix.IndexOf(at)).Id(r.OperationID).Doc(r))
	}
	if res, err := bulk.Do(ctx); err != nil || res.Errors {
		t.Fatalf("index test documents: %v %v", err, res)
	}
	for _, o := range readSavedObjects(t, kibana8DashboardFile) {
		if o.Type != "lens" {
			continue
		}
		query, agg := lensSearch(t, o)
		res, err := c.Search(index).Size(0).Query(query).Aggregation("panel", agg).Do(ctx)
		if err != nil {
			t.Errorf("%s: %v", o.ID, err)
			continue
		}
		checkAggregation(t, o.ID, res.Aggregations["panel"])
	}
	for _, o := range readDashboard(t) {
		if o.Type != "visualization" {
			continue
		}
		query, agg := panelSearch(t, o)
		res, err := c.Search(index).Size(0).Query(query).Aggregation("panel", agg).Do(ctx)
		if err != nil {
			t.Errorf("%s: %v", o.ID, err)
			continue
		}
		checkAggregation(t, o.ID, res.Aggregations["panel"])
	}

	// The terminal figures use the same index.
	f, err := analytics.KeyFigures(ctx, c, index, now.Add(-2*time.Hour), now.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if f.Total != 60 || f.Approved != 45 || f.Rejected != 15 || len(f.TopStores) != 3 || len(f.RejectionReasons) != 2 || f.LatencyP99 <= 0 {
		t.Errorf("figures = %+v", f)
	}
	if f.Reversals != 1 || f.Refunds != 2 || f.RefundedAmount != 1 || f.BillPayments != 1 || math.Abs(f.RefundRate-3.0/45) > 1e-9 || len(f.NetSales) != 3 {
		t.Errorf("money back figures = %+v", f)
	}
}

// purchasesOnly is the query the panels of authorizations add to leave operations out.
const purchasesOnly = "NOT kind:(reversal OR refund OR bill_payment)"
