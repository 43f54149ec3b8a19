package authorizer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// token is a card's token: the authorizer never sees a card number.
const token = "gzNcUY7KgaoXOFX_qNg2gQ"

// startTester runs the authorizer on goka's in-memory tester and returns it.
func startTester(t *testing.T) (*tester.Tester, processors.Topology) {
	t.Helper()
	tt := tester.New(t)
	topo := processors.Topology{Prefix: "unit-"}
	p := New(Config{Topology: topo, LockAfter: 3}, Deps{Keys: testKeys, Now: func() time.Time { return now }})
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
	return tt, topo
}

func TestProcessorIssueAndPay(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)

	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 10000))
	key, v, ok := replies.Next()
	if !ok || key != "r0" {
		t.Fatalf("no reply to issue (key %q)", key)
	}
	if r := v.(*eventsv1.Reply); r.GetCorrelationId() != "c1" || r.GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_OK ||
		r.GetCard().GetCardToken() != token {
		t.Fatalf("issue reply = %v", r)
	}

	// Issuing the same number again is refused and changes nothing.
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c2", "Other", 1))
	if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS {
		t.Fatalf("second issue reply = %v", v)
	}

	calls := 0
	pay := func(tx string, amount int64) *eventsv1.PaymentReply {
		t.Helper()
		calls++
		corr := fmt.Sprint("call-", calls)
		req := payment(tx, amount)
		req.CorrelationId = corr
		tt.Consume(topo.PaymentRequests().Name, token, req)
		key, v, ok := replies.Next()
		if !ok || key != "r1" {
			t.Fatalf("no reply to payment %s", tx)
		}
		r := v.(*eventsv1.Reply)
		if r.GetCorrelationId() != corr || r.GetPayment().GetCardToken() != token {
			t.Fatalf("reply correlation = %q, token %q; want %q, the card's", r.GetCorrelationId(), r.GetPayment().GetCardToken(), corr)
		}
		return r.GetPayment()
	}

	if r := pay("tx-1", 6000); r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED || r.GetOutcome().GetAvailableCents() != 4000 {
		t.Fatalf("pay 60.00 = %v, want approved with 40.00 left", r)
	}
	if r := pay("tx-2", 6000); r.GetOutcome().GetReason() != eventsv1.RejectReason_REJECT_REASON_INSUFFICIENT_CREDIT {
		t.Fatalf("pay 60.00 again = %v, want insufficient credit", r)
	}
	if r := pay("tx-1", 6000); !r.GetDuplicate() || r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("retry of tx-1 = %v, want the original approval replayed", r)
	}
	if r := pay("tx-1", 7000); !r.GetConflict() || r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_UNSPECIFIED {
		t.Fatalf("tx-1 again for another amount = %v, want a conflict", r)
	}
	acct := tt.TableValue(goka.Table(topo.AuthorizerTable().Name), token).(*eventsv1.Account)
	if acct.GetUsedCents() != 6000 || acct.GetApprovals() != 1 {
		t.Fatalf("used = %d, approvals = %d; want 6000, 1 (charged once)", acct.GetUsedCents(), acct.GetApprovals())
	}

	// Every decision is published, keyed by the card token, without the card number; the
	// conflict decided nothing and published nothing.
	var got []*codecs.Result
	for {
		key, v, ok := results.Next()
		if !ok {
			break
		}
		if key != token {
			t.Errorf("result key = %q, want the card token", key)
		}
		got = append(got, v.(*codecs.Result))
	}
	if len(got) != 3 {
		t.Fatalf("published %d results, want 3", len(got))
	}
	first := got[0]
	if first.Status != "approved" || first.AmountCents != 6000 || first.Amount != "60.00" || first.CardMasked != "411111******1111" ||
		first.PaymentKey != token+":code-store:tx-1" || first.Merchant != "code-store" || first.Store != "Code Store (Centro)" ||
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
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	tt.Consume(topo.PaymentRequests().Name, token, payment("tx", 1))
	_, v, ok := replies.Next()
	if !ok || v.(*eventsv1.Reply).GetPayment().GetOutcome().GetReason() != eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND {
		t.Fatalf("reply = %v, want card not found", v)
	}
	if tt.TableValue(goka.Table(topo.AuthorizerTable().Name), token) != nil {
		t.Error("a payment on an unknown card created an account")
	}
	tt.Consume(topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: "g", ReplyKey: "r", Command: &eventsv1.CardCommand_Get{Get: &eventsv1.GetCard{}}})
	if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_NOT_FOUND {
		t.Fatalf("get reply = %v, want not found", v)
	}
}

