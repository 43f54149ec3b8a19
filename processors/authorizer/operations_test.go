package authorizer

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

const (
	reversal    = eventsv1.OperationKind_OPERATION_KIND_REVERSAL
	refund      = eventsv1.OperationKind_OPERATION_KIND_REFUND
	billPayment = eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT

	opOK       = eventsv1.OperationResult_OPERATION_RESULT_OK
	opExceeds  = eventsv1.OperationResult_OPERATION_RESULT_EXCEEDS
	opExpired  = eventsv1.OperationResult_OPERATION_RESULT_EXPIRED
	opNotFound = eventsv1.OperationResult_OPERATION_RESULT_NOT_FOUND
	opConflict = eventsv1.OperationResult_OPERATION_RESULT_CONFLICT
)

// credit returns a reversal or refund of id for amount of the purchase tx of 100.00 approved an
// hour before now.
func credit(kind eventsv1.OperationKind, id, tx string, amount int64) *eventsv1.Operation {
	return &eventsv1.Operation{Kind: kind, OperationId: id, AmountCents: amount, MerchantId: "code-store", MerchantName: "Code Store",
		TransactionId: tx, PurchaseAmountCents: 10000, PurchaseDecidedAtUnixUs: now.Add(-time.Hour).UnixMicro()}
}

func payBill(id string, amount int64) *eventsv1.Operation {
	return &eventsv1.Operation{Kind: billPayment, OperationId: id, AmountCents: amount}
}

// operate decides op on a and, when it is carried out, records it, as the processor does.
func operate(a *eventsv1.Account, op *eventsv1.Operation, at time.Time, cp CreditPolicy) (OperationOutcome, Kind) {
	fp := OperationFingerprintOf(testKeys, op)
	out, kind := DecideOperation(a, op, fp, at.UnixMicro(), at, cp)
	if kind == Fresh && out.Result == opOK {
		RecordOperation(a, op, out, fp, DefaultPolicy, cp)
	}
	return out, kind
}

