package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
)

// The dashboard's window and its bounds.
const (
	// WindowSeconds is how far back the dashboard looks: 5 minutes, one bucket a second.
	WindowSeconds = 300
	// rateSeconds is the span of the "authorizations per second" figure.
	rateSeconds = 10
	// topStores is how many stores the dashboard lists.
	topStores = 10
	// maxStoresPerSecond bounds the stores one second remembers; store names come from
	// clients, so their number has no other bound. The rest are summed as otherStores.
	maxStoresPerSecond = 200
	otherStores        = "Other stores"
)

// Latency histogram: log-spaced buckets from latencyMin milliseconds, each latencyRatio wider
// than the one before; percentiles are read to within 5%.
const (
	latencyMin     = 0.01
	latencyRatio   = 1.1
	latencyBuckets = 170 // up to about 110 s
)

// DashboardData is the dashboard's figures over the last WindowSeconds, as /dashboard/data
// serves them.
type DashboardData struct {
	// Now is when the figures were taken.
	Now time.Time `json:"now"`
	// WindowSeconds is the span of every figure but RatePerSecond.
	WindowSeconds int `json:"window_seconds"`
	// Connected is false while the feed cannot read the results topic.
	Connected bool `json:"connected"`
	// Series counts authorizations per second by status, oldest second first.
	Series Series `json:"series"`
	// Approved and Rejected count the decisions in the window.
	Approved int64 `json:"approved"`
	Rejected int64 `json:"rejected"`
	// RatePerSecond is authorizations per second over the last ten seconds.
	RatePerSecond float64 `json:"rate_per_second"`
	// ApprovalRate is Approved / (Approved + Rejected), 0-1; absent without decisions.
	ApprovalRate *float64 `json:"approval_rate,omitempty"`
	// Latency is the bank's processing time (processing_ms) percentiles, in milliseconds.
	Latency Latency `json:"latency_ms"`
	// ApprovedCents is the amount approved in the window.
	ApprovedCents int64 `json:"approved_cents"`
	// Stores are the stores with the largest approved amounts, largest first.
	Stores []StoreAmount `json:"stores"`
	// Reasons count rejections by the reason merchants are told (codecs.MerchantReason: a
	// wrong CVV, expiry or holder and an unknown card are all do_not_honor), most frequent
	// first: the page is public, and the exact reasons are for operators.
	Reasons []ReasonCount `json:"reasons"`
	// Reversals and Refunds count the merchants' reversals and refunds in the window, and
	// CreditedCents their amount: credit given back to cards.
	Reversals     int64 `json:"reversals"`
	Refunds       int64 `json:"refunds"`
	CreditedCents int64 `json:"credited_cents"`
	// CreditsPerSecond is reversals and refunds per second over the last ten seconds.
	CreditsPerSecond float64 `json:"credits_per_second"`
	// RefundRate is (Reversals + Refunds) / Approved, the share of purchases given back;
	// absent without approvals.
	RefundRate *float64 `json:"refund_rate,omitempty"`
}

// Series is one count per second of the window.
type Series struct {
	// StartUnix is the first second, in seconds since the Unix epoch.
	StartUnix int64 `json:"start_unix"`
	Approved  []int `json:"approved"`
	Rejected  []int `json:"rejected"`
	Reversals []int `json:"reversals"`
	Refunds   []int `json:"refunds"`
}

// Latency holds percentiles in milliseconds; zero without decisions.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
}

// StoreAmount is one store's approved purchases.
type StoreAmount struct {
	Store       string `json:"store"`
	AmountCents int64  `json:"amount_cents"`
	Count       int64  `json:"count"`
}

// ReasonCount is how many payments were rejected for one reason.
type ReasonCount struct {
	Reason string `json:"reason"`
	Label  string `json:"label"`
	Count  int64  `json:"count"`
}

// Feed reads the results topic (processors.Topology.Results, JSON records of
// docs/results-topic.md) from every partition, starting WindowSeconds back, and keeps rolling
// aggregates for the dashboard in memory. Records are deduplicated by payment key, as the
// topic's contract asks; one that does not decode or breaks the contract is copied to the
// dashboard's dead-letter topic of the results (processors.ConsumerDashboard) and skipped.
// Build it with NewFeed and Run it; a Feed without Run can be fed with Add.
type Feed struct {
	kc        kafkaconf.Config
	in        stream.Input
	dead      *stream.DeadLetters
	topic     string
	log       *slog.Logger
	now       func() time.Time
	connected atomic.Bool

	mu  sync.Mutex
	agg aggregate
}