// TestPoisonRecords feeds the authorizer records it cannot use: each goes to the dead-letter
// topic of its input with headers saying where it came from and why, a request that says where
// to reply gets an error reply, and the processor goes on deciding.
func TestPoisonRecords(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	payDLQ := tt.NewQueueTracker(topo.DeadLetters(processors.ConsumerAuthorizer, topo.PaymentRequests()).Name)
	cmdDLQ := tt.NewQueueTracker(topo.DeadLetters(processors.ConsumerAuthorizer, topo.CardCommands()).Name)
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 10000))
	replies.Next()

	noAmount := payment("tx-bad", 0)
	noAmount.CorrelationId = "call-bad"
	tests := []struct {
		name     string
		topic    string
		key      string
		value    any
		dlq      *tester.QueueTracker
		errorFor string // correlation id of the expected error reply
		wantErr  string
	}{
		{"undecodable payment", topo.PaymentRequests().Name, token, &codecs.Frame{Raw: []byte("\xff\xff not protobuf")}, payDLQ, "", "decode"},
		{"payment without amount", topo.PaymentRequests().Name, token, noAmount, payDLQ, "call-bad", "amount_cents"},
		{"payment keyed by no card", topo.PaymentRequests().Name, "not-a-card", payment("tx-2", 100), payDLQ, "call-tx-2", "key must be a card token"},
		{"undecodable command", topo.CardCommands().Name, token, &codecs.Frame{Raw: []byte{0x0a, 0xff}}, cmdDLQ, "", "decode"},
		{"command without command", topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: "c-bad", ReplyKey: "r1"}, cmdDLQ, "c-bad", "command is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := topo.PaymentRequests().Codec.Encode(tc.value)
			if f, ok := tc.value.(*codecs.Frame); ok {
				raw, err = f.Raw, nil
			} else if c, ok := tc.value.(*eventsv1.CardCommand); ok {
				raw, err = topo.CardCommands().Codec.Encode(c)
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.Consume(tc.topic, tc.key, tc.value)
			h, key, v, ok := tc.dlq.NextWithHeaders()
			if !ok {
				t.Fatal("nothing dead-lettered")
			}
			if key != tc.key || string(v.([]byte)) != string(raw) {
				t.Errorf("dead letter = %q %x, want the record unchanged: %q %x", key, v, tc.key, raw)
			}
			if string(h[stream.HeaderSourceTopic]) != tc.topic || string(h[stream.HeaderConsumer]) != processors.ConsumerAuthorizer ||
				!strings.Contains(string(h[stream.HeaderError]), tc.wantErr) || h[stream.HeaderSourceOffset] == nil || h[stream.HeaderSourcePartition] == nil {
				t.Errorf("dead letter headers = %q", h)
			}
			if strings.Contains(string(h[stream.HeaderError]), token) {
				t.Errorf("dead letter error quotes the key: %s", h[stream.HeaderError])
			}
			if tc.errorFor == "" {
				return
			}
			_, v, ok = replies.Next()
			if r := v.(*eventsv1.Reply); !ok || r.GetCorrelationId() != tc.errorFor || r.GetError() == nil {
				t.Fatalf("reply = %v, want an error reply to %s", v, tc.errorFor)
			}
		})
	}
	if _, v, ok := replies.Next(); ok {
		t.Errorf("unexpected reply %v", v)
	}
	// The partitions flow on.
	req := payment("tx-good", 100)
	req.CorrelationId = "call-good"
	tt.Consume(topo.PaymentRequests().Name, token, req)
	if _, v, ok := replies.Next(); !ok || v.(*eventsv1.Reply).GetPayment().GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("reply after the poison = %v, want approved", v)
	}
}

