package apikey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func newKey(t *testing.T, id string) string {
	t.Helper()
	k, err := New(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAuthenticate(t *testing.T) {
	store, ops := newKey(t, "store-1"), newKey(t, "ops-1")
	file := "# the bank's keys\n\n" +
		Line(Principal{KeyID: "store-1", Role: Merchant, Merchant: "code-store", MerchantName: "Code Store"}, store) + "\n" +
		Line(Principal{KeyID: "ops-1", Role: Admin}, ops) + "\n"
	set, err := Parse(strings.NewReader(file))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := set.Authenticate(store); err != nil || p != (Principal{KeyID: "store-1", Role: Merchant, Merchant: "code-store", MerchantName: "Code Store"}) {
		t.Errorf("store key = %+v, %v", p, err)
	}
	if p, err := set.Authenticate(ops); err != nil || p.Role != Admin || p.Merchant != "" {
		t.Errorf("ops key = %+v, %v", p, err)
	}
	// Same id, another secret: a guess of the secret for a known id.
	forged := newKey(t, "store-1")
	for _, bad := range []string{forged, newKey(t, "nobody"), "cb_store-1", "Bearer " + store, store + "x", strings.ToUpper(store), "cb__x"} {
		if _, err := set.Authenticate(bad); !errors.Is(err, ErrUnknown) {
			t.Errorf("Authenticate(%q) = %v, want ErrUnknown", bad, err)
		}
	}
	if _, err := set.Authenticate(""); !errors.Is(err, ErrMissing) {
		t.Errorf("Authenticate(\"\") = %v, want ErrMissing", err)
	}
	if name, ok := set.MerchantName("code-store"); !ok || name != "Code Store" {
		t.Errorf("MerchantName = %q, %v", name, ok)
	}
	if id, ok := KeyID(store); !ok || id != "store-1" {
		t.Errorf("KeyID = %q, %v", id, ok)
	}
}

func TestParseRefusesBadLines(t *testing.T) {
	hash := Hash("x")
	for _, line := range []string{
		"store-1 merchant " + hash,                            // no merchant
		"store-1 merchant " + hash + " Code-Store Code Store", // merchant id not lower case
		"ops-1 admin " + hash + " code-store Code Store",      // an admin key naming a merchant
		"ops-1 root " + hash,                                  // no such role
		"ops-1 admin 1234",                                    // not a SHA-256
		"Ops admin " + hash,                                   // key id not lower case
		"ops-1 admin",                                         // too short
		"ops-1 admin " + hash + "\nops-1 pages " + hash,       // twice
	} {
		if _, err := Parse(strings.NewReader(line)); err == nil || !strings.HasPrefix(err.Error(), "keys file line ") {
			t.Errorf("Parse(%q) = %v, want an error naming the line", line, err)
		}
	}
	if _, err := New("Not Valid"); err == nil {
		t.Error("New accepted a bad id")
	}
}

// TestStoreReloads: a key added is accepted, a key deleted (revoked) refused, after the file
// changes; a file that no longer parses leaves the last good keys in use.
func TestStoreReloads(t *testing.T) {
	old, next := newKey(t, "store-1"), newKey(t, "store-2")
	line := func(id, key string) string {
		return Line(Principal{KeyID: id, Role: Merchant, Merchant: "code-store", MerchantName: "Code Store"}, key) + "\n"
	}
	path := filepath.Join(t.TempDir(), "api-keys")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(line("store-1", old))
	s, err := Open(path, prometheus.NewRegistry(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(next); err == nil {
		t.Fatal("a key not yet in the file was accepted")
	}
	// Rotation: both valid while callers move.
	write(line("store-1", old) + line("store-2", next))
	if err := s.Reload(); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{old, next} {
		if _, err := s.Authenticate(k); err != nil {
			t.Errorf("during the rotation: %v", err)
		}
	}
	// Revocation.
	write(line("store-2", next))
	s.Reload()
	if _, err := s.Authenticate(old); !errors.Is(err, ErrUnknown) {
		t.Errorf("the revoked key: %v, want ErrUnknown", err)
	}
	// A broken file keeps the last good keys.
	write("store-3 merchant nothex code-store Code Store\n")
	if err := s.Reload(); err == nil {
		t.Error("Reload accepted a broken file")
	}
	if _, err := s.Authenticate(next); err != nil {
		t.Errorf("after a broken file: %v, want the last good keys in use", err)
	}
	// An empty file is refused at start.
	write("# nobody\n")
	if _, err := Open(path, nil, nil); err == nil {
		t.Error("Open accepted a file without keys")
	}
}
