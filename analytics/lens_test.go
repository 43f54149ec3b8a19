package analytics_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/analytics"
)

// lensColumn is one column of a Lens layer (formBased datasource).
type lensColumn struct {
	Label         string         `json:"label"`
	DataType      string         `json:"dataType"`
	OperationType string         `json:"operationType"`
	SourceField   string         `json:"sourceField"`
	IsBucketed    bool           `json:"isBucketed"`
	Params        map[string]any `json:"params"`
	References    []string       `json:"references"`
	Filter        *struct {
		Query    string `json:"query"`
		Language string `json:"language"`
	} `json:"filter"`
}

// lensState is the part of a Lens saved object's state the checks read.
type lensState struct {
	DatasourceStates struct {
		FormBased struct {
			Layers map[string]struct {
				Columns     map[string]lensColumn `json:"columns"`
				ColumnOrder []string              `json:"columnOrder"`
			} `json:"layers"`
		} `json:"formBased"`
	} `json:"datasourceStates"`
	Query struct {
		Query    string `json:"query"`
		Language string `json:"language"`
	} `json:"query"`
}

func lensOf(t *testing.T, o savedObject) lensState {
	t.Helper()
	b, err := json.Marshal(o.Attributes["state"])
	if err != nil {
		t.Fatal(err)
	}
	var st lensState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("%s: state: %v", o.ID, err)
	}
	return st
}

// lensOperations are the operations of Lens the dashboard may use, each one the checks below
// turn into the aggregation Kibana runs (formula and math combine other columns).
var lensOperations = []string{"date_histogram", "terms", "count", "sum", "average", "min", "max", "percentile", "formula", "math"}