// TestUnreadableAccountFailsClosed stores an account that does not decode, and one over its
// limit: their payments are rejected as account unavailable, never "card not found", their
// commands answered unavailable, and the stored values left as they are.
func TestUnreadableAccountFailsClosed(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)
	table := goka.Table(topo.AuthorizerTable().Name)
	const other = "JIpE73r2AbZTSYgxNyjxeA"
	tt.SetTableValue(table, token, &codecs.Undecodable{Raw: []byte("garbage")})
	overLimit := &eventsv1.Account{HolderName: "Maria Silva", LimitCents: 100, UsedCents: 200, Currency: "BRL", ExpiryMonth: 11, ExpiryYear: 2030,
		Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE}
	tt.SetTableValue(table, other, overLimit)

	for _, n := range []string{token, other} {
		req := payment("tx-1", 1)
		req.CorrelationId = "call-" + n
		tt.Consume(topo.PaymentRequests().Name, n, req)
		_, v, _ := replies.Next()
		if out := v.(*eventsv1.Reply).GetPayment().GetOutcome(); out.GetReason() != eventsv1.RejectReason_REJECT_REASON_ACCOUNT_UNAVAILABLE {
			t.Errorf("payment on a damaged account = %v, want rejected as account unavailable", out)
		}
		if _, v, ok := results.Next(); ok {
			t.Errorf("result %+v published for a payment on a damaged account, which decided nothing", v)
		}
		tt.Consume(topo.CardCommands().Name, n, &eventsv1.CardCommand{CommandId: "g-" + n, ReplyKey: "r", Command: &eventsv1.CardCommand_Get{Get: &eventsv1.GetCard{}}})
		if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_UNAVAILABLE {
			t.Errorf("get of a damaged account = %v, want unavailable", v)
		}
		tt.Consume(topo.CardCommands().Name, n, issueCommand("i-"+n, "Someone Else", 100000))
		if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_UNAVAILABLE {
			t.Errorf("issue over a damaged account = %v, want unavailable", v)
		}
	}
	if v, ok := tt.TableValue(table, token).(*codecs.Undecodable); !ok || string(v.Raw) != "garbage" {
		t.Errorf("damaged account = %v, want it left as it was", tt.TableValue(table, token))
	}
	if v := tt.TableValue(table, other).(*eventsv1.Account); v.GetUsedCents() != 200 {
		t.Errorf("over-limit account = %v, want it left as it was", v)
	}
}

// payment returns a valid payment request on the card of token, replying to r1.
func payment(tx string, amount int64) *eventsv1.PaymentRequested {
	return &eventsv1.PaymentRequested{TransactionId: tx, HolderName: "maria silva",
		ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k1"}, AmountCents: amount, Store: "Centro", Description: "x",
		RequestedAtUnixUs: now.Add(-time.Millisecond).UnixMicro(), ReplyKey: "r1", CorrelationId: "call-" + tx,
		MaskedNumber: "411111******1111", MerchantId: "code-store", MerchantName: "Code Store"}
}

func issueCommand(id, holder string, limit int64) *eventsv1.CardCommand {
	return &eventsv1.CardCommand{CommandId: id, ReplyKey: "r0",
		Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{HolderName: holder, LimitCents: limit, Currency: "BRL", ExpiryMonth: 11, ExpiryYear: 2030,
			MaskedNumber: "411111******1111", CardKeyId: "k1"}}}
}

