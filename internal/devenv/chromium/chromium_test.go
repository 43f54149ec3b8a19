package chromium_test

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/codebank/codebank/internal/devenv/chromium"
	"github.com/codebank/codebank/internal/testenv/tier"
)

// TestHeadless finds (or installs) the browser and loads a page in it.
func TestHeadless(t *testing.T) {
	tier.Servers(t, "Chromium")
	path, err := chromium.Find()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command(path, "--version").Output()
	t.Logf("browser: %s (%s)", path, strings.TrimSpace(string(out)))

	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromium.Options(path, t.TempDir())...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(`data:text/html,<title>Code Bank</title><p>ok</p>`)); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if title != "Code Bank" {
		t.Errorf("title = %q, want %q", title, "Code Bank")
	}
}

func TestNotFoundSaysWhatToInstall(t *testing.T) {
	if msg := chromium.ErrNotFound.Error(); !strings.Contains(msg, "apt-get install -y chromium") {
		t.Errorf("ErrNotFound = %q, want it to name the install command", msg)
	}
}

func TestEnvPath(t *testing.T) {
	t.Setenv(chromium.EnvPath, "/nonexistent/chromium")
	if _, err := chromium.Find(); err == nil {
		t.Error("Find with a missing CODEBANK_CHROMIUM = nil error")
	}
}
