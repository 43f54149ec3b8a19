package generations

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
)

// Strimzi says that the cluster's topics belong to Strimzi's topic operator: a move then
// writes the new generation's KafkaTopic manifests for people to apply, instead of creating
// topics behind the operator's back (it would not know them), and waits for the topics; and
// cleanup asks for the old generation's KafkaTopics to be deleted, and waits for that, instead
// of deleting topics the operator would create again.
type Strimzi struct {
	// Dir receives the manifests, generation-<n>.yaml.
	Dir string
	// Cluster is the Kafka cluster's name (the strimzi.io/cluster label); Namespace the
	// namespace of its KafkaTopics, for the printed commands.
	Cluster, Namespace string
	// Replicas is the replication factor of the topics (3 on a cluster).
	Replicas int
	// Autoscaler names the authorizer's KEDA ScaledObject ("" for none): the printed command
	// raises its maximum to the new partition count and points its two lag triggers (payment
	// requests, then card commands, as in k8s/) at the new generation's group and topics.
	Autoscaler string
}

// autoscalerPatch returns the kubectl command that moves the authorizer's ScaledObject to the
// generation of topo.
func (s *Strimzi) autoscalerPatch(topo processors.Topology, partitions int) string {
	group := string(topo.AuthorizerGroup())
	return fmt.Sprintf(`%s patch scaledobject %s --type json -p '[{"op":"replace","path":"/spec/maxReplicaCount","value":%d},`+
		`{"op":"replace","path":"/spec/triggers/0/metadata/consumerGroup","value":%q},{"op":"replace","path":"/spec/triggers/0/metadata/topic","value":%q},`+
		`{"op":"replace","path":"/spec/triggers/1/metadata/consumerGroup","value":%q},{"op":"replace","path":"/spec/triggers/1/metadata/topic","value":%q}]'`,
		s.kubectl(), s.Autoscaler, partitions, group, topo.PaymentRequests().Name, group, topo.CardCommands().Name)
}

// Manifest returns the path of generation's manifests.
func (s *Strimzi) Manifest(generation int) string {
	return filepath.Join(s.Dir, "generation-"+strconv.Itoa(generation)+".yaml")
}

// invalidName is what a Kubernetes object name cannot hold.
var invalidName = regexp.MustCompile(`[^a-z0-9.-]+`)

// write writes the KafkaTopics of topics as generation's manifest and returns its path.
func (s *Strimzi) write(generation int, topics []stream.Topic) (string, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return "", err
	}
	path := s.Manifest(generation)
	return path, os.WriteFile(path, []byte(s.Render(generation, topics)), 0o644)
}

// Render returns the KafkaTopics of topics, of generation, as YAML documents.
func (s *Strimzi) Render(generation int, topics []stream.Topic) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# The KafkaTopics of generation %d of the authorizer's topics, written by codebank partitions grow.\n", generation)
	for _, t := range topics {
		name := strings.Trim(invalidName.ReplaceAllString(strings.ToLower(t.Name), "-"), "-.")
		fmt.Fprintf(&b, "---\napiVersion: kafka.strimzi.io/v1\nkind: KafkaTopic\nmetadata:\n  name: %s\n", name)
		if s.Namespace != "" {
			fmt.Fprintf(&b, "  namespace: %s\n", s.Namespace)
		}
		fmt.Fprintf(&b, "  labels:\n    strimzi.io/cluster: %s\n    codebank.io/generation: %q\n", s.Cluster, strconv.Itoa(generation))
		fmt.Fprintf(&b, "spec:\n  topicName: %s\n  partitions: %d\n  replicas: %d\n", t.Name, t.Partitions, max(s.Replicas, 1))
		keys := make([]string, 0, len(t.Config))
		for k := range t.Config {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if s.Replicas >= 3 {
			keys = append(keys, "min.insync.replicas")
		}
		if len(keys) > 0 {
			b.WriteString("  config:\n")
		}
		for _, k := range keys {
			v, ok := t.Config[k]
			if !ok && k == "min.insync.replicas" {
				v = "2"
			}
			fmt.Fprintf(&b, "    %s: %q\n", k, v)
		}
	}
	return b.String()
}

// kubectl is how the printed commands start.
func (s *Strimzi) kubectl() string {
	if s.Namespace == "" {
		return "kubectl"
	}
	return "kubectl -n " + s.Namespace
}