// TestProcessorCardCommands: verify counts toward the lockout (3 here) like payments; block and
// unblock change the card's status, and unblock clears the failures.
func TestProcessorCardCommands(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	table := goka.Table(topo.AuthorizerTable().Name)
	n := 0
	command := func(c *eventsv1.CardCommand) *eventsv1.CardReply {
		t.Helper()
		n++
		c.CommandId, c.ReplyKey, c.Actor = fmt.Sprint("c", n), "r0", "ops-1"
		tt.Consume(topo.CardCommands().Name, token, c)
		_, v, ok := replies.Next()
		if !ok || v.(*eventsv1.Reply).GetCorrelationId() != c.CommandId {
			t.Fatalf("reply = %v", v)
		}
		return v.(*eventsv1.Reply).GetCard()
	}
	verify := func(cvvKey string) *eventsv1.CardCommand {
		return &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Verify{Verify: &eventsv1.VerifyCard{ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{cvvKey}}}}
	}
	if r := command(verify("k1")); r.GetResult() != eventsv1.CardResult_CARD_RESULT_NOT_FOUND {
		t.Fatalf("verify of no card = %v", r)
	}
	command(issueCommand("", "Maria Silva", 10000))
	if r := command(verify("k1")); r.GetResult() != eventsv1.CardResult_CARD_RESULT_OK {
		t.Fatalf("verify with the card's data = %v", r)
	}
	for range 2 {
		if r := command(verify("k9")); r.GetResult() != eventsv1.CardResult_CARD_RESULT_NOT_VERIFIED {
			t.Fatalf("verify with another CVV = %v", r)
		}
	}
	tt.Consume(topo.PaymentRequests().Name, token, func() *eventsv1.PaymentRequested { p := payment("tx-bad", 100); p.CvvKeyIds = nil; return p }())
	replies.Next()
	acct := tt.TableValue(table, token).(*eventsv1.Account)
	if acct.GetStatus() != eventsv1.CardStatus_CARD_STATUS_BLOCKED || acct.GetBlockReason() != eventsv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES {
		t.Fatalf("after two failed verifications and a failed payment: %v", acct)
	}
	if r := command(verify("k1")); r.GetResult() != eventsv1.CardResult_CARD_RESULT_NOT_VERIFIED {
		t.Fatalf("verify of a locked card = %v", r)
	}
	if r := command(&eventsv1.CardCommand{Command: &eventsv1.CardCommand_Unblock{Unblock: &eventsv1.UnblockCard{}}}); r.GetAccount().GetStatus() != eventsv1.CardStatus_CARD_STATUS_ACTIVE ||
		r.GetAccount().GetVerifyFailures() != 0 {
		t.Fatalf("unblock = %v", r)
	}
	if r := command(&eventsv1.CardCommand{Command: &eventsv1.CardCommand_Block{Block: &eventsv1.BlockCard{}}}); r.GetAccount().GetStatus() != eventsv1.CardStatus_CARD_STATUS_BLOCKED ||
		r.GetAccount().GetBlockReason() != eventsv1.BlockReason_BLOCK_REASON_OPERATOR {
		t.Fatalf("block = %v", r)
	}
	if r := command(&eventsv1.CardCommand{Command: &eventsv1.CardCommand_Block{Block: &eventsv1.BlockCard{}}}); r.GetResult() != eventsv1.CardResult_CARD_RESULT_OK {
		t.Fatalf("block again = %v", r)
	}
}

