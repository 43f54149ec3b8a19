// Package grafana builds Code Bank's Grafana dashboards as code, with the Grafana Foundation SDK:
// the SRE overview (Overview) and the business view (Business). Files returns them as the JSON
// files checked in under dashboards/, which Grafana provisions (Docker Compose) or reads from
// ConfigMaps (Kubernetes); `go generate ./monitoring/grafana` writes them again, and a test
// fails while the checked-in files differ from what the code builds.
//
// Every panel reads Prometheus through the dashboard variable ${datasource}, except the few that
// need what no metric may carry (amounts, stores: no label with unbounded values), which read
// the results index (analytics/index-template.json) through an Elasticsearch or OpenSearch data
// source, ${search}, set to the index pattern codebank-payments* and the time field
// authorized_at.
package grafana

//go:generate go run gen.go

import (
	"encoding/json"
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/elasticsearch"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
)

// Dir is where the generated files are kept, relative to this package.
const Dir = "dashboards"

// The dashboards' variables that choose their data sources.
const (
	PrometheusVar = "datasource"
	SearchVar     = "search"
)

// Files returns each dashboard's JSON by file name ("codebank-overview.json"), indented, with a
// final newline.
func Files() (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, build := range []func() (dashboard.Dashboard, error){Overview, Business} {
		d, err := build()
		if err != nil {
			return nil, err
		}
		numberPanels(&d)
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", *d.Uid, err)
		}
		files[*d.Uid+".json"] = append(b, '\n')
	}
	return files, nil
}

// numberPanels gives every panel and row of d its id, 1, 2, ... in order: Grafana links to a
// panel by its id.
func numberPanels(d *dashboard.Dashboard) {
	for i := range d.Panels {
		id := uint32(i + 1)
		if p := d.Panels[i].Panel; p != nil {
			p.Id = &id
		}
		if r := d.Panels[i].RowPanel; r != nil {
			r.Id = id
		}
	}
}

// newDashboard starts a dashboard with the settings both share: refreshed every 30 s, the last
// hour, the Prometheus data source variable.
func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"codebank"}).
		Editable().
		Refresh("30s").
		Time("now-1h", "now").
		Timezone(common.TimeZoneBrowser).
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		WithVariable(dashboard.NewDatasourceVariableBuilder(PrometheusVar).Label("Prometheus").Type("prometheus"))
}

func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${" + PrometheusVar + "}")}
}

func searchDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("elasticsearch"), Uid: cog.ToPtr("${" + SearchVar + "}")}
}

// query is a PromQL target: expr drawn as a range, one series per legend.
type query struct {
	expr, legend string
	instant      bool // one value at the end of the range (tables, bar gauges)
}

// targets turns queries into the targets of one panel, A, B, C...
func targets(qs []query) []cog.Builder[variants.Dataquery] {
	var out []cog.Builder[variants.Dataquery]
	for i, q := range qs {
		b := prometheus.NewDataqueryBuilder().Datasource(promDS()).RefId(string(rune('A' + i))).Expr(q.expr).LegendFormat(q.legend)
		if q.instant {
			b = b.Instant().Format(prometheus.PromQueryFormatTable)
		} else {
			b = b.Range()
		}
		out = append(out, b)
	}
	return out
}

// search is an Elasticsearch target over the results index: the metrics of the documents
// matching lucene (all with "*"), in the buckets given.
func search(lucene string, metrics []elasticsearch.MetricAggregation, buckets ...elasticsearch.BucketAggregation) cog.Builder[variants.Dataquery] {
	return elasticsearch.NewDataqueryBuilder().Datasource(searchDS()).RefId("A").
		Query(lucene).TimeField("authorized_at").Metrics(metrics).BucketAggs(buckets)
}

func sum(id, field string) elasticsearch.MetricAggregation {
	return elasticsearch.MetricAggregation{Sum: &elasticsearch.Sum{Type: elasticsearch.MetricAggregationTypeSum, Id: id, Field: &field}}
}

func average(id, field string) elasticsearch.MetricAggregation {
	return elasticsearch.MetricAggregation{Average: &elasticsearch.Average{Type: elasticsearch.MetricAggregationTypeAvg, Id: id, Field: &field}}
}

func count(id string) elasticsearch.MetricAggregation {
	return elasticsearch.MetricAggregation{Count: &elasticsearch.Count{Type: elasticsearch.MetricAggregationTypeCount, Id: id}}
}

// terms buckets by field: the size largest, by the metric orderBy (an id, or "_count").
func terms(id, field string, size int, orderBy string) elasticsearch.BucketAggregation {
	return elasticsearch.BucketAggregation{Terms: &elasticsearch.Terms{Type: elasticsearch.BucketAggregationTypeTerms, Id: id, Field: &field,
		Settings: &elasticsearch.ElasticsearchTermsSettings{Size: cog.ToPtr(fmt.Sprint(size)), Order: cog.ToPtr(elasticsearch.TermsOrderDesc),
			OrderBy: &orderBy, MinDocCount: cog.ToPtr("1")}}}
}

// overTime buckets by the authorization's time, at Grafana's automatic interval.
func overTime(id string) elasticsearch.BucketAggregation {
	return elasticsearch.BucketAggregation{DateHistogram: &elasticsearch.DateHistogram{Type: elasticsearch.BucketAggregationTypeDateHistogram,
		Id: id, Field: cog.ToPtr("authorized_at"), Settings: &elasticsearch.ElasticsearchDateHistogramSettings{Interval: cog.ToPtr("auto"), MinDocCount: cog.ToPtr("0")}}}
}

// step is a threshold: values from `from` up are drawn in color.
type step struct {
	from  float64
	color string
}

// thresholds colours values with base, then with each step's colour from its value up.
func thresholds(base string, steps ...step) *dashboard.ThresholdsConfigBuilder {
	out := []dashboard.Threshold{{Color: base}}
	for _, s := range steps {
		out = append(out, dashboard.Threshold{Value: cog.ToPtr(s.from), Color: s.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(out)
}
