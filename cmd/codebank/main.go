// Command codebank is Code Bank's one binary; the first argument chooses the role.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/rcrowley/go-metrics"
)

// command is one subcommand of codebank.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var commands = map[string]command{
	"all":        {"run the ingress, authorizer, statements and the store's pages in one process (development)", runAll},
	"web":        {"run the store, statement and dashboard pages, calling a bank elsewhere", runWeb},
	"ingress":    {"run the gRPC/REST ingress (any number of replicas)", runIngress},
	"authorizer": {"run the authorizer processor (any number of instances)", runAuthorizer},
	"statements": {"run the statements processor and serve statements (any number of replicas)", runStatements},
	"analytics":  {"print the bank's key figures from the search index: analytics [--since 1h]", runAnalytics},
	"bench":      {"open-loop load test: starts Kafka and Code Bank, issues cards, reports rate, latency, CPU and RSS", runBench},
	"setup":      {"create Code Bank's Kafka topics and exit", runSetup},
	"audit":      {"check the books from the topics: every card's used credit, statement and index documents", runAudit},
	"dev":        {"start a local Kafka, run everything and seed demo cards (make run)", runDev},
	"statement":  {"print a card's statement: statement NUMBER [--month 2026-11]", runStatement},
	"cards":      {"issue or read cards: cards issue --holder NAME --limit 1000.00 | cards get NUMBER", runCards},
	"pay":        {"pay with a card: pay --card N --holder NAME --exp MM/YY --cvv CVV --amount 12.34 --store NAME", runPay},
}

// errUsage marks an error whose message is a usage text, already complete.
var errUsage = errors.New("usage")

// exitCoder is an error that chooses the exit status.
type exitCoder interface{ ExitCode() int }

func main() {
	// sarama keeps go-metrics histograms of every request, which nothing here reads; they cost
	// a tenth of a busy authorizer's CPU.
	metrics.UseNilMetrics = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	if !errors.Is(err, errUsage) {
		fmt.Fprintln(os.Stderr, "codebank:", err)
	}
	var ec exitCoder
	if errors.As(err, &ec) {
		os.Exit(ec.ExitCode())
	}
	os.Exit(1)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	cmd, ok := commands[args[0]]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Code Bank: payment authorization on Kafka.\n\nUsage: codebank COMMAND [flags]\n\nCommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-11s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'codebank COMMAND --help' for a command's flags. Every flag can also be set\nwith an environment variable: --reply-partition is CODEBANK_REPLY_PARTITION.")
}