// TestReplayIsNeverDecidedAgain: after a crash the authorizer reads again every request after
// its group's last committed offset, on an account that already holds their outcomes. Here the
// goka tester's offsets only grow, so the account's stored position is moved past the records
// read again, which is what a restart looks like to the callback. A request read again is
// answered with its original outcome, republished exactly, and charged once, even when more
// than Keep payments of the card came after it and its outcome is forgotten; a request past
// the stored position is decided.
func TestReplayIsNeverDecidedAgain(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)
	table := goka.Table(topo.AuthorizerTable().Name)
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 100000))
	replies.Next()

	pay := func(tx string, amount int64) (*eventsv1.PaymentReply, *codecs.Result) {
		t.Helper()
		tt.Consume(topo.PaymentRequests().Name, token, payment(tx, amount))
		var (
			reply  *eventsv1.PaymentReply
			result *codecs.Result
		)
		if _, v, ok := replies.Next(); ok {
			reply = v.(*eventsv1.Reply).GetPayment()
		}
		if _, v, ok := results.Next(); ok {
			result = v.(*codecs.Result)
		}
		return reply, result
	}
	firstReply, firstResult := pay("tx-1", 1000)
	if firstReply.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED || firstResult == nil {
		t.Fatalf("first payment: %v, %v", firstReply, firstResult)
	}
	acct := tt.TableValue(table, token).(*eventsv1.Account)
	if acct.GetRequestInput() == 0 {
		t.Fatalf("the account keeps no position: %v", acct)
	}

	// The restart: everything from here on was read before.
	acct.RequestOffset += 1000
	tt.SetTableValue(table, token, acct)
	reply, result := pay("tx-1", 1000)
	if reply.GetDuplicate() || reply.GetOutcome().GetDecidedAtUnixUs() != firstReply.GetOutcome().GetDecidedAtUnixUs() ||
		reply.GetOutcome().GetAvailableCents() != firstReply.GetOutcome().GetAvailableCents() {
		t.Errorf("reply read again = %v, want the original %v", reply, firstReply)
	}
	if result == nil || *result != *firstResult {
		t.Errorf("result read again = %+v\nwant the original %+v", result, firstResult)
	}
	// tx-2 was decided before the crash, and its outcome is no longer remembered: it is not
	// decided again (nothing charged, nothing published).
	if reply, result := pay("tx-2", 500); reply != nil || result != nil {
		t.Errorf("a forgotten request read again was answered: %v, %v", reply, result)
	}
	if got := tt.TableValue(table, token).(*eventsv1.Account).GetUsedCents(); got != 1000 {
		t.Errorf("used = %d after the requests read again, want 1000", got)
	}

	// Past the stored position, requests are decided again, and so are those of a topic of
	// another name (a new generation).
	acct = tt.TableValue(table, token).(*eventsv1.Account)
	acct.RequestOffset -= 1000
	tt.SetTableValue(table, token, acct)
	if reply, _ := pay("tx-3", 500); reply.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("a new payment after the replay: %v", reply)
	}
	acct = tt.TableValue(table, token).(*eventsv1.Account)
	acct.RequestInput++
	acct.RequestOffset += 1000
	tt.SetTableValue(table, token, acct)
	if reply, _ := pay("tx-4", 500); reply.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("a payment from another generation's topic: %v", reply)
	}
	if got := tt.TableValue(table, token).(*eventsv1.Account).GetUsedCents(); got != 2000 {
		t.Errorf("used = %d, want 2000", got)
	}

	// A card command read again changes nothing: a failed verification is not counted twice,
	// and an issue is answered OK, as it was.
	acct = tt.TableValue(table, token).(*eventsv1.Account)
	acct.CommandOffset += 1000
	tt.SetTableValue(table, token, acct)
	tt.Consume(topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: "c2", ReplyKey: "r0",
		Command: &eventsv1.CardCommand_Verify{Verify: &eventsv1.VerifyCard{ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k9"}}}})
	replies.Next()
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 100000))
	if _, v, _ := replies.Next(); v.(*eventsv1.Reply).GetCard().GetResult() != eventsv1.CardResult_CARD_RESULT_OK {
		t.Errorf("issue read again = %v, want OK", v)
	}
	if got := tt.TableValue(table, token).(*eventsv1.Account); len(got.GetVerifyFailureTimes()) != 0 || got.GetCommandOffset() != acct.GetCommandOffset() {
		t.Errorf("a command read again changed the account: %v", got)
	}
}

