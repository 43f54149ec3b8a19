package k8s

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	istionetworking "istio.io/client-go/pkg/apis/networking/v1"
	istiosecurity "istio.io/client-go/pkg/apis/security/v1"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/stream"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// Overlays are the kustomizations an SRE applies.
var Overlays = []string{"overlays/dev", "overlays/prod"}

const namespace = "codebank"

var rendered = struct {
	sync.Once
	objs map[string][]Object
	err  error
}{}

// renderAll renders every overlay once for all the tests of the package.
func renderAll(t *testing.T) map[string][]Object {
	t.Helper()
	rendered.Do(func() {
		rendered.objs = map[string][]Object{}
		for _, o := range Overlays {
			objs, err := Render(o)
			if err != nil {
				rendered.err = err
				return
			}
			rendered.objs[o] = objs
		}
	})
	if rendered.err != nil {
		t.Fatal(rendered.err)
	}
	return rendered.objs
}

// TestGeneratedFilesAreFresh: the generated manifests are what `go generate ./k8s` writes from
// today's topology and monitoring/ (the rules and dashboards are written by hand there, or by
// their own generator, and change without this package knowing).
func TestGeneratedFilesAreFresh(t *testing.T) {
	files, err := Generate("..")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		got, err := os.ReadFile(filepath.Join("..", filepath.FromSlash(f.Path)))
		if err != nil || !bytes.Equal(got, f.Data) {
			t.Errorf("%s is stale (%v): run `go generate ./k8s`", f.Path, err)
		}
	}
}

// scheme knows every kind of k8s.io/api the overlays use, the Prometheus Operator's and
// Istio's: objects of these kinds are decoded into their Go types.
func scheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		policyv1.AddToScheme, autoscalingv2.AddToScheme, networkingv1.AddToScheme, rbacv1.AddToScheme, admissionv1.AddToScheme,
		monitoringv1.AddToScheme, istionetworking.AddToScheme, istiosecurity.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// decoded is every object of one overlay, decoded.
type decoded struct {
	objs  []Object
	typed map[string]runtime.Object // by Object.String(), for the kinds of scheme
	env   map[string]string         // codebank.env, with the overlay's changes
}

