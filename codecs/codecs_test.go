package codecs

import (
	"strings"
	"testing"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

var (
	_ goka.Codec = PaymentRequested
	_ goka.Codec = ResultCodec{}
)

func roundTrip(t *testing.T, c goka.Codec, v any) any {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("Encode(%v): %v", v, err)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return got
}

func TestProtoRoundTrip(t *testing.T) {
	tests := []struct {
		codec goka.Codec
		value proto.Message
	}{
		{PaymentRequested, &eventsv1.PaymentRequested{TransactionId: "tx-1", HolderName: "MARIA", ExpiryMonth: 11, ExpiryYear: 2030, CvvMatch: true, AmountCents: 1234, Store: "Code Store", Description: "book", RequestedAtUnixUs: 1, ReplyKey: "r0", Channel: eventsv1.Channel_CHANNEL_LEGACY}},
		{CardCommand, &eventsv1.CardCommand{CommandId: "c-1", ReplyKey: "r1", Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{HolderName: "JOSE", LimitCents: 100000, Currency: "BRL", ExpiryMonth: 1, ExpiryYear: 2031}}}},
		{Account, &eventsv1.Account{HolderName: "JOSE", LimitCents: 100, UsedCents: 50, Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE, Outcomes: []byte{1, 2, 3}, Approvals: 2}},
		{Reply, &eventsv1.Reply{CorrelationId: "x", Body: &eventsv1.Reply_Payment{Payment: &eventsv1.PaymentReply{Outcome: &eventsv1.Outcome{TransactionId: "x", AmountCents: 5}, Duplicate: true}}}},
	}
	for _, tt := range tests {
		got := roundTrip(t, tt.codec, tt.value).(proto.Message)
		if !proto.Equal(got, tt.value) {
			t.Errorf("round trip of %T: got %v, want %v", tt.value, got, tt.value)
		}
	}
}

func TestProtoWrongType(t *testing.T) {
	if _, err := Account.Encode(&eventsv1.Reply{}); err == nil {
		t.Error("Account.Encode(*Reply) succeeded, want error")
	}
	if _, err := Account.Decode([]byte{0xff, 0xff}); err == nil {
		t.Error("Account.Decode(garbage) succeeded, want error")
	}
}

func TestResultRoundTrip(t *testing.T) {
	in := &Result{PaymentKey: "tok:tx", TransactionID: "tx", CardToken: "tok", CardMasked: "545454******1234", CardBIN: "545454", Status: "rejected", Reason: "insufficient_credit", AmountCents: 1234, Amount: "12.34", Currency: "BRL", Store: "Code Store", Description: "Produtos: x", Channel: "api", RequestedAt: "2026-11-25T10:00:00.000001Z", AuthorizedAt: "2026-11-25T10:00:00.002Z", ProcessingMs: 1.999, AvailableCents: 10, LimitCents: 100}
	got := roundTrip(t, ResultCodec{}, in).(*Result)
	if *got != *in {
		t.Errorf("round trip: got %+v, want %+v", got, in)
	}
	b, _ := ResultCodec{}.Encode(in)
	if want := `"amount":12.34`; !strings.Contains(string(b), want) {
		t.Errorf("JSON %s lacks %s", b, want)
	}
}

// TestReasons: every reject reason of the public API has its words.
func TestReasons(t *testing.T) {
	for n := range eventsv1.RejectReason_name {
		code := ReasonName(eventsv1.RejectReason(n))
		if _, ok := reasons[code]; !ok {
			t.Errorf("reject reason %q has no words in reasons", code)
		}
	}
	if r := ReasonOf("something_new"); r.Label != "something_new" || r.Customer == "" {
		t.Errorf("ReasonOf(unknown) = %+v", r)
	}
}
