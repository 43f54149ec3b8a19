package k8s

import (
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/yaml"

	"github.com/codebank/codebank/analytics"
)

// ValuesFile is the values of the kube-prometheus-stack release the manifests expect.
const ValuesFile = "operators/kube-prometheus-stack.values.yaml"

// chartServices are the Services that the operators' charts, installed as docs/operations.md
// says, make by themselves, by namespace: kube-prometheus-stack (release kube-prometheus-stack
// in monitoring) and Istio's control plane and gateway. Services that the operators make for
// the overlay's own custom resources (Strimzi's, ECK's, Kiali's) are derived from those objects
// (operatorServices).
var chartServices = map[string][]string{
	"monitoring": {"kube-prometheus-stack-grafana", "kube-prometheus-stack-prometheus", "kube-prometheus-stack-alertmanager",
		"kube-prometheus-stack-kube-state-metrics", "prometheus-operated", "alertmanager-operated"},
	"istio-system": {"istiod", "istio-ingressgateway"},
}

// operatorServices are the Services the operators make for the overlay's custom resources, by
// namespace.
func (d decoded) operatorServices() map[string][]string {
	out := map[string][]string{}
	for _, o := range d.objs {
		ns := o.Namespace()
		switch o.Kind() {
		case "Kafka":
			out[ns] = append(out[ns], o.Name()+"-kafka-bootstrap", o.Name()+"-kafka-brokers")
		case "KafkaConnect":
			out[ns] = append(out[ns], o.Name()+"-connect-api")
		case "Elasticsearch":
			out[ns] = append(out[ns], o.Name()+"-es-http", o.Name()+"-es-transport", o.Name()+"-es-internal-http")
		case "Kibana":
			out[ns] = append(out[ns], o.Name()+"-kb-http")
		case "Kiali":
			out[ns] = append(out[ns], "kiali")
		}
	}
	return out
}

// serviceRef is a Service named in a configuration: where, and its host and port.
type serviceRef struct {
	where, host string
	port        int
	ns          string // the namespace a bare name is looked up in
}

var hostPort = regexp.MustCompile(`^(?:https?://)?([a-z0-9]([a-z0-9.-]*[a-z0-9])?):(\d+)/?$`)

// refsOf returns the Services a value names: a URL or host:port, or several comma-separated.
func refsOf(where, ns, value string) []serviceRef {
	var out []serviceRef
	for _, v := range strings.Split(value, ",") {
		m := hostPort.FindStringSubmatch(strings.TrimSpace(v))
		if m == nil {
			continue
		}
		port, _ := strconv.Atoi(m[3])
		out = append(out, serviceRef{where: where, host: m[1], port: port, ns: ns})
	}
	return out
}

// serviceRefs returns every Service the overlay's configurations name: Kiali's Prometheus and
// Grafana, Connect's brokers and the sink's search server, and the CODEBANK_* addresses and
// URLs the pods are given (not the ones they listen on).
func (d decoded) serviceRefs(t *testing.T) []serviceRef {
	var out []serviceRef
	for _, o := range d.all("Kiali") {
		es, _ := o.Map["spec"].(map[string]any)["external_services"].(map[string]any)
		for name, svc := range es {
			for _, key := range []string{"url", "internal_url"} {
				if v, ok := svc.(map[string]any)[key].(string); ok {
					out = append(out, refsOf(fmt.Sprintf("%s %s.%s", o, name, key), o.Namespace(), v)...)
				}
			}
		}
	}
	for _, o := range d.all("KafkaConnect") {
		out = append(out, refsOf(o.String()+" bootstrapServers", o.Namespace(), fmt.Sprint(o.Map["spec"].(map[string]any)["bootstrapServers"]))...)
	}
	for _, o := range d.all("KafkaConnector") {
		cfg, _ := o.Map["spec"].(map[string]any)["config"].(map[string]any)
		out = append(out, refsOf(o.String()+" opensearch.url", o.Namespace(), fmt.Sprint(cfg["opensearch.url"]))...)
	}
	named := regexp.MustCompile(`^CODEBANK_(BROKERS|.*_URL|BANK_ADDR|STATEMENTS_ADDR)$`)
	for k, v := range d.env {
		if named.MatchString(k) {
			out = append(out, refsOf("codebank.env "+k, namespace, v)...)
		}
	}
	for _, p := range d.pods() {
		if p.spec == nil {
			continue
		}
		for _, c := range p.spec.Containers {
			for _, e := range c.Env {
				if named.MatchString(e.Name) {
					out = append(out, refsOf(p.owner+" "+e.Name, namespace, e.Value)...)
				}
			}
		}
	}
	if len(out) < 6 {
		t.Errorf("only %d Services named in the configurations: %v", len(out), out)
	}
	return out
}

