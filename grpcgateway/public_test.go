package grpcgateway

import (
	"strings"
	"testing"

	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestEventsKeepPublicNumbers: every value of the stored records' enums means what the public
// enum of its number says, so the casts of public.go hold.
func TestEventsKeepPublicNumbers(t *testing.T) {
	for _, pair := range []struct {
		events, public map[int32]string
	}{
		{eventsv1.CardStatus_name, codebankv1.CardStatus_name},
		{eventsv1.PaymentStatus_name, codebankv1.PaymentStatus_name},
		{eventsv1.RejectReason_name, codebankv1.RejectReason_name},
		{trimmed(eventsv1.OperationKind_name, "OPERATION_KIND_"), trimmed(codebankv1.LineKind_name, "LINE_KIND_")},
	} {
		for n, name := range pair.events {
			if pair.public[n] != name {
				t.Errorf("stored value %d is %s, the public one %q", n, name, pair.public[n])
			}
		}
	}
}

// trimmed returns the names of an enum without their prefix.
func trimmed(names map[int32]string, prefix string) map[int32]string {
	out := map[int32]string{}
	for n, name := range names {
		out[n] = strings.TrimPrefix(name, prefix)
	}
	return out
}

// TestBillStatusNumbers: statements.BillStatus keeps the public enum's numbers.
func TestBillStatusNumbers(t *testing.T) {
	for s, name := range map[statements.BillStatus]string{statements.NothingDue: "BILL_STATUS_NOTHING_DUE", statements.Open: "BILL_STATUS_OPEN",
		statements.Paid: "BILL_STATUS_PAID", statements.Overdue: "BILL_STATUS_OVERDUE"} {
		if got := codebankv1.BillStatus(s).String(); got != name {
			t.Errorf("bill status %d is %s in the API, want %s", s, got, name)
		}
	}
}
