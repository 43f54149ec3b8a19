package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/cli"
)

func runAnalytics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank analytics [--since 1h] [--search-url URL]", stderr)
	url := fs.String("search-url", "http://127.0.0.1:9200", "Elasticsearch or OpenSearch URL")
	index := fs.String("index", analytics.DefaultIndex, "index the results topic is indexed into")
	since := fs.Duration("since", time.Hour, "period to summarize, ending now")
	currency := fs.String("currency", "BRL", "currency of the amounts shown")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	c, err := analytics.NewClient(*url)
	if err != nil {
		return err
	}
	to := time.Now()
	f, err := analytics.KeyFigures(ctx, c, *index, to.Add(-*since), to)
	if err != nil {
		return err
	}
	fmt.Fprint(stdout, f.Format(*currency))
	return nil
}
