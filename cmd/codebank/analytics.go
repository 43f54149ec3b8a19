package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/cli"
)

// runAnalytics prints the key figures from the search index, or, as `analytics prune`, deletes
// the monthly indices past their retention.
func runAnalytics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "prune" {
		return runPrune(ctx, args[1:], stdout, stderr)
	}
	fs := cli.NewFlagSet("codebank analytics [--since 1h] [--search-url URL] | analytics prune --retention-months N [--dry-run]", stdout, stderr)
	var sf searchFlags
	sf.register(fs, "http://127.0.0.1:9200")
	since := fs.Duration("since", time.Hour, "period to summarize, ending now")
	currency := fs.String("currency", "BRL", "currency of the amounts shown")
	cli.Scope(fs, "analytics", "since", "currency")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	to := time.Now()
	f, err := analytics.KeyFigures(ctx, c, sf.index, to.Add(-*since), to)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, f.Format(*currency))
	return nil
}

// runPrune deletes the results' monthly indices whose month ended more than --retention-months
// ago: what a server without ILM or ISM needs once a month (codebank setup says whether it
// does; docs/operations.md has a CronJob).
func runPrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank analytics prune --retention-months N [--dry-run] [--search-url URL]", stdout, stderr)
	var sf searchFlags
	sf.register(fs, "http://127.0.0.1:9200")
	months := fs.Int("retention-months", 0, retentionUsage)
	dryRun := fs.Bool("dry-run", false, "only list the indices that would be deleted")
	cli.Scope(fs, "prune", "dry-run")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	if *months <= 0 {
		return fmt.Errorf("%w: --retention-months (%s) must be 1 or more", cli.ErrUsage, cli.FlagEnv(fs, "retention-months"))
	}
	c, err := sf.client()
	if err != nil {
		return err
	}
	ix := analytics.Indices{Alias: sf.index, RetentionMonths: *months}
	gone, err := ix.Prune(ctx, c, time.Now(), *dryRun)
	if err != nil {
		return err
	}
	verb := "deleted"
	if *dryRun {
		verb = "would delete"
	}
	if len(gone) == 0 {
		fmt.Fprintf(stdout, "no index of %s is older than %d months\n", sf.index, *months)
	}
	for _, i := range gone {
		fmt.Fprintf(stdout, "%s %s\n", verb, i.Name)
	}
	return nil
}

// retentionUsage is the help of --retention-months, for setup and prune alike.
const retentionUsage = "months an index of the results is kept once its month is over (12: on 2026-12-15 the indices 2025.12 to 2026.12 are kept); 0: forever"
