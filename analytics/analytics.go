// Package analytics is the search side of Code Bank: how the results records
// (docs/results-topic.md) are kept (Indices: one index a month, named by each result's own
// authorized_at, behind one alias, with a template that gives every field its type, and the
// retention that deletes whole old indices), how the server is reached (Search: HTTPS with a
// CA of its own, a user and password), and the key figures analysts follow, computed through
// the alias for the terminal (`codebank analytics`) with the same aggregations as the
// dashboards in kibana/.
//
// The bank never writes to the indices: Kafka Connect does (connect/). This package creates
// the template, the lifecycle policy and the first index, reads, and deletes old indices where
// the server has no lifecycle of its own (Indices.Prune).
package analytics

import (
	"context"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/codecs"
)

// DefaultIndex is the alias the results are read through, and the prefix of the monthly
// indices Kafka Connect writes them to (codebank-payments-2026.12: Indices).
const DefaultIndex = "codebank-payments"

// templateJSON is the index template of the monthly indices, also applicable by hand:
// PUT _index_template/codebank-payments with index-template.json.
//
//go:embed index-template.json
var templateJSON []byte

// Figures are the bank's key figures over a period.
type Figures struct {
	From, To         time.Time
	Total            int64
	Approved         int64
	Rejected         int64
	ApprovalRate     float64 // approved / total, 0..1
	ApprovedAmount   float64 // currency units
	AverageTicket    float64 // mean approved amount, currency units
	PerMinute        float64 // authorizations per minute over the period
	LatencyP50       float64 // processing_ms
	LatencyP90       float64
	LatencyP99       float64
	TopStores        []Bucket // by approved amount
	RejectionReasons []Bucket // by count
	ByChannel        []Bucket // by count
	LatestAuthorized time.Time
	IndexedDocuments int64 // every document in the index, whatever its time
	// Money back: the merchants' reversals and refunds (counts and amounts), the refund rate
	// (their count over approved purchases), the bill payments recorded, and each merchant's
	// net sales (approved purchases less reversals and refunds), largest first: by merchant,
	// as a reversal or refund is the merchant's and names no branch.
	Reversals, Refunds             int64
	ReversedAmount, RefundedAmount float64
	RefundRate                     float64
	BillPayments                   int64
	BillPaidAmount                 float64
	NetSales                       []Bucket
}

// purchases selects the records of payment attempts: every kind but the operations (records
// written before kinds existed have none, and are purchases).
func purchases() elastic.Query {
	return elastic.NewBoolQuery().MustNot(elastic.NewTermsQuery("kind", codecs.KindReversal, codecs.KindRefund, codecs.KindBillPayment))
}

// Bucket is one term and its figure.
type Bucket struct {
	Key   string
	Count int64
	Value float64
}

// KeyFigures computes the figures of authorizations decided in [from, to), and of the
// operations that gave credit back in it.
func KeyFigures(ctx context.Context, c *elastic.Client, index string, from, to time.Time) (*Figures, error) {
	approved := elastic.NewTermQuery("status", codecs.StatusApproved)
	period := elastic.NewRangeQuery("authorized_at").Gte(from.UTC().Format(time.RFC3339Nano)).Lt(to.UTC().Format(time.RFC3339Nano))
	search := c.Search(index).Size(0).TrackTotalHits(true).
		Query(elastic.NewBoolQuery().Filter(period, purchases())).
		Aggregation("status", elastic.NewTermsAggregation().Field("status").Size(5)).
		Aggregation("approved", elastic.NewFilterAggregation().Filter(approved).
			SubAggregation("amount", elastic.NewSumAggregation().Field("amount")).
			SubAggregation("ticket", elastic.NewAvgAggregation().Field("amount")).
			SubAggregation("stores", elastic.NewTermsAggregation().Field("store").Size(10).
				OrderByAggregation("amount", false).SubAggregation("amount", elastic.NewSumAggregation().Field("amount")))).
		Aggregation("reasons", elastic.NewTermsAggregation().Field("reason").Size(10)).
		Aggregation("channels", elastic.NewTermsAggregation().Field("channel").Size(5)).
		Aggregation("latency", elastic.NewPercentilesAggregation().Field("processing_ms").Percentiles(50, 90, 99)).
		Aggregation("latest", elastic.NewMaxAggregation().Field("authorized_at"))
	res, err := search.Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("search %s: %w", index, err)
	}
	f := &Figures{From: from, To: to, Total: res.TotalHits()}
	if st, ok := res.Aggregations.Terms("status"); ok {
		for _, b := range st.Buckets {
			switch fmt.Sprint(b.Key) {
			case codecs.StatusApproved:
				f.Approved = b.DocCount
			case codecs.StatusRejected:
				f.Rejected = b.DocCount
			}
		}
	}
	if f.Total > 0 {
		f.ApprovalRate = float64(f.Approved) / float64(f.Total)
	}
	f.PerMinute = float64(f.Total) / to.Sub(from).Minutes()
	if ap, ok := res.Aggregations.Filter("approved"); ok {
		if s, ok := ap.Sum("amount"); ok && s.Value != nil {
			f.ApprovedAmount = *s.Value
		}
		if a, ok := ap.Avg("ticket"); ok && a.Value != nil {
			f.AverageTicket = *a.Value
		}
		if stores, ok := ap.Terms("stores"); ok {
			for _, b := range stores.Buckets {
				sum, _ := b.Sum("amount")
				v := 0.0
				if sum != nil && sum.Value != nil {
					v = *sum.Value
				}
				f.TopStores = append(f.TopStores, Bucket{Key: fmt.Sprint(b.Key), Count: b.DocCount, Value: v})
			}
		}
	}
	f.RejectionReasons = terms(res, "reasons")
	f.ByChannel = terms(res, "channels")
	if p, ok := res.Aggregations.Percentiles("latency"); ok {
		f.LatencyP50, f.LatencyP90, f.LatencyP99 = p.Values["50.0"], p.Values["90.0"], p.Values["99.0"]
	}
	if m, ok := res.Aggregations.Max("latest"); ok && m.Value != nil {
		f.LatestAuthorized = time.UnixMilli(int64(*m.Value)).UTC()
	}
	if n, err := c.Count(index).Do(ctx); err == nil {
		f.IndexedDocuments = n
	}
	if err := moneyBack(ctx, c, index, period, f); err != nil {
		return nil, err
	}
	return f, nil
}