// FeedConfig says which results topic a Feed reads.
type FeedConfig struct {
	// Kafka reaches the cluster.
	Kafka kafkaconf.Config
	// Topology names the bank's topics.
	Topology processors.Topology
}

// FeedDeps are a Feed's collaborators.
type FeedDeps = stream.Deps

// NewFeed returns a feed of the results topic.
func NewFeed(cfg FeedConfig, deps FeedDeps) *Feed {
	deps = deps.WithDefaults()
	in := cfg.Topology.Input(processors.ConsumerDashboard, cfg.Topology.Results())
	return &Feed{kc: cfg.Kafka, in: in, dead: stream.NewDeadLetters(deps.Registerer, deps.Log), topic: in.Topic.Name, log: deps.Log, now: time.Now}
}

// Add counts one result.
func (f *Feed) Add(r *codecs.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.agg.add(r, f.now())
}

// Snapshot returns the figures now.
func (f *Feed) Snapshot() DashboardData {
	f.mu.Lock()
	d := f.agg.snapshot(f.now())
	f.mu.Unlock()
	d.Connected = f.connected.Load()
	return d
}

// Run reads the topic until ctx ends, reconnecting after errors (the dashboard is not worth
// stopping the process for); it returns nil when ctx ends.
func (f *Feed) Run(ctx context.Context) error {
	for {
		err := f.consume(ctx)
		f.connected.Store(false)
		if ctx.Err() != nil {
			return nil
		}
		f.log.Warn("dashboard feed interrupted; reconnecting in 5s", "topic", f.topic, "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// consume reads every partition from WindowSeconds ago until ctx ends or a partition stops.
func (f *Feed) consume(ctx context.Context) error {
	cfg := f.kc.Sarama()
	cfg.ClientID += "-dashboard"
	client, err := sarama.NewClient(f.kc.Brokers, cfg)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		return fmt.Errorf("create consumer: %w", err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(f.topic)
	if err != nil {
		return fmt.Errorf("partitions of %s: %w", f.topic, err)
	}
	dead, err := stream.NewDeadLetterWriter(f.kc, processors.ConsumerDashboard, f.in, f.dead, f.log)
	if err != nil {
		return err
	}
	defer dead.Close()
	since := f.now().Add(-WindowSeconds * time.Second).UnixMilli()
	stopped := make(chan error, len(parts))
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // the readers end before the consumer closes
	for _, p := range parts {
		off, err := client.GetOffset(f.topic, p, since) // the first record at or after since
		if err != nil {
			return fmt.Errorf("offset of %s/%d: %w", f.topic, p, err)
		}
		if off < 0 {
			off = sarama.OffsetNewest // nothing that recent: wait for new records
		}
		pc, err := consumer.ConsumePartition(f.topic, p, off)
		if err != nil {
			return fmt.Errorf("consume %s/%d: %w", f.topic, p, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.AsyncClose()
			stopped <- f.read(ctx, pc, dead)
		}()
	}
	f.connected.Store(true)
	select {
	case <-ctx.Done():
		return nil
	case err := <-stopped:
		return err
	}
}

// read adds the records of one partition until ctx ends or the partition consumer stops.
func (f *Feed) read(ctx context.Context, pc sarama.PartitionConsumer, dead *stream.DeadLetterWriter) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case m, ok := <-pc.Messages():
			if !ok {
				return errors.New("partition consumer closed")
			}
			if m.Value == nil {
				continue
			}
			v, err := codecs.ResultCodec{}.Decode(m.Value)
			if err == nil {
				err = codecs.CheckResult(string(m.Key), v.(*codecs.Result))
			}
			if err != nil {
				dead.Write(m.Topic, m.Partition, m.Offset, m.Key, m.Value, goka.HeadersFromSarama(m.Headers), err)
				continue
			}
			f.Add(v.(*codecs.Result))
		case err, ok := <-pc.Errors():
			if ok {
				f.log.Debug("dashboard feed", "err", err) // sarama retries by itself
			}
		}
	}
}

// second is one second's share of the aggregates.
type second struct {
	unix     int64
	approved int
	rejected int
	latency  [latencyBuckets]uint32
	stores   map[string]StoreAmount
	reasons  map[string]int64
	keys     []uint64 // hashes of the results counted, to forget them with the second
	// reversals and refunds count the credits given back, of credited cents.
	reversals, refunds int
	credited           int64
}

// aggregate is a ring of WindowSeconds seconds.
type aggregate struct {
	secs [WindowSeconds]second
	// seen maps the hash of each result's key in the window to its second, to count a
	// redelivered result once. Hashes, not keys: the window holds every result of five minutes
	// (300,000 at 1,000/s), and a map without pointers is a third of the size and nothing for
	// the collector to scan. Two keys whose 64-bit hashes collide (one chance in 10^8 over a
	// window of a million results) would count once: a dashboard's figure, never money.
	seen map[uint64]int64
	seed maphash.Seed
}

func (a *aggregate) add(r *codecs.Result, now time.Time) {
	at, err := time.Parse(time.RFC3339Nano, r.AuthorizedAt)
	if err != nil {
		return
	}
	nowSec, sec := now.Unix(), min(at.Unix(), now.Unix()) // a clock ahead of ours counts as now
	if sec <= nowSec-WindowSeconds {
		return
	}
	if a.seen == nil {
		a.seen = map[uint64]int64{}
		a.seed = maphash.MakeSeed()
	}
	key := maphash.String(a.seed, r.PaymentKey)
	if s, ok := a.seen[key]; ok && s > nowSec-WindowSeconds {
		return // a duplicate (replayed or re-read) result
	}
	b := &a.secs[sec%WindowSeconds]
	if b.unix != sec {
		for _, k := range b.keys {
			if a.seen[k] == b.unix {
				delete(a.seen, k)
			}
		}
		*b = second{unix: sec}
	}
	a.seen[key] = sec
	b.keys = append(b.keys, key)
	switch r.KindOf() {
	case codecs.KindPurchase:
	case codecs.KindReversal:
		b.reversals++
		b.credited += r.AmountCents
		return
	case codecs.KindRefund:
		b.refunds++
		b.credited += r.AmountCents
		return
	default:
		return // a bill payment: the bank's, not a sale's
	}
	b.latency[latencyBucket(r.ProcessingMs)]++
	if r.Status == codecs.StatusApproved {
		b.approved++
		if b.stores == nil {
			b.stores = map[string]StoreAmount{}
		}
		store := r.Store
		if _, ok := b.stores[store]; !ok && len(b.stores) >= maxStoresPerSecond {
			store = otherStores
		}
		sa := b.stores[store]
		sa.Store, sa.AmountCents, sa.Count = store, sa.AmountCents+r.AmountCents, sa.Count+1
		b.stores[store] = sa
		return
	}
	b.rejected++
	if b.reasons == nil {
		b.reasons = map[string]int64{}
	}
	b.reasons[codecs.MerchantReasonCode(r.Reason)]++
}

func (a *aggregate) snapshot(now time.Time) DashboardData {
	nowSec := now.Unix()
	start := nowSec - WindowSeconds + 1
	d := DashboardData{
		Now: now.UTC(), WindowSeconds: WindowSeconds,
		Series: Series{StartUnix: start, Approved: make([]int, WindowSeconds), Rejected: make([]int, WindowSeconds),
			Reversals: make([]int, WindowSeconds), Refunds: make([]int, WindowSeconds)},
		Stores:  []StoreAmount{},
		Reasons: []ReasonCount{},
	}
	var hist [latencyBuckets]int64
	stores := map[string]StoreAmount{}
	reasons := map[string]int64{}
	var recent, recentCredits int64
	for i := range a.secs {
		b := &a.secs[i]
		if b.unix < start || b.unix > nowSec {
			continue
		}
		d.Series.Approved[b.unix-start] = b.approved
		d.Series.Rejected[b.unix-start] = b.rejected
		d.Approved += int64(b.approved)
		d.Rejected += int64(b.rejected)
		d.Series.Reversals[b.unix-start] = b.reversals
		d.Series.Refunds[b.unix-start] = b.refunds
		d.Reversals += int64(b.reversals)
		d.Refunds += int64(b.refunds)
		d.CreditedCents += b.credited
		if b.unix > nowSec-rateSeconds {
			recent += int64(b.approved + b.rejected)
			recentCredits += int64(b.reversals + b.refunds)
		}
		for j, n := range b.latency {
			hist[j] += int64(n)
		}
		for k, v := range b.stores {
			s := stores[k]
			s.Store, s.AmountCents, s.Count = k, s.AmountCents+v.AmountCents, s.Count+v.Count
			stores[k] = s
			d.ApprovedCents += v.AmountCents
		}
		for k, n := range b.reasons {
			reasons[k] += n
		}
	}
	d.RatePerSecond = float64(recent) / rateSeconds
	d.CreditsPerSecond = float64(recentCredits) / rateSeconds
	if d.Approved > 0 {
		rate := float64(d.Reversals+d.Refunds) / float64(d.Approved)
		d.RefundRate = &rate
	}
	if total := d.Approved + d.Rejected; total > 0 {
		rate := float64(d.Approved) / float64(total)
		d.ApprovalRate = &rate
		d.Latency = Latency{Count: total, P50: percentile(hist[:], total, 0.50), P90: percentile(hist[:], total, 0.90), P99: percentile(hist[:], total, 0.99)}
	}
	for _, s := range stores {
		d.Stores = append(d.Stores, s)
	}
	slices.SortFunc(d.Stores, func(a, b StoreAmount) int {
		return cmp.Or(cmp.Compare(b.AmountCents, a.AmountCents), cmp.Compare(a.Store, b.Store))
	})
	if len(d.Stores) > topStores {
		d.Stores = d.Stores[:topStores]
	}
	for k, n := range reasons {
		d.Reasons = append(d.Reasons, ReasonCount{Reason: k, Label: codecs.ReasonOf(k).Label, Count: n})
	}
	slices.SortFunc(d.Reasons, func(a, b ReasonCount) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Reason, b.Reason))
	})
	return d
}

