package main

import (
	"context"
	"fmt"
	"io"

	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/generations"
)

// runPartitions moves a running bank between generations of the authorizer's topics
// (internal/generations): status, grow --to N, rollback, cleanup.
func runPartitions(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		w := stdout // help asked for; a missing verb is an error
		if len(args) == 0 {
			w = stderr
		}
		fmt.Fprintln(w, "Usage: codebank partitions status | grow --to N [--dry-run] | rollback [--dry-run] | cleanup [--dry-run] [kafka flags]\n\n"+
			"Moves a running bank between generations of the authorizer's topics: grow creates one with more partitions\n"+
			"and moves every account to it, rollback moves back (with what was decided meanwhile), cleanup deletes the\n"+
			"generation kept for rollback. Each verb takes the Kafka flags of the roles; see docs/operations.md.")
		if len(args) == 0 {
			return cli.ErrUsage
		}
		return nil
	}
	verb := args[0]
	var c config
	fs := cli.NewFlagSet("codebank partitions "+verb+" [flags]", stdout, stderr)
	c.kafkaFlags(fs)
	dryRun := fs.Bool("dry-run", false, "only show what would be done")
	var strimzi generations.Strimzi
	fs.StringVar(&strimzi.Dir, "strimzi-dir", "", "the topics belong to Strimzi's topic operator: write the new generation's KafkaTopics here to be applied, and wait for them (grow); ask for the old ones to be deleted, and wait (cleanup)")
	fs.StringVar(&strimzi.Cluster, "strimzi-cluster", "codebank", "with --strimzi-dir: the Kafka cluster's name (label strimzi.io/cluster)")
	fs.StringVar(&strimzi.Namespace, "strimzi-namespace", "codebank", "with --strimzi-dir: the namespace of the KafkaTopics")
	fs.StringVar(&strimzi.Autoscaler, "autoscaler", "authorizer", "with --strimzi-dir: the authorizer's KEDA ScaledObject, whose maximum is raised to the new partition count (empty: none)")
	to := 0
	cli.Scope(fs, "partitions", "dry-run", "strimzi-dir", "strimzi-cluster", "strimzi-namespace", "autoscaler")
	if verb == "grow" {
		fs.IntVar(&to, "to", 0, "partition count of the new generation (more than the live one's)")
		cli.Scope(fs, "partitions", "to")
	}
	if err := cli.Parse(fs, args[1:]); err != nil {
		return cli.HelpOK(err)
	}
	kc, base := c.kafka(), c.topology()
	if err := kc.Validate(); err != nil {
		return err
	}
	var op *generations.Strimzi
	if strimzi.Dir != "" {
		strimzi.Replicas = kc.Replication
		op = &strimzi
	}
	state, err := generations.Read(ctx, kc, base)
	if err != nil {
		return err
	}
	var plan generations.Plan
	if state.Switching && (verb == "grow" || verb == "rollback") {
		// A move recorded as under way whose command stopped: take it up again.
		if plan, err = generations.Resume(base, state); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "a move to generation %d is under way and did not finish: resuming it\n", state.To)
		verb = "resume"
	}
	switch verb {
	case "resume":
	case "status":
		fmt.Fprintln(stdout, state)
		for _, t := range state.Live(base).AuthorizerTopics() {
			fmt.Fprintf(stdout, "live   %-44s %3d partitions\n", t.Name, t.Partitions)
		}
		return nil
	case "grow":
		if to <= 0 {
			return fmt.Errorf("%w: grow needs --to N", cli.ErrUsage)
		}
		plan, err = generations.Grow(base, state, to)
	case "rollback":
		plan, err = generations.Rollback(base, state)
	case "cleanup":
		prev, ok := state.Prev(base)
		if !ok {
			return fmt.Errorf("no previous generation to delete (%s)", state)
		}
		if *dryRun {
			for _, t := range prev.AuthorizerTopics() {
				fmt.Fprintf(stdout, "delete %s\n", t.Name)
			}
			fmt.Fprintf(stdout, "delete group %s, once it has forwarded every record left\n", prev.AuthorizerGroup())
			return nil
		}
		return generations.Cleanup(ctx, kc, base, state, op, stdout)
	default:
		return fmt.Errorf("%w: unknown partitions command %q", cli.ErrUsage, verb)
	}
	if err != nil {
		return err
	}
	plan.Describe(stdout)
	if *dryRun {
		return nil
	}
	rep, err := generations.Move(ctx, kc, base, plan, op, stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "done: %d table records copied; authorizers stopped in %v, copy %v, paused %v\n",
		rep.Records, rep.Stopped.Round(1e6), rep.Copied.Round(1e6), rep.Paused.Round(1e6))
	return nil
}