func (d decoded) all(kind string) []Object {
	var out []Object
	for _, o := range d.objs {
		if o.Kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func (d decoded) find(kind, name string) (Object, bool) {
	for _, o := range d.objs {
		if o.Kind() == kind && o.Name() == name {
			return o, true
		}
	}
	return Object{}, false
}

// decodeStrictly decodes every object of the overlay: kinds of k8s.io/api, the Prometheus
// Operator and Istio into their Go types with unknown and duplicate fields as errors (Istio's
// specs also with protojson, which its types' own JSON decoding lets pass); the other custom
// resources against their CRD's schema (testdata/crds). Any other kind is an error.
func decodeStrictly(t *testing.T, overlay string, objs []Object) decoded {
	t.Helper()
	s := scheme(t)
	ser := kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, s, s, kjson.SerializerOptions{Strict: true})
	crds := crdSchemas(t)
	d := decoded{objs: objs, typed: map[string]runtime.Object{}}
	undecoded := 0
	for _, o := range objs {
		gvk := o.APIVersion() + ", " + o.Kind()
		if sch, ok := crds[gvk]; ok {
			for _, e := range validateCustomResource(sch, o.Map) {
				t.Errorf("%s: %s: %s", overlay, o, e)
			}
			var meta struct {
				Metadata metav1.ObjectMeta `json:"metadata"`
			}
			if err := strictJSON(o.JSON, &meta); err != nil {
				t.Errorf("%s: %s: metadata: %v", overlay, o, err)
			}
			continue
		}
		obj, _, err := ser.Decode(o.JSON, nil, nil)
		if err != nil {
			t.Errorf("%s: %s: %v", overlay, o, err)
		}
		if obj == nil {
			undecoded++
			continue
		}
		d.typed[o.String()] = obj
		if spec := istioSpec(obj); spec != nil {
			raw, _ := json.Marshal(o.Map["spec"])
			if err := (protojson.UnmarshalOptions{}).Unmarshal(raw, spec); err != nil {
				t.Errorf("%s: %s: spec: %v", overlay, o, err)
			}
		}
	}
	if undecoded > 0 {
		t.Fatalf("%s: %d objects could not be decoded: no further checks", overlay, undecoded)
	}
	return d
}

// strictJSON decodes only the fields v names, refusing fields it does not know there.
func strictJSON(data []byte, v any) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	sub, _ := json.Marshal(map[string]json.RawMessage{"metadata": m["metadata"]})
	dec := json.NewDecoder(bytes.NewReader(sub))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// istioSpec returns a new, empty message of the type of an Istio object's spec.
func istioSpec(obj runtime.Object) proto.Message {
	var m protoreflect.ProtoMessage
	switch x := obj.(type) {
	case *istionetworking.VirtualService:
		m = &x.Spec
	case *istionetworking.DestinationRule:
		m = &x.Spec
	case *istionetworking.Gateway:
		m = &x.Spec
	case *istiosecurity.AuthorizationPolicy:
		m = &x.Spec
	case *istiosecurity.PeerAuthentication:
		m = &x.Spec
	default:
		return nil
	}
	return m.ProtoReflect().Type().New().Interface()
}

// pod is what selectors can select: the pods of the overlay's workloads, and those the
// operators make for its custom resources (with the labels and ports their documentation
// gives them).
type pod struct {
	owner  string
	labels map[string]string
	ports  map[string]int32 // by name ("" for unnamed ones: the port as a string)
	sa     string
	spec   *corev1.PodSpec
	claims []string // a StatefulSet's volume claim templates
}

func (p pod) hasPort(port intstr.IntOrString) bool {
	if port.Type == intstr.String {
		_, ok := p.ports[port.StrVal]
		return ok
	}
	for _, n := range p.ports {
		if n == port.IntVal {
			return true
		}
	}
	return false
}

func newPod(owner string, meta metav1.ObjectMeta, spec *corev1.PodSpec) pod {
	p := pod{owner: owner, labels: meta.Labels, ports: map[string]int32{}, sa: spec.ServiceAccountName, spec: spec}
	for _, c := range spec.Containers {
		for _, cp := range c.Ports {
			name := cp.Name
			if name == "" {
				name = strconv.Itoa(int(cp.ContainerPort))
			}
			p.ports[name] = cp.ContainerPort
		}
	}
	// Istio's injector adds the sidecar, with its metrics port, and a label.
	if meta.Labels["sidecar.istio.io/inject"] == "true" {
		p.labels = copyLabels(p.labels, "security.istio.io/tlsMode", "istio")
		p.ports["http-envoy-prom"] = 15090
	}
	return p
}

func copyLabels(l map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range l {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

func (d decoded) pods() []pod {
	var out []pod
	for _, o := range d.objs {
		switch x := d.typed[o.String()].(type) {
		case *appsv1.StatefulSet:
			p := newPod(o.String(), x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec)
			for _, c := range x.Spec.VolumeClaimTemplates {
				p.claims = append(p.claims, c.Name)
			}
			out = append(out, p)
		case *appsv1.Deployment:
			out = append(out, newPod(o.String(), x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec))
		case *batchv1.Job:
			out = append(out, newPod(o.String(), x.Spec.Template.ObjectMeta, &x.Spec.Template.Spec))
		}
		op := func(lbl map[string]string, ports map[string]int32) {
			out = append(out, pod{owner: o.String(), labels: lbl, ports: ports})
		}
		name := o.Name()
		switch o.Kind() {
		case "Kafka":
			// Strimzi: the nodes, the entity operator, the Kafka exporter.
			base := map[string]string{"strimzi.io/cluster": name, "strimzi.io/kind": "Kafka", "app.kubernetes.io/managed-by": "strimzi-cluster-operator"}
			op(copyLabels(base, "strimzi.io/name", name+"-kafka", "strimzi.io/broker-role", "true"),
				map[string]int32{"tcp-ctrlplane": 9090, "tcp-replication": 9091, "tcp-clientstls": 9093, "tcp-prometheus": 9404})
			op(copyLabels(base, "strimzi.io/name", name+"-entity-operator"), map[string]int32{})
			op(copyLabels(base, "strimzi.io/name", name+"-kafka-exporter"), map[string]int32{"tcp-prometheus": 9404})
		case "KafkaConnect":
			op(map[string]string{"strimzi.io/cluster": name, "strimzi.io/kind": "KafkaConnect", "strimzi.io/name": name + "-connect",
				"app.kubernetes.io/managed-by": "strimzi-cluster-operator"}, map[string]int32{"rest-api": 8083, "tcp-prometheus": 9404})
		case "Elasticsearch":
			op(map[string]string{"elasticsearch.k8s.elastic.co/cluster-name": name, "common.k8s.elastic.co/type": "elasticsearch"},
				map[string]int32{"http": 9200, "transport": 9300})
		case "Kibana":
			op(map[string]string{"kibana.k8s.elastic.co/name": name, "common.k8s.elastic.co/type": "kibana"}, map[string]int32{"http": 5601})
		}
	}
	return out
}

// selected returns the pods that sel selects; a nil selector selects none, an empty one all.
func selected(t *testing.T, pods []pod, sel *metav1.LabelSelector) []pod {
	t.Helper()
	if sel == nil {
		return nil
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		t.Errorf("selector %v: %v", sel, err)
		return nil
	}
	var out []pod
	for _, p := range pods {
		if s.Matches(labels.Set(p.labels)) {
			out = append(out, p)
		}
	}
	return out
}

// operatorSecrets are the Secrets the operators make for the overlay's custom resources, with
// their keys.
func (d decoded) operatorSecrets() map[string][]string {
	out := map[string][]string{}
	for _, o := range d.objs {
		switch o.Kind() {
		case "Kafka":
			out[o.Name()+"-cluster-ca-cert"] = []string{"ca.crt", "ca.p12", "ca.password"}
		case "KafkaUser":
			out[o.Name()] = []string{"password", "sasl.jaas.config"}
		case "Elasticsearch":
			out[o.Name()+"-es-elastic-user"] = []string{"elastic"}
			out[o.Name()+"-es-http-certs-public"] = []string{"ca.crt", "tls.crt"}
		}
	}
	return out
}

// exampleSecrets are the Secrets of secret.example.yaml, made by hand, with their keys.
func exampleSecrets(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile("secret.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, doc := range bytes.Split(data, []byte("\n---\n")) {
		var s corev1.Secret
		if err := yaml.UnmarshalStrict(doc, &s); err != nil {
			t.Fatalf("secret.example.yaml: %v", err)
		}
		if s.Kind != "Secret" || s.Namespace != namespace {
			t.Errorf("secret.example.yaml: %s %s/%s, want Secrets of namespace %s", s.Kind, s.Namespace, s.Name, namespace)
		}
		for k := range s.StringData {
			out[s.Name] = append(out[s.Name], k)
		}
	}
	return out
}

// TestOverlays renders every overlay and checks each object strictly, then what the objects
// say about each other.
func TestOverlays(t *testing.T) {
	start := time.Now()
	all := renderAll(t)
	t.Logf("rendered %d overlays in %v", len(all), time.Since(start).Round(time.Millisecond))
	examples := exampleSecrets(t)
	for _, overlay := range Overlays {
		t.Run(filepath.Base(overlay), func(t *testing.T) {
			d := decodeStrictly(t, overlay, all[overlay])
			env, err := ReadEnv(EnvFileOf(t, d))
			if err != nil {
				t.Fatal(err)
			}
			d.env = env
			checkNamespaces(t, d)
			checkPods(t, d, examples)
			checkServices(t, d)
			checkNetworkPolicies(t, d)
			checkMesh(t, d)
			checkMonitoring(t, d)
			checkAutoscaling(t, d)
			checkKafka(t, d)
			checkSearch(t, d, examples)
			checkServiceNames(t, d)
			checkGrafana(t, d, examples)
			checkImages(t, d)
		})
	}
}

// EnvFileOf writes the overlay's ConfigMap codebank-config to a file of NAME=value lines and
// returns its path.
func EnvFileOf(t *testing.T, d decoded) string {
	t.Helper()
	for _, o := range d.all("ConfigMap") {
		if strings.HasPrefix(o.Name(), "codebank-config-") {
			cm := d.typed[o.String()].(*corev1.ConfigMap)
			var b strings.Builder
			for k, v := range cm.Data {
				fmt.Fprintf(&b, "%s=%s\n", k, v)
			}
			path := filepath.Join(t.TempDir(), "codebank.env")
			if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	t.Fatal("no ConfigMap codebank-config")
	return ""
}

func checkNamespaces(t *testing.T, d decoded) {
	for _, o := range d.objs {
		switch {
		case o.Kind() == "Namespace":
		case o.Kind() == "ValidatingAdmissionPolicy" || o.Kind() == "ValidatingAdmissionPolicyBinding":
			if o.Namespace() != "" {
				t.Errorf("%s: cluster-wide, want no namespace", o)
			}
		case o.Kind() == "Kiali":
			if o.Namespace() != "istio-system" {
				t.Errorf("%s: want namespace istio-system", o)
			}
		case o.Namespace() != namespace:
			t.Errorf("%s: want namespace %s", o, namespace)
		}
	}
}

// checkPods: every pod's service account, Secrets and ConfigMaps exist; its probes are on the
// operations port; its Kafka user is a KafkaUser whose Secret it reads.
func checkPods(t *testing.T, d decoded, examples map[string][]string) {
	secrets := map[string][]string{}
	for k, v := range examples {
		secrets[k] = v
	}
	for k, v := range d.operatorSecrets() {
		secrets[k] = v
	}
	for _, o := range d.all("Secret") {
		s := d.typed[o.String()].(*corev1.Secret)
		for k := range s.StringData {
			secrets[o.Name()] = append(secrets[o.Name()], k)
		}
		for k := range s.Data {
			secrets[o.Name()] = append(secrets[o.Name()], k)
		}
	}
	configMaps := map[string]*corev1.ConfigMap{}
	for _, o := range d.all("ConfigMap") {
		configMaps[o.Name()] = d.typed[o.String()].(*corev1.ConfigMap)
	}
	hasSecretKey := func(name, key string) bool { return slices.Contains(secrets[name], key) }
	for _, p := range d.pods() {
		if p.spec == nil {
			continue
		}
		if _, ok := d.find("ServiceAccount", p.sa); !ok {
			t.Errorf("%s: service account %q does not exist", p.owner, p.sa)
		}
		for _, v := range p.spec.Volumes {
			if s := v.Secret; s != nil {
				if _, ok := secrets[s.SecretName]; !ok {
					t.Errorf("%s: volume %s: Secret %s is made by no one", p.owner, v.Name, s.SecretName)
				}
				for _, item := range s.Items {
					if !hasSecretKey(s.SecretName, item.Key) {
						t.Errorf("%s: volume %s: Secret %s has no key %s", p.owner, v.Name, s.SecretName, item.Key)
					}
				}
			}
		}
		for _, c := range p.spec.Containers {
			var kafkaUser string
			for _, e := range c.Env {
				if e.Name == "CODEBANK_KAFKA_USER" {
					kafkaUser = e.Value
				}
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil && !hasSecretKey(r.Name, r.Key) {
					t.Errorf("%s: %s: Secret %s has no key %s", p.owner, e.Name, r.Name, r.Key)
				}
				if e.Name == "CODEBANK_KAFKA_PASSWORD" && e.ValueFrom.SecretKeyRef != nil && e.ValueFrom.SecretKeyRef.Name != kafkaUser {
					t.Errorf("%s: the Kafka password is of %s, the user is %s", p.owner, e.ValueFrom.SecretKeyRef.Name, kafkaUser)
				}
			}
			if kafkaUser == "" {
				t.Errorf("%s: container %s has no Kafka user", p.owner, c.Name)
			} else if _, ok := d.find("KafkaUser", kafkaUser); !ok {
				t.Errorf("%s: Kafka user %s is no KafkaUser", p.owner, kafkaUser)
			}
			for _, ef := range c.EnvFrom {
				if r := ef.SecretRef; r != nil {
					if _, ok := secrets[r.Name]; !ok {
						t.Errorf("%s: Secret %s is made by no one", p.owner, r.Name)
					}
				}
				if r := ef.ConfigMapRef; r != nil && configMaps[r.Name] == nil {
					t.Errorf("%s: ConfigMap %s does not exist", p.owner, r.Name)
				}
			}
			for _, m := range c.VolumeMounts {
				if !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) && !slices.Contains(p.claims, m.Name) {
					t.Errorf("%s: mount of a volume %s that does not exist", p.owner, m.Name)
				}
			}
			if strings.Contains(p.owner, "Job/") {
				continue
			}
			for name, probe := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Port.StrVal != "ops" || !p.hasPort(probe.HTTPGet.Port) {
					t.Errorf("%s: %s probe not on the ops port", p.owner, name)
				}
			}
		}
	}
}

// checkServices: every Service selects pods that have its target ports; every disruption budget
// selects pods.
func checkServices(t *testing.T, d decoded) {
	pods := d.pods()
	for _, o := range d.all("Service") {
		s := d.typed[o.String()].(*corev1.Service)
		sel := selected(t, pods, &metav1.LabelSelector{MatchLabels: s.Spec.Selector})
		if len(sel) == 0 {
			t.Errorf("%s selects no pod", o)
		}
		for _, port := range s.Spec.Ports {
			for _, p := range sel {
				if !p.hasPort(port.TargetPort) {
					t.Errorf("%s: port %s: %s has no port %s", o, port.Name, p.owner, port.TargetPort.String())
				}
			}
		}
	}
	for _, o := range d.all("PodDisruptionBudget") {
		if len(selected(t, pods, d.typed[o.String()].(*policyv1.PodDisruptionBudget).Spec.Selector)) == 0 {
			t.Errorf("%s selects no pod", o)
		}
	}
}

// checkNetworkPolicies: every policy and every peer of this namespace selects pods, and the
// ports a policy admits are ports of the pods it selects.
func checkNetworkPolicies(t *testing.T, d decoded) {
	pods := d.pods()
	for _, o := range d.all("NetworkPolicy") {
		np := d.typed[o.String()].(*networkingv1.NetworkPolicy)
		targets := selected(t, pods, &np.Spec.PodSelector)
		if len(targets) == 0 {
			t.Errorf("%s selects no pod", o)
		}
		peers := func(ps []networkingv1.NetworkPolicyPeer) {
			for _, peer := range ps {
				if peer.NamespaceSelector == nil && peer.IPBlock == nil && len(selected(t, pods, peer.PodSelector)) == 0 {
					t.Errorf("%s: peer %v selects no pod", o, peer.PodSelector)
				}
			}
		}
		for _, r := range np.Spec.Ingress {
			peers(r.From)
			for _, port := range r.Ports {
				if port.Port != nil && !slices.ContainsFunc(targets, func(p pod) bool { return p.hasPort(*port.Port) }) {
					t.Errorf("%s admits port %s, which none of its pods has", o, port.Port.String())
				}
			}
		}
		for _, r := range np.Spec.Egress {
			peers(r.To)
			for _, peer := range r.To {
				if peer.NamespaceSelector != nil || peer.IPBlock != nil {
					continue
				}
				for _, port := range r.Ports {
					if port.Port != nil && !slices.ContainsFunc(selected(t, pods, peer.PodSelector), func(p pod) bool { return p.hasPort(*port.Port) }) {
						t.Errorf("%s lets out to port %s, which none of its peers has", o, port.Port.String())
					}
				}
			}
		}
	}
	if _, ok := d.find("NetworkPolicy", "default-deny"); !ok {
		t.Error("no default-deny NetworkPolicy")
	}
}

// restRoutes returns the HTTP routes of Code Bank's API (the google.api.http options of
// proto/codebank/v1), by method.
func restRoutes() map[string][]string {
	out := map[string][]string{}
	for _, fd := range []protoreflect.FileDescriptor{codebankv1.File_codebank_v1_payments_proto, codebankv1.File_codebank_v1_cards_proto,
		codebankv1.File_codebank_v1_statements_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			s := fd.Services().Get(i)
			for j := 0; j < s.Methods().Len(); j++ {
				m := s.Methods().Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				full := "/" + string(s.FullName()) + "/" + string(m.Name())
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					for _, p := range []string{r.GetGet(), r.GetPost(), r.GetPut(), r.GetDelete(), r.GetPatch()} {
						if p != "" {
							out[full] = append(out[full], regexp.MustCompile(`\{[^}]*\}`).ReplaceAllString(p, "ID"))
						}
					}
				}
			}
		}
	}
	return out
}

// matchesIstioPath reports whether an AuthorizationPolicy path (exact, "prefix*" or "*suffix")
// matches path.
func matchesIstioPath(pattern, path string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(path, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(path, strings.TrimPrefix(pattern, "*"))
	}
	return pattern == path
}

// checkMesh: the Istio objects name pods, ports, service accounts, Services and methods that
// exist; every method of the API is open to someone on the role that serves it; payments are
// never retried.
func checkMesh(t *testing.T, d decoded) {
	pods := d.pods()
	access := grpcgateway.Access()
	routes := restRoutes()
	// Which role serves which methods.
	served := map[string]string{}
	for m := range access {
		switch {
		case strings.HasPrefix(m, "/codebank.v1.StatementService/"):
			served[m] = "statements"
		default:
			served[m] = "ingress"
		}
	}
	allowed := map[string]bool{} // role + method
	external := []string{"cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account", "cluster.local/ns/checkouts/sa/legacy-checkout", "*"}
	for _, o := range d.all("AuthorizationPolicy") {
		ap := d.typed[o.String()].(*istiosecurity.AuthorizationPolicy)
		if ap.Spec.Selector == nil {
			if len(ap.Spec.Rules) != 0 {
				t.Errorf("%s applies to the whole namespace", o)
			}
			continue
		}
		targets := selected(t, pods, &metav1.LabelSelector{MatchLabels: ap.Spec.Selector.MatchLabels})
		if len(targets) == 0 {
			t.Errorf("%s selects no pod", o)
			continue
		}
		role := targets[0].labels["app.kubernetes.io/component"]
		for _, r := range ap.Spec.Rules {
			for _, f := range r.From {
				for _, p := range f.Source.Principals {
					sa, ok := strings.CutPrefix(p, "cluster.local/ns/"+namespace+"/sa/")
					if ok {
						if _, exists := d.find("ServiceAccount", sa); !exists {
							t.Errorf("%s: principal %s: no service account %s", o, p, sa)
						}
					} else if !slices.Contains(external, p) {
						t.Errorf("%s: principal %s is neither of this namespace nor a known one", o, p)
					}
				}
			}
			for _, to := range r.To {
				op := to.Operation
				for _, port := range op.Ports {
					n, _ := strconv.Atoi(port)
					if !slices.ContainsFunc(targets, func(p pod) bool { return p.hasPort(intstr.FromInt32(int32(n))) }) {
						t.Errorf("%s: port %s is no port of its pods", o, port)
					}
				}
				for _, path := range op.Paths {
					found := false
					switch {
					case path == "/metrics" || path == "/healthz" || path == "/readyz" || path == "/grpc.health.v1.Health/*" || path == "/openapi.json":
						found = true
					case slices.Contains(op.Ports, "8090"):
						found = true // the pages
					}
					for m := range access {
						if matchesIstioPath(path, m) {
							found = true
							allowed[role+" "+m] = true
						}
						for _, route := range routes[m] {
							if matchesIstioPath(path, route) {
								found = true
							}
						}
					}
					if !found {
						t.Errorf("%s: path %s is no method or route of the API", o, path)
					}
				}
			}
		}
	}
	for m, role := range served {
		if !allowed[role+" "+m] {
			t.Errorf("no AuthorizationPolicy lets anyone call %s on the %s pods", m, role)
		}
	}
	for _, o := range d.all("PeerAuthentication") {
		pa := d.typed[o.String()].(*istiosecurity.PeerAuthentication)
		if pa.Spec.Mtls.GetMode().String() != "STRICT" {
			t.Errorf("%s: mode %s, want STRICT", o, pa.Spec.Mtls.GetMode())
		}
		if pa.Spec.Selector != nil {
			targets := selected(t, pods, &metav1.LabelSelector{MatchLabels: pa.Spec.Selector.MatchLabels})
			for port := range pa.Spec.PortLevelMtls {
				if !slices.ContainsFunc(targets, func(p pod) bool { return p.hasPort(intstr.FromInt32(int32(port))) }) {
					t.Errorf("%s: port %d is no port of its pods", o, port)
				}
			}
		}
	}
	// Hosts are Services of this namespace, and routes go to their ports.
	service := func(host string) *corev1.Service {
		name, ok := strings.CutSuffix(host, "."+namespace+".svc.cluster.local")
		if !ok {
			return nil
		}
		o, ok := d.find("Service", name)
		if !ok {
			return nil
		}
		return d.typed[o.String()].(*corev1.Service)
	}
	for _, o := range d.all("DestinationRule") {
		if service(d.typed[o.String()].(*istionetworking.DestinationRule).Spec.Host) == nil {
			t.Errorf("%s: host is no Service of namespace %s", o, namespace)
		}
	}
	timeout, err := time.ParseDuration(d.env["CODEBANK_REQUEST_TIMEOUT"])
	if err != nil {
		t.Fatal(err)
	}
	payments := 0
	for _, o := range d.all("VirtualService") {
		vs := d.typed[o.String()].(*istionetworking.VirtualService)
		for _, g := range vs.Spec.Gateways {
			if _, ok := d.find("Gateway", g); !ok {
				t.Errorf("%s: gateway %s does not exist", o, g)
			}
		}
		for _, h := range vs.Spec.Http {
			for _, r := range h.Route {
				s := service(r.Destination.Host)
				if s == nil {
					t.Errorf("%s: route %s goes to %s, no Service of namespace %s", o, h.Name, r.Destination.Host, namespace)
					continue
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return uint32(p.Port) == r.Destination.GetPort().GetNumber() }) {
					t.Errorf("%s: route %s goes to port %d of %s, which it does not have", o, h.Name, r.Destination.GetPort().GetNumber(), s.Name)
				}
			}
			for _, m := range h.Match {
				uri := m.GetUri().GetExact()
				if uri == codebankv1.PaymentService_Authorize_FullMethodName || uri == "/payment.PaymentService/Payment" || uri == "/v1/payments" {
					payments++
					if h.Retries == nil || h.Retries.Attempts != 0 {
						t.Errorf("%s: route %s retries payments: %v, want attempts: 0", o, h.Name, h.Retries)
					}
					if h.Timeout == nil || h.Timeout.AsDuration() <= timeout {
						t.Errorf("%s: route %s: timeout %v, want more than CODEBANK_REQUEST_TIMEOUT (%v)", o, h.Name, h.Timeout.AsDuration(), timeout)
					}
				}
			}
		}
	}
	if payments < 4 { // Authorize, Payment, POST /v1/payments in the mesh, POST /v1/payments at the gateway
		t.Errorf("%d routes of payments, want 4", payments)
	}
}

