//go:build unix

package jvm

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/devenv/osproc"
)

// fakeMvn is a mvn that counts its runs in $MVN_COUNT, waits a little and
// copies the jar named by $MVN_JAR, if set, into the output directory.
const fakeMvn = `for a; do case $a in -DoutputDirectory=*) out=${a#-DoutputDirectory=};; -f) ;; *.xml) pom=$a;; esac; done
echo run >> "$MVN_COUNT"
cp "$pom" "$MVN_COUNT.pom"
sleep 0.3
if [ -n "$MVN_FAIL" ]; then echo "[ERROR] $MVN_FAIL"; exit 1; fi
mkdir -p "$out"
if [ -n "$MVN_JAR" ]; then touch "$out/$MVN_JAR"; fi
`

func testSpec(cacheDir string, log *bytes.Buffer) FetchSpec {
	return FetchSpec{
		CacheDir:     cacheDir,
		Name:         "thing-1.2.3",
		Title:        "Thing",
		Dependencies: []string{"org.example:thing:1.2.3", "org.example:extra-lib:0.9"},
		Log:          slog.New(slog.NewTextHandler(log, nil)),
		LogPrefix:    "test: ",
	}
}

func mvnRuns(t *testing.T, count string) int {
	data, _ := os.ReadFile(count)
	return strings.Count(string(data), "run")
}

