package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/cli"
)

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if err := program.Run(context.Background(), []string{"--help"}, &out, &out); err != nil || !strings.Contains(out.String(), "Commands:") {
		t.Fatalf("codebank --help = %v: %s", err, out.String())
	}
	for name := range program.Commands {
		var out bytes.Buffer
		err := program.Run(context.Background(), []string{name, "--help"}, &out, &out)
		if err != nil || !strings.Contains(out.String(), "Usage: codebank "+name) {
			t.Errorf("codebank %s --help = %v: %q", name, err, out.String())
		}
	}
	if err := program.Run(context.Background(), []string{"nope"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown command succeeded")
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("CODEBANK_PARTITIONS", "9")
	t.Setenv("CODEBANK_BROKERS", "a:1,b:2")
	var c config
	fs := cli.NewFlagSet("codebank x", io.Discard)
	c.kafkaFlags(fs)
	if err := cli.Parse(fs, []string{"--brokers", "flag:3"}); err != nil {
		t.Fatal(err)
	}
	if c.Partitions != 9 || c.Brokers != "flag:3" {
		t.Errorf("partitions %d brokers %q: want 9 from the environment and the flag over the environment", c.Partitions, c.Brokers)
	}
	t.Setenv("CODEBANK_REPLICATION", "many")
	if err := cli.Parse(fs, nil); err == nil || !strings.Contains(err.Error(), "CODEBANK_REPLICATION") {
		t.Errorf("bad environment value: %v, want an error naming the variable", err)
	}
}

// TestProductionBinaryImports: the production binary, which the image ships, links none of the
// developer tools (no local server launcher, test harness or load generator) and no test code
// of anyone: not the standard library's testing, nor any package named for tests or mocks
// (gomock through a dependency's mock files, gRPC's bufconn).
func TestProductionBinaryImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	var prod []string
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/codebank/codebank/") {
			prod = append(prod, pkg)
		}
		for _, dev := range []string{"/internal/devenv/", "/internal/testenv/", "/cmd/codebank-dev"} {
			if strings.Contains(pkg, "github.com/codebank/codebank"+dev) {
				t.Errorf("codebank links %s", pkg)
			}
		}
		if isTestCode(pkg) {
			t.Errorf("codebank links test code: %s", pkg)
		}
	}
	if len(prod) < 10 {
		t.Fatalf("go list found only %v", prod)
	}
}

// isTestCode reports whether a package is test code: the standard library's testing (and its
// sub-packages), or one whose path has a part that names tests or mocks (testenv, tester,
// testify, gomock, bufconn). The runtime's own
// internal/testlog and internal/synctest, which every program links through os and sync, are
// not.
func isTestCode(pkg string) bool {
	if pkg == "testing" || strings.HasPrefix(pkg, "testing/") {
		return true
	}
	if strings.HasPrefix(pkg, "internal/") {
		return false
	}
	for _, part := range strings.Split(pkg, "/") {
		p := strings.ToLower(part)
		p = strings.NewReplacer("latest", "", "attest", "").Replace(p) // words that only contain "test"
		if strings.Contains(p, "test") || strings.Contains(p, "mock") || p == "bufconn" {
			return true
		}
	}
	return false
}

// TestIsTestCode: what TestProductionBinaryImports refuses.
func TestIsTestCode(t *testing.T) {
	for pkg, want := range map[string]bool{
		"testing": true, "testing/iotest": true, "go.uber.org/mock/gomock": true, "google.golang.org/grpc/test/bufconn": true,
		"github.com/lovoo/goka/tester": true, "github.com/codebank/codebank/internal/testenv/wait": true, "github.com/stretchr/testify/assert": true,
		"github.com/sigstore/attestation": false, "example.com/latest/v2": false,
		"internal/testlog": false, "os": false, "github.com/IBM/sarama": false, "github.com/golang/mock/mockgen": true,
	} {
		if got := isTestCode(pkg); got != want {
			t.Errorf("isTestCode(%q) = %v, want %v", pkg, got, want)
		}
	}
}

// TestRolesRefuseToStartWithoutSecrets: each serving role stops at once, before reaching Kafka,
// naming the secret it lacks; there is no default secret, and a short one is refused.
func TestRolesRefuseToStartWithoutSecrets(t *testing.T) {
	for _, v := range []string{"TOKEN_KEY", "CARD_KEYS", "API_KEYS_FILE", "STORE_SECRET", "MERCHANT_KEY", "PAGES_KEY", "SECRET"} {
		t.Setenv("CODEBANK_"+v, "")
		t.Setenv("CODEBANK_"+v+"_FILE", "")
	}
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "api-keys")
	key, _ := apikey.New("ops-1")
	if err := os.WriteFile(keysFile, []byte(apikey.Line(apikey.Principal{KeyID: "ops-1", Role: apikey.Admin}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("k", 40)
	t.Setenv("CODEBANK_STORAGE_DIR", dir) // not a flag of every role
	unreachable := []string{"--brokers", "127.0.0.1:1", "--log-level", "error", "--ops-addr", ""}
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"authorizer"}, "CODEBANK_TOKEN_KEY"},
		{[]string{"authorizer", "--token-key", "short"}, "at least 32"},
		{[]string{"ingress"}, "CODEBANK_TOKEN_KEY"},
		{[]string{"ingress", "--token-key", long}, "CODEBANK_CARD_KEYS"},
		{[]string{"ingress", "--token-key", long, "--card-keys", "k1:" + long}, "card key k1 is the tokenization key"},
		{[]string{"ingress", "--token-key", long, "--card-keys", "k1:" + strings.Repeat("c", 40)}, "CODEBANK_API_KEYS_FILE"},
		{[]string{"ingress", "--token-key", long, "--card-keys", "k1:" + strings.Repeat("c", 40), "--api-keys-file", keysFile, "--legacy-merchant", "nobody"},
			"no merchant key of the keys file names it"},
		{[]string{"statements"}, "CODEBANK_API_KEYS_FILE"},
		{[]string{"web"}, "CODEBANK_STORE_SECRET"},
		{[]string{"web", "--store-secret", "short"}, "at least 32 bytes"},
		{[]string{"web", "--store-secret", long}, "CODEBANK_MERCHANT_KEY"},
		{[]string{"web", "--store-secret", long, "--merchant-key", "m"}, "CODEBANK_PAGES_KEY"},
		{[]string{"all", "--token-key-file", filepath.Join(dir, "missing")}, "token-key-file"},
	}
	for _, tt := range tests {
		var stderr bytes.Buffer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := program.Run(ctx, append(tt.args, unreachable...), io.Discard, &stderr)
		cancel()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("codebank %s = %v, want an error naming %s", strings.Join(tt.args, " "), err, tt.want)
		}
		if strings.Contains(stderr.String(), "kafka at") {
			t.Errorf("codebank %s reached for Kafka before refusing", strings.Join(tt.args, " "))
		}
	}
}