// checkMonitoring: the monitors select pods by ports they have; the dashboards fit in a
// ConfigMap that `kubectl apply` (client side) can still annotate.
func checkMonitoring(t *testing.T, d decoded) {
	pods := d.pods()
	for _, o := range d.all("PodMonitor") {
		pm := d.typed[o.String()].(*monitoringv1.PodMonitor)
		targets := selected(t, pods, &pm.Spec.Selector)
		if len(targets) == 0 {
			t.Errorf("%s selects no pod", o)
		}
		for _, e := range pm.Spec.PodMetricsEndpoints {
			for _, p := range targets {
				if e.Port == nil || !p.hasPort(intstr.FromString(*e.Port)) {
					t.Errorf("%s: %s has no port %s", o, p.owner, ptrString(e.Port))
				}
			}
		}
	}
	if _, ok := d.find("PrometheusRule", "codebank"); !ok {
		t.Error("no PrometheusRule codebank")
	}
	dashboards := 0
	for _, o := range d.all("ConfigMap") {
		if strings.HasPrefix(o.Name(), "grafana-dashboard-") {
			dashboards++
			if len(o.JSON) > 200<<10 {
				t.Errorf("%s: %d bytes, over the 256 KiB of the annotation of a client-side apply", o, len(o.JSON))
			}
		}
	}
	if dashboards == 0 {
		t.Error("no dashboard ConfigMaps")
	}
}

