package apikey

import (
	"errors"
	"log/slog"
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
// changes.
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
	s, err := Open(path, prometheus.NewRegistry(), nil, nil)
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
	// An empty file is refused at start.
	write("# nobody\n")
	if _, err := Open(path, nil, nil, nil); err == nil {
		t.Error("Open accepted a file without keys")
	}
}

// TestStoreFailsClosed: a keys file that becomes empty, malformed or missing revokes every key
// (never "the last good keys stay valid"): callers are refused, and the store says so in its
// log, codebank_api_keys_revoked and Ready. The good file again, even byte for byte the one in
// use before, admits its keys again.
func TestStoreFailsClosed(t *testing.T) {
	key := newKey(t, "store-1")
	good := Line(Principal{KeyID: "store-1", Role: Merchant, Merchant: "code-store", MerchantName: "Code Store"}, key) + "\n"
	path := filepath.Join(t.TempDir(), "api-keys")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	reg := prometheus.NewRegistry()
	var logs strings.Builder
	s, err := Open(path, reg, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	if err != nil {
		t.Fatal(err)
	}
	revokedMetric := func() float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "codebank_api_keys_revoked" {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatal("no codebank_api_keys_revoked")
		return 0
	}
	admitted := func(what string) {
		t.Helper()
		if _, err := s.Authenticate(key); err != nil || s.Ready() != nil || revokedMetric() != 0 || s.Set().Len() != 1 {
			t.Fatalf("%s: key %v, ready %v, revoked metric %v, %d keys; want the key admitted", what, err, s.Ready(), revokedMetric(), s.Set().Len())
		}
	}
	admitted("at start")
	for _, tc := range []struct {
		name    string
		breakIt func()
	}{
		{"empty", func() { write("") }},
		{"comments only", func() { write("# every key was deleted\n") }},
		{"malformed", func() { write("store-1 merchant nothex code-store Code Store\n") }},
		{"a good line and a malformed one", func() { write(good + "ops-1 root 1234\n") }},
		{"deleted", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}},
		{"unreadable (a directory)", func() {
			os.Remove(path)
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(path) })
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logs.Reset()
			tc.breakIt()
			if err := s.Reload(); err == nil {
				t.Error("Reload accepted the file")
			}
			if _, err := s.Authenticate(key); !errors.Is(err, ErrUnknown) {
				t.Errorf("the key after the file went %s: %v, want ErrUnknown", tc.name, err)
			}
			if err := s.Ready(); !errors.Is(err, ErrRevoked) {
				t.Errorf("Ready = %v, want ErrRevoked", err)
			}
			if revokedMetric() != 1 || s.Set().Len() != 0 {
				t.Errorf("codebank_api_keys_revoked = %v, %d keys in use; want 1, 0", revokedMetric(), s.Set().Len())
			}
			if !strings.Contains(logs.String(), "every key is revoked") {
				t.Errorf("the log does not say so: %s", logs.String())
			}
			// Still broken at the next reload: still refused.
			s.Reload()
			if _, err := s.Authenticate(key); err == nil {
				t.Error("the key was admitted again while the file is still broken")
			}
			os.Remove(path) // a directory, for one case
			write(good)
			if err := s.Reload(); err != nil {
				t.Fatalf("Reload of the good file again: %v", err)
			}
			admitted("the good file again")
		})
	}
}