// TestFetchConcurrent starts several first fetches at once: one runs Maven
// and makes the extra file, the others wait for its lock and find the
// result.
func TestFetchConcurrent(t *testing.T) {
	bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
	count := filepath.Join(bin, "count")
	t.Setenv("MVN_COUNT", count)
	t.Setenv("MVN_JAR", "thing-1.2.3.jar")
	cache := filepath.Join(t.TempDir(), "cache") // Fetch creates it
	var logs bytes.Buffer
	var logMu sync.Mutex
	spec := testSpec(cache, nil)
	spec.Log = slog.New(slog.NewTextHandler(lockedWriter{&logMu, &logs}, nil))
	var made atomic.Int32
	spec.Extra = "extra.jar"
	spec.MakeExtra = func(ctx context.Context, libs, path string) error {
		made.Add(1)
		if _, err := os.Stat(filepath.Join(libs, "thing-1.2.3.jar")); err != nil {
			return err
		}
		return os.WriteFile(path, []byte("x"), 0o644)
	}

	const n = 4
	var wg sync.WaitGroup
	results := make([]*Installation, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { results[i], errs[i] = Fetch(context.Background(), spec) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Fetch %d: %v", i, errs[i])
		}
		if *results[i] != *results[0] {
			t.Errorf("Fetch %d = %+v, Fetch 0 = %+v", i, results[i], results[0])
		}
	}
	in := results[0]
	want := Installation{
		Dir:   filepath.Join(cache, "thing-1.2.3"),
		Libs:  filepath.Join(cache, "thing-1.2.3", "libs"),
		Extra: filepath.Join(cache, "thing-1.2.3", "extra.jar"),
	}
	if *in != want {
		t.Errorf("Fetch = %+v, want %+v", *in, want)
	}
	if runs := mvnRuns(t, count); runs != 1 || made.Load() != 1 {
		t.Errorf("mvn ran %d times and MakeExtra %d times, want once each", runs, made.Load())
	}
	if marker, _ := os.ReadFile(filepath.Join(in.Dir, "complete")); string(marker) != "org.example:thing:1.2.3\n" {
		t.Errorf("marker = %q", marker)
	}
	pom, _ := os.ReadFile(count + ".pom")
	for _, w := range []string{
		"<dependency><groupId>org.example</groupId><artifactId>thing</artifactId><version>1.2.3</version></dependency>",
		"<dependency><groupId>org.example</groupId><artifactId>extra-lib</artifactId><version>0.9</version></dependency>",
	} {
		if !bytes.Contains(pom, []byte(w)) {
			t.Errorf("pom.xml lacks %s:\n%s", w, pom)
		}
	}
	for _, w := range []string{
		`msg="test: waiting for another process fetching the Thing jars" version=1.2.3`,
		`msg="test: fetching Thing jars from Maven Central (first run only)" version=1.2.3 dir=` + in.Libs,
		`msg="test: fetched Thing jars" version=1.2.3 took=`,
	} {
		if !strings.Contains(logs.String(), w) {
			t.Errorf("log lacks %s:\n%s", w, logs.String())
		}
	}
	if leftovers, _ := filepath.Glob(filepath.Join(cache, ".thing-*")); len(leftovers) > 0 {
		t.Errorf("temporary directories left: %v", leftovers)
	}

	// Later calls only look: no Maven (not on PATH any more), no lock (held here: a call that
	// took it would wait until its context ends).
	t.Setenv("PATH", t.TempDir())
	unlock, err := osproc.LockFile(context.Background(), filepath.Join(cache, spec.Name+".lock"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	again, err := Fetch(ctx, spec)
	cancel()
	unlock()
	if err != nil || *again != want {
		t.Errorf("cached Fetch = %+v, %v", again, err)
	}

	// A missing extra is made again, without Maven.
	os.Remove(in.Extra)
	if _, err := Fetch(context.Background(), spec); err != nil || made.Load() != 2 {
		t.Errorf("Fetch without the extra file: %v, MakeExtra ran %d times", err, made.Load())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func TestFetchReplacesLeftovers(t *testing.T) {
	bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
	t.Setenv("MVN_COUNT", filepath.Join(bin, "count"))
	t.Setenv("MVN_JAR", "thing-1.2.3.jar")
	cache := t.TempDir()
	stale := filepath.Join(cache, "thing-1.2.3", "libs", "stale.jar")
	if err := os.MkdirAll(filepath.Dir(stale), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Fetch(context.Background(), testSpec(cache, &bytes.Buffer{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a jar of an interrupted fetch survived: %v", err)
	}
	if _, err := os.Stat(filepath.Join(in.Libs, "thing-1.2.3.jar")); err != nil {
		t.Error(err)
	}
}

func TestFetchErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("no mvn", func(t *testing.T) {
		fakeBin(t, nil, false)
		_, err := Fetch(ctx, testSpec(t.TempDir(), &bytes.Buffer{}))
		if err == nil || err.Error() != "mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)" {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("check first", func(t *testing.T) {
		fakeBin(t, nil, false)
		spec := testSpec(t.TempDir(), &bytes.Buffer{})
		spec.Check = func() error { return errors.New("no java") }
		if _, err := Fetch(ctx, spec); err == nil || err.Error() != "no java" {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("mvn fails", func(t *testing.T) {
		bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
		t.Setenv("MVN_COUNT", filepath.Join(bin, "count"))
		t.Setenv("MVN_FAIL", "Could not resolve dependencies")
		_, err := Fetch(ctx, testSpec(t.TempDir(), &bytes.Buffer{}))
		if err == nil || !strings.Contains(err.Error(),
			"mvn dependency:copy-dependencies for org.example:thing:1.2.3 failed (is Maven Central reachable?): exit status 1\n[ERROR] Could not resolve dependencies") {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("no main jar", func(t *testing.T) {
		bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
		t.Setenv("MVN_COUNT", filepath.Join(bin, "count"))
		_, err := Fetch(ctx, testSpec(t.TempDir(), &bytes.Buffer{}))
		if err == nil || !strings.Contains(err.Error(), "mvn did not copy thing-1.2.3.jar into ") {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
		t.Setenv("MVN_COUNT", filepath.Join(bin, "count"))
		ctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err := Fetch(ctx, testSpec(t.TempDir(), &bytes.Buffer{}))
		if err == nil || err.Error() != "fetching Thing 1.2.3 jars: context deadline exceeded" {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("bad artifact", func(t *testing.T) {
		bin := fakeBin(t, map[string]string{"mvn": fakeMvn}, true)
		t.Setenv("MVN_COUNT", filepath.Join(bin, "count"))
		spec := testSpec(t.TempDir(), &bytes.Buffer{})
		spec.Dependencies = append(spec.Dependencies, "org.example:<x>:1")
		if _, err := Fetch(ctx, spec); err == nil || !strings.Contains(err.Error(), `invalid Maven artifact "org.example:<x>:1"`) {
			t.Errorf("Fetch: %v", err)
		}
	})
	t.Run("no cache dir", func(t *testing.T) {
		t.Setenv("CODEBANK_CACHE_DIR", "")
		t.Setenv("XDG_CACHE_HOME", "")
		t.Setenv("HOME", "")
		if _, err := Fetch(ctx, testSpec("", &bytes.Buffer{})); err == nil || !strings.HasPrefix(err.Error(), "no cache dir (set CODEBANK_CACHE_DIR): ") {
			t.Errorf("Fetch: %v", err)
		}
	})
}

// TestFetchDefaultCacheDir checks that an empty CacheDir means
// $CODEBANK_CACHE_DIR.
func TestFetchDefaultCacheDir(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("CODEBANK_CACHE_DIR", cache)
	if err := os.MkdirAll(filepath.Join(cache, "thing-1.2.3"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "thing-1.2.3", "complete"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	in, err := Fetch(context.Background(), testSpec("", &bytes.Buffer{}))
	if err != nil || in.Libs != filepath.Join(cache, "thing-1.2.3", "libs") {
		t.Errorf("Fetch = %+v, %v", in, err)
	}
}

func TestLockFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	unlock, err := osproc.LockFile(context.Background(), path, func() { t.Error("waited for a free lock") })
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := osproc.TryLockFile(path); ok {
		t.Error("tryLockFile took a held lock")
	}
	waited := false
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := osproc.LockFile(ctx, path, func() { waited = true }); err == nil || !waited ||
		!strings.Contains(err.Error(), "waiting for lock "+path+": context deadline exceeded") {
		t.Errorf("lockFile of a held lock: %v (waited %v)", err, waited)
	}
	unlock()
	unlock2, ok := osproc.TryLockFile(path)
	if !ok {
		t.Fatal("tryLockFile could not take a released lock")
	}
	unlock2()
}
