package grpcgateway

import (
	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// The records Code Bank's components exchange (proto/codebank/events/v1) have enums and a
// statement line of their own, so that the public API and the stored records change apart. They
// keep the public ones' names and numbers (TestEventsKeepPublicNumbers); these turn them into
// the public API's at its edge.

func publicCardStatus(s eventsv1.CardStatus) codebankv1.CardStatus { return codebankv1.CardStatus(s) }

func publicStatus(s eventsv1.PaymentStatus) codebankv1.PaymentStatus {
	return codebankv1.PaymentStatus(s)
}

func publicReason(r eventsv1.RejectReason) codebankv1.RejectReason { return codebankv1.RejectReason(r) }

// merchantReason is the reason merchants are told (codecs.MerchantReason): DO_NOT_HONOR for the
// reasons that would say which card data was wrong, or that the number is no card of the bank's.
func merchantReason(r eventsv1.RejectReason) codebankv1.RejectReason {
	return publicReason(codecs.MerchantReason(r))
}

func publicBlockReason(r eventsv1.BlockReason) codebankv1.BlockReason {
	return codebankv1.BlockReason(r)
}

func publicLines(lines []*eventsv1.StatementLine) []*codebankv1.StatementLine {
	out := make([]*codebankv1.StatementLine, len(lines))
	for i, l := range lines {
		out[i] = &codebankv1.StatementLine{TransactionId: l.GetTransactionId(), AuthorizedAtUnixMs: l.GetAuthorizedAtUnixMs(),
			Store: l.GetStore(), Description: l.GetDescription(), AmountCents: l.GetAmountCents(),
			Kind: publicLineKind(l.GetKind()), OperationId: l.GetOperationId()}
	}
	return out
}

// publicLineKind is a line's kind: a line written before kinds is a purchase.
func publicLineKind(k eventsv1.OperationKind) codebankv1.LineKind {
	if k == eventsv1.OperationKind_OPERATION_KIND_UNSPECIFIED {
		return codebankv1.LineKind_LINE_KIND_PURCHASE
	}
	return codebankv1.LineKind(k)
}

// publicBill is a month's bill (statements.Bill) as the API shows it.
func publicBill(b statements.Bill) *codebankv1.Bill {
	return &codebankv1.Bill{OpeningBalanceCents: b.Opening, PurchasesCents: b.Purchases, ReversalsCents: b.Reversals, RefundsCents: b.Refunds,
		PaymentsCents: b.Payments, ClosingBalanceCents: b.Closing, DueDate: b.Due.Format("2006-01-02"), MinimumPaymentCents: b.Minimum,
		PaidByDueDateCents: b.PaidByDue, Status: codebankv1.BillStatus(b.Status)}
}
