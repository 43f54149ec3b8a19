package main

import (
	"fmt"
	"io"
	"time"
)

// legTotals are the sums and counts of the ingresses' latency histograms: the two Kafka legs
// of a payment and the whole call inside the ingress.
type legTotals map[string]struct{ sum, count float64 }

// Where a call's time goes, in the order printed.
var legNames = []string{"request", "reply", "ingress"}

// scrapeLegs adds up the histograms of every ingress's /metrics.
func scrapeLegs(httpAddrs []string, method string) (legTotals, error) {
	t := legTotals{}
	for _, a := range httpAddrs {
		fams, err := scrapeMetrics(a)
		if err != nil {
			return nil, err
		}
		add := func(name string, h interface {
			GetSampleSum() float64
			GetSampleCount() uint64
		}) {
			v := t[name]
			v.sum += h.GetSampleSum()
			v.count += float64(h.GetSampleCount())
			t[name] = v
		}
		for _, m := range fams["codebank_ingress_payment_leg_seconds"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "leg" {
					add(l.GetValue(), m.GetHistogram())
				}
			}
		}
		for _, m := range fams["codebank_ingress_request_seconds"].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "method" && l.GetValue() == method {
					add("ingress", m.GetHistogram())
				}
			}
		}
	}
	return t, nil
}

// printLegs prints the mean time of each leg between two scrapes, beside the mean the load
// generator measured.
func printLegs(w io.Writer, before, after legTotals, clientMean time.Duration) {
	fmt.Fprintf(w, "\n| where a call's time goes (last step, means) | ms |\n|---|---:|\n")
	mean := func(name string) float64 {
		n := after[name].count - before[name].count
		if n <= 0 {
			return 0
		}
		return (after[name].sum - before[name].sum) / n * 1000
	}
	req, rep, in := mean("request"), mean("reply"), mean("ingress")
	fmt.Fprintf(w, "| request leg: written to Kafka → decided by the authorizer | %.2f |\n", req)
	fmt.Fprintf(w, "| reply leg: decided → reply back at the waiting call | %.2f |\n", rep)
	fmt.Fprintf(w, "| the rest of the ingress (gRPC handler, validation, correlation) | %.2f |\n", in-req-rep)
	fmt.Fprintf(w, "| gRPC transport and the load generator (measured − ingress) | %.2f |\n", float64(clientMean.Microseconds())/1000-in)
	fmt.Fprintf(w, "| measured by the load generator | %.2f |\n", float64(clientMean.Microseconds())/1000)
}
