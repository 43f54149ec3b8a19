package authorizer

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// FuzzDecide decodes an account and a payment request from arbitrary bytes, as the authorizer
// reads them, and feeds the ones that pass their contracts to Decide and Record: Decide never
// changes the account, Record never leaves used credit above the limit nor charges anything
// but an approval, and the same request again is that outcome replayed.
func FuzzDecide(f *testing.F) {
	acct, _ := codecs.Account.Encode(testAccount())
	req, _ := codecs.PaymentRequested.Encode(testRequest())
	big := testRequest()
	big.AmountCents = 8000
	bigReq, _ := codecs.PaymentRequested.Encode(big)
	full := testAccount()
	full.UsedCents = full.LimitCents
	fullAcct, _ := codecs.Account.Encode(full)
	f.Add(acct, req)
	f.Add(acct, bigReq)
	f.Add(fullAcct, req)
	f.Add([]byte{}, req)
	f.Add(acct, []byte{0xff})
	f.Fuzz(func(t *testing.T, accountBytes, requestBytes []byte) {
		v, err := codecs.Account.Decode(accountBytes)
		if err != nil {
			return
		}
		a := v.(*eventsv1.Account)
		if codecs.CheckAccount(a) != nil {
			return // the processor fails such an account closed
		}
		v, err = codecs.PaymentRequested.Decode(requestBytes)
		if err != nil {
			return
		}
		r := v.(*eventsv1.PaymentRequested)
		if codecs.CheckPaymentRequested("gzNcUY7KgaoXOFX_qNg2gQ", r) != nil {
			return // dead-lettered
		}
		before := proto.Clone(a).(*eventsv1.Account)
		fp := FingerprintOf(testKeys, r)
		out, kind := Decide(a, r, fp, now)
		if !proto.Equal(a, before) {
			t.Fatalf("Decide changed the account: %v, was %v", a, before)
		}
		if kind != Fresh {
			return
		}
		Record(a, out, fp, DefaultPolicy)
		approved := out.GetStatus() == eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED
		charged := int64(0)
		if approved {
			charged = r.GetAmountCents()
		}
		if a.GetUsedCents() > a.GetLimitCents() {
			t.Fatalf("used %d over the limit %d after %v", a.GetUsedCents(), a.GetLimitCents(), out)
		}
		if a.GetUsedCents() != before.GetUsedCents()+charged || approved && a.GetApprovals() != before.GetApprovals()+1 ||
			!approved && a.GetApprovals() != before.GetApprovals() {
			t.Fatalf("after %v: used %d approvals %d, were %d %d", out, a.GetUsedCents(), a.GetApprovals(), before.GetUsedCents(), before.GetApprovals())
		}
		if err := codecs.CheckAccount(a); err != nil {
			t.Fatalf("the account broke its contract: %v", err)
		}
		again, kind := Decide(a, r, fp, now.Add(time.Minute))
		if kind != Duplicate || !proto.Equal(again, out) {
			t.Fatalf("the same request again = %v, %v; want %v replayed", again, kind, out)
		}
	})
}
