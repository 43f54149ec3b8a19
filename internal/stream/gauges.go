package stream

import "github.com/prometheus/client_golang/prometheus"

// gauges are the gauge vectors of a collector that fills them afresh at each scrape (GroupStats,
// Lag), so that a series of something gone goes too.
type gauges []*prometheus.GaugeVec

// describe describes every vector (prometheus.Collector's Describe).
func (g gauges) describe(ch chan<- *prometheus.Desc) {
	for _, v := range g {
		v.Describe(ch)
	}
}

// reset empties every vector.
func (g gauges) reset() {
	for _, v := range g {
		v.Reset()
	}
}

// scrape empties every vector, calls fill to set them, and collects them
// (prometheus.Collector's Collect).
func (g gauges) scrape(ch chan<- prometheus.Metric, fill func()) {
	g.reset()
	fill()
	for _, v := range g {
		v.Collect(ch)
	}
}
