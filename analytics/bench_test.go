package analytics_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/testenv/banktest"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// BenchmarkIndexingLag measures, one payment at a time, the time from Authorize returning to the
// document being found by a search: Kafka Connect's poll and bulk request, then the index's 1 s
// refresh interval.
func BenchmarkIndexingLag(b *testing.B) {
	p := startPipeline(b)
	ctx := context.Background()
	c, err := p.cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: "Bench Card", LimitCents: 100_000_000})
	if err != nil {
		b.Fatal(err)
	}
	req := &codebankv1.AuthorizeRequest{Card: &codebankv1.CardDetails{Number: c.GetCard().GetNumber(), HolderName: "Bench Card",
		ExpiryMonth: c.GetCard().GetExpiryMonth(), ExpiryYear: c.GetCard().GetExpiryYear(), Cvv: c.GetCvv()},
		AmountCents: 1, Store: "Code Store", Description: "bench"}
	token := c.GetCard().GetCardId()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r, err := p.payments.Authorize(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			res, err := p.search.Search(p.index).Query(elastic.NewIdsQuery().Ids(codecs.PaymentKey(token, banktest.Merchant, r.GetTransactionId()))).Size(0).TrackTotalHits(true).Do(ctx)
			if err == nil && res.TotalHits() == 1 {
				break
			}
			if time.Since(start) > time.Minute {
				b.Fatalf("transaction %s not searchable after a minute", r.GetTransactionId())
			}
			time.Sleep(20 * time.Millisecond)
		}
		lat = append(lat, time.Since(start))
		req.TransactionId = ""
	}
	b.StopTimer()
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Milliseconds()) }
	b.ReportMetric(at(0.5), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(at(1), "max-ms")
}
