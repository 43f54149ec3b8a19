package authorizer

import (
	"context"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

const number = "4111111111111111"

// startTester runs the authorizer on goka's in-memory tester and returns it.
func startTester(t *testing.T) (*tester.Tester, processors.Topology, card.Keys) {
	t.Helper()
	tt := tester.New(t)
	topo := processors.Topology{Prefix: "unit-"}
	keys, err := card.NewKeys("a test secret of the bank")
	if err != nil {
		t.Fatal(err)
	}
	p := New(topo, keys, WithClock(func() time.Time { return now }))
	proc, err := goka.NewProcessor(nil, p.Graph(), goka.WithTester(tt))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- proc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor: %v", err)
		}
	})
	return tt, topo, keys
}

func TestProcessorIssueAndPay(t *testing.T) {
	tt, topo, keys := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)

	tt.Consume(topo.CardCommands().Name, number, &eventsv1.CardCommand{CommandId: "c1", ReplyKey: "r0",
		Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{HolderName: "Maria Silva", LimitCents: 10000, Currency: "BRL", ExpiryMonth: 11, ExpiryYear: 2030}}})
	key, v, ok := replies.Next()
	if !ok || key != "r0" {
		t.Fatalf("no reply to issue (key %q)", key)
	}
	if r := v.(*eventsv1.Reply); r.GetCorrelationId() != "c1" || r.GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_OK {
		t.Fatalf("issue reply = %v", r)
	}

	// Issuing the same number again is refused and changes nothing.
	tt.Consume(topo.CardCommands().Name, number, &eventsv1.CardCommand{CommandId: "c2", ReplyKey: "r0",
		Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{HolderName: "Other", LimitCents: 1}}})
	if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS {
		t.Fatalf("second issue reply = %v", v)
	}

	pay := func(tx string, amount int64) *eventsv1.PaymentReply {
		t.Helper()
		tt.Consume(topo.PaymentRequests().Name, number, &eventsv1.PaymentRequested{TransactionId: tx, HolderName: "maria silva",
			ExpiryMonth: 11, ExpiryYear: 2030, CvvMatch: true, AmountCents: amount, Store: "Code Store", Description: "x",
			RequestedAtUnixUs: now.Add(-time.Millisecond).UnixMicro(), ReplyKey: "r1"})
		key, v, ok := replies.Next()
		if !ok || key != "r1" {
			t.Fatalf("no reply to payment %s", tx)
		}
		r := v.(*eventsv1.Reply)
		if r.GetCorrelationId() != tx {
			t.Fatalf("reply correlation = %q, want %q", r.GetCorrelationId(), tx)
		}
		return r.GetPayment()
	}

	if r := pay("tx-1", 6000); r.GetOutcome().GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED || r.GetOutcome().GetAvailableCents() != 4000 {
		t.Fatalf("pay 60.00 = %v, want approved with 40.00 left", r)
	}
	if r := pay("tx-2", 6000); r.GetOutcome().GetReason() != codebankv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT {
		t.Fatalf("pay 60.00 again = %v, want insufficient credit", r)
	}
	if r := pay("tx-1", 6000); !r.GetDuplicate() || r.GetOutcome().GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("retry of tx-1 = %v, want the original approval replayed", r)
	}
	acct := tt.TableValue(goka.Table(topo.AuthorizerTable().Name), number).(*eventsv1.Account)
	if acct.GetUsedCents() != 6000 {
		t.Fatalf("used = %d, want 6000 (charged once)", acct.GetUsedCents())
	}

	// Every decision is published, keyed by the card token, without the card number.
	var got []*codecs.Result
	for {
		key, v, ok := results.Next()
		if !ok {
			break
		}
		if key != keys.Token(number) {
			t.Errorf("result key = %q, want the card token", key)
		}
		got = append(got, v.(*codecs.Result))
	}
	if len(got) != 3 {
		t.Fatalf("published %d results, want 3", len(got))
	}
	first := got[0]
	if first.Status != "approved" || first.AmountCents != 6000 || first.Amount != "60.00" || first.CardMasked != "411111******1111" ||
		first.Currency != "BRL" || first.ProcessingMs != 1 || first.AuthorizedAt != "2026-11-25T12:00:00.000000Z" {
		t.Errorf("first result = %+v", first)
	}
	if got[1].Status != "rejected" || got[1].Reason != "insufficient_credit" {
		t.Errorf("second result = %+v", got[1])
	}
	if *got[2] != *first {
		t.Errorf("replayed result = %+v, want identical to %+v", got[2], first)
	}
}

func TestProcessorUnknownCard(t *testing.T) {
	tt, topo, _ := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	tt.Consume(topo.PaymentRequests().Name, number, &eventsv1.PaymentRequested{TransactionId: "tx", AmountCents: 1, ReplyKey: "r"})
	_, v, ok := replies.Next()
	if !ok || v.(*eventsv1.Reply).GetPayment().GetOutcome().GetReason() != codebankv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND {
		t.Fatalf("reply = %v, want card not found", v)
	}
	if tt.TableValue(goka.Table(topo.AuthorizerTable().Name), number) != nil {
		t.Error("a payment on an unknown card created an account")
	}
	tt.Consume(topo.CardCommands().Name, number, &eventsv1.CardCommand{CommandId: "g", ReplyKey: "r", Command: &eventsv1.CardCommand_Get{Get: &eventsv1.GetCard{}}})
	if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_NOT_FOUND {
		t.Fatalf("get reply = %v, want not found", v)
	}
}
