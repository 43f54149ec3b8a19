package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/elasticsearch"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Business is the business view: payments and approvals, amounts, rejections by reason, stores
// and channels. Counts come from Prometheus; amounts and stores from the results index, because
// a metric label may not carry a store (no unbounded labels) and no metric counts money.
func Business() (dashboard.Dashboard, error) {
	return newDashboard("codebank-business", "Code Bank — Business",
		"What was bought and refused: counts from Prometheus; amounts and stores from the results index (every "+
			"authorization, indexed by Kafka Connect), through the ${search} data source.").
		WithVariable(dashboard.NewDatasourceVariableBuilder(SearchVar).Label("Results index").Type("elasticsearch")).

		// --- Payments.
		WithRow(dashboard.NewRowBuilder("Payments")).
		WithPanel(single(6, "Payments decided", "Payments the authorizer decided over the dashboard's time range.", "short",
			query{expr: `sum(increase(codebank_authorizer_decisions_total[$__range]))`, legend: "decided", instant: true}).
			GraphMode(common.BigValueGraphModeNone)).
		WithPanel(single(6, "Approval rate", "Approved payments among all decided over the dashboard's time range.", "percentunit",
			query{expr: `sum(increase(codebank_authorizer_decisions_total{status="approved"}[$__range])) / sum(increase(codebank_authorizer_decisions_total[$__range]))`, legend: "approved", instant: true}).
			GraphMode(common.BigValueGraphModeNone).
			Thresholds(thresholds("red", step{0.5, "orange"}, step{0.8, "green"}))).
		WithPanel(fromIndex(6, "Approved amount", "The amount of approved payments over the dashboard's time range, by currency (results index).", "none",
			search("status:approved", []elasticsearch.MetricAggregation{sum("1", "amount")}, terms("2", "currency", 5, "1"), overTime("3")))).
		WithPanel(fromIndex(6, "Average ticket", "The mean amount of an approved payment over the dashboard's time range, by currency (results index).", "none",
			search("status:approved", []elasticsearch.MetricAggregation{average("1", "amount")}, terms("2", "currency", 5, "_count"), overTime("3"))).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"mean"}))).
		WithPanel(stacked(12, "Decisions a minute", "Payments decided a minute, approved and rejected.", "short",
			query{expr: `sum by (status) (rate(codebank_authorizer_decisions_total[$__rate_interval])) * 60`, legend: "{{status}}"})).
		WithPanel(timeseries.NewPanelBuilder().Title("Approved amount").Description("The amount approved in each interval, by currency (results index).").
			Datasource(searchDS()).WithTarget(search("status:approved", []elasticsearch.MetricAggregation{sum("1", "amount")}, terms("2", "currency", 5, "1"), overTime("3"))).
			Height(8).Span(12).FillOpacity(20).DrawStyle(common.GraphDrawStyleBars)).

		// --- Rejections.
		WithRow(dashboard.NewRowBuilder("Rejections")).
		WithPanel(stacked(12, "Rejections by reason, a minute", "Rejected payments a minute, by reason (as in the results record: insufficient_credit, cvv_mismatch, card_expired...).", "short",
			query{expr: `sum by (reason) (rate(codebank_authorizer_decisions_total{status="rejected"}[$__rate_interval])) * 60`, legend: "{{reason}}"})).
		WithPanel(bargauge.NewPanelBuilder().Title("Rejections by reason").Description("Rejected payments over the dashboard's time range, by reason.").
			Datasource(promDS()).Targets(targets([]query{{expr: `sort_desc(sum by (reason) (increase(codebank_authorizer_decisions_total{status="rejected"}[$__range])))`, legend: "{{reason}}", instant: true}})).
			Height(8).Span(6).Unit("short").Orientation(common.VizOrientationHorizontal).DisplayMode(common.BarGaugeDisplayModeBasic).
			ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}).Values(false))).
		WithPanel(graph(6, "Rejection rate", "The share of decisions that are rejections over 5 minutes (recorded by the rules), against its average over the last day: the spike alert fires at twice that average and over 20%.", "percentunit",
			query{expr: `codebank:rejection_ratio:rate5m`, legend: "last 5 minutes"},
			query{expr: `avg_over_time(codebank:rejection_ratio:rate5m[1d])`, legend: "day's average"}).Min(0)).

		// --- Stores, channels, cards.
		WithRow(dashboard.NewRowBuilder("Stores, channels and cards")).
		WithPanel(table.NewPanelBuilder().Title("Top stores").Description("The ten stores with the largest approved amount over the dashboard's time range, with their payment counts (results index: no metric may carry a store).").
			Datasource(searchDS()).WithTarget(search("status:approved", []elasticsearch.MetricAggregation{sum("1", "amount"), count("3")}, terms("2", "store", 10, "1"))).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"sum"})).Height(8).Span(8)).
		WithPanel(stacked(8, "Payments by channel", "Payments decided a minute by channel: the API (Authorize) or the original contract (legacy Payment).", "short",
			query{expr: `sum by (channel) (rate(codebank_authorizer_decisions_total[$__rate_interval])) * 60`, legend: "{{channel}}"})).
		WithPanel(stacked(8, "Code Store checkouts", "The Code Store's payment attempts a minute, by result (approved, rejected, invalid forms, store errors...).", "short",
			query{expr: `sum by (result) (rate(codebank_web_checkouts_total[$__rate_interval])) * 60`, legend: "{{result}}"})).
		WithPanel(graph(12, "Card operations", "Card commands done a minute (issued, blocked, unblocked, verified...), and cards blocked after too many failed verifications.", "short",
			query{expr: `sum by (command) (rate(codebank_authorizer_commands_total{result="ok"}[$__rate_interval])) * 60`, legend: "{{command}}"},
			query{expr: `sum(rate(codebank_authorizer_lockouts_total[$__rate_interval])) * 60`, legend: "locked out"})).
		WithPanel(graph(12, "Duplicates and conflicts", "Requests a minute answered with an earlier outcome (a client's retry with the same transaction id), and refused for reusing an id with other parameters.", "short",
			query{expr: `sum(rate(codebank_authorizer_duplicates_total[$__rate_interval])) * 60`, legend: "duplicates"},
			query{expr: `sum(rate(codebank_authorizer_conflicts_total[$__rate_interval])) * 60`, legend: "conflicts"})).
		Build()
}

// fromIndex is a stat panel over the results index: the sum of its target's buckets.
func fromIndex(w uint32, title, description, unit string, target cog.Builder[variants.Dataquery]) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(description).Unit(unit).
		Datasource(searchDS()).WithTarget(target).Height(4).Span(w).
		GraphMode(common.BigValueGraphModeNone).ColorMode(common.BigValueColorModeNone).Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"sum"}))
}