// resolve returns the namespace and name of the Service host names, "" when it is no in-cluster
// name (name, name.ns, name.ns.svc, name.ns.svc.cluster.local).
func resolve(host, ns string) (string, string) {
	parts := strings.Split(strings.TrimSuffix(strings.TrimSuffix(host, ".cluster.local"), ".svc"), ".")
	switch len(parts) {
	case 1:
		return ns, parts[0]
	case 2:
		return parts[1], parts[0]
	}
	return "", ""
}

// checkServiceNames: every Service a configuration names exists, in the overlay (with that
// port), made by an operator for the overlay's resources, or by the charts docs/operations.md
// has installed; so do the ones the operators' values name.
func checkServiceNames(t *testing.T, d decoded) {
	known := d.operatorServices()
	for ns, names := range chartServices {
		known[ns] = append(known[ns], names...)
	}
	refs := d.serviceRefs(t)
	values := readValues(t)
	for _, ds := range values.Grafana.AdditionalDataSources {
		refs = append(refs, refsOf(ValuesFile+" data source "+ds.Name, "monitoring", ds.URL)...)
	}
	for _, r := range refs {
		ns, name := resolve(r.host, r.ns)
		if name == "" {
			t.Errorf("%s names %s, which is no Service of the cluster", r.where, r.host)
			continue
		}
		if o, ok := d.find("Service", name); ok && ns == namespace {
			s := d.typed[o.String()].(*corev1.Service)
			if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return int(p.Port) == r.port }) {
				t.Errorf("%s names port %d of Service %s, which it does not have", r.where, r.port, name)
			}
			continue
		}
		if !slices.Contains(known[ns], name) {
			t.Errorf("%s names Service %s in namespace %s: neither the overlay nor an operator nor a chart of docs/operations.md makes it", r.where, name, ns)
		}
	}
}

// values is what the checks read of ValuesFile.
type values struct {
	Grafana struct {
		Sidecar struct {
			Dashboards struct {
				Enabled          bool
				Label            string
				LabelValue       string `json:"labelValue"`
				SearchNamespace  string `json:"searchNamespace"`
				FolderAnnotation string `json:"folderAnnotation"`
				Provider         struct {
					FoldersFromFilesStructure bool `json:"foldersFromFilesStructure"`
				}
			}
		}
		ExtraSecretMounts []struct {
			Name, SecretName string
			MountPath        string `json:"mountPath"`
		} `json:"extraSecretMounts"`
		AdditionalDataSources []struct {
			Name, UID, Type, URL string
			BasicAuthUser        string `json:"basicAuthUser"`
			JSONData             struct {
				Index     string
				TimeField string `json:"timeField"`
			} `json:"jsonData"`
			SecureJSONData map[string]string `json:"secureJsonData"`
		} `json:"additionalDataSources"`
	}
}

func readValues(t *testing.T) values {
	t.Helper()
	b, err := os.ReadFile(ValuesFile)
	if err != nil {
		t.Fatal(err)
	}
	var v values // the file holds more than the checks read
	if err := yaml.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", ValuesFile, err)
	}
	return v
}

