package authorizer

import (
	"fmt"
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

// FuzzOperations runs three purchases and then a sequence of reversals, refunds and bill
// payments read from arbitrary bytes (kinds, purchases, amounts, ids that repeat, time going
// on) through DecideOperation and RecordOperation, with a small book of credits: what is given
// back of a purchase never exceeds its amount, used credit is always the approvals less every
// credit and payment carried out, a bill payment is never more than the card owes, a
// refusal or a duplicate changes nothing, and the account keeps its contract.
func FuzzOperations(f *testing.F) {
	f.Add([]byte{0, 0, 0x10, 0, 1, 1, 0, 0x20, 0, 1, 2, 2, 0xff, 0xff, 3})
	f.Add([]byte{1, 0, 0x27, 0x10, 0, 1, 0, 0x27, 0x10, 0, 2, 0, 0x4e, 0x20, 1})
	f.Add([]byte{0, 1, 0, 1, 5, 1, 1, 0, 1, 6, 0, 2, 0, 1, 7, 1, 0, 0, 1, 8})
	f.Fuzz(func(t *testing.T, data []byte) {
		cp := CreditPolicy{Window: 48 * time.Hour, Keep: 2}
		a := testAccount()
		a.LimitCents, a.UsedCents = 100000, 0
		amounts := []int64{10000, 2500, 40000}
		var approved int64
		at := now
		for i, amount := range amounts {
			r := testRequest()
			r.TransactionId, r.AmountCents = fmt.Sprint("tx-", i), amount
			out, _ := Decide(a, r, fp(r), at)
			Record(a, out, fp(r), DefaultPolicy)
			approved += amount
		}
		given := make([]int64, len(amounts))
		var paid int64
		for len(data) >= 5 {
			b := data[:5]
			data = data[5:]
			at = at.Add(time.Duration(b[4]%16) * time.Hour)
			amount := int64(b[2])<<8 | int64(b[3])
			var op *eventsv1.Operation
			purchase := int(b[1]) % len(amounts)
			switch b[0] % 3 {
			case 0, 1:
				kind := reversal
				if b[0]%3 == 1 {
					kind = refund
				}
				op = credit(kind, fmt.Sprint("op-", b[4]%8), fmt.Sprint("tx-", purchase), amount)
				op.PurchaseAmountCents, op.PurchaseDecidedAtUnixUs = amounts[purchase], now.UnixMicro()
			default:
				op = payBill(fmt.Sprint("bill-", b[4]%8), amount)
			}
			before := proto.Clone(a).(*eventsv1.Account)
			fp := OperationFingerprintOf(testKeys, op)
			out, kind := DecideOperation(a, op, fp, at.UnixMicro(), at, cp)
			if !proto.Equal(a, before) {
				t.Fatal("DecideOperation changed the account")
			}
			if kind != Fresh || out.Result != opOK {
				continue
			}
			RecordOperation(a, op, out, fp, DefaultPolicy, cp)
			if op.GetKind() == billPayment {
				if amount > before.GetUsedCents() {
					t.Fatalf("paid %d of %d owed", amount, before.GetUsedCents())
				}
				paid += amount
			} else {
				given[purchase] += amount
				if given[purchase] > amounts[purchase] {
					t.Fatalf("purchase %d of %d: %d given back", purchase, amounts[purchase], given[purchase])
				}
			}
			var credits int64
			for _, g := range given {
				credits += g
			}
			if a.GetUsedCents() != approved-credits-paid {
				t.Fatalf("used %d, want %d approved - %d credited - %d paid", a.GetUsedCents(), approved, credits, paid)
			}
			if err := codecs.CheckAccount(a); err != nil {
				t.Fatal(err)
			}
			if again, kind := DecideOperation(a, op, fp, at.UnixMicro(), at.Add(time.Minute), cp); kind != Duplicate || again.AmountCents != amount {
				t.Fatalf("the same operation again = %+v, %v; want it replayed", again, kind)
			}
		}
	})
}
