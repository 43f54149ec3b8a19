package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/codebank/codebank/internal/cli"
)

// runProbe asks a role of this machine whether it is ready: GET /readyz on its operations
// address, exit 0 on 200. It is the health check of a container (compose.yaml), whose image has
// no shell and no HTTP client: `codebank probe` reads the same CODEBANK_OPS_ADDR as the role
// beside it, so the two cannot disagree.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank probe [--path /readyz]", stdout, stderr)
	opsAddr := fs.String("ops-addr", ":9090", "operations listen address of the role probed, as given to the role; probed on this machine")
	path := fs.String("path", "/readyz", "path asked: /readyz (ready to serve) or /healthz (alive)")
	timeout := fs.Duration("timeout", 2*time.Second, "longest wait for the answer")
	// The role's CODEBANK_OPS_ADDR is shared on purpose; the path and timeout are probe's own.
	cli.Scope(fs, "probe", "path", "timeout")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	if *opsAddr == "" {
		return fmt.Errorf("%w: --ops-addr is empty: the role serves no operations endpoints to probe", cli.ErrUsage)
	}
	url := "http://" + cli.Loopback(*opsAddr) + *path
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("probe %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("probe %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s: %s\n", url, resp.Status)
	return nil
}
