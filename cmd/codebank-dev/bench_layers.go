package main

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/google/pprof/profile"
)

// cpuLayer is one layer of codebank all's CPU: the samples whose stack holds a function it
// matches, and no function of a layer before it.
type cpuLayer struct {
	name  string
	match *regexp.Regexp
}

// cpuLayers attribute a CPU profile of codebank all to what the work was for, in this order: a
// sample in the bank's own code (deciding, writing statements, the ingress's handlers,
// the dashboard) is the bank's, even where that code encodes a record or reads a table; what
// is left is plumbing, by library. The Kafka client is split by what it was doing: producing
// (sarama's producer pipeline and its writes), fetching (the fetch loop of every consumer) and
// the rest (reading responses, goka's hand-offs). The scheduler's share is what goroutines
// cost to park and wake: hand-offs between them.
var cpuLayers = []cpuLayer{
	{"bank code", regexp.MustCompile(`^github\.com/codebank/codebank/(processors|grpcgateway|web)[./]`)},
	{"tables", regexp.MustCompile(`^github\.com/(codebank/codebank/internal/tablestore|syndtr/goleveldb)[./]`)},
	{"Kafka produce", regexp.MustCompile(`^github\.com/IBM/sarama\.(\(\*asyncProducer\)|\(\*brokerProducer\)|\(\*partitionProducer\)|\(\*topicProducer\)|\(\*produceSet\)|\(\*Broker\)\.AsyncProduce)`)},
	{"Kafka fetch", regexp.MustCompile(`^github\.com/IBM/sarama\.(\(\*brokerConsumer\)|\(\*partitionConsumer\)|\(\*Broker\)\.Fetch)`)},
	{"Kafka other", regexp.MustCompile(`^github\.com/(IBM/sarama|lovoo/goka)[./]`)},
	{"gRPC transport", regexp.MustCompile(`^google\.golang\.org/grpc[./]`)},
	{"scheduler", regexp.MustCompile(`^runtime\.(mcall|park_m|schedule|findRunnable|mstart)$`)},
	{"GC", regexp.MustCompile(`^runtime\.(gcBgMarkWorker|bgsweep|bgscavenge|gcAssistAlloc)$`)},
}

// otherLayer is what no layer matches.
const otherLayer = "other"

// layerNames returns the layers in the order they are printed.
func layerNames() []string {
	names := make([]string, 0, len(cpuLayers)+1)
	for _, l := range cpuLayers {
		names = append(names, l.name)
	}
	return append(names, otherLayer)
}

// profileLayers reads a CPU profile and returns each layer's share of its CPU time (0 to 1).
func profileLayers(r io.Reader) (map[string]float64, error) {
	p, err := profile.Parse(r)
	if err != nil {
		return nil, err
	}
	value := len(p.SampleType) - 1 // CPU time, after the sample count
	for i, st := range p.SampleType {
		if st.Type == "cpu" {
			value = i
		}
	}
	shares := map[string]float64{}
	var total float64
	for _, s := range p.Sample {
		v := float64(s.Value[value])
		total += v
		shares[layerOf(s)] += v
	}
	if total == 0 {
		return nil, fmt.Errorf("the profile holds no samples")
	}
	for k := range shares {
		shares[k] /= total
	}
	return shares, nil
}

// layerOf returns the first layer that matches a function of the sample's stack.
func layerOf(s *profile.Sample) string {
	var funcs []string
	for _, loc := range s.Location {
		for _, line := range loc.Line {
			if line.Function != nil {
				funcs = append(funcs, line.Function.Name)
			}
		}
	}
	for _, l := range cpuLayers {
		for _, f := range funcs {
			if l.match.MatchString(f) {
				return l.name
			}
		}
	}
	return otherLayer
}

// printLayers prints, for every step with a profile, where codebank all's CPU per payment
// went: its CPU per payment (from /proc, as in the other tables) split by the profile's shares.
func printLayers(w io.Writer, steps []fullStep) {
	var with []fullStep
	for _, s := range steps {
		if s.Layers != nil {
			with = append(with, s)
		}
	}
	if len(with) == 0 {
		return
	}
	names := layerNames()
	fmt.Fprintf(w, "\nWhere codebank all's CPU went (a CPU profile of each step, --profile), µs a payment:\n\n| run | rate/s | all | %s |\n|---|---:|---:|%s\n",
		strings.Join(names, " | "), strings.Repeat("---:|", len(names)))
	for _, s := range with {
		all := s.perPayment("codebank all")
		cells := make([]string, len(names))
		for i, n := range names {
			cells[i] = fmt.Sprintf("%.0f", all*s.Layers[n])
		}
		fmt.Fprintf(w, "| %s | %d | %.0f | %s |\n", s.Phase, s.Rate, all, strings.Join(cells, " | "))
	}
}

// readLayers reads the profile in file and returns each layer's share of its CPU time.
func readLayers(file string) (map[string]float64, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return profileLayers(f)
}
