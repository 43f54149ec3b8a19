// Package thirdparty checks the copies of other projects' code that Code Bank carries.
package thirdparty

import (
	"bytes"
	"encoding/json"
	"go/format"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// gokaVersion is the upstream release goka/ is a copy of.
const gokaVersion = "v1.1.16"

// gokaLeftOut reports whether an upstream file is left out of the copy (goka/PATCHES.md): its
// examples and system and integration tests, its own tests, and its gomock mocks and test
// helpers, which only those tests use and which would link testing and gomock into Code Bank.
func gokaLeftOut(rel string) bool {
	first, _, _ := strings.Cut(rel, "/")
	base := filepath.Base(rel)
	return first == "examples" || first == "systemtest" || first == "integrationtest" ||
		strings.HasSuffix(base, "_test.go") || filepath.Dir(rel) == "." && strings.HasPrefix(base, "mock") && strings.HasSuffix(base, ".go") ||
		rel == "storage/test.go"
}

// gokaPatches are the copy's changes of behaviour (goka/PATCHES.md), each as the upstream
// file's text made into the copy's.
var gokaPatches = map[string]func(string) string{
	"processor.go": func(src string) string {
		// The rebalance delay: a variable, 100ms, instead of a fixed 5s.
		src = strings.Replace(src, "case <-time.After(5 * time.Second):", "case <-time.After(RebalanceDelay):", 1)
		anchor := "func (g *Processor) rebalanceLoop("
		return strings.Replace(src, anchor, `// RebalanceDelay is how long a processor waits, after its consumer group session ended for a
// rebalance, before it joins the group again. Every member of the group waits for the last to
// rejoin, so the delay is a pause of the whole group at every rebalance. Upstream v1.1.16 waits
// 5s; Code Bank's copy waits 100ms.
var RebalanceDelay = 100 * time.Millisecond

`+anchor, 1)
	},
}

// TestGokaCopyIsUpstreamPlusPatches fetches goka's release from the module proxy and finds the
// copy in goka/ to be that release, but for what goka/PATCHES.md lists: the files left out,
// gofmt's formatting, and the patches of gokaPatches.
func TestGokaCopyIsUpstreamPlusPatches(t *testing.T) {
	out, err := exec.Command("go", "mod", "download", "-json", "github.com/lovoo/goka@"+gokaVersion).Output()
	if err != nil {
		t.Fatalf("go mod download goka@%s: %v", gokaVersion, err)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download goka@%s: %s %v", gokaVersion, mod.Error, err)
	}
	upstream := files(t, mod.Dir)
	copied := files(t, "goka")
	applied := map[string]bool{}
	for _, rel := range slices.Sorted(func(yield func(string) bool) {
		for rel := range upstream {
			if !yield(rel) {
				return
			}
		}
	}) {
		if gokaLeftOut(rel) {
			if _, ok := copied[rel]; ok {
				t.Errorf("%s is in the copy, but PATCHES.md leaves it out", rel)
			}
			continue
		}
		got, ok := copied[rel]
		if !ok {
			t.Errorf("%s of goka %s is missing from the copy", rel, gokaVersion)
			continue
		}
		want := upstream[rel]
		if patch, ok := gokaPatches[rel]; ok {
			patched := patch(string(want))
			if patched == string(want) {
				t.Errorf("%s: the patch no longer applies to upstream", rel)
			}
			want, applied[rel] = []byte(patched), true
		}
		if bytes.Equal(got, want) {
			continue
		}
		if strings.HasSuffix(rel, ".go") {
			if formatted, err := format.Source(want); err == nil && bytes.Equal(got, formatted) {
				continue // formatted by gofmt only
			}
		}
		t.Errorf("%s differs from goka %s by more than PATCHES.md lists", rel, gokaVersion)
	}
	for rel := range gokaPatches {
		if !applied[rel] {
			t.Errorf("the patch of %s found no such file upstream", rel)
		}
	}
	for rel := range copied {
		if _, ok := upstream[rel]; !ok && rel != "PATCHES.md" {
			t.Errorf("%s is in the copy but not in goka %s", rel, gokaVersion)
		}
	}
	patches, err := os.ReadFile("goka/PATCHES.md")
	if err != nil {
		t.Fatal(err)
	}
	for rel := range gokaPatches {
		if !strings.Contains(string(patches), "`"+rel+"`") {
			t.Errorf("PATCHES.md does not name the patch of %s", rel)
		}
	}
}

// files returns every regular file under dir, by its path relative to dir.
func files(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