// checkGrafana: Grafana, as the values configure it, finds the dashboards' ConfigMaps (label,
// namespace) and puts them in their folder (the chart's folderAnnotation is the annotation they
// carry); the business dashboard's search data source is provisioned, reads the alias, verifies
// ECK's CA and signs in as a user of the file realm; and the NetworkPolicy of Elasticsearch
// admits Grafana's pods.
func checkGrafana(t *testing.T, d decoded, examples map[string][]string) {
	v := readValues(t)
	sc := v.Grafana.Sidecar.Dashboards
	if !sc.Enabled || sc.SearchNamespace != "ALL" || !sc.Provider.FoldersFromFilesStructure {
		t.Errorf("%s: the dashboards' sidecar %+v, want enabled, searchNamespace ALL, foldersFromFilesStructure", ValuesFile, sc)
	}
	dashboards := 0
	for _, o := range d.all("ConfigMap") {
		if !strings.HasPrefix(o.Name(), "grafana-dashboard-") {
			continue
		}
		dashboards++
		cm := d.typed[o.String()].(*corev1.ConfigMap)
		if cm.Labels[sc.Label] != sc.LabelValue {
			t.Errorf("%s: label %s=%q, the sidecar looks for %q", o, sc.Label, cm.Labels[sc.Label], sc.LabelValue)
		}
		if sc.FolderAnnotation == "" || cm.Annotations[sc.FolderAnnotation] == "" {
			t.Errorf("%s: annotations %v; the sidecar's folderAnnotation is %q", o, cm.Annotations, sc.FolderAnnotation)
		}
	}
	if dashboards == 0 {
		t.Error("no dashboard ConfigMaps")
	}
	search := 0
	for _, ds := range v.Grafana.AdditionalDataSources {
		if ds.Type != "elasticsearch" {
			continue
		}
		search++
		u, err := url.Parse(ds.URL)
		if err != nil || u.Scheme != "https" || ds.JSONData.Index != analytics.DefaultIndex || ds.JSONData.TimeField != "authorized_at" {
			t.Errorf("%s: data source %s: %s, index %q by %q; want HTTPS to the alias %s by authorized_at", ValuesFile, ds.Name, ds.URL, ds.JSONData.Index, ds.JSONData.TimeField, analytics.DefaultIndex)
		}
		var realm string
		for name, keys := range examples {
			if slices.Contains(keys, "username") && strings.Contains(name, "grafana") {
				realm = name
			}
		}
		if realm == "" || ds.BasicAuthUser == "" || !strings.Contains(ds.SecureJSONData["tlsCACert"], "/etc/secrets/") || !strings.Contains(ds.SecureJSONData["basicAuthPassword"], "/etc/secrets/") {
			t.Errorf("%s: data source %s signs in as %q (realm Secret %q) with %v, want a user of the file realm, its password and ECK's CA from mounted files", ValuesFile, ds.Name, ds.BasicAuthUser, realm, ds.SecureJSONData)
		}
		for _, f := range []string{ds.SecureJSONData["tlsCACert"], ds.SecureJSONData["basicAuthPassword"]} {
			if !slices.ContainsFunc(v.Grafana.ExtraSecretMounts, func(m struct {
				Name, SecretName string
				MountPath        string `json:"mountPath"`
			}) bool {
				return strings.Contains(f, m.MountPath+"/")
			}) {
				t.Errorf("%s: %s is in no extraSecretMount", ValuesFile, f)
			}
		}
	}
	if search != 1 {
		t.Errorf("%s: %d search data sources, want 1 (the business dashboard's ${search})", ValuesFile, search)
	}
	o, ok := d.find("NetworkPolicy", "elasticsearch")
	if !ok {
		t.Fatal("no NetworkPolicy elasticsearch")
	}
	admitted := false
	for _, r := range d.typed[o.String()].(*networkingv1.NetworkPolicy).Spec.Ingress {
		for _, from := range r.From {
			if from.NamespaceSelector != nil && from.NamespaceSelector.MatchLabels["kubernetes.io/metadata.name"] == "monitoring" &&
				from.PodSelector != nil && from.PodSelector.MatchLabels["app.kubernetes.io/name"] == "grafana" &&
				slices.ContainsFunc(r.Ports, func(p networkingv1.NetworkPolicyPort) bool { return p.Port != nil && p.Port.IntValue() == 9200 }) {
				admitted = true
			}
		}
	}
	if !admitted {
		t.Errorf("%s does not admit Grafana's pods (namespace monitoring, app.kubernetes.io/name: grafana) to 9200", o)
	}
}
