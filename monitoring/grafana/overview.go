package grafana

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// codebankJobs selects the scrape job of Code Bank's processes, and only theirs: "codebank"
// everywhere (monitoring/prometheus/rules.yaml says how), not the broker's, Connect's or the
// sidecars' of the same namespace.
const codebankJobs = `job="codebank"`

// k8sContainers selects Code Bank's containers on Kubernetes, for kube-state-metrics' and the
// kubelet's (cAdvisor) series; "POD" and "" are the pause container and the pod's own total.
const k8sContainers = `namespace="codebank", container!="", container!="POD"`

// graph is a time series panel of width w (of 24), 8 high.
func graph(w uint32, title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return timeseries.NewPanelBuilder().Title(title).Description(description).Unit(unit).
		Datasource(promDS()).Targets(targets(qs)).Height(8).Span(w).
		FillOpacity(10).Legend(common.NewVizLegendOptionsBuilder().ShowLegend(true).
		DisplayMode(common.LegendDisplayModeList).Placement(common.LegendPlacementBottom))
}

// stacked is graph with its series stacked.
func stacked(w uint32, title, description, unit string, qs ...query) *timeseries.PanelBuilder {
	return graph(w, title, description, unit, qs...).FillOpacity(40).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal))
}

// single is a stat panel of width w, 4 high, showing the last value of its queries.
func single(w uint32, title, description, unit string, qs ...query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().Title(title).Description(description).Unit(unit).
		Datasource(promDS()).Targets(targets(qs)).Height(4).Span(w).
		GraphMode(common.BigValueGraphModeArea).ColorMode(common.BigValueColorModeValue).Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"}))
}

