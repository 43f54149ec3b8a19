package main

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/cli"
)

// TestRolesRefusePublishedSecrets: each serving role given a published demo secret (each of its
// secrets in turn, the others its own) stops before it reaches for Kafka, naming the secret and
// its file; with --demo-secrets it goes on.
func TestRolesRefusePublishedSecrets(t *testing.T) {
	for _, v := range []string{"TOKEN_KEY", "CARD_KEYS", "API_KEYS_FILE", "STORE_SECRET", "MERCHANT_KEY", "PAGES_KEY", "DEMO_SECRETS"} {
		t.Setenv("CODEBANK_"+v, "")
		os.Unsetenv("CODEBANK_" + v)
		os.Unsetenv("CODEBANK_" + v + "_FILE")
	}
	dir := t.TempDir()
	ownKeys := filepath.Join(dir, "api-keys")
	key, _ := apikey.New("ops-1")
	if err := os.WriteFile(ownKeys, []byte(apikey.Line(apikey.Principal{KeyID: "ops-1", Role: apikey.Admin}, key)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	demo := func(name string) string { return filepath.Join("..", "..", filepath.FromSlash(cli.PublishedDir), name) }
	own := map[string][]string{
		"token-key":     {"--token-key", strings.Repeat("t", 40)},
		"card-keys":     {"--card-keys", "k1:" + strings.Repeat("c", 40)},
		"api-keys-file": {"--api-keys-file", ownKeys},
		"store-secret":  {"--store-secret", strings.Repeat("s", 40)},
		"merchant-key":  {"--merchant-key", "cb_store-1_own"},
		"pages-key":     {"--pages-key", "cb_pages-1_own"},
	}
	demos := map[string][]string{
		"token-key":     {"--token-key-file", demo("token-key")},
		"card-keys":     {"--card-keys-file", demo("card-keys")},
		"api-keys-file": {"--api-keys-file", demo("api-keys")},
		"store-secret":  {"--store-secret-file", demo("store-secret")},
		"merchant-key":  {"--merchant-key-file", demo("merchant-key")},
		"pages-key":     {"--pages-key-file", demo("pages-key")},
	}
	roles := map[string][]string{
		"authorizer": {"token-key"},
		"ingress":    {"token-key", "card-keys", "api-keys-file"},
		"statements": {"api-keys-file"},
		"web":        {"store-secret", "merchant-key", "pages-key"},
		"all":        {"token-key", "card-keys", "api-keys-file", "store-secret", "merchant-key", "pages-key"},
	}
	// Each role's own flags for where it listens and keeps its tables: nothing is reached.
	extra := map[string][]string{
		"authorizer": {"--storage-dir", dir},
		"ingress":    {"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"},
		"statements": {"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--storage-dir", dir},
		"web":        {"--http-addr", "127.0.0.1:0", "--storage-dir", dir},
		"all":        {"--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--storage-dir", dir},
	}
	run := func(role string, args []string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond) // secrets are checked before anything waits
		defer cancel()
		args = append(append(append([]string{role}, args...), extra[role]...), "--brokers", "127.0.0.1:1", "--log-level", "error", "--ops-addr", "")
		return program.Run(ctx, args, io.Discard, io.Discard)
	}
	for role, secrets := range roles {
		for _, demoed := range secrets {
			var args []string
			for _, s := range secrets {
				if s == demoed {
					args = append(args, demos[s]...)
				} else {
					args = append(args, own[s]...)
				}
			}
			err := run(role, args)
			if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "demo secret") || !strings.Contains(err.Error(), "--demo-secrets") {
				t.Errorf("codebank %s with the demo %s = %v, want a refusal naming it and --demo-secrets", role, demoed, err)
			}
			if err := run(role, append(args, "--demo-secrets")); err == nil || errors.Is(err, cli.ErrUsage) {
				t.Errorf("codebank %s with the demo %s and --demo-secrets = %v, want it past its configuration, on to Kafka", role, demoed, err)
			}
		}
	}
}

// TestDemoSecretsOnlyInCompose: nothing that deploys the bank but compose.yaml admits the
// published demo secrets.
func TestDemoSecretsOnlyInCompose(t *testing.T) {
	root := filepath.Join("..", "..")
	var places []string
	for _, dir := range []string{"k8s", "deploy"} {
		filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".md") || strings.HasSuffix(path, ".go") {
				return err
			}
			places = append(places, path)
			return nil
		})
	}
	places = append(places, filepath.Join(root, "Dockerfile"))
	for _, path := range places {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "CODEBANK_DEMO_SECRETS") || strings.Contains(string(b), "demo-secrets=") || strings.Contains(string(b), `"--demo-secrets"`) {
			t.Errorf("%s admits the published demo secrets: only compose.yaml may", path)
		}
	}
	if len(places) < 20 {
		t.Fatalf("looked at %d files only", len(places))
	}
	compose, err := os.ReadFile(filepath.Join(root, "compose.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(compose), `CODEBANK_DEMO_SECRETS: "true"`); n != 4 {
		t.Errorf("compose.yaml sets CODEBANK_DEMO_SECRETS for %d services, want its 4 roles", n)
	}
}
