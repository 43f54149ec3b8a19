// Command codebank-dev is what developers run beside Code Bank and never ships: `make run`
// (run: local Kafka, OpenSearch and Kafka Connect, and the codebank binary on them, seeded with
// demo cards) and `make bench` (bench: the load test). It starts the production binary,
// codebank, as a child process; the local servers and the load generator stay out of that
// binary.
package main

import "github.com/codebank/codebank/internal/cli"

var program = cli.Program{Name: "codebank-dev", Title: "Code Bank's developer tools.", Commands: map[string]cli.Command{
	"run":   {Summary: "start a local Kafka (and OpenSearch and Kafka Connect), run Code Bank on it and seed demo cards (make run)", Run: runDev},
	"bench": {Summary: "open-loop load test: starts Kafka and Code Bank, issues cards, reports rate, latency, CPU and RSS (make bench)", Run: runBench},
}}

func main() { program.Main() }
