package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/cli"
)

// commandLines returns every command line of codebank that has flags of its own: each command,
// and each verb of those that take one.
func commandLines() [][]string {
	verbs := map[string][]string{"cards": {"issue", "get", "block", "unblock"}, "partitions": {"status", "grow", "rollback", "cleanup"}, "keys": {"new"}}
	out := [][]string{{"analytics", "prune"}} // besides analytics itself
	for name := range program.Commands {
		if vs, ok := verbs[name]; ok {
			for _, v := range vs {
				out = append(out, []string{name, v})
			}
			continue
		}
		out = append(out, []string{name})
	}
	return out
}

// TestHelp: help goes to stdout, for the program and every command (and verb), and exits 0;
// an unknown command is an error.
func TestHelp(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := program.Run(context.Background(), []string{"--help"}, &out, &errOut); err != nil || !strings.Contains(out.String(), "Commands:") || errOut.Len() > 0 {
		t.Fatalf("codebank --help = %v: stdout %q, stderr %q", err, out.String(), errOut.String())
	}
	for name := range program.Commands {
		var out, errOut bytes.Buffer
		err := program.Run(context.Background(), []string{name, "--help"}, &out, &errOut)
		if err != nil || !strings.Contains(out.String(), "Usage: codebank "+name) || errOut.Len() > 0 {
			t.Errorf("codebank %s --help = %v: stdout %q, stderr %q", name, err, out.String(), errOut.String())
		}
	}
	for _, line := range commandLines() {
		var out, errOut bytes.Buffer
		err := program.Run(context.Background(), append(line, "-h"), &out, &errOut)
		if err != nil || !strings.Contains(out.String(), "Usage: codebank "+strings.Join(line, " ")) || errOut.Len() > 0 {
			t.Errorf("codebank %s -h = %v: stdout %q, stderr %q", strings.Join(line, " "), err, out.String(), errOut.String())
		}
	}
	if err := program.Run(context.Background(), []string{"nope"}, io.Discard, io.Discard); err == nil {
		t.Error("unknown command succeeded")
	}
	out.Reset()
	if err := program.Run(context.Background(), []string{"--version"}, &out, io.Discard); err != nil || !strings.HasPrefix(out.String(), "codebank ") || !strings.Contains(out.String(), "revision") {
		t.Errorf("codebank --version = %v: %q", err, out.String())
	}
}

// TestBuildInfoMetric: every role's registry exports codebank_build_info, 1, with the build's
// version, revision and Go version.
func TestBuildInfoMetric(t *testing.T) {
	mfs, err := newRegistry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "codebank_build_info" {
			continue
		}
		labels := map[string]string{}
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if len(mf.GetMetric()) != 1 || mf.GetMetric()[0].GetGauge().GetValue() != 1 || labels["goversion"] != runtime.Version() || labels["version"] == "" || labels["revision"] == "" {
			t.Errorf("codebank_build_info = %v", mf)
		}
		return
	}
	t.Error("no codebank_build_info")
}

// sharedVariables are the environment variables that two commands read with different help on
// purpose, and why.
var sharedVariables = map[string]string{
	"CODEBANK_OPS_ADDR": "probe reads the operations address of the role beside it, so that the two cannot disagree",
}

// TestEnvironmentVariablesMeanOneThing: a variable read by several commands means the same in
// each (the same help; the default may be the role's), so that setting it for one command
// never changes another's behaviour: pay's and probe's timeouts, a card number, a key's id are
// each their command's own (CODEBANK_PAY_TIMEOUT, CODEBANK_PROBE_TIMEOUT).
func TestEnvironmentVariablesMeanOneThing(t *testing.T) {
	flagRE := regexp.MustCompile(`(?m)^  --(\S+)  \[(\S+)\]\n      (.*?)( \(default [^)]*\))?$`)
	type use struct{ line, help string }
	byVar := map[string][]use{}
	for _, line := range commandLines() {
		var out bytes.Buffer
		if err := program.Run(context.Background(), append(line, "--help"), &out, io.Discard); err != nil {
			t.Fatalf("codebank %s --help: %v", strings.Join(line, " "), err)
		}
		for _, m := range flagRE.FindAllStringSubmatch(out.String(), -1) {
			byVar[m[2]] = append(byVar[m[2]], use{strings.Join(line, " "), m[3]})
		}
	}
	for v, uses := range byVar {
		if sharedVariables[v] != "" {
			continue
		}
		for _, u := range uses[1:] {
			if u.help != uses[0].help {
				t.Errorf("%s means %q to codebank %s and %q to codebank %s: give one of them a variable of its own (cli.Scope)", v, uses[0].help, uses[0].line, u.help, u.line)
			}
		}
	}
	for _, v := range []string{"CODEBANK_PAY_TIMEOUT", "CODEBANK_PROBE_TIMEOUT", "CODEBANK_PAY_CARD", "CODEBANK_PAY_CVV", "CODEBANK_KEYS_ID", "CODEBANK_KEYS_NAME"} {
		if len(byVar[v]) == 0 {
			t.Errorf("no command reads %s", v)
		}
	}
	for _, v := range []string{"CODEBANK_TIMEOUT", "CODEBANK_CARD", "CODEBANK_CVV", "CODEBANK_ID", "CODEBANK_NAME"} {
		if len(byVar[v]) > 0 {
			t.Errorf("%s is read by %v: too general a name for one command's flag", v, byVar[v])
		}
	}
}

// TestPayListsEveryMissingFlag: pay without its flags names them all at once, with their
// variables, before reaching for the bank.
func TestPayListsEveryMissingFlag(t *testing.T) {
	for _, v := range []string{"CARD", "HOLDER", "EXP", "CVV", "AMOUNT"} {
		t.Setenv("CODEBANK_PAY_"+v, "")
		os.Unsetenv("CODEBANK_PAY_" + v)
	}
	err := program.Run(context.Background(), []string{"pay"}, io.Discard, io.Discard)
	for _, want := range []string{"--card (CODEBANK_PAY_CARD)", "--holder", "--exp", "--cvv", "--amount (CODEBANK_PAY_AMOUNT)"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("codebank pay = %v, want it to name %s", err, want)
		}
	}
	t.Setenv("CODEBANK_PAY_CARD", "5454540687568555")
	t.Setenv("CODEBANK_PAY_CVV", "123")
	err = program.Run(context.Background(), []string{"pay", "--holder", "Maria Silva"}, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "missing --exp (CODEBANK_PAY_EXP), --amount (CODEBANK_PAY_AMOUNT)") {
		t.Errorf("codebank pay with card, CVV and holder = %v, want only --exp and --amount missing", err)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("CODEBANK_PARTITIONS", "9")
	t.Setenv("CODEBANK_BROKERS", "a:1,b:2")
	var c config
	fs := cli.NewFlagSet("codebank x", io.Discard, io.Discard)
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