// TestKibana8DashboardFile checks the Lens dashboard for Kibana 8 statically: its objects are of
// Kibana 8 (migration versions 8.x), the data view is the alias with its time field, every
// panel resolves to a Lens object of the data view, every column of every layer is in the
// layer's order and refers only to columns that exist, and every field a column reads is one the
// index template maps.
func TestKibana8DashboardFile(t *testing.T) {
	objs := readSavedObjects(t, kibana8DashboardFile)
	byKey := map[string]savedObject{}
	types := map[string]int{}
	for _, o := range objs {
		byKey[o.Type+"/"+o.ID] = o
		types[o.Type]++
		if !strings.HasPrefix(o.CoreMigrationVersion, "8.") || !strings.HasPrefix(o.TypeMigrationVersion, "8.") || len(o.MigrationVersion) > 0 {
			t.Errorf("%s %s: migration versions %q/%q (%v), want Kibana 8's", o.Type, o.ID, o.CoreMigrationVersion, o.TypeMigrationVersion, o.MigrationVersion)
		}
		for _, r := range o.References {
			if _, ok := byKey[r.Type+"/"+r.ID]; !ok && !slices.ContainsFunc(objs, func(x savedObject) bool { return x.Type == r.Type && x.ID == r.ID }) {
				t.Errorf("%s %s refers to missing %s %s", o.Type, o.ID, r.Type, r.ID)
			}
		}
	}
	if types["index-pattern"] != 1 || types["dashboard"] != 1 || types["lens"] != 9 || len(types) != 3 {
		t.Fatalf("objects by type = %v, want 1 data view, 1 dashboard, 9 Lens visualizations", types)
	}
	// The panels of authorizations leave reversals, refunds and bill payments out; the refunds
	// panel shows them, and net sales sums net_amount.
	for _, o := range objs {
		if o.Type != "lens" {
			continue
		}
		q := lensOf(t, o).Query.Query
		switch o.ID {
		case "codebank-lens-refunds":
			if q != "kind:(reversal OR refund)" {
				t.Errorf("the refunds panel selects %q", q)
			}
		case "codebank-lens-net-sales":
			if b, _ := json.Marshal(o.Attributes["state"]); !strings.Contains(string(b), `"sourceField":"net_amount"`) {
				t.Errorf("net sales does not sum net_amount")
			}
		default:
			if !strings.HasSuffix(q, purchasesOnly) {
				t.Errorf("%s counts reversals, refunds and bill payments as authorizations: %q", o.ID, q)
			}
		}
	}
	dv := byKey["index-pattern/"+analytics.DefaultIndex]
	if dv.Attributes["title"] != analytics.DefaultIndex || dv.Attributes["timeFieldName"] != "authorized_at" {
		t.Errorf("data view = %v, want the alias %s by authorized_at", dv.Attributes, analytics.DefaultIndex)
	}

	var dash savedObject
	for _, o := range objs {
		if o.Type == "dashboard" {
			dash = o
		}
	}
	var panels []struct {
		Type         string `json:"type"`
		PanelIndex   string `json:"panelIndex"`
		PanelRefName string `json:"panelRefName"`
	}
	if err := json.Unmarshal([]byte(dash.Attributes["panelsJSON"].(string)), &panels); err != nil {
		t.Fatal(err)
	}
	shown := map[string]bool{}
	for _, p := range panels {
		found := false
		for _, r := range dash.References {
			if r.Name == p.PanelIndex+":"+p.PanelRefName && r.Type == p.Type {
				found, shown[r.ID] = true, true
			}
		}
		if !found {
			t.Errorf("panel %s (%s) has no reference", p.PanelIndex, p.PanelRefName)
		}
	}

	mapped := templateFields(t)
	for _, o := range objs {
		if o.Type != "lens" {
			continue
		}
		if !shown[o.ID] {
			t.Errorf("lens %s is on no panel", o.ID)
		}
		st := lensOf(t, o)
		layers := st.DatasourceStates.FormBased.Layers
		if len(layers) == 0 {
			t.Errorf("%s has no layer", o.ID)
		}
		for id, layer := range layers {
			if !slices.ContainsFunc(o.References, func(r struct {
				Name string `json:"name"`
				Type string `json:"type"`
				ID   string `json:"id"`
			}) bool {
				return r.Name == "indexpattern-datasource-layer-"+id && r.Type == "index-pattern" && r.ID == analytics.DefaultIndex
			}) {
				t.Errorf("%s: layer %s does not read the data view %s", o.ID, id, analytics.DefaultIndex)
			}
			if got := slices.Sorted(maps.Keys(layer.Columns)); !slices.Equal(got, slices.Sorted(slices.Values(layer.ColumnOrder))) {
				t.Errorf("%s: columns %v, column order %v", o.ID, got, layer.ColumnOrder)
			}
			for cid, c := range layer.Columns {
				if !slices.Contains(lensOperations, c.OperationType) {
					t.Errorf("%s: column %s: operation %q", o.ID, cid, c.OperationType)
				}
				for _, r := range c.References {
					if _, ok := layer.Columns[r]; !ok {
						t.Errorf("%s: column %s refers to the missing column %s", o.ID, cid, r)
					}
				}
				if c.SourceField != "" && c.SourceField != "___records___" && mapped[c.SourceField] == nil {
					t.Errorf("%s: column %s reads %q, which the index template does not map", o.ID, cid, c.SourceField)
				}
				if c.OperationType == "terms" {
					if by, _ := c.Params["orderBy"].(map[string]any); by["type"] == "column" && layer.Columns[fmt.Sprint(by["columnId"])].OperationType == "" {
						t.Errorf("%s: column %s is ordered by the missing column %v", o.ID, cid, by["columnId"])
					}
				}
			}
		}
	}
	raw, _ := os.ReadFile(kibana8DashboardFile)
	for _, forbidden := range []string{"card_number", "credit_card_number", `"sourceField":"number"`} { // "number" is also Lens's data type
		if strings.Contains(string(raw), forbidden) {
			t.Errorf("dashboard mentions %s", forbidden)
		}
	}
}

// templateFields returns the fields the index template maps.
func templateFields(t *testing.T) map[string]any {
	t.Helper()
	tmpl, err := analytics.Indices{}.Template()
	if err != nil {
		t.Fatal(err)
	}
	return tmpl["template"].(map[string]any)["mappings"].(map[string]any)["properties"].(map[string]any)
}