// TestUnverifiedRepeat: a transaction id repeated with card data that is not the card's is
// rejected for that data (DO_NOT_HONOR to merchants), never answered with the id's outcome, not
// published (the id's result is the original payment's) and counted toward the lockout; with
// the card's data, the original outcome is the answer even on a card blocked since. Read again
// after a restart, the unverified repeat is rejected again.
func TestUnverifiedRepeat(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)
	table := goka.Table(topo.AuthorizerTable().Name)
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 100000))
	replies.Next()
	pay := func(req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, *codecs.Result) {
		t.Helper()
		tt.Consume(topo.PaymentRequests().Name, token, req)
		_, v, ok := replies.Next()
		if !ok {
			t.Fatalf("no reply to %s", req.GetTransactionId())
		}
		var result *codecs.Result
		if _, v, ok := results.Next(); ok {
			result = v.(*codecs.Result)
		}
		return v.(*eventsv1.Reply).GetPayment(), result
	}
	wrongCVV := func() *eventsv1.PaymentRequested { p := payment("tx-1", 1000); p.CvvKeyIds = []string{"k9"}; return p }
	first, published := pay(payment("tx-1", 1000))
	if first.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED || published == nil {
		t.Fatalf("first payment: %v, %v", first, published)
	}
	tt.Consume(topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: "c2", ReplyKey: "r0", Command: &eventsv1.CardCommand_Block{Block: &eventsv1.BlockCard{}}})
	replies.Next()
	if r, _ := pay(payment("tx-1", 1000)); !r.GetDuplicate() || r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Errorf("the right data again on the card blocked since = %v, want the approval replayed", r)
	}
	r, result := pay(wrongCVV())
	if r.GetDuplicate() || r.GetConflict() || r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_REJECTED ||
		r.GetOutcome().GetReason() != eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH {
		t.Errorf("the same id with a wrong CVV = %v, want a rejection for the CVV", r)
	}
	if result != nil {
		t.Errorf("the unverified repeat was published: %+v", result)
	}
	if r, _ := pay(func() *eventsv1.PaymentRequested { p := wrongCVV(); p.AmountCents++; return p }()); r.GetConflict() ||
		r.GetOutcome().GetReason() != eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH {
		t.Errorf("the same id, another amount, a wrong CVV = %v, want a rejection for the CVV, not a conflict", r)
	}
	acct := tt.TableValue(table, token).(*eventsv1.Account)
	if len(acct.GetVerifyFailureTimes()) != 2 || acct.GetUsedCents() != 1000 {
		t.Errorf("after two unverified repeats: %d failures, used %d; want 2, 1000", len(acct.GetVerifyFailureTimes()), acct.GetUsedCents())
	}
	// Read again after a restart: rejected again, and not counted twice.
	acct.RequestOffset += 1000
	tt.SetTableValue(table, token, acct)
	if r, result := pay(wrongCVV()); r.GetOutcome().GetReason() != eventsv1.RejectReason_REJECT_REASON_CVV_MISMATCH || result != nil {
		t.Errorf("the unverified repeat read again = %v, %+v; want the rejection, unpublished", r, result)
	}
	if got := tt.TableValue(table, token).(*eventsv1.Account); len(got.GetVerifyFailureTimes()) != 2 {
		t.Errorf("read again, the repeat was counted again: %d failures", len(got.GetVerifyFailureTimes()))
	}
	if r, result := pay(payment("tx-1", 1000)); r.GetOutcome().GetStatus() != eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED || result == nil || *result != *published {
		t.Errorf("the original read again = %v, %+v; want the approval, republished", r, result)
	}
}

// gokaContext is goka.Context under a name that does not hide its Context method when embedded.
type gokaContext = goka.Context

// orderContext is a goka.Context that records what a callback writes, in order: the table
// ("table") or the stream it emits to. Only what pay uses is implemented.
type orderContext struct {
	gokaContext
	value  any
	writes []string
}

func (c *orderContext) Key() string        { return token }
func (c *orderContext) Topic() goka.Stream { return "unit-payment-requests" }
func (c *orderContext) Partition() int32   { return 0 }
func (c *orderContext) Offset() int64      { return 1 }
func (c *orderContext) Value() any         { return c.value }
func (c *orderContext) SetValue(v any, _ ...goka.ContextOption) {
	c.value = v
	c.writes = append(c.writes, "table")
}
func (c *orderContext) Emit(s goka.Stream, _ string, _ any, _ ...goka.ContextOption) {
	c.writes = append(c.writes, string(s))
}

