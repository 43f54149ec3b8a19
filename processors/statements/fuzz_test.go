package statements

import (
	"testing"

	"github.com/codebank/codebank/codecs"
)

// FuzzResult decodes a results record from arbitrary bytes as the statements processor reads
// it; one that passes the contract and is approved gets a line whose key names its card and
// falls in the month of its approval, and the same key every time.
func FuzzResult(f *testing.F) {
	good, _ := codecs.ResultCodec{}.Encode(result("a", "approved", "2026-10-31T23:59:59.000000Z", 100))
	f.Add(good)
	f.Add([]byte(`{"payment_key":"tok:a","transaction_id":"a","card_token":"tok","status":"approved","amount_cents":1,"authorized_at":"2026-11-01T00:00:00+03:00","store":"s","description":"d"}`))
	f.Add([]byte(`{"status":"approved"}`))
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
		if line.GetAmountCents() != r.AmountCents || line.GetTransactionId() != r.TransactionID {
			t.Fatalf("line %v of result %+v", line, r)
		}
	})
}