func TestDecideOperation(t *testing.T) {
	a := testAccount() // 20.00 used of 100.00
	a.UsedCents = 10000
	steps := []struct {
		name       string
		op         *eventsv1.Operation
		at         time.Time
		wantResult eventsv1.OperationResult
		wantKind   Kind
		wantLeft   int64
		wantUsed   int64
	}{
		{"a partial reversal", credit(reversal, "v1", "tx-1", 3000), now, opOK, Fresh, 7000, 7000},
		{"a refund of the rest", credit(refund, "r1", "tx-1", 7000), now, opOK, Fresh, 0, 0},
		{"one cent more", credit(refund, "r2", "tx-1", 1), now, opExceeds, Fresh, 0, 0},
		{"the reversal again", credit(reversal, "v1", "tx-1", 3000), now, opOK, Duplicate, 0, 0},
		{"its id for another amount", credit(reversal, "v1", "tx-1", 2000), now, opConflict, Conflict, 0, 0},
		{"its id for another purchase", credit(reversal, "v1", "tx-2", 3000), now, opConflict, Conflict, 0, 0},
		{"a refund id reused as a reversal id is another operation", credit(reversal, "r1", "tx-2", 1000), now, opOK, Fresh, 9000, -1000},
		{"a bill payment when the card holds a credit balance", payBill("b1", 1), now, opExceeds, Fresh, 0, -1000},
		{"the purchase's last second in the window", credit(refund, "r3", "tx-2", 1000), now.Add(30*24*time.Hour - time.Hour), opOK, Fresh, 8000, -2000},
		{"a second past the window", credit(refund, "r4", "tx-2", 1000), now.Add(30*24*time.Hour - time.Hour + time.Second), opExpired, Fresh, 8000, -2000},
	}
	for _, s := range steps {
		before := proto.Clone(a).(*eventsv1.Account)
		fp := OperationFingerprintOf(testKeys, s.op)
		out, kind := DecideOperation(a, s.op, fp, s.at.UnixMicro(), s.at, DefaultCreditPolicy)
		if !proto.Equal(a, before) {
			t.Fatalf("%s: DecideOperation changed the account", s.name)
		}
		if kind == Fresh && out.Result == opOK {
			RecordOperation(a, s.op, out, fp, DefaultPolicy, DefaultCreditPolicy)
		}
		if out.Result != s.wantResult || kind != s.wantKind || out.LeftCents != s.wantLeft || a.GetUsedCents() != s.wantUsed {
			t.Errorf("%s: %v %v, %d left, used %d; want %v %v, %d left, used %d", s.name, out.Result, kind, out.LeftCents, a.GetUsedCents(),
				s.wantResult, s.wantKind, s.wantLeft, s.wantUsed)
		}
		if out.Result != opOK && !proto.Equal(a, before) {
			t.Errorf("%s: refused, and the account changed", s.name)
		}
		if err := codecs.CheckAccount(a); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
	if a.GetOperations() != 4 || len(a.GetCredits()) != 2*creditSize {
		t.Errorf("operations = %d, credits %d bytes; want 4 and two purchases' entries", a.GetOperations(), len(a.GetCredits()))
	}
}

func TestBillPayment(t *testing.T) {
	a := testAccount() // 20.00 used
	if out, _ := operate(a, payBill("b1", 2001), now, DefaultCreditPolicy); out.Result != opExceeds || out.LeftCents != 2000 || a.GetUsedCents() != 2000 {
		t.Fatalf("paying 20.01 of 20.00 owed = %+v, used %d; want refused, nothing changed", out, a.GetUsedCents())
	}
	out, kind := operate(a, payBill("b1", 1500), now, DefaultCreditPolicy)
	if out.Result != opOK || kind != Fresh || out.LeftCents != 500 || out.AvailableCents != 9500 || a.GetUsedCents() != 500 {
		t.Fatalf("paying 15.00 = %+v, used %d; want 5.00 left owed, 95.00 available", out, a.GetUsedCents())
	}
	if out, kind := operate(a, payBill("b1", 1500), now.Add(time.Minute), DefaultCreditPolicy); kind != Duplicate || out.DecidedAtUnixUs != now.UnixMicro() || a.GetUsedCents() != 500 {
		t.Fatalf("the same bill payment again = %+v %v, used %d; want the original, charged once", out, kind, a.GetUsedCents())
	}
	// The paid credit can be spent again, and the card's data never mattered.
	a.Status = eventsv1.CardStatus_CARD_STATUS_BLOCKED
	if out, _ := operate(a, payBill("b2", 500), now, DefaultCreditPolicy); out.Result != opOK || a.GetUsedCents() != 0 || a.GetVerifyFailures() != 0 {
		t.Fatalf("paying the rest on a blocked card = %+v, used %d", out, a.GetUsedCents())
	}
}

func TestOperationOnNoCard(t *testing.T) {
	out, kind := DecideOperation(nil, credit(refund, "r1", "tx-1", 100), OperationFingerprintOf(testKeys, credit(refund, "r1", "tx-1", 100)), now.UnixMicro(), now, DefaultCreditPolicy)
	if out.Result != opNotFound || kind != Fresh {
		t.Fatalf("a refund on no card = %+v %v", out, kind)
	}
}

// TestCreditsBounded credits more purchases than a card keeps: the oldest purchases' entries go,
// the floor rises to them, and a purchase at or before the floor without an entry is refused,
// never credited again in full.
func TestCreditsBounded(t *testing.T) {
	cp := CreditPolicy{Window: DefaultCreditWindow, Keep: 4}
	a := testAccount()
	a.UsedCents = 0
	purchase := func(i int) *eventsv1.Operation {
		op := credit(refund, fmt.Sprint("r", i), fmt.Sprint("tx-", i), 1000)
		op.PurchaseDecidedAtUnixUs = now.Add(-time.Duration(100-i) * time.Minute).UnixMicro() // tx-0 the oldest
		return op
	}
	for i := range 6 {
		if out, _ := operate(a, purchase(i), now, cp); out.Result != opOK {
			t.Fatalf("refund %d = %+v", i, out)
		}
	}
	if n := len(a.GetCredits()) / creditSize; n != 4 {
		t.Fatalf("%d purchases kept, want 4", n)
	}
	if want := now.Add(-99 * time.Minute).Unix(); a.GetCreditFloorUnixS() != want {
		t.Fatalf("floor = %d, want tx-1's time %d", a.GetCreditFloorUnixS(), want)
	}
	again := purchase(1)
	again.OperationId = "r1-again"
	if out, _ := operate(a, again, now, cp); out.Result != opExpired {
		t.Fatalf("another refund of a purchase whose entry was dropped = %+v, want EXPIRED", out)
	}
	again = purchase(2)
	again.OperationId = "r2-again"
	if out, _ := operate(a, again, now, cp); out.Result != opOK || out.LeftCents != 8000 {
		t.Fatalf("another refund of a purchase kept = %+v, want 80.00 left after it", out)
	}
	// Past the window, the entries go without raising the floor.
	later := purchase(9)
	later.PurchaseDecidedAtUnixUs = now.Add(40 * 24 * time.Hour).UnixMicro()
	if out, _ := operate(a, later, now.Add(40*24*time.Hour+time.Hour), cp); out.Result != opOK {
		t.Fatalf("refund = %+v", out)
	}
	if n := len(a.GetCredits()) / creditSize; n != 1 || a.GetCreditFloorUnixS() != now.Add(-99*time.Minute).Unix() {
		t.Fatalf("%d entries, floor %d after the window passed; want 1, the floor unchanged", n, a.GetCreditFloorUnixS())
	}
}

// TestPaymentsLeaveCreditsAlone: a payment neither reads nor changes the credits, and a refund
// adds one entry of them and one remembered outcome to the account.
func TestPaymentsLeaveCreditsAlone(t *testing.T) {
	a := testAccount()
	r := testRequest()
	out, _ := Decide(a, r, fp(r), now)
	Record(a, out, fp(r), DefaultPolicy)
	if a.GetCredits() != nil || a.GetOperations() != 0 || a.GetCreditFloorUnixS() != 0 {
		t.Fatalf("a payment touched the credits: %v", a)
	}
	before, _ := codecs.Account.Encode(a)
	if out, _ := operate(a, credit(refund, "r1", "tx-1", 100), now, DefaultCreditPolicy); out.Result != opOK {
		t.Fatalf("refund = %+v", out)
	}
	after, _ := codecs.Account.Encode(a)
	if grew := len(after) - len(before); grew > creditSize+entrySize+8 {
		t.Errorf("one refund grew the account by %d bytes, want an entry of credits and an outcome (%d, %d) and a few more", grew, creditSize, entrySize)
	}
}
