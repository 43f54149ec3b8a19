// Command codebank is Code Bank's one binary; the first argument chooses the role.
package main

import (
	"github.com/rcrowley/go-metrics"

	"github.com/codebank/codebank/internal/buildinfo"
	"github.com/codebank/codebank/internal/cli"
)

// program is codebank's commands.
var program = cli.Program{Name: "codebank", Title: "Code Bank: payment authorization on Kafka.", Commands: map[string]cli.Command{
	"all":        {Summary: "run the ingress, authorizer, statements and the pages in one process", Run: runAll},
	"web":        {Summary: "run the store, statement and dashboard pages, calling a bank elsewhere", Run: runWeb},
	"ingress":    {Summary: "run the gRPC/REST ingress (any number of replicas)", Run: runIngress},
	"authorizer": {Summary: "run the authorizer processor (any number of instances)", Run: runAuthorizer},
	"statements": {Summary: "run the statements processor and serve statements (any number of replicas)", Run: runStatements},
	"analytics":  {Summary: "print the bank's key figures from the search index: analytics [--since 1h]", Run: runAnalytics},
	"setup":      {Summary: "create the bank's and the store's Kafka topics (and the analytics sink) and exit", Run: runSetup},
	"audit":      {Summary: "check the books from the topics: every card's used credit, statement and index documents", Run: runAudit},
	"partitions": {Summary: "grow the authorizer's partitions on a running bank, roll back, clean up: partitions status|grow --to N|rollback|cleanup [--dry-run]", Run: runPartitions},
	"statement":  {Summary: "print a card's statement: statement CARD_ID|NUMBER [--month 2026-11]", Run: runStatement},
	"cards":      {Summary: "issue, read, block or unblock cards: cards issue --holder NAME --limit 1000.00 | cards get|block|unblock CARD_ID|NUMBER", Run: runCards},
	"pay":        {Summary: "pay with a card: pay --card N --holder NAME --exp MM/YY --cvv CVV --amount 12.34", Run: runPay},
	"reverse":    {Summary: "void part or all of a payment (merchant): reverse PAYMENT_ID --amount 12.34 [--id ID]", Run: runCredit("reverse")},
	"refund":     {Summary: "refund part or all of a purchase (merchant): refund PAYMENT_ID --amount 12.34 [--id ID]", Run: runCredit("refund")},
	"pay-bill":   {Summary: "record the cardholder's payment of the bill (operator): pay-bill CARD_ID|NUMBER --amount 12.34 [--id ID]", Run: runPayBill},
	"probe":      {Summary: "check that a role of this machine is ready (a container's health check): probe [--path /readyz]", Run: runProbe},
	"keys":       {Summary: "make an API key and its line of the keys file: keys new --id ID --role merchant|admin|pages [--merchant ID --name NAME]", Run: runKeys},
}, Version: func() string { return buildinfo.Read().String() }}

func main() {
	// sarama keeps go-metrics histograms of every request, which nothing here reads; they cost
	// a tenth of a busy authorizer's CPU.
	metrics.UseNilMetrics = true
	program.Main()
}
