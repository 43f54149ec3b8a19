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
		{PaymentRequested, &eventsv1.PaymentRequested{TransactionId: "tx-1", HolderName: "MARIA", ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k1"}, AmountCents: 1234, Store: "Code Store", Description: "book", RequestedAtUnixUs: 1, ReplyKey: "r0", Channel: eventsv1.Channel_CHANNEL_LEGACY}},
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
	in := &Result{PaymentKey: "tok:code-store:tx", TransactionID: "tx", CardToken: "tok", Merchant: "code-store", CardMasked: "545454******1234", CardBIN: "545454", Status: "rejected", Reason: "insufficient_credit", AmountCents: 1234, Amount: "12.34", Currency: "BRL", Store: "Code Store", Description: "Produtos: x", Channel: "api", RequestedAt: "2026-11-25T10:00:00.000001Z", AuthorizedAt: "2026-11-25T10:00:00.002Z", ProcessingMs: 1.999, AvailableCents: 10, LimitCents: 100}
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

// TestContracts: a payment request is keyed by a card token, never a number, and names its
// merchant; a result's payment key is its card token, merchant and transaction id.
func TestContracts(t *testing.T) {
	const token = "gzNcUY7KgaoXOFX_qNg2gQ"
	good := func() *eventsv1.PaymentRequested {
		return &eventsv1.PaymentRequested{TransactionId: "tx-1", HolderName: "MARIA", ExpiryMonth: 11, ExpiryYear: 2030, CvvKeyIds: []string{"k1"},
			AmountCents: 1234, Description: "book", RequestedAtUnixUs: 1, MaskedNumber: "545454******1234", MerchantId: "code-store", MerchantName: "Code Store"}
	}
	if err := CheckPaymentRequested(token, good()); err != nil {
		t.Fatalf("a good request: %v", err)
	}
	for name, tc := range map[string]struct {
		key    string
		change func(*eventsv1.PaymentRequested)
		want   string
	}{
		"keyed by a card number": {"5454545454545454", nil, "key must be a card token"},
		"no merchant":            {token, func(r *eventsv1.PaymentRequested) { r.MerchantId = "" }, "merchant_id is required"},
		"merchant with a colon":  {token, func(r *eventsv1.PaymentRequested) { r.MerchantId = "a:b" }, "merchant_id must be"},
		"no merchant name":       {token, func(r *eventsv1.PaymentRequested) { r.MerchantName = "" }, "merchant_name is required"},
		"a full number":          {token, func(r *eventsv1.PaymentRequested) { r.MaskedNumber = "5454545454541234" }, "masked_number must be"},
		"too many card keys":     {token, func(r *eventsv1.PaymentRequested) { r.CvvKeyIds = make([]string, 9) }, "cvv_key_ids must"},
	} {
		r := good()
		if tc.change != nil {
			tc.change(r)
		}
		err := CheckPaymentRequested(tc.key, r)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "5454545454545454") {
			t.Errorf("%s: %v, want %q and no number", name, err, tc.want)
		}
	}
	res := &Result{PaymentKey: PaymentKey(token, "code-store", "tx:1"), TransactionID: "tx:1", CardToken: token, Merchant: "code-store",
		Status: StatusApproved, AmountCents: 1, AuthorizedAt: "2026-11-25T10:00:00.000001Z", Store: "Code Store", Description: "x"}
	if err := CheckResult(token, res); err != nil {
		t.Errorf("a good result: %v", err)
	}
	res.PaymentKey = token + ":tx:1"
	if err := CheckResult(token, res); err == nil {
		t.Error("a result whose payment key leaves out the merchant passed")
	}
	// Operations: a key of their own, the purchase they credit; old records are purchases.
	refund := &Result{PaymentKey: OperationKey(token, "code-store", KindRefund, "r-1"), Kind: KindRefund, TransactionID: "tx:1", OperationID: "r-1",
		PurchaseKey: PaymentKey(token, "code-store", "tx:1"), CardToken: token, Merchant: "code-store", Status: StatusApproved, AmountCents: 1,
		AuthorizedAt: "2026-11-25T10:00:00.000001Z"}
	if err := CheckResult(token, refund); err != nil {
		t.Errorf("a good refund: %v", err)
	}
	bill := &Result{PaymentKey: OperationKey(token, "", KindBillPayment, "b-1"), Kind: KindBillPayment, OperationID: "b-1", CardToken: token,
		Status: StatusApproved, AmountCents: 1, AuthorizedAt: "2026-11-25T10:00:00.000001Z"}
	if err := CheckResult(token, bill); err != nil {
		t.Errorf("a good bill payment: %v", err)
	}
	for name, tc := range map[string]struct {
		r      Result
		change func(*Result)
		want   string
	}{
		"a refund under its purchase's key": {*refund, func(r *Result) { r.PaymentKey = r.PurchaseKey }, "payment_key must be"},
		"a refund naming no purchase":       {*refund, func(r *Result) { r.PurchaseKey = "" }, "purchase_key must be"},
		"a refund without its id":           {*refund, func(r *Result) { r.OperationID = "" }, "operation_id is required"},
		"a refund rejected":                 {*refund, func(r *Result) { r.Status, r.Reason = StatusRejected, "x" }, "status must be approved"},
		"a bill payment with a merchant":    {*bill, func(r *Result) { r.Merchant = "code-store" }, "merchant must be empty"},
		"an unknown kind":                   {*refund, func(r *Result) { r.Kind = "chargeback" }, "kind must be"},
		"a purchase with an operation id":   {*res, func(r *Result) { r.PaymentKey, r.OperationID = PaymentKey(token, "code-store", "tx:1"), "r-1" }, "operation_id must be empty"},
	} {
		r := tc.r
		tc.change(&r)
		if err := CheckResult(token, &r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	if old := (&Result{}); old.KindOf() != KindPurchase || !old.Purchase() {
		t.Error("a record without a kind is not a purchase")
	}
	if got := StoreName("Code Store", " Centro "); got != "Code Store (Centro)" {
		t.Errorf("StoreName = %q", got)
	}
	if got := StoreName("Code Store", "code store"); got != "Code Store" {
		t.Errorf("StoreName of the merchant's own name = %q", got)
	}
}
