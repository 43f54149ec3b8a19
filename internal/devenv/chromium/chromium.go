// Package chromium finds a Chromium browser for the browser tests, installing Debian's
// `chromium` package when it is missing and the process may do so, and lists the command-line
// flags that run it headless inside a container or a CI job.
//
// Its two functions are Find, which returns the browser's path, and Options, which turns it
// into chromedp allocator options.
package chromium

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvPath names an environment variable that, when set, is the browser to use: its path, or
// a name to look up on PATH.
const EnvPath = "CODEBANK_CHROMIUM"

// Install is the command that installs the browser on Debian and Ubuntu.
const Install = "apt-get install -y chromium"

// ErrNotFound is returned by Find when no browser is installed and it could not install one.
var ErrNotFound = errors.New("no Chromium browser found (looked for chromium, chromium-browser, google-chrome): install with `" + Install + "`")

// names are the browsers Find looks for on PATH, in order. Debian's package installs
// /usr/bin/chromium.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// installTimeout bounds apt-get: a first install downloads about 100 MB.
const installTimeout = 10 * time.Minute

var (
	installOnce sync.Once
	installErr  error
)

// Find returns the path of a Chromium or Chrome browser: EnvPath if set, else the first of
// chromium, chromium-browser, google-chrome found on PATH (or in /usr/bin). When there is none
// and the process runs as root on a machine with apt-get, it installs Debian's `chromium`
// package (apt-get update, then apt-get install -y chromium) and looks again; otherwise it
// returns an error wrapping ErrNotFound, which says what to install.
func Find() (string, error) {
	if p := os.Getenv(EnvPath); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvPath, p, err)
		}
		return found, nil
	}
	if p, ok := lookup(); ok {
		return p, nil
	}
	apt, err := exec.LookPath("apt-get")
	if err != nil || os.Geteuid() != 0 {
		return "", ErrNotFound
	}
	installOnce.Do(func() { installErr = install(apt) })
	if installErr != nil {
		return "", fmt.Errorf("%w; installing it failed: %v", ErrNotFound, installErr)
	}
	if p, ok := lookup(); ok {
		return p, nil
	}
	return "", ErrNotFound
}

func lookup() (string, bool) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, true
		}
		if p := "/usr/bin/" + n; isExecutable(p) {
			return p, true
		}
	}
	return "", false
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// install runs apt-get, holding a file lock so that test binaries of several packages, run in
// parallel by `go test ./...`, do not race for dpkg's own lock.
func install(apt string) error {
	unlock, err := lockFile(os.TempDir() + "/codebank-chromium-install.lock")
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := lookup(); ok { // another process installed it while we waited
		return nil
	}
	fmt.Fprintln(os.Stderr, "chromium: not installed; running apt-get update && "+Install)
	for _, args := range [][]string{{"update"}, {"install", "-y", "chromium"}} {
		cmd := exec.Command(apt, args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("apt-get %s: %w", args[0], err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err = <-done:
		case <-time.After(installTimeout):
			cmd.Process.Kill()
			err = fmt.Errorf("timed out after %s", installTimeout)
			<-done
		}
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", args[0], err, tail(out.Bytes(), 2000))
		}
	}
	return nil
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// Options returns chromedp allocator options that run the browser at path headless, with a
// fresh profile in userDataDir (an empty directory the caller owns), without a sandbox (tests
// run as root in containers), without a GPU, and without the background traffic a browser
// makes on its own (updates, sync, QUIC probes): nothing reaches the internet.
func Options(path, userDataDir string) []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(userDataDir),
		chromedp.Headless, // --headless, and hides scrollbars, mutes audio
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // /dev/shm is small in containers
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.Flag("use-mock-keychain", true),
		chromedp.Flag("metrics-recording-only", true),
	}
}