// checkAutoscaling: the autoscalers scale what exists, never above the partitions their pods
// share.
func checkAutoscaling(t *testing.T, d decoded) {
	partitions := map[string]int{}
	for _, o := range d.all("KafkaTopic") {
		spec := o.Map["spec"].(map[string]any)
		n, _ := spec["partitions"].(float64)
		name, _ := spec["topicName"].(string)
		partitions[cmpOr(name, o.Name())] = int(n)
	}
	replies, _ := strconv.Atoi(d.env["CODEBANK_REPLY_PARTITIONS"])
	for _, o := range d.all("HorizontalPodAutoscaler") {
		h := d.typed[o.String()].(*autoscalingv2.HorizontalPodAutoscaler)
		if _, ok := d.find(h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name); !ok {
			t.Errorf("%s scales %s %s, which does not exist", o, h.Spec.ScaleTargetRef.Kind, h.Spec.ScaleTargetRef.Name)
		}
		if h.Spec.ScaleTargetRef.Name == "ingress" && int(h.Spec.MaxReplicas) != replies {
			t.Errorf("%s: maxReplicas %d, want CODEBANK_REPLY_PARTITIONS (%d): one replies partition each", o, h.Spec.MaxReplicas, replies)
		}
	}
	var so struct {
		Spec struct {
			ScaleTargetRef  struct{ Kind, Name string }
			MaxReplicaCount int
			Triggers        []struct {
				Type              string
				Metadata          map[string]string
				AuthenticationRef struct{ Name string }
			}
		}
	}
	for _, o := range d.all("ScaledObject") {
		if err := json.Unmarshal(o.JSON, &so); err != nil {
			t.Fatal(err)
		}
		if _, ok := d.find(so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name); !ok {
			t.Errorf("%s scales %s %s, which does not exist", o, so.Spec.ScaleTargetRef.Kind, so.Spec.ScaleTargetRef.Name)
		}
		for _, tr := range so.Spec.Triggers {
			topic := tr.Metadata["topic"]
			if p, ok := partitions[topic]; !ok || so.Spec.MaxReplicaCount > p {
				t.Errorf("%s: maxReplicaCount %d, topic %s of %d partitions: never more instances than partitions", o, so.Spec.MaxReplicaCount, topic, p)
			}
			if tr.Metadata["allowIdleConsumers"] != "false" {
				t.Errorf("%s: allowIdleConsumers %q, want false", o, tr.Metadata["allowIdleConsumers"])
			}
			if tr.Metadata["bootstrapServers"] != d.env["CODEBANK_BROKERS"] {
				t.Errorf("%s: bootstrapServers %s, want CODEBANK_BROKERS (%s)", o, tr.Metadata["bootstrapServers"], d.env["CODEBANK_BROKERS"])
			}
			if _, ok := d.find("TriggerAuthentication", tr.AuthenticationRef.Name); !ok {
				t.Errorf("%s: TriggerAuthentication %s does not exist", o, tr.AuthenticationRef.Name)
			}
			if !userMay(t, d, "kafka-keda", "group", tr.Metadata["consumerGroup"], "Describe") {
				t.Errorf("%s: the user of KEDA may not describe group %s", o, tr.Metadata["consumerGroup"])
			}
		}
	}
}

