package k8s

import (
	"strings"
	"testing"

	"cel.dev/cel-go/cel"
	"sigs.k8s.io/yaml"

	"github.com/codebank/codebank/internal/generations"
	"github.com/codebank/codebank/processors"
)

// TestPartitionsPolicy evaluates the ValidatingAdmissionPolicy of every overlay with CEL, as the
// API server would: a change of partitions on a card-keyed KafkaTopic (an authorizer generation's,
// or one co-partitioned with the results) is refused with a message naming codebank partitions
// grow; other changes of those topics, and other topics, pass.
func TestPartitionsPolicy(t *testing.T) {
	env, err := cel.NewEnv(cel.Variable("object", cel.DynType), cel.Variable("oldObject", cel.DynType))
	if err != nil {
		t.Fatal(err)
	}
	eval := func(expr string, object, old map[string]any) any {
		t.Helper()
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			t.Fatalf("%s: %v", expr, iss.Err())
		}
		prg, err := env.Program(ast)
		if err != nil {
			t.Fatal(err)
		}
		out, _, err := prg.Eval(map[string]any{"object": object, "oldObject": old})
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return out.Value()
	}
	topic := func(name string, labels map[string]any, partitions int, retention string) map[string]any {
		meta := map[string]any{"name": name}
		if labels != nil {
			meta["labels"] = labels
		}
		return map[string]any{"metadata": meta, "spec": map[string]any{"partitions": partitions, "replicas": 3,
			"config": map[string]any{"retention.ms": retention}}}
	}
	generation := map[string]any{"strimzi.io/cluster": "codebank", "codebank.io/generation": "1"}
	for overlay, objs := range renderAll(t) {
		var policy struct {
			Spec struct {
				MatchConditions []struct{ Expression string } `json:"matchConditions"`
				Validations     []struct {
					Expression        string `json:"expression"`
					MessageExpression string `json:"messageExpression"`
				} `json:"validations"`
			} `json:"spec"`
		}
		found := false
		for _, o := range objs {
			if o.Kind() == "ValidatingAdmissionPolicy" && o.Name() == "codebank-card-keyed-partitions" {
				b, err := yaml.Marshal(o.Map)
				if err != nil {
					t.Fatal(err)
				}
				if err := yaml.Unmarshal(b, &policy); err != nil {
					t.Fatal(err)
				}
				found = true
			}
		}
		if !found || len(policy.Spec.MatchConditions) != 1 || len(policy.Spec.Validations) != 1 {
			t.Fatalf("%s: no partitions policy of one condition and one validation", overlay)
		}
		match, valid := policy.Spec.MatchConditions[0].Expression, policy.Spec.Validations[0]
		for _, c := range []struct {
			what        string
			old, new    map[string]any
			match, pass bool
		}{
			{"a generation's topic, more partitions", topic("payment-requests", generation, 12, "1"), topic("payment-requests", generation, 24, "1"), true, false},
			{"a generation's topic, another retention", topic("payment-requests", generation, 12, "1"), topic("payment-requests", generation, 12, "2"), true, true},
			{"the results, more partitions", topic("payment-results", map[string]any{"strimzi.io/cluster": "codebank"}, 12, "1"), topic("payment-results", map[string]any{"strimzi.io/cluster": "codebank"}, 24, "1"), true, false},
			{"the replies, more partitions", topic("payment-replies", map[string]any{"strimzi.io/cluster": "codebank"}, 8, "1"), topic("payment-replies", map[string]any{"strimzi.io/cluster": "codebank"}, 16, "1"), false, true},
		} {
			if got := eval(match, c.new, c.old); got != c.match {
				t.Errorf("%s: %s: matched %v, want %v", overlay, c.what, got, c.match)
			}
			if !c.match {
				continue
			}
			if got := eval(valid.Expression, c.new, c.old); got != c.pass {
				t.Errorf("%s: %s: allowed %v, want %v", overlay, c.what, got, c.pass)
			}
			if msg, _ := eval(valid.MessageExpression, c.new, c.old).(string); !c.pass && !strings.Contains(msg, "codebank partitions grow --to N") {
				t.Errorf("%s: %s: message %q does not say what to do", overlay, c.what, msg)
			}
		}
	}
}

// TestGrowManifests: the KafkaTopics that codebank partitions grow --strimzi-dir writes for a new
// generation pass the committed Strimzi CRD's schema, and carry the label the policy and the
// cleanup select on.
func TestGrowManifests(t *testing.T) {
	schema := crdSchemas(t)["kafka.strimzi.io/v1, KafkaTopic"]
	if schema == nil {
		t.Fatal("no KafkaTopic schema")
	}
	s := &generations.Strimzi{Cluster: "codebank", Namespace: "codebank", Replicas: 3}
	docs := strings.Split(s.Render(2, processors.Topology{}.At(2, 24).AuthorizerTopics()), "\n---\n")
	if len(docs) != 6 { // a comment, then the five topics
		t.Fatalf("%d documents", len(docs))
	}
	for _, doc := range docs[1:] {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
			t.Fatal(err)
		}
		o := Object{Map: obj}
		if o.APIVersion() != "kafka.strimzi.io/v1" || o.Kind() != "KafkaTopic" {
			t.Errorf("%s: %s", o, o.APIVersion())
		}
		if errs := validateCustomResource(schema, obj); len(errs) > 0 {
			t.Errorf("%s: %v", o, errs)
		}
		labels, _ := obj["metadata"].(map[string]any)["labels"].(map[string]any)
		if labels["codebank.io/generation"] != "2" || labels["strimzi.io/cluster"] != "codebank" {
			t.Errorf("%s: labels %v", o, labels)
		}
	}
}