// TestEveryReplyFollowsAWrite: whatever the decision, the reply to a payment is not the first
// record its callback writes; a known card's account write goes first, and an unknown card's
// result takes its place. The shared producer sends a reply that follows another record sooner
// than one alone (BenchmarkDeclineTiming in grpcgateway measured 0.1 ms): with the unknown
// card's reply first, a merchant's clock told an unknown number from a wrong CVV.
func TestEveryReplyFollowsAWrite(t *testing.T) {
	p := New(Config{Topology: processors.Topology{Prefix: "unit-"}}, Deps{Keys: testKeys, Now: func() time.Time { return now }})
	replies := string(p.replies)
	acct := func(limit int64) *eventsv1.Account {
		return &eventsv1.Account{HolderName: "Maria Silva", LimitCents: limit, Currency: "BRL", ExpiryMonth: 11, ExpiryYear: 2030,
			Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE, MaskedNumber: "411111******1111", CardKeyId: "k1"}
	}
	wrongCVV := payment("tx", 100)
	wrongCVV.CvvKeyIds = []string{"k9"}
	for _, tc := range []struct {
		name    string
		account *eventsv1.Account
		req     *eventsv1.PaymentRequested
	}{
		{"unknown card", nil, payment("tx", 100)},
		{"wrong CVV", acct(10_000), wrongCVV},
		{"over the limit", acct(10), payment("tx", 100)},
		{"approved", acct(10_000), payment("tx", 100)},
	} {
		ctx := &orderContext{value: tc.account}
		if tc.account == nil {
			ctx.value = nil
		}
		if err := p.pay(ctx, tc.req); err != nil {
			t.Fatal(err)
		}
		i := slices.Index(ctx.writes, replies)
		if i < 1 {
			t.Errorf("%s: writes %v; want the reply after another record", tc.name, ctx.writes)
		}
	}
}

