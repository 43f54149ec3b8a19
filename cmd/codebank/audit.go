package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/cli"
)

// exitDiscrepancies is the exit status of an audit that found the books do not balance.
const exitDiscrepancies = 3

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, c, sf := bookFlags("codebank audit [flags] (with --search-url, also that the index holds one document per payment)", stdout, stderr)
	wait := fs.Duration("wait", 0, "audit again, once a second, for up to this long while the books do not balance (consumers catching up)")
	maxShown := fs.Int("max", 20, "discrepancies listed at most")
	cli.Scope(fs, "audit", "wait", "max")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	kc := c.kafka()
	if err := kc.Validate(); err != nil {
		return err
	}
	cfg := audit.Config{Kafka: kc, Topo: c.topology(), Index: sf.index, Consumers: c.storeTopology().Consumers()}
	if sf.url != "" {
		var err error
		if cfg.Search, err = sf.client(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(*wait)
	for {
		rep, err := audit.Run(ctx, cfg)
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		if rep.OK() || time.Now().After(deadline) {
			rep.Write(stdout, *maxShown)
			if !rep.OK() {
				return exitError{code: exitDiscrepancies, msg: fmt.Sprintf("audit: %d discrepancies", len(rep.Problems))}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}
