package statements

import (
	"testing"
	"time"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// FuzzResult decodes a results record from arbitrary bytes as the statements processor reads
// it; one that passes the contract and is approved gets a line whose key names its card and
// falls in the month of its approval, and the same key every time.
func FuzzResult(f *testing.F) {
	good, _ := codecs.ResultCodec{}.Encode(result("a", "approved", "2026-10-31T23:59:59.000000Z", 100))
	f.Add(good)
	f.Add([]byte(`{"payment_key":"tok:a","transaction_id":"a","card_token":"tok","status":"approved","amount_cents":1,"authorized_at":"2026-11-01T00:00:00+03:00","store":"s","description":"d"}`))
	f.Add([]byte(`{"status":"approved"}`))
	f.Add([]byte(`{"payment_key":"tok:m:refund/r","kind":"refund","transaction_id":"a","operation_id":"r","purchase_key":"tok:m:a","card_token":"tok","merchant":"m","status":"approved","amount_cents":5,"authorized_at":"2026-11-01T00:00:00Z"}`))
	f.Add([]byte(`{"payment_key":"tok:m:a","transaction_id":"a","card_token":"tok","merchant":"m","status":"approved","amount_cents":1,"authorized_at":"1969-12-31T23:59:59Z","store":"s","description":"d"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := codecs.ResultCodec{}.Decode(data)
		if err != nil {
			return
		}
		r := v.(*codecs.Result)
		if codecs.CheckResult(r.CardToken, r) != nil || r.Status != codecs.StatusApproved {
			return
		}
		line, at := LineOf(r)
		key := LineKey(r.CardToken, at, r.PaymentKey)
		if key != LineKey(r.CardToken, at, r.PaymentKey) {
			t.Fatal("a payment's line key is not stable")
		}
		token, got, err := ParseLineKey(key)
		if err != nil || token != r.CardToken || got.UnixMicro() != at.UnixMicro() {
			t.Fatalf("ParseLineKey(%q) = %q, %v, %v; want card %q at %v", key, token, got, err, r.CardToken, at)
		}
		start, limit, err := MonthRange(r.CardToken, MonthOf(at))
		if err != nil || key < start || key >= limit {
			t.Fatalf("line %q is not within its month %s [%q, %q): %v", key, MonthOf(at), start, limit, err)
		}
		if line.GetAmountCents() != r.AmountCents || line.GetTransactionId() != r.TransactionID || line.GetOperationId() != r.OperationID ||
			(line.GetKind() == eventsv1.OperationKind_OPERATION_KIND_PURCHASE) != r.Purchase() {
			t.Fatalf("line %v of result %+v", line, r)
		}
	})
}

// FuzzBills adds up lines read from arbitrary bytes (a kind, an amount, a few days later each)
// and bills them: each month's closing balance is its opening plus its purchases less its
// reversals, refunds and payments; each month opens with the previous one's closing, the first
// at zero; the last closing is every purchase less every credit and payment; the lines and
// purchases are all counted; the minimum payment is within the balance, at least the smaller
// of 50.00 and the balance, 15% of it at least; and nothing is due on a balance of zero or a
// credit.
func FuzzBills(f *testing.F) {
	f.Add([]byte{0, 0x27, 0x10, 3, 2, 0x03, 0xe8, 1, 3, 0x01, 0xf4, 40, 4, 0x10, 0x00, 5})
	f.Add([]byte{4, 0xff, 0xff, 0, 1, 0xff, 0xff, 31})
	f.Fuzz(func(t *testing.T, data []byte) {
		var s Summaries
		when := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		var lines, purchases, net int64
		for ; len(data) >= 4; data = data[4:] {
			kind := eventsv1.OperationKind(data[0] % 5)
			amount := int64(data[1])<<8 | int64(data[2])
			when = when.Add(time.Duration(data[3]) * 7 * time.Hour)
			s.Add(when, &eventsv1.StatementLine{Kind: kind, AmountCents: amount})
			lines++
			switch kind {
			case eventsv1.OperationKind_OPERATION_KIND_PURCHASE, eventsv1.OperationKind_OPERATION_KIND_UNSPECIFIED:
				purchases++
				net += amount
			default:
				net -= amount
			}
		}
		bills := Bills(s.Months(), when)
		if s.Count() != lines {
			t.Fatalf("%d lines counted, %d added", s.Count(), lines)
		}
		var counted, balance int64
		for i, b := range bills {
			counted += s.Months()[i].GetPurchases()
			if b.Opening != balance || b.Closing != b.Opening+b.Purchases-b.Reversals-b.Refunds-b.Payments {
				t.Fatalf("bill %+v after a closing balance of %d", b, balance)
			}
			balance = b.Closing
			switch {
			case b.Closing <= 0 && (b.Minimum != 0 || b.Status != NothingDue):
				t.Fatalf("a bill of nothing owed: %+v", b)
			case b.Closing > 0 && (b.Minimum > b.Closing || b.Minimum < min(MinimumCents, b.Closing) || b.Minimum*100 < b.Closing*MinimumPercent):
				t.Fatalf("minimum %d of a closing balance of %d", b.Minimum, b.Closing)
			}
			if d := DueDate(b.Month); d.Day() != DueDay || d.Format(MonthLayout) <= b.Month {
				t.Fatalf("due date %v of %s", d, b.Month)
			}
		}
		if counted != purchases || balance != net {
			t.Fatalf("%d purchases, closing %d; want %d and %d", counted, balance, purchases, net)
		}
	})
}
