package localprometheus

import (
	"bytes"
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

// Package is the Debian package Fetch unpacks: the server, promtool and the classic web UI.
const Package = "prometheus"

// cacheName is the installation's directory under the cache root; cacheName+".lock" is its lock.
const cacheName = "prometheus-deb"

// completeMarker, written last into the installation's directory, holds the unpacked packages'
// names and versions.
const completeMarker = "complete"

// aptTimeout bounds each apt-get and dpkg-deb run: a first fetch downloads about 22 MB.
const aptTimeout = 10 * time.Minute

// Installation is an unpacked Prometheus: its two executables and the files of its web UI.
type Installation struct {
	// Dir is the root the packages were unpacked into (CacheDir/prometheus-deb/root), or "" for
	// executables found on PATH.
	Dir        string
	Prometheus string // the server
	Promtool   string // the rules checker and tester
	// Version is the first line of `prometheus --version`.
	Version string
}

// assets returns the flags that point the server at the installation's web UI and console
// files; none for executables found on PATH, which know where theirs are.
func (in *Installation) assets() []string {
	if in.Dir == "" {
		return nil
	}
	return []string{
		"--web.local-assets=" + filepath.Join(in.Dir, "usr/share/prometheus/web"),
		"--web.console.templates=" + filepath.Join(in.Dir, "etc/prometheus/consoles"),
		"--web.console.libraries=" + filepath.Join(in.Dir, "etc/prometheus/console_libraries"),
	}
}

// Fetch returns a Prometheus to run, fetching it the first time.
//
// On a machine with apt-get (Debian, Ubuntu) it downloads Debian's `prometheus` package and the
// JavaScript and font packages its web UI links to (its Depends named libjs-* and fonts-*) with
// `apt-get download`, which needs no root, and unpacks them with `dpkg-deb -x` into
// cacheDir/prometheus-deb/root; nothing is installed on the system. When the package has no
// candidate (apt's package lists are empty, as in a fresh container) and the process runs as
// root, it runs `apt-get update` first. Later calls only check a marker file; concurrent callers,
// in this or other processes, are serialised by a file lock. An empty cacheDir means
// $CODEBANK_CACHE_DIR, else os.UserCacheDir()/codebank.
//
// Without apt-get, or when the package cannot be fetched, it uses `prometheus` and `promtool`
// from PATH, and says what to install when they are missing.
func Fetch(ctx context.Context, cacheDir string) (*Installation, error) {
	return fetch(ctx, cacheDir, slog.Default())
}

func fetch(ctx context.Context, cacheDir string, log *slog.Logger) (*Installation, error) {
	apt, err := exec.LookPath("apt-get")
	if err != nil {
		return onPath()
	}
	if cacheDir == "" {
		if cacheDir, err = defaultCacheDir(); err != nil {
			return nil, err
		}
	}
	if cacheDir, err = filepath.Abs(cacheDir); err != nil {
		return nil, fmt.Errorf("localprometheus: cache dir: %w", err)
	}
	dir := filepath.Join(cacheDir, cacheName)
	if fileExists(filepath.Join(dir, completeMarker)) {
		return unpacked(dir)
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("localprometheus: cache dir: %w", err)
	}
	unlock, err := osproc.LockFile(ctx, filepath.Join(cacheDir, cacheName+".lock"), func() {
		log.Info("localprometheus: waiting for another process fetching Prometheus")
	})
	if err != nil {
		return nil, fmt.Errorf("localprometheus: %w", err)
	}
	defer unlock()
	if !fileExists(filepath.Join(dir, completeMarker)) { // not fetched while we waited
		if err := download(ctx, apt, cacheDir, dir, log); err != nil {
			// Debian's package cannot be had (no mirror reachable): one on PATH will do.
			if in, perr := onPath(); perr == nil {
				log.Warn("localprometheus: Debian's package could not be fetched; using the Prometheus on PATH", "path", in.Prometheus, "err", err)
				return in, nil
			}
			return nil, fmt.Errorf("localprometheus: %w", err)
		}
	}
	return unpacked(dir)
}

// unpacked returns the installation unpacked into dir, after checking that the server runs.
func unpacked(dir string) (*Installation, error) {
	root := filepath.Join(dir, "root")
	in := &Installation{Dir: root, Prometheus: filepath.Join(root, "usr/bin/prometheus"), Promtool: filepath.Join(root, "usr/bin/promtool")}
	return in, in.check()
}

// onPath returns the prometheus and promtool found on PATH.
func onPath() (*Installation, error) {
	in := &Installation{}
	var err error
	if in.Prometheus, err = exec.LookPath("prometheus"); err != nil {
		return nil, errors.New("localprometheus: no apt-get to fetch Debian's prometheus package, and no prometheus on PATH: install Prometheus 2.42 or newer (prometheus and promtool)")
	}
	if in.Promtool, err = exec.LookPath("promtool"); err != nil {
		return nil, errors.New("localprometheus: prometheus is on PATH but promtool is not: install both")
	}
	return in, in.check()
}

func (in *Installation) check() error {
	out, err := exec.Command(in.Prometheus, "--version").CombinedOutput()
	if err != nil {
		return fmt.Errorf("localprometheus: %s --version: %v\n%s", in.Prometheus, err, out)
	}
	in.Version, _, _ = strings.Cut(string(out), "\n")
	return nil
}

// download fetches the packages into a temporary directory beside dir, unpacks them, and moves
// the result to dir; the caller holds the lock.
func download(ctx context.Context, apt, cacheDir, dir string, log *slog.Logger) error {
	start := time.Now()
	log.Info("localprometheus: fetching Debian's "+Package+" package (first run only)", "dir", dir)
	tmp, err := os.MkdirTemp(cacheDir, "."+cacheName+"-fetch-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	debs := filepath.Join(tmp, "debs")
	if err := os.Mkdir(debs, 0o755); err != nil {
		return err
	}
	if err := aptDownload(ctx, apt, debs, Package); err != nil {
		return err
	}
	main, err := filepath.Glob(filepath.Join(debs, Package+"_*.deb"))
	if err != nil || len(main) != 1 {
		return fmt.Errorf("apt-get download %s left %v in %s", Package, main, debs)
	}
	depends, err := run(ctx, "", "dpkg-deb", "--field", main[0], "Depends")
	if err != nil {
		return err
	}
	if ui := webDepends(depends); len(ui) > 0 {
		if err := aptDownload(ctx, apt, debs, ui...); err != nil {
			return err
		}
	}
	files, err := filepath.Glob(filepath.Join(debs, "*.deb"))
	if err != nil {
		return err
	}
	root := filepath.Join(tmp, "root")
	var versions []string
	for _, deb := range files {
		if _, err := run(ctx, "", "dpkg-deb", "-x", deb, root); err != nil {
			return err
		}
		versions = append(versions, filepath.Base(deb))
	}
	// Whatever is in dir without a marker is a leftover of an interrupted fetch: replace it.
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Rename(root, filepath.Join(dir, "root")); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, completeMarker), []byte(strings.Join(versions, "\n")+"\n"), 0o644); err != nil {
		return err
	}
	log.Info("localprometheus: fetched "+Package, "packages", len(files), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// aptDownload runs `apt-get download pkgs...` in dir. When a package has no candidate and the
// process is root, it updates apt's package lists and tries once more.
func aptDownload(ctx context.Context, apt, dir string, pkgs ...string) error {
	args := append([]string{"download", "-q"}, pkgs...)
	out, err := run(ctx, dir, apt, args...)
	if err == nil {
		return nil
	}
	noCandidate := strings.Contains(out, "Unable to locate package") || strings.Contains(out, "candidate")
	if !noCandidate || os.Geteuid() != 0 {
		return fmt.Errorf("%w(is a Debian mirror reachable? `apt-get update`, as root, fills empty package lists)", err)
	}
	if _, err := run(ctx, "", apt, "update", "-q"); err != nil {
		return err
	}
	_, err = run(ctx, dir, apt, args...)
	return err
}

// webDepends returns the packages among a Depends field that hold files the web UI links to.
func webDepends(field string) []string {
	var pkgs []string
	for _, dep := range strings.Split(field, ",") {
		// "libjs-jquery (>= 3.5.1~)", or alternatives "a | b": the first will do.
		alt, _, _ := strings.Cut(dep, "|")
		name, _, _ := strings.Cut(strings.TrimSpace(alt), " ")
		if strings.HasPrefix(name, "libjs-") || strings.HasPrefix(name, "fonts-") {
			pkgs = append(pkgs, name)
		}
	}
	return pkgs
}

// run runs a command in dir and returns its combined output; the error quotes the output's end.
func run(ctx context.Context, dir, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, aptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, tail(out, 20))
	}
	return string(out), nil
}

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(bytes.TrimSpace(b)), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("CODEBANK_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localprometheus: no cache dir (set CODEBANK_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "codebank"), nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