// Overview is the SRE's dashboard: traffic, latency, errors, Kafka, saturation and resources.
func Overview() (dashboard.Dashboard, error) {
	return newDashboard("codebank-overview", "Code Bank — SRE overview",
		"Is Code Bank answering payments, fast and correctly, and is Kafka keeping up? Each panel's description says "+
			"what it shows; docs/runbook.md says what to do about each alert.").

		// --- At a glance.
		WithRow(dashboard.NewRowBuilder("At a glance")).
		WithPanel(single(4, "Payments a second", "Authorize and the original Payment calls finished a second, every code.", "reqps",
			query{expr: `sum(rate(codebank_ingress_requests_total{method=~"Authorize|legacy\\.Payment"}[$__rate_interval]))`, legend: "payments/s"})).
		WithPanel(single(4, "Approval rate", "Approved decisions among all decisions.", "percentunit",
			query{expr: `sum(rate(codebank_authorizer_decisions_total{status="approved"}[$__rate_interval])) / sum(rate(codebank_authorizer_decisions_total[$__rate_interval]))`, legend: "approved"}).
			Thresholds(thresholds("red", step{0.5, "orange"}, step{0.8, "green"}))).
		WithPanel(single(4, "Authorize p99", "99th percentile of Authorize as its callers see it; the budget is 100 ms.", "s",
			query{expr: `histogram_quantile(0.99, sum by (le) (rate(codebank_ingress_request_seconds_bucket{method="Authorize"}[$__rate_interval])))`, legend: "p99"}).
			Thresholds(thresholds("green", step{0.025, "yellow"}, step{0.1, "red"}))).
		WithPanel(single(4, "Server-side errors", "Payment calls that failed for the bank's reasons (Internal, Unavailable, DeadlineExceeded, ResourceExhausted...), as a share of all.", "percentunit",
			query{expr: `(sum(rate(codebank_ingress_requests_total{method=~"Authorize|legacy\\.Payment", code=~"Internal|Unavailable|Unknown|DeadlineExceeded|ResourceExhausted|DataLoss|Aborted"}[$__rate_interval])) or vector(0)) / sum(rate(codebank_ingress_requests_total{method=~"Authorize|legacy\\.Payment"}[$__rate_interval]))`, legend: "errors"}).
			Thresholds(thresholds("green", step{0.001, "yellow"}, step{0.01, "red"}))).
		WithPanel(single(4, "Authorizer lag", "Age of the oldest payment request the authorizer has not yet committed (0 when caught up).", "s",
			query{expr: `max(codebank_consumer_lag_seconds{group=~".*authorizer(-g[0-9]+)?"})`, legend: "lag"}).
			Thresholds(thresholds("green", step{1, "yellow"}, step{5, "red"}))).
		WithPanel(table.NewPanelBuilder().Title("Alerts firing").Description("Code Bank's alerts now firing (monitoring/prometheus/rules.yaml).").
			Datasource(promDS()).Targets(targets([]query{{expr: `ALERTS{alertstate="firing", alertname=~"CodeBank.*"}`, instant: true}})).
			Footer(common.NewTableFooterOptionsBuilder().Show(false).Reducer([]string{"count"})).Height(4).Span(4)).

		// --- Traffic.
		WithRow(dashboard.NewRowBuilder("Traffic")).
		WithPanel(stacked(8, "Decisions by status", "Payments decided by the authorizer a second, approved and rejected.", "ops",
			query{expr: `sum by (status) (rate(codebank_authorizer_decisions_total[$__rate_interval]))`, legend: "{{status}}"})).
		WithPanel(graph(8, "Approval rate", "Approved decisions among all decisions, and the recorded 5-minute rejection ratio the spike alert compares with its day's average.", "percentunit",
			query{expr: `sum(rate(codebank_authorizer_decisions_total{status="approved"}[$__rate_interval])) / sum(rate(codebank_authorizer_decisions_total[$__rate_interval]))`, legend: "approved"},
			query{expr: `codebank:rejection_ratio:rate5m`, legend: "rejected (5m)"}).Min(0).Max(1)).
		WithPanel(stacked(8, "Calls by method", "gRPC calls finished a second (REST included), by method.", "reqps",
			query{expr: `sum by (method) (rate(codebank_ingress_requests_total[$__rate_interval]))`, legend: "{{method}}"})).

		// --- Latency.
		WithRow(dashboard.NewRowBuilder("Latency")).
		WithPanel(graph(8, "Authorize latency", "p50, p99 and p99.9 of Authorize as its callers see it. The budget (red) is 100 ms at p99; the design target is 25 ms at 70% of the peak rate.", "s",
			query{expr: `histogram_quantile(0.5, sum by (le) (rate(codebank_ingress_request_seconds_bucket{method="Authorize"}[$__rate_interval])))`, legend: "p50"},
			query{expr: `histogram_quantile(0.99, sum by (le) (rate(codebank_ingress_request_seconds_bucket{method="Authorize"}[$__rate_interval])))`, legend: "p99"},
			query{expr: `histogram_quantile(0.999, sum by (le) (rate(codebank_ingress_request_seconds_bucket{method="Authorize"}[$__rate_interval])))`, legend: "p99.9"}).
			Thresholds(thresholds("green", step{0.1, "red"})).
			ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().Mode(common.GraphThresholdsStyleModeDashed))).
		WithPanel(graph(8, "Time in Kafka, by leg", "p50 and p99 of each payment's two trips through Kafka: request (written → decided by the authorizer) and reply (decided → back at the waiting call). The slow side is where to look.", "s",
			query{expr: `histogram_quantile(0.5, sum by (leg, le) (rate(codebank_ingress_payment_leg_seconds_bucket[$__rate_interval])))`, legend: "{{leg}} p50"},
			query{expr: `histogram_quantile(0.99, sum by (leg, le) (rate(codebank_ingress_payment_leg_seconds_bucket[$__rate_interval])))`, legend: "{{leg}} p99"})).
		WithPanel(graph(8, "Statement lag", "p50 and p99 from the authorization to its line on the statement.", "s",
			query{expr: `histogram_quantile(0.5, sum by (le) (rate(codebank_statements_lag_seconds_bucket[$__rate_interval])))`, legend: "p50"},
			query{expr: `histogram_quantile(0.99, sum by (le) (rate(codebank_statements_lag_seconds_bucket[$__rate_interval])))`, legend: "p99"})).

		// --- Errors.
		WithRow(dashboard.NewRowBuilder("Errors")).
		WithPanel(stacked(8, "Errors by code", "gRPC calls that did not end OK, a second, by method and code. InvalidArgument and AlreadyExists are the callers'; Internal, Unavailable, DeadlineExceeded and ResourceExhausted the bank's.", "reqps",
			query{expr: `sum by (method, code) (rate(codebank_ingress_requests_total{code!="OK"}[$__rate_interval]))`, legend: "{{method}} {{code}}"})).
		WithPanel(graph(8, "Timeouts, overload, refusals", "Calls that gave up waiting for the authorizer's reply, calls refused at --max-inflight, and calls refused for their API key, a second.", "reqps",
			query{expr: `sum(rate(codebank_ingress_reply_timeouts_total[$__rate_interval]))`, legend: "reply timeouts"},
			query{expr: `sum(rate(codebank_ingress_overloaded_total[$__rate_interval]))`, legend: "overloaded"},
			query{expr: `sum by (code) (rate(codebank_ingress_denied_total[$__rate_interval]))`, legend: "denied: {{code}}"})).
		WithPanel(graph(8, "Dead letters", "Records copied to a dead-letter topic in each interval, by consumer and source topic (docs/dead-letters.md). Any is an alert.", "short",
			query{expr: `sum by (group, topic) (increase(codebank_dead_letters_total[$__rate_interval]))`, legend: "{{group}} ← {{topic}}"}).
			DrawStyle(common.GraphDrawStyleBars)).

		// --- Kafka.
		WithRow(dashboard.NewRowBuilder("Kafka consumers")).
		WithPanel(graph(6, "Lag (records)", "Records between the end of each group's inputs and its committed offsets, summed over partitions (each partition's max over the instances that report it).", "short",
			query{expr: `sum by (group) (max by (group, topic, partition) (codebank_consumer_lag_records))`, legend: "{{group}}"})).
		WithPanel(graph(6, "Lag (seconds)", "Age of the oldest record each group has not yet committed; 0 when caught up.", "s",
			query{expr: `max by (group) (codebank_consumer_lag_seconds)`, legend: "{{group}}"})).
		WithPanel(graph(6, "Partitions held", "Partitions each group's instances hold, against its inputs' partition count: fewer held means partitions without an owner.", "short",
			query{expr: `sum by (group) (codebank_group_partitions_assigned)`, legend: "{{group}} held"},
			query{expr: `max by (group) (codebank_group_partitions)`, legend: "{{group}} partitions"})).
		WithPanel(graph(6, "Table recovery", "Records each group still has to replay into its local table, and whether every instance has recovered (1) or not (0).", "short",
			query{expr: `sum by (group) (codebank_table_recovery_remaining_records)`, legend: "{{group}} to replay"},
			query{expr: `min by (group) (codebank_table_recovered)`, legend: "{{group}} recovered"})).

		// --- Saturation and resources.
		WithRow(dashboard.NewRowBuilder("Saturation and resources")).
		WithPanel(graph(6, "Calls in flight", "gRPC calls in progress, and calls waiting for the authorizer's answer (bounded by --max-inflight).", "short",
			query{expr: `sum(codebank_ingress_inflight)`, legend: "gRPC calls"},
			query{expr: `sum(codebank_ingress_bank_inflight)`, legend: "waiting for the authorizer"})).
		WithPanel(graph(6, "CPU by process", "CPU seconds a second (cores) of each Code Bank process.", "short",
			query{expr: `rate(process_cpu_seconds_total{` + codebankJobs + `}[$__rate_interval])`, legend: "{{instance}}"})).
		WithPanel(graph(6, "Memory by process", "Resident memory and Go heap in use of each Code Bank process.", "bytes",
			query{expr: `process_resident_memory_bytes{` + codebankJobs + `}`, legend: "{{instance}} RSS"},
			query{expr: `go_memstats_heap_inuse_bytes{` + codebankJobs + `}`, legend: "{{instance}} heap"})).
		WithPanel(graph(6, "Goroutines", "Goroutines of each Code Bank process.", "short",
			query{expr: `go_goroutines{` + codebankJobs + `}`, legend: "{{instance}}"})).

		// --- Kubernetes (kube-state-metrics and the kubelet; empty elsewhere).
		WithRow(dashboard.NewRowBuilder("Pods (Kubernetes)")).
		WithPanel(graph(6, "Pods ready", "Ready containers of Code Bank's pods, by container (kube-state-metrics).", "short",
			query{expr: `sum by (container) (kube_pod_container_status_ready{` + k8sContainers + `})`, legend: "{{container}}"})).
		WithPanel(graph(6, "Restarts", "Container restarts in the last hour, by pod and container (kube-state-metrics).", "short",
			query{expr: `sum by (pod, container) (increase(kube_pod_container_status_restarts_total{` + k8sContainers + `}[1h]))`, legend: "{{pod}}/{{container}}"})).
		WithPanel(graph(6, "CPU by pod", "CPU cores used by each of Code Bank's pods (cAdvisor).", "short",
			query{expr: `sum by (pod) (rate(container_cpu_usage_seconds_total{` + k8sContainers + `}[$__rate_interval]))`, legend: "{{pod}}"})).
		WithPanel(graph(6, "Memory by pod", "Working set of each of Code Bank's pods (cAdvisor): what the memory limit is checked against.", "bytes",
			query{expr: `sum by (pod) (container_memory_working_set_bytes{` + k8sContainers + `})`, legend: "{{pod}}"})).
		Build()
}
