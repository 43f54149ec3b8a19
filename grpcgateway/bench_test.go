package grpcgateway_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// BenchmarkAuthorizeLowLoad measures one Authorize call at a time, end to end over gRPC
// through the real broker and back, and reports its latency percentiles.
func BenchmarkAuthorizeLowLoad(b *testing.B) {
	_, in, _, card := benchBank(b)
	payments := codebankv1.NewPaymentServiceClient(in.Conn)
	ctx := context.Background()
	req := &codebankv1.AuthorizeRequest{Card: card, AmountCents: 1, Store: "Code Store", Description: "bench"}
	for i := 0; i < 50; i++ { // warm up connections and the JIT of the broker
		if _, err := payments.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		r, err := payments.Authorize(ctx, req)
		lat = append(lat, time.Since(start))
		if err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			b.Fatalf("Authorize = %v, %v", r, err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// BenchmarkLegacyPaymentLowLoad is BenchmarkAuthorizeLowLoad for payment.PaymentService.
func BenchmarkLegacyPaymentLowLoad(b *testing.B) {
	_, in, c, _ := benchBank(b)
	legacy := paymentpb.NewPaymentServiceClient(in.Conn)
	ctx := context.Background()
	cvv := 0
	for _, r := range c.GetCvv() {
		cvv = cvv*10 + int(r-'0')
	}
	req := &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{Name: "Bench Card", Number: c.GetCard().GetNumber(),
		ExpirationMonth: c.GetCard().GetExpiryMonth(), ExpirationYear: c.GetCard().GetExpiryYear(), Cvv: int32(cvv)},
		Amount: 0.01, Store: "Code Store", Description: "bench"}
	for i := 0; i < 50; i++ {
		if _, err := legacy.Payment(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		_, err := legacy.Payment(ctx, req)
		lat = append(lat, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

// benchBank starts a deployment (authorizer, ingress) and issues a card with a large limit;
// it returns the ingress and the card's details.
func benchBank(b *testing.B) (banktest.Deployment, *banktest.Ingress, *codebankv1.IssueCardResponse, *codebankv1.CardDetails) {
	b.Helper()
	d := banktest.NewDeployment(b, brokerAddr, kafkatest.Name(b), 6, 2)
	banktest.StartAuthorizer(b, d, "")
	in := banktest.StartIngress(b, d, banktest.IngressOptions{})
	c, err := codebankv1.NewCardServiceClient(in.Conn).IssueCard(context.Background(), &codebankv1.IssueCardRequest{HolderName: "Bench Card", LimitCents: 100_000_000_000})
	if err != nil {
		b.Fatal(err)
	}
	return d, in, c, &codebankv1.CardDetails{Number: c.GetCard().GetNumber(), HolderName: "Bench Card",
		ExpiryMonth: c.GetCard().GetExpiryMonth(), ExpiryYear: c.GetCard().GetExpiryYear(), Cvv: c.GetCvv()}
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	slices.Sort(lat)
	at := func(q float64) float64 { return float64(lat[int(q*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(at(0.50), "p50-ms")
	b.ReportMetric(at(0.99), "p99-ms")
	b.ReportMetric(at(1), "max-ms")
}

// BenchmarkStatementLag measures, one payment at a time, how long after Authorize returns the
// purchase is on the card's statement (placed on its page in the statements view).
func BenchmarkStatementLag(b *testing.B) {
	d, in, c, card := benchBank(b)
	banktest.StartStatements(b, d, "")
	reader := banktest.StartStatementsView(b, d)
	payments := codebankv1.NewPaymentServiceClient(in.Conn)
	ctx := context.Background()
	req := &codebankv1.AuthorizeRequest{Card: card, AmountCents: 1, Store: "Code Store", Description: "bench"}
	token := c.GetCard().GetCardId()
	month := time.Now().UTC().Format("2006-01")
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := payments.Authorize(ctx, req); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		for {
			lines, err := reader.Lines(token, month, int64(i), 1)
			if err != nil {
				b.Fatal(err)
			}
			if len(lines) == 1 {
				break
			}
			time.Sleep(100 * time.Microsecond)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}
