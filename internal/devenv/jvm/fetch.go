package jvm

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/codebank/codebank/internal/devenv/osproc"
)

// completeMarker is the file written into an installation's directory once
// its libs directory is complete.
const completeMarker = "complete"

// FetchSpec says what Fetch puts into the cache.
type FetchSpec struct {
	// CacheDir is the cache root; default $CODEBANK_CACHE_DIR, else
	// os.UserCacheDir()/codebank.
	CacheDir string
	// Name is the installation's directory under CacheDir ("kafka-4.1.1");
	// CacheDir/Name.lock is its lock file.
	Name string
	// Title names the jars in messages ("Kafka").
	Title string
	// Dependencies are the Maven artifacts, "group:artifact:version", whose
	// runtime dependencies go into the libs directory. The first is the
	// main one: its jar must arrive, and messages name it.
	Dependencies []string
	// Check, if set, is called before Maven runs, to report a missing tool
	// (Maven needs java) before Maven fails on it.
	Check func() error
	// Extra, if set, is a file or directory in the installation's
	// directory that MakeExtra makes from the jars (a compiled class), when
	// it is missing, under the same lock.
	Extra     string
	MakeExtra func(ctx context.Context, libs, path string) error
	// Log receives progress messages, each starting with LogPrefix;
	// default slog.Default().
	Log       *slog.Logger
	LogPrefix string
}

// Installation is a directory of fetched jars in the cache.
type Installation struct {
	Dir   string // CacheDir/Name
	Libs  string // Dir/libs: the jars
	Extra string // Dir/FetchSpec.Extra, if set
}

// Fetch resolves the spec's dependencies from Maven Central into
// CacheDir/Name/libs with mvn dependency:copy-dependencies and makes its
// Extra, once: later calls only check that the files are there. Concurrent
// callers, in this or other processes, are serialised by a file lock, so
// only one of them runs Maven.
func Fetch(ctx context.Context, spec FetchSpec) (*Installation, error) {
	if spec.Log == nil {
		spec.Log = slog.Default()
	}
	cacheDir := spec.CacheDir
	if cacheDir == "" {
		d, err := defaultCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = d
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	in := &Installation{Dir: filepath.Join(cacheDir, spec.Name)}
	in.Libs = filepath.Join(in.Dir, "libs")
	if spec.Extra != "" {
		in.Extra = filepath.Join(in.Dir, spec.Extra)
	}
	marker := filepath.Join(in.Dir, completeMarker)
	done := func() bool { return fileExists(marker) && (in.Extra == "" || fileExists(in.Extra)) }
	if done() {
		return in, nil
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("cache dir: %w", err)
	}
	_, _, version := splitArtifact(spec.Dependencies[0])
	unlock, err := osproc.LockFile(ctx, filepath.Join(cacheDir, spec.Name+".lock"), func() {
		spec.Log.Info(spec.LogPrefix+"waiting for another process fetching the "+spec.Title+" jars", "version", version)
	})
	if err != nil {
		return nil, err
	}
	defer unlock()
	if !fileExists(marker) {
		if err := fetchJars(ctx, cacheDir, in, spec); err != nil {
			return nil, err
		}
	}
	if in.Extra != "" && !fileExists(in.Extra) {
		if err := spec.MakeExtra(ctx, in.Libs, in.Extra); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// fetchJars runs Maven and moves the jars into place; the caller holds the
// lock.
func fetchJars(ctx context.Context, cacheDir string, in *Installation, spec FetchSpec) error {
	if spec.Check != nil {
		if err := spec.Check(); err != nil {
			return err
		}
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		return errors.New("mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)")
	}
	pom, err := pomXML(spec.Name, spec.Dependencies)
	if err != nil {
		return err
	}
	main := spec.Dependencies[0]
	_, artifact, version := splitArtifact(main)
	spec.Log.Info(spec.LogPrefix+"fetching "+spec.Title+" jars from Maven Central (first run only)", "version", version, "dir", in.Libs)
	start := time.Now()
	tmp, err := os.MkdirTemp(cacheDir, "."+spec.Name+"-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	pomFile := filepath.Join(tmp, "pom.xml")
	if err := os.WriteFile(pomFile, []byte(pom), 0o644); err != nil {
		return err
	}
	tmpLibs := filepath.Join(tmp, "libs")
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", pomFile,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmpLibs)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("fetching %s %s jars: %w", spec.Title, version, ctx.Err())
		}
		return fmt.Errorf("mvn dependency:copy-dependencies for %s failed (is Maven Central reachable?): %w\n%s",
			main, err, Tail(out, 40))
	}
	if jar := artifact + "-" + version + ".jar"; !fileExists(filepath.Join(tmpLibs, jar)) {
		return fmt.Errorf("mvn did not copy %s into %s", jar, tmpLibs)
	}
	// Whatever is in the directory without a marker is a leftover of an
	// interrupted fetch: replace it.
	if err := os.RemoveAll(in.Dir); err != nil {
		return err
	}
	if err := os.MkdirAll(in.Dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(tmpLibs, in.Libs); err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(in.Dir, completeMarker), []byte(main+"\n")); err != nil {
		return err
	}
	spec.Log.Info(spec.LogPrefix+"fetched "+spec.Title+" jars", "version", version, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// splitArtifact splits "group:artifact:version".
func splitArtifact(s string) (group, artifact, version string) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return "", "", ""
	}
	return parts[0], parts[1], parts[2]
}

// pomXML returns a Maven project that depends on deps.
func pomXML(name string, deps []string) (string, error) {
	var b strings.Builder
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>codebank.jvm</groupId>
  <artifactId>` + name + `-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
`)
	for _, d := range deps {
		group, artifact, version := splitArtifact(d)
		if group == "" || artifact == "" || version == "" || strings.ContainsAny(d, "<>&") {
			return "", fmt.Errorf("invalid Maven artifact %q", d)
		}
		b.WriteString("    <dependency><groupId>" + group + "</groupId><artifactId>" + artifact +
			"</artifactId><version>" + version + "</version></dependency>\n")
	}
	b.WriteString("  </dependencies>\n</project>\n")
	return b.String(), nil
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("CODEBANK_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache dir (set CODEBANK_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "codebank"), nil
}