// moneyBack adds the figures of the operations in period, and the stores' net sales.
func moneyBack(ctx context.Context, c *elastic.Client, index string, period elastic.Query, f *Figures) error {
	res, err := c.Search(index).Size(0).Query(elastic.NewBoolQuery().Filter(period, elastic.NewTermQuery("status", codecs.StatusApproved))).
		Aggregation("kinds", elastic.NewTermsAggregation().Field("kind").Size(5).SubAggregation("amount", elastic.NewSumAggregation().Field("amount"))).
		Aggregation("net", elastic.NewTermsAggregation().Field("merchant").Size(10).OrderByAggregation("net", false).
			SubAggregation("net", elastic.NewSumAggregation().Field("net_amount"))).
		Do(ctx)
	if err != nil {
		return fmt.Errorf("search %s: %w", index, err)
	}
	if kinds, ok := res.Aggregations.Terms("kinds"); ok {
		for _, b := range kinds.Buckets {
			amount := 0.0
			if s, ok := b.Sum("amount"); ok && s.Value != nil {
				amount = *s.Value
			}
			switch fmt.Sprint(b.Key) {
			case codecs.KindReversal:
				f.Reversals, f.ReversedAmount = b.DocCount, amount
			case codecs.KindRefund:
				f.Refunds, f.RefundedAmount = b.DocCount, amount
			case codecs.KindBillPayment:
				f.BillPayments, f.BillPaidAmount = b.DocCount, amount
			}
		}
	}
	if f.Approved > 0 {
		f.RefundRate = float64(f.Reversals+f.Refunds) / float64(f.Approved)
	}
	if net, ok := res.Aggregations.Terms("net"); ok {
		for _, b := range net.Buckets {
			v := 0.0
			if s, ok := b.Sum("net"); ok && s.Value != nil {
				v = *s.Value
			}
			if fmt.Sprint(b.Key) == "" {
				continue // bill payments are no merchant's
			}
			f.NetSales = append(f.NetSales, Bucket{Key: fmt.Sprint(b.Key), Count: b.DocCount, Value: v})
		}
	}
	return nil
}

func terms(res *elastic.SearchResult, name string) []Bucket {
	var out []Bucket
	if t, ok := res.Aggregations.Terms(name); ok {
		for _, b := range t.Buckets {
			out = append(out, Bucket{Key: fmt.Sprint(b.Key), Count: b.DocCount})
		}
	}
	return out
}

// Format writes the figures for a terminal.
func (f *Figures) Format(currency string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Authorizations %s – %s (UTC)\n\n", f.From.UTC().Format("2006-01-02 15:04"), f.To.UTC().Format("2006-01-02 15:04"))
	fmt.Fprintf(&b, "  total            %d (%.1f a minute)\n", f.Total, f.PerMinute)
	fmt.Fprintf(&b, "  approved         %d\n  rejected         %d\n", f.Approved, f.Rejected)
	fmt.Fprintf(&b, "  approval rate    %.1f%%\n", 100*f.ApprovalRate)
	fmt.Fprintf(&b, "  approved amount  %s %.2f\n", currency, f.ApprovedAmount)
	fmt.Fprintf(&b, "  average ticket   %s %.2f\n", currency, f.AverageTicket)
	fmt.Fprintf(&b, "  processing       p50 %.2f ms, p90 %.2f ms, p99 %.2f ms\n", f.LatencyP50, f.LatencyP90, f.LatencyP99)
	if len(f.TopStores) > 0 {
		fmt.Fprintf(&b, "\n  top stores by approved amount\n")
		for _, s := range f.TopStores {
			fmt.Fprintf(&b, "    %-28s %s %12.2f  (%d)\n", s.Key, currency, s.Value, s.Count)
		}
	}
	fmt.Fprintf(&b, "\n  reversals        %d (%s %.2f)\n  refunds          %d (%s %.2f)\n", f.Reversals, currency, f.ReversedAmount, f.Refunds, currency, f.RefundedAmount)
	fmt.Fprintf(&b, "  refund rate      %.1f%% of approved purchases\n", 100*f.RefundRate)
	fmt.Fprintf(&b, "  bill payments    %d (%s %.2f)\n", f.BillPayments, currency, f.BillPaidAmount)
	if len(f.NetSales) > 0 {
		fmt.Fprintf(&b, "\n  net sales by merchant (purchases less reversals and refunds)\n")
		for _, s := range f.NetSales {
			fmt.Fprintf(&b, "    %-28s %s %12.2f\n", s.Key, currency, s.Value)
		}
	}
	if len(f.RejectionReasons) > 0 {
		fmt.Fprintf(&b, "\n  rejection reasons\n")
		for _, r := range f.RejectionReasons {
			fmt.Fprintf(&b, "    %-28s %d\n", codecs.ReasonOf(r.Key).Label, r.Count)
		}
	}
	if !f.LatestAuthorized.IsZero() {
		fmt.Fprintf(&b, "\n  latest authorization indexed: %s\n", f.LatestAuthorized.Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "  documents in the index: %d\n", f.IndexedDocuments)
	return b.String()
}
