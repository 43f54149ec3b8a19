package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/testenv/certs"
	"github.com/codebank/codebank/k8s"
)

// manifest is the part of a Kubernetes object this test reads.
type manifest struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
	Spec       struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				Containers []container `yaml:"containers"`
				Volumes    []struct {
					Name   string `yaml:"name"`
					Secret struct {
						SecretName string `yaml:"secretName"`
						Items      []struct {
							Key  string `yaml:"key"`
							Path string `yaml:"path"`
						} `yaml:"items"`
					} `yaml:"secret"`
				} `yaml:"volumes"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type container struct {
	Args  []string `yaml:"args"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	Env []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom struct {
			SecretKeyRef struct {
				Name string `yaml:"name"`
				Key  string `yaml:"key"`
			} `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		SecretRef struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Probes map[string]any `yaml:",inline"`
}

func readManifests(t *testing.T, files ...string) []manifest {
	t.Helper()
	var out []manifest
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			var m manifest
			if err := dec.Decode(&m); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			out = append(out, m)
		}
	}
	return out
}

// roleVariables returns the CODEBANK_* variables of a command's flags, from its help.
func roleVariables(t *testing.T, role string) []string {
	t.Helper()
	var vars []string
	for _, m := range regexp.MustCompile(`\[(CODEBANK_[A-Z0-9_]+)\]`).FindAllStringSubmatch(helpOf(t, role), -1) {
		vars = append(vars, m[1])
	}
	return vars
}

// helpOf returns what codebank COMMAND --help prints.
func helpOf(t *testing.T, command string) string {
	t.Helper()
	var help bytes.Buffer
	if err := program.Run(context.Background(), []string{command, "--help"}, &help, &help); err != nil {
		t.Fatalf("codebank %s --help: %v", command, err)
	}
	return help.String()
}

// renderedManifests returns the objects of a k8s overlay (k8s.Render), in the form this test
// reads.
func renderedManifests(t *testing.T, overlay string) []manifest {
	t.Helper()
	objs, err := k8s.Render(filepath.Join("..", "..", "k8s", "overlays", overlay))
	if err != nil {
		t.Fatal(err)
	}
	var out []manifest
	for _, o := range objs {
		var m manifest
		if err := yaml.Unmarshal(o.JSON, &m); err != nil {
			t.Fatalf("%s: %v", o, err)
		}
		out = append(out, m)
	}
	return out
}

// TestKubernetesManifests: what k8s/ deploys (the prod overlay, rendered) is what the roles
// read. Every CODEBANK_* variable a pod is given is a flag of its role (a renamed flag is caught
// here, not by a pod that silently ignores it); every secret it refers to exists in
// secret.example.yaml or is made by an operator for the overlay's custom resources (Strimzi's
// Kafka users and cluster CA); probes and the scrape annotation point at the ops port; and each
// role, given exactly its pod's variables (secrets made valid, files of mounted Secrets and
// paths moved into a temporary directory), gets past its configuration and reaches for Kafka
// instead of refusing to start. (Package k8s checks every object of every overlay strictly.)
func TestKubernetesManifests(t *testing.T) {
	dir := filepath.Join("..", "..", "k8s")
	manifests := renderedManifests(t, "prod")
	secrets := map[string]map[string]string{}
	for _, m := range readManifests(t, filepath.Join(dir, "secret.example.yaml")) {
		if m.Kind != "Secret" {
			t.Errorf("secret.example.yaml holds a %s", m.Kind)
		}
		secrets[m.Metadata.Name] = m.StringData
	}
	// The Secrets the operators make: Strimzi's of each KafkaUser and of the cluster's CA.
	ca := certs.NewCA(t)
	for _, m := range manifests {
		switch m.Kind {
		case "KafkaUser":
			secrets[m.Metadata.Name] = map[string]string{"password": "", "sasl.jaas.config": ""}
		case "Kafka":
			secrets[m.Metadata.Name+"-cluster-ca-cert"] = map[string]string{"ca.crt": string(ca.CertPEM())}
		case "Elasticsearch": // ECK's CA of the HTTP certificate
			secrets[m.Metadata.Name+"-es-http-certs-public"] = map[string]string{"ca.crt": string(ca.CertPEM()), "tls.crt": ""}
		}
	}

	// The ConfigMap every pod reads: each line a flag of some role.
	config := map[string]string{}
	var deployed []manifest
	for _, m := range manifests {
		if m.Kind == "ConfigMap" && strings.HasPrefix(m.Metadata.Name, "codebank-config-") {
			config = m.Data
		}
		if len(m.Spec.Template.Spec.Containers) > 0 {
			deployed = append(deployed, m)
		}
	}
	if len(config) == 0 {
		t.Fatal("no ConfigMap codebank-config")
	}
	known := map[string]bool{}
	for name := range program.Commands {
		if name == "help" {
			continue
		}
		for _, v := range roleVariables(t, name) {
			known[v] = true
		}
	}
	for k := range config {
		if !known[k] {
			t.Errorf("codebank.env sets %s, which no command reads", k)
		}
	}

	// A secret value that passes the checks, for each of the example's placeholders.
	keysFile := filepath.Join(t.TempDir(), "api-keys")
	key, _ := apikey.New("merchant-1")
	if err := os.WriteFile(keysFile, []byte(apikey.Line(apikey.Principal{KeyID: "merchant-1", Role: apikey.Merchant,
		Merchant: "code-store", MerchantName: "Code Store"}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	valid := func(name string) string {
		switch name {
		case "CODEBANK_CARD_KEYS":
			return "k1:" + strings.Repeat("c", 40)
		case "CODEBANK_MERCHANT_KEY", "CODEBANK_PAGES_KEY":
			return key
		}
		return strings.Repeat(string(rune('a'+len(name)%20)), 40)
	}

	roles := map[string]bool{}
	for _, m := range deployed {
		for _, c := range m.Spec.Template.Spec.Containers {
			if len(c.Args) == 0 {
				t.Errorf("%s %s: a container without a role", m.Kind, m.Metadata.Name)
				continue
			}
			role := c.Args[0]
			roles[role] = true
			vars := roleVariables(t, role)
			env := map[string]string{}
			for k, v := range config {
				if slices.Contains(vars, k) {
					env[k] = v
				}
			}
			files := map[string]string{} // path of a file of a mounted Secret → its key
			for _, vm := range c.VolumeMounts {
				for _, v := range m.Spec.Template.Spec.Volumes {
					if v.Name == vm.Name && v.Secret.SecretName != "" {
						data, ok := secrets[v.Secret.SecretName]
						if !ok {
							t.Errorf("%s mounts Secret %s, which neither secret.example.yaml shows nor an operator makes", m.Metadata.Name, v.Secret.SecretName)
						}
						for k := range data {
							files[filepath.Join(vm.MountPath, k)] = k
						}
						for _, item := range v.Secret.Items {
							delete(files, filepath.Join(vm.MountPath, item.Key))
							files[filepath.Join(vm.MountPath, item.Path)] = item.Key
						}
					}
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.SecretRef.Name == "" {
					continue
				}
				data, ok := secrets[ef.SecretRef.Name]
				if !ok {
					t.Errorf("%s reads Secret %s, which neither secret.example.yaml shows nor an operator makes", m.Metadata.Name, ef.SecretRef.Name)
				}
				for k := range data {
					if !slices.Contains(vars, k) {
						t.Errorf("%s (codebank %s) is given %s of Secret %s, which it does not read", m.Metadata.Name, role, k, ef.SecretRef.Name)
					}
					env[k] = valid(k)
				}
			}
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "CODEBANK_") {
					continue
				}
				if !slices.Contains(vars, e.Name) {
					t.Errorf("%s sets %s, which codebank %s does not read", m.Metadata.Name, e.Name, role)
				}
				ref := e.ValueFrom.SecretKeyRef
				switch {
				case ref.Name != "":
					if _, ok := secrets[ref.Name][ref.Key]; !ok {
						t.Errorf("%s: %s refers to %s of Secret %s, which neither secret.example.yaml shows nor an operator makes", m.Metadata.Name, e.Name, ref.Key, ref.Name)
					}
					env[e.Name] = valid(ref.Key)
				default:
					env[e.Name] = e.Value
				}
			}

			// Every variable naming a file of a mounted Secret gets a valid file in its place: the
			// CA of the Kafka cluster (or of Elasticsearch), the keys file, a password.
			for k, v := range env {
				key, mounted := files[v]
				switch {
				case !mounted && strings.HasPrefix(v, "/etc/"):
					t.Errorf("%s: %s=%s is not a file of a mounted Secret", m.Metadata.Name, k, v)
				case key == "ca.crt":
					env[k] = ca.WriteFile(t, t.TempDir())
				case key == "api-keys":
					env[k] = keysFile
				case key == "password":
					f := filepath.Join(t.TempDir(), "password")
					if err := os.WriteFile(f, []byte(valid(k)), 0o600); err != nil {
						t.Fatal(err)
					}
					env[k] = f
				}
			}

			// The ops port: probed, scraped, and where the role listens by default.
			ops := 0
			for _, p := range c.Ports {
				if p.Name == "ops" {
					ops = p.ContainerPort
				}
			}
			if role != "setup" {
				opsDefault := regexp.MustCompile(`(?s)--ops-addr .*?\(default :(\d+)\)`).FindStringSubmatch(helpOf(t, role))
				if opsDefault == nil || strconv.Itoa(ops) != opsDefault[1] || env["CODEBANK_OPS_ADDR"] != "" {
					t.Errorf("%s: ops port %d, want the role's default ops address %v", m.Metadata.Name, ops, opsDefault)
				}
				if a := m.Spec.Template.Metadata.Annotations; a["prometheus.io/port"] != strconv.Itoa(ops) || a["prometheus.io/path"] != "/metrics" {
					t.Errorf("%s: scraped at %q%s, want the ops port %d", m.Metadata.Name, a["prometheus.io/port"], a["prometheus.io/path"], ops)
				}
				for _, probe := range []string{"startupProbe", "livenessProbe", "readinessProbe"} {
					p, _ := c.Probes[probe].(map[string]any)
					get, _ := p["httpGet"].(map[string]any)
					if get["port"] != "ops" {
						t.Errorf("%s: %s on port %v, want ops", m.Metadata.Name, probe, get["port"])
					}
				}
			}

			// Start the role with exactly this environment.
			for _, v := range vars {
				t.Setenv(v, "")
				os.Unsetenv(v)
			}
			for k, v := range env {
				t.Setenv(k, v)
			}
			tmp := t.TempDir()
			for _, v := range []string{"CODEBANK_STORAGE_DIR"} {
				if _, ok := env[v]; ok {
					t.Setenv(v, tmp)
				}
			}
			for _, v := range []string{"CODEBANK_GRPC_ADDR", "CODEBANK_HTTP_ADDR", "CODEBANK_OPS_ADDR"} {
				if slices.Contains(vars, v) {
					t.Setenv(v, "127.0.0.1:0")
				}
			}
			t.Setenv("CODEBANK_BROKERS", "127.0.0.1:1")
			t.Setenv("CODEBANK_LOG_LEVEL", "error")
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := program.Run(ctx, []string{role}, io.Discard, &stderr)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) && (err == nil || !strings.Contains(err.Error(), "kafka at")) {
				t.Errorf("%s: codebank %s with its pod's environment = %v, want it waiting for Kafka; %s", m.Metadata.Name, role, err, stderr.String())
			}
		}
	}
	for _, role := range []string{"setup", "ingress", "authorizer", "statements", "web"} {
		if !roles[role] {
			t.Errorf("no manifest runs codebank %s", role)
		}
	}
}