// kqlTerm is the KQL of the dashboards' queries and filters: field:value or field:(value OR
// value ...), maybe negated with NOT, joined by AND; Lucene's query string reads it the same
// (KQL takes its operators in capitals too).
var kqlTerm = regexp.MustCompile(`^(NOT )?[a-z_]+ ?: ?("?[a-z_]+"?|\([a-z_]+( OR [a-z_]+)*\))( AND (NOT )?[a-z_]+ ?: ?("?[a-z_]+"?|\([a-z_]+( OR [a-z_]+)*\)))*$`)

func kqlQuery(t *testing.T, id, kql string) elastic.Query {
	t.Helper()
	if kql == "" {
		return elastic.NewMatchAllQuery()
	}
	if !kqlTerm.MatchString(kql) {
		t.Fatalf("%s: KQL %q is more than terms joined by AND", id, kql)
	}
	return elastic.NewQueryStringQuery(strings.ReplaceAll(kql, `"`, ""))
}

// lensSearch turns a Lens visualization into the search Kibana runs for it: the layer's query,
// its bucket columns nested in order, and its metric columns at the leaves (a column with a
// filter inside a filter aggregation; formula and math columns computed by Kibana from the
// columns they refer to).
func lensSearch(t *testing.T, o savedObject) (elastic.Query, rawAgg) {
	t.Helper()
	st := lensOf(t, o)
	if len(st.DatasourceStates.FormBased.Layers) != 1 {
		t.Fatalf("%s: %d layers, want 1", o.ID, len(st.DatasourceStates.FormBased.Layers))
	}
	var query elastic.Query
	var agg rawAgg
	for _, layer := range st.DatasourceStates.FormBased.Layers {
		query = kqlQuery(t, o.ID, st.Query.Query)
		leaves := map[string]any{}
		var buckets []string
		for _, cid := range layer.ColumnOrder {
			c := layer.Columns[cid]
			var body map[string]any
			switch c.OperationType {
			case "date_histogram", "terms":
				buckets = append(buckets, cid)
				continue
			case "formula", "math":
				continue
			case "count":
				body = map[string]any{"value_count": map[string]any{"field": "_id"}}
				if c.Filter == nil {
					continue // the bucket's doc_count
				}
			case "sum", "average", "min", "max":
				op := map[string]string{"sum": "sum", "average": "avg", "min": "min", "max": "max"}[c.OperationType]
				body = map[string]any{op: map[string]any{"field": c.SourceField}}
			case "percentile":
				body = map[string]any{"percentiles": map[string]any{"field": c.SourceField, "percents": []any{c.Params["percentile"]}}}
			default:
				t.Fatalf("%s: column %s: unsupported operation %s", o.ID, cid, c.OperationType)
			}
			if c.Filter != nil {
				body = map[string]any{"filter": map[string]any{"query_string": map[string]any{"query": strings.ReplaceAll(c.Filter.Query, `"`, "")}},
					"aggs": map[string]any{"v": body}}
			}
			leaves["m"+cid] = body
		}
		node := rawAgg{"filter": map[string]any{"match_all": map[string]any{}}, "aggs": leaves}
		for i := len(buckets) - 1; i >= 0; i-- {
			c := layer.Columns[buckets[i]]
			var body map[string]any
			switch c.OperationType {
			case "date_histogram":
				body = map[string]any{"date_histogram": map[string]any{"field": c.SourceField, "fixed_interval": "1m", "min_doc_count": 1}}
			case "terms":
				terms := map[string]any{"field": c.SourceField, "size": c.Params["size"]}
				if by, _ := c.Params["orderBy"].(map[string]any); by["type"] == "column" {
					ob := layer.Columns[fmt.Sprint(by["columnId"])]
					switch {
					case ob.OperationType == "count" && ob.Filter == nil:
						terms["order"] = map[string]any{"_count": c.Params["orderDirection"]}
					case leaves["m"+fmt.Sprint(by["columnId"])] != nil && ob.Filter == nil:
						terms["order"] = map[string]any{"inner>m" + fmt.Sprint(by["columnId"]): c.Params["orderDirection"]}
					default:
						t.Fatalf("%s: column %s is ordered by %v, which the checks cannot order by", o.ID, buckets[i], by["columnId"])
					}
				}
				body = map[string]any{"terms": terms}
			}
			body["aggs"] = map[string]any{"inner": map[string]any(node)}
			node = rawAgg(body)
		}
		agg = node
	}
	return query, agg
}
