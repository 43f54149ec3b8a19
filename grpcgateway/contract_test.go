package grpcgateway

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// repoRoot is the repository's root, from this package's directory.
const repoRoot = ".."

// TestBufBreakingCatchesBreaks: `make breaking` (buf breaking against proto/released.binpb, the
// released API) passes on the protos as they are, and fails on a copy where a field of the
// public API was renamed, naming it.
func TestBufBreakingCatchesBreaks(t *testing.T) {
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	breaking := func(dir string) (string, error) {
		cmd := exec.Command("go", "tool", "buf", "breaking", dir, "--against", filepath.Join(root, "proto", "released.binpb"))
		cmd.Dir = root // go tool: the buf pinned in the root module
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	copyTree := func(dst string) {
		t.Helper()
		err := filepath.WalkDir(filepath.Join(root, "proto"), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".proto") {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Join(dst, filepath.Dir(rel)), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		})
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(root, "buf.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, "buf.yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	same := t.TempDir()
	copyTree(same)
	if out, err := breaking(same); err != nil {
		t.Fatalf("buf breaking on the protos as they are: %v\n%s", err, out)
	}
	changed := t.TempDir()
	copyTree(changed)
	file := filepath.Join(changed, "proto", "codebank", "v1", "payments.proto")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	renamed := strings.Replace(string(b), "int64 amount_cents = ", "int64 amount_in_cents = ", 1)
	if renamed == string(b) {
		t.Fatal("payments.proto has no int64 amount_cents field to rename")
	}
	if err := os.WriteFile(file, []byte(renamed), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := breaking(changed); err == nil || !strings.Contains(out, "amount_cents") {
		t.Errorf("buf breaking with a field renamed: %v, want a failure naming it\n%s", err, out)
	}
}

// TestProtoModuleDependencies: the generated stubs are a module of their own (proto/go.mod),
// whose packages link only gRPC, protobuf, grpc-gateway and what they need: a checkout that
// imports the client pulls nothing of the bank's (no kustomize, Prometheus, chromedp, Kafka).
func TestProtoModuleDependencies(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}", "./...")
	cmd.Dir = filepath.Join(repoRoot, "proto")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps in proto/: %v", err)
	}
	modules := slices.Compact(slices.Sorted(slices.Values(strings.Fields(string(out)))))
	t.Logf("the modules a checkout importing github.com/codebank/codebank/proto links:\n  %s", strings.Join(modules, "\n  "))
	allowed := []string{
		"github.com/codebank/codebank/proto",
		"github.com/grpc-ecosystem/grpc-gateway/v2",
		"golang.org/x/net", "golang.org/x/sys", "golang.org/x/text",
		"google.golang.org/genproto/googleapis/api", "google.golang.org/genproto/googleapis/rpc",
		"google.golang.org/grpc", "google.golang.org/protobuf",
	}
	for _, m := range modules {
		if !slices.Contains(allowed, m) {
			t.Errorf("the proto module links %s", m)
		}
	}
	if !slices.Contains(modules, "google.golang.org/grpc") {
		t.Errorf("go list found %v", modules)
	}
	cmd = exec.Command("go", "list", "-m", "all")
	cmd.Dir = filepath.Join(repoRoot, "proto")
	if out, err = cmd.Output(); err != nil {
		t.Fatalf("go list -m all in proto/: %v", err)
	}
	for _, heavy := range []string{"kustomize", "prometheus", "chromedp", "sarama", "goka", "k8s.io", "codebank/codebank "} {
		if strings.Contains(string(out), heavy) {
			t.Errorf("the proto module's graph holds %s:\n%s", heavy, out)
		}
	}
}
