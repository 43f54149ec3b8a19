package main

import (
	"bytes"
	"context"
	"io"
	"os/exec"
	"strings"
	"testing"

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
// developer tools: no local server launcher, test harness or load generator.
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
	}
	if len(prod) < 10 {
		t.Fatalf("go list found only %v", prod)
	}
}