// latencyBucket returns the histogram bucket of a processing time in milliseconds.
func latencyBucket(ms float64) int {
	if !(ms >= latencyMin) { // also NaN
		return 0
	}
	i := 1 + int(math.Log(ms/latencyMin)/math.Log(latencyRatio))
	return min(i, latencyBuckets-1)
}

// percentile reads the q-quantile of a histogram of total values: the geometric middle of the
// bucket that holds it.
func percentile(hist []int64, total int64, q float64) float64 {
	rank := int64(math.Ceil(q * float64(total)))
	var cum int64
	for i, n := range hist {
		if cum += n; cum >= rank && n > 0 {
			if i == 0 {
				return latencyMin / 2
			}
			v := latencyMin * math.Pow(latencyRatio, float64(i-1)+0.5)
			return math.Round(v*100) / 100
		}
	}
	return 0
}

// dashboardView is the data of the dashboard page.
type dashboardView struct {
	D DashboardData
	// Symbol is the currency symbol the page's script writes before amounts.
	Symbol string
}

// ApprovalPercent is the approval rate as "93.5%", or "—".
func (v dashboardView) ApprovalPercent() string {
	if v.D.ApprovalRate == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *v.D.ApprovalRate*100)
}

// Rate is the authorizations per second, "12.3".
func (v dashboardView) Rate() string { return fmt.Sprintf("%.1f", v.D.RatePerSecond) }

// CreditRate is the reversals and refunds per second, "0.4".
func (v dashboardView) CreditRate() string { return fmt.Sprintf("%.1f", v.D.CreditsPerSecond) }

// RefundPercent is the refund rate as "2.5%", or "—".
func (v dashboardView) RefundPercent() string {
	if v.D.RefundRate == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *v.D.RefundRate*100)
}

// Ms formats a latency: "1.70 ms", or "—" without decisions.
func (v dashboardView) Ms(ms float64) string {
	if v.D.Latency.Count == 0 {
		return "—"
	}
	return fmt.Sprintf("%.2f ms", ms)
}

func (s *Server) snapshot() DashboardData {
	if s.dashboard == nil {
		var empty aggregate
		return empty.snapshot(s.now())
	}
	return s.dashboard.Snapshot()
}

func (s *Server) dashboardPage(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "dashboard.html", page{Title: "Dashboard", Nav: "dashboard",
		Data: dashboardView{D: s.snapshot(), Symbol: s.cfg.CurrencySymbol}})
}

func (s *Server) dashboardData(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.snapshot())
}