// TestProcessorOperations: reversals, refunds and bill payments come in as card commands, are
// answered, change the account, and each one carried out is published as a results record of
// its own kind and key, naming the purchase it credits; a refusal changes and publishes
// nothing. Read again after a restart, one carried out is answered as it was and never carried
// out twice.
func TestProcessorOperations(t *testing.T) {
	tt, topo := startTester(t)
	replies := tt.NewQueueTracker(topo.Replies().Name)
	results := tt.NewQueueTracker(topo.Results().Name)
	table := goka.Table(topo.AuthorizerTable().Name)
	tt.Consume(topo.CardCommands().Name, token, issueCommand("c1", "Maria Silva", 10000))
	replies.Next()
	tt.Consume(topo.PaymentRequests().Name, token, payment("tx-1", 6000))
	replies.Next()
	results.Next()

	n := 0
	operate := func(op *eventsv1.Operation) (*eventsv1.OperationReply, *codecs.Result) {
		t.Helper()
		n++
		id := fmt.Sprint("op-", n)
		tt.Consume(topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: id, ReplyKey: "r0", RequestedAtUnixUs: now.Add(-time.Millisecond).UnixMicro(),
			Command: &eventsv1.CardCommand_Operation{Operation: op}})
		_, v, ok := replies.Next()
		if !ok || v.(*eventsv1.Reply).GetCorrelationId() != id {
			t.Fatalf("reply = %v", v)
		}
		var result *codecs.Result
		if _, v, ok := results.Next(); ok {
			result = v.(*codecs.Result)
		}
		return v.(*eventsv1.Reply).GetOperation(), result
	}
	purchase := func(kind eventsv1.OperationKind, id string, amount int64) *eventsv1.Operation {
		op := credit(kind, id, "tx-1", amount)
		op.PurchaseAmountCents = 6000
		return op
	}

	reply, result := operate(purchase(reversal, "v1", 1000))
	if reply.GetResult() != opOK || reply.GetLeftCents() != 5000 || reply.GetUsedCents() != 5000 || reply.GetAvailableCents() != 5000 || reply.GetCardToken() != token {
		t.Fatalf("reversal = %v", reply)
	}
	if result == nil || result.Kind != codecs.KindReversal || result.PaymentKey != token+":code-store:reversal/v1" ||
		result.PurchaseKey != token+":code-store:tx-1" || result.TransactionID != "tx-1" || result.OperationID != "v1" ||
		result.AmountCents != 1000 || result.Status != codecs.StatusApproved || result.AvailableCents != 5000 || result.Store != "Code Store" {
		t.Fatalf("reversal's result = %+v", result)
	}
	if err := codecs.CheckResult(token, result); err != nil {
		t.Fatal(err)
	}
	if reply, result := operate(purchase(refund, "r1", 5001)); reply.GetResult() != opExceeds || reply.GetLeftCents() != 5000 || result != nil {
		t.Fatalf("a refund of more than is left = %v, %v", reply, result)
	}
	refundReply, refundResult := operate(purchase(refund, "r1", 5000))
	if refundReply.GetResult() != opOK || refundReply.GetLeftCents() != 0 || refundReply.GetUsedCents() != 0 || refundResult.Kind != codecs.KindRefund {
		t.Fatalf("refund of the rest = %v, %+v", refundReply, refundResult)
	}
	if reply, result := operate(purchase(refund, "r1", 5000)); !reply.GetDuplicate() || reply.GetResult() != opOK || result == nil || *result != *refundResult {
		t.Fatalf("the refund again = %v, %+v; want the original, republished", reply, result)
	}
	if reply, result := operate(purchase(refund, "r1", 4000)); reply.GetResult() != opConflict || result != nil {
		t.Fatalf("the refund's id for another amount = %v, %+v", reply, result)
	}
	if reply, _ := operate(payBill("b1", 1)); reply.GetResult() != opExceeds {
		t.Fatalf("a bill payment of a card that owes nothing = %v", reply)
	}
	tt.Consume(topo.PaymentRequests().Name, token, payment("tx-2", 3000))
	replies.Next()
	results.Next()
	reply, result = operate(payBill("b1", 3000))
	if reply.GetResult() != opOK || reply.GetUsedCents() != 0 || result.Kind != codecs.KindBillPayment || result.Merchant != "" ||
		result.PaymentKey != token+"::bill_payment/b1" || result.PurchaseKey != "" {
		t.Fatalf("bill payment = %v, %+v", reply, result)
	}
	if err := codecs.CheckResult(token, result); err != nil {
		t.Fatal(err)
	}
	acct := tt.TableValue(table, token).(*eventsv1.Account)
	if acct.GetUsedCents() != 0 || acct.GetOperations() != 3 || acct.GetApprovals() != 2 || acct.GetVerifyFailures() != 0 {
		t.Fatalf("account = %v", acct)
	}

	// The restart: the commands from here on were read before.
	acct.CommandOffset += 1000
	tt.SetTableValue(table, token, acct)
	if reply, result := operate(payBill("b1", 3000)); reply.GetDuplicate() || reply.GetResult() != opOK || result == nil || result.AuthorizedAt != "2026-11-25T12:00:00.000000Z" {
		t.Fatalf("a bill payment read again = %v, %+v; want its original answer, republished", reply, result)
	}
	// r2 was carried out before the crash and is not remembered (as when more than Keep
	// outcomes came after it): it is neither answered nor carried out again.
	tt.Consume(topo.CardCommands().Name, token, &eventsv1.CardCommand{CommandId: "lost", ReplyKey: "r0", RequestedAtUnixUs: now.UnixMicro(),
		Command: &eventsv1.CardCommand_Operation{Operation: func() *eventsv1.Operation {
			op := credit(refund, "r2", "tx-2", 100)
			op.PurchaseAmountCents = 3000
			return op
		}()}})
	if _, v, ok := replies.Next(); ok {
		t.Fatalf("a forgotten operation read again was answered: %v", v)
	}
	if got := tt.TableValue(table, token).(*eventsv1.Account); got.GetUsedCents() != 0 || got.GetOperations() != 3 {
		t.Fatalf("after the operations read again: %v", got)
	}
}
