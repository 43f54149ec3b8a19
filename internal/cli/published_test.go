package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/card"
)

// TestPublishedDemoSecrets: the secrets the roles refuse as published are exactly those of
// deploy/compose/demo-secrets, each under its file's name: change a file there, and this list
// must change with it.
func TestPublishedDemoSecrets(t *testing.T) {
	dir := filepath.Join("..", "..", filepath.FromSlash(PublishedDir))
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	found := map[string]string{} // hex SHA-256 -> the file it is in
	add := func(file, secret string) {
		sum := sha256.Sum256([]byte(secret))
		if _, ok := found[hex.EncodeToString(sum[:])]; !ok {
			found[hex.EncodeToString(sum[:])] = file
		}
	}
	for _, f := range []string{"token-key", "store-secret", "merchant-key", "pages-key"} {
		add(f, read(f))
	}
	cks, err := card.ParseCardKeys(read("card-keys"))
	if err != nil {
		t.Fatal(err)
	}
	for _, ck := range cks {
		add("card-keys", string(ck.Secret))
	}
	for _, line := range strings.Split(read("credentials.env"), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			add("credentials.env", v)
		}
	}
	keys, err := apikey.Parse(strings.NewReader(read("api-keys")))
	if err != nil {
		t.Fatal(err)
	}
	for id, sum := range keys.Hashes() {
		if _, ok := found[hex.EncodeToString(sum[:])]; !ok {
			t.Errorf("the demo keys file admits %s, whose key is in none of the directory's files", id)
		}
	}
	for sum, file := range found {
		if got, ok := published[sum]; !ok || got != file {
			t.Errorf("a secret of %s is published as %q (%v): update published", file, got, ok)
		}
	}
	for sum, file := range published {
		if _, ok := found[sum]; !ok {
			t.Errorf("published lists a secret of %s that is no longer there", file)
		}
	}
	if len(found) != 6 {
		t.Errorf("found %d secrets in %s, want 6", len(found), dir)
	}
}