// userMay reports whether the KafkaUser may do op on the resource.
func userMay(t *testing.T, d decoded, user, typ, name, op string) bool {
	o, ok := d.find("KafkaUser", user)
	if !ok {
		return false
	}
	var u struct {
		Spec struct {
			Authorization struct {
				ACLs []struct {
					Resource   struct{ Type, Name, PatternType string }
					Operations []string
				}
			}
		}
	}
	if err := json.Unmarshal(o.JSON, &u); err != nil {
		t.Fatal(err)
	}
	for _, a := range u.Spec.Authorization.ACLs {
		match := a.Resource.Name == name || a.Resource.PatternType == "prefix" && strings.HasPrefix(name, a.Resource.Name)
		if a.Resource.Type == typ && match && slices.Contains(a.Operations, op) {
			return true
		}
	}
	return false
}

// checkKafka: the topics are those of the topology; every Strimzi object names the cluster;
// Connect and its connector are configured as connect/ says.
func checkKafka(t *testing.T, d decoded) {
	dep, err := DeploymentOf(d.env)
	if err != nil {
		t.Fatal(err)
	}
	kafka, ok := d.find("Kafka", KafkaCluster)
	if !ok {
		t.Fatalf("no Kafka %s", KafkaCluster)
	}
	// The KafkaTopics, by topic name (spec.topicName, else the object's name) and the
	// generation of the authorizer's topics they belong to.
	type kafkaTopic struct {
		obj  Object
		gen  string
		Spec struct {
			TopicName            string
			Partitions, Replicas int
			Config               map[string]string
		}
	}
	have := map[string]kafkaTopic{}
	for _, o := range d.all("KafkaTopic") {
		var kt kafkaTopic
		if err := json.Unmarshal(o.JSON, &kt); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		kt.obj = o
		kt.gen, _ = o.Map["metadata"].(map[string]any)["labels"].(map[string]any)[GenerationLabel].(string)
		name := cmpOr(kt.Spec.TopicName, o.Name())
		if _, dup := have[name]; dup {
			t.Errorf("two KafkaTopics of topic %s", name)
		}
		have[name] = kt
	}
	// What they must be: every topic of the deployment but the authorizer's, and the
	// authorizer's of every generation applied (generation-N.yaml), complete.
	want := map[string]stream.Topic{}
	movable := map[string]bool{}
	for _, topic := range dep.Bank.AuthorizerTopics() {
		movable[topic.Name] = true
	}
	for _, topic := range dep.Topics() {
		if !movable[topic.Name] {
			want[topic.Name] = topic
		}
	}
	gens := map[string]bool{}
	for _, kt := range have {
		if kt.gen != "" {
			gens[kt.gen] = true
		}
	}
	if len(gens) == 0 {
		t.Error("no generation of the authorizer's topics")
	}
	for g := range gens {
		n, err := strconv.Atoi(g)
		if err != nil {
			t.Errorf("%s %q is not a number", GenerationLabel, g)
			continue
		}
		requests := have[dep.Bank.At(n, 0).PaymentRequests().Name]
		for _, topic := range dep.Bank.At(n, requests.Spec.Partitions).AuthorizerTopics() {
			cfg := map[string]string{"min.insync.replicas": strconv.Itoa(MinInsyncReplicas)}
			for k, v := range topic.Config {
				cfg[k] = v
			}
			topic.Config = cfg
			want[topic.Name] = topic
			if have[topic.Name].gen != g {
				t.Errorf("topic %s of generation %s: has %s %q", topic.Name, g, GenerationLabel, have[topic.Name].gen)
			}
		}
	}
	for name, topic := range want {
		kt, ok := have[name]
		if !ok {
			t.Errorf("topic %s has no KafkaTopic", name)
			continue
		}
		if kt.Spec.Partitions != topic.Partitions || kt.Spec.Replicas != 3 || fmt.Sprint(kt.Spec.Config) != fmt.Sprint(topic.Config) ||
			kt.Spec.Config["min.insync.replicas"] != "2" {
			t.Errorf("%s: %+v, want %d partitions, replication 3, config %v", kt.obj, kt.Spec, topic.Partitions, topic.Config)
		}
	}
	for name, kt := range have {
		if _, ok := want[name]; !ok {
			t.Errorf("%s: topic %s is no topic of the deployment", kt.obj, name)
		}
	}
	for _, o := range d.objs {
		if !strings.HasSuffix(o.APIVersion(), "kafka.strimzi.io/v1") {
			continue
		}
		lbl, _ := o.Map["metadata"].(map[string]any)["labels"].(map[string]any)
		switch o.Kind() {
		case "KafkaTopic", "KafkaUser", "KafkaNodePool":
			if lbl["strimzi.io/cluster"] != kafka.Name() {
				t.Errorf("%s: strimzi.io/cluster %v, want %s", o, lbl["strimzi.io/cluster"], kafka.Name())
			}
		case "KafkaConnector":
			if _, ok := d.find("KafkaConnect", fmt.Sprint(lbl["strimzi.io/cluster"])); !ok {
				t.Errorf("%s: strimzi.io/cluster %v is no KafkaConnect", o, lbl["strimzi.io/cluster"])
			}
		}
	}
	// Kafka Connect: the cluster's listener, the same Kafka version, its own user, the image of
	// k8s/connect/Dockerfile.
	var kc struct {
		Spec struct {
			Version, BootstrapServers, Image, GroupID                  string
			ConfigStorageTopic, OffsetStorageTopic, StatusStorageTopic string
			Authentication                                             struct{ Username string }
			Template                                                   struct {
				Pod              struct{ Volumes []corev1.Volume }
				ConnectContainer struct {
					Env          []corev1.EnvVar
					VolumeMounts []corev1.VolumeMount
				}
			}
			MetricsConfig struct {
				Type      string
				ValueFrom struct{ ConfigMapKeyRef corev1.ConfigMapKeySelector }
			}
		}
	}
	connectObj, ok := d.find("KafkaConnect", "results")
	if !ok {
		t.Fatal("no KafkaConnect results")
	}
	json.Unmarshal(connectObj.JSON, &kc)
	var kafkaSpec struct {
		Spec struct{ Kafka struct{ Version string } }
	}
	json.Unmarshal(kafka.JSON, &kafkaSpec)
	if kc.Spec.Version != kafkaSpec.Spec.Kafka.Version || kc.Spec.BootstrapServers != d.env["CODEBANK_BROKERS"] ||
		kc.Spec.GroupID != ConnectGroup || kc.Spec.ConfigStorageTopic != ConnectConfigsTopic ||
		kc.Spec.OffsetStorageTopic != ConnectOffsetsTopic || kc.Spec.StatusStorageTopic != ConnectStatusTopic {
		t.Errorf("KafkaConnect: %+v, want Kafka %s at %s, group %s and its topics", kc.Spec, kafkaSpec.Spec.Kafka.Version, d.env["CODEBANK_BROKERS"], ConnectGroup)
	}
	if _, ok := d.find("KafkaUser", kc.Spec.Authentication.Username); !ok {
		t.Errorf("KafkaConnect: user %s is no KafkaUser", kc.Spec.Authentication.Username)
	}
	dockerfile, err := os.ReadFile(filepath.Join("connect", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	strimzi := strimziVersion(t)
	for _, from := range regexp.MustCompile(`(?m)^FROM quay.io/strimzi/kafka:(\S+)`).FindAllStringSubmatch(string(dockerfile), -1) {
		if want := strimzi + "-kafka-" + kc.Spec.Version; from[1] != want {
			t.Errorf("k8s/connect/Dockerfile: FROM strimzi/kafka:%s, want %s (Strimzi of testdata/crds, Kafka of the KafkaConnect)", from[1], want)
		}
	}
	// The connector: connect/opensearch-sink.json, placeholders filled.
	conn, ok := d.find("KafkaConnector", dep.ConnectorName())
	if !ok {
		t.Fatalf("no KafkaConnector %s", dep.ConnectorName())
	}
	var kcr struct {
		Spec struct {
			Class    string
			TasksMax int
			Config   map[string]string
		}
	}
	if err := json.Unmarshal(conn.JSON, &kcr); err != nil {
		t.Fatal(err)
	}
	sink, err := connect.OpenSearchSinkConfig(connect.SinkParams{Topic: dep.Bank.Results().Name, OpenSearchURL: kcr.Spec.Config["opensearch.url"],
		Index: analytics.DefaultIndex, DLQTopic: dep.Bank.ResultDeadLetters().Name})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range sink {
		got := kcr.Spec.Config[k]
		switch k {
		case "connector.class":
			got = kcr.Spec.Class
		case "tasks.max":
			got = strconv.Itoa(kcr.Spec.TasksMax)
		}
		if got != v {
			t.Errorf("%s: %s=%q, want %q as in connect/opensearch-sink.json", conn, k, got, v)
		}
	}
	for k := range kcr.Spec.Config {
		if _, ok := sink[k]; !ok && !strings.HasPrefix(k, "opensearch.") {
			t.Errorf("%s: %s is not in connect/opensearch-sink.json", conn, k)
		}
	}
	if !strings.HasPrefix(kcr.Spec.Config["opensearch.url"], "https://codebank-es-http:") {
		t.Errorf("%s: opensearch.url %s, want the Elasticsearch of search/, over HTTPS", conn, kcr.Spec.Config["opensearch.url"])
	}
	// The sink verifies Elasticsearch's certificate against ECK's CA, mounted from its Secret.
	ca := ""
	for _, m := range kc.Spec.Template.ConnectContainer.VolumeMounts {
		for _, v := range kc.Spec.Template.Pod.Volumes {
			if v.Name == m.Name && v.Secret != nil && v.Secret.SecretName == "codebank-es-http-certs-public" {
				ca = m.MountPath + "/ca.crt"
			}
		}
	}
	if ca == "" || kcr.Spec.Config["opensearch.ssl.truststore.location"] != ca || kcr.Spec.Config["opensearch.ssl.truststore.type"] != "PEM" {
		t.Errorf("%s: truststore %q (%s), want ECK's CA as Connect mounts it, %q (PEM)", conn, kcr.Spec.Config["opensearch.ssl.truststore.location"],
			kcr.Spec.Config["opensearch.ssl.truststore.type"], ca)
	}
	// Its metrics: the JMX exporter with monitoring/connect/jmx-exporter.yaml, which the sink's
	// alerts read.
	if mc := kc.Spec.MetricsConfig; mc.Type != "jmxPrometheusExporter" || mc.ValueFrom.ConfigMapKeyRef.Name != ConnectMetricsConfigMap || mc.ValueFrom.ConfigMapKeyRef.Key != ConnectMetricsKey {
		t.Errorf("KafkaConnect: metrics %+v, want the JMX exporter with ConfigMap %s, key %s", mc, ConnectMetricsConfigMap, ConnectMetricsKey)
	} else if o, ok := d.find("ConfigMap", ConnectMetricsConfigMap); !ok || !strings.Contains(string(o.JSON), "kafka_connect_connector_status") {
		t.Errorf("KafkaConnect: ConfigMap %s is missing or not the JMX exporter's configuration", ConnectMetricsConfigMap)
	}
	if p := kcr.Spec.Config["opensearch.password"]; p != "${strimzienv:SEARCH_PASSWORD}" ||
		!slices.ContainsFunc(kc.Spec.Template.ConnectContainer.Env, func(e corev1.EnvVar) bool { return e.Name == "SEARCH_PASSWORD" }) {
		t.Errorf("%s: opensearch.password %q, want it from Connect's environment", conn, p)
	}
}

// strimziVersion is the Strimzi version of the CRDs in testdata/crds.
func strimziVersion(t *testing.T) string {
	files, _ := filepath.Glob(filepath.Join("testdata", "crds", "strimzi-*-040-Crd-kafka.yaml"))
	if len(files) != 1 {
		t.Fatalf("want one Strimzi Kafka CRD, have %v", files)
	}
	return strings.TrimSuffix(strings.TrimPrefix(filepath.Base(files[0]), "strimzi-"), "-040-Crd-kafka.yaml")
}

// checkSearch: Elasticsearch and Kibana at one pinned version; Kibana on this Elasticsearch;
// the sink's user and role exist.
func checkSearch(t *testing.T, d decoded, examples map[string][]string) {
	var es, kb struct {
		Spec struct {
			Version          string
			ElasticsearchRef struct{ Name string }
			Auth             struct {
				FileRealm, Roles []struct{ SecretName string }
			}
		}
	}
	eso, ok1 := d.find("Elasticsearch", "codebank")
	kbo, ok2 := d.find("Kibana", "codebank")
	if !ok1 || !ok2 {
		t.Fatal("no Elasticsearch or Kibana codebank")
	}
	json.Unmarshal(eso.JSON, &es)
	json.Unmarshal(kbo.JSON, &kb)
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(es.Spec.Version) || kb.Spec.Version != es.Spec.Version {
		t.Errorf("Elasticsearch %q and Kibana %q: want one pinned version x.y.z", es.Spec.Version, kb.Spec.Version)
	}
	if kb.Spec.ElasticsearchRef.Name != eso.Name() {
		t.Errorf("Kibana on %q, want %s", kb.Spec.ElasticsearchRef.Name, eso.Name())
	}
	for _, s := range es.Spec.Auth.FileRealm {
		if keys := examples[s.SecretName]; !slices.Contains(keys, "username") || !slices.Contains(keys, "password") || !slices.Contains(keys, "roles") {
			t.Errorf("Elasticsearch: file realm Secret %s: keys %v, want username, password and roles (secret.example.yaml)", s.SecretName, keys)
		}
	}
	for _, s := range es.Spec.Auth.Roles {
		if _, ok := d.find("Secret", s.SecretName); !ok {
			t.Errorf("Elasticsearch: roles Secret %s does not exist", s.SecretName)
		}
	}
}

// checkImages: every image names a tag, and not latest.
func checkImages(t *testing.T, d decoded) {
	check := func(o Object, image string) {
		i := strings.LastIndex(image, ":")
		if i < 0 || strings.Contains(image[i:], "/") || image[i+1:] == "latest" {
			t.Errorf("%s: image %q, want a pinned tag", o, image)
		}
	}
	for _, p := range d.pods() {
		if p.spec == nil {
			continue
		}
		for _, c := range p.spec.Containers {
			o, _ := d.find(strings.Split(p.owner, "/")[0], strings.Split(p.owner, "/")[2])
			check(o, c.Image)
		}
	}
	if o, ok := d.find("KafkaConnect", "results"); ok {
		image, _ := o.Map["spec"].(map[string]any)["image"].(string)
		check(o, image)
	}
}

func ptrString(s *string) string {
	if s == nil {
		return "(none)"
	}
	return *s
}

// cmpOr returns a, or b when a is empty.
func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
