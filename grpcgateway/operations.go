package grpcgateway

import (
	"context"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/money"
	"github.com/codebank/codebank/internal/paymentid"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// Money back: a merchant reverses or refunds its own payment, named by the payment id Authorize
// answered with; an operator records a bill payment. The payment id is the payment sealed
// (internal/paymentid): the ingress opens it under the caller's merchant, and so learns the
// card's token, which routes the operation to the card's partition, and the purchase's
// transaction id, amount and time, which the authorizer checks the operation against. No card
// data is needed or asked for, and nothing here touches the card's lockout.

// paymentID returns the payment id of an Authorize answer: the payment sealed for the caller's
// merchant.
func (s *Server) paymentID(ctx context.Context, reply *eventsv1.PaymentReply) (string, error) {
	p, _ := PrincipalFrom(ctx)
	out := reply.GetOutcome()
	if s.paymentIDs == nil {
		return "", status.Error(codes.FailedPrecondition, "this ingress has no tokenization key: it cannot name payments")
	}
	id, err := s.paymentIDs.Seal(p.Merchant, paymentid.Payment{CardToken: reply.GetCardToken(), TransactionID: out.GetTransactionId(),
		AmountCents: out.GetAmountCents(), DecidedAtUnixUs: out.GetDecidedAtUnixUs(), Approved: out.GetStatus() == eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED})
	if err != nil {
		return "", status.Errorf(codes.Internal, "name the payment: %v", err)
	}
	return id, nil
}

// Reverse voids part or all of one of the merchant's payments.
func (s paymentService) Reverse(ctx context.Context, req *codebankv1.ReverseRequest) (*codebankv1.ReverseResponse, error) {
	r, err := s.credit(ctx, eventsv1.OperationKind_OPERATION_KIND_REVERSAL, req.GetPaymentId(), "reversal_id", req.GetReversalId(), req.GetAmountCents())
	if err != nil {
		return nil, err
	}
	return &codebankv1.ReverseResponse{ReversalId: req.GetReversalId(), TransactionId: r.tx, AmountCents: r.reply.GetAmountCents(),
		LeftCents: r.reply.GetLeftCents(), ReversedAtUnixMs: r.reply.GetDecidedAtUnixUs() / 1000, Duplicate: r.reply.GetDuplicate()}, nil
}

// Refund gives back part or all of one of the merchant's purchases.
func (s paymentService) Refund(ctx context.Context, req *codebankv1.RefundRequest) (*codebankv1.RefundResponse, error) {
	r, err := s.credit(ctx, eventsv1.OperationKind_OPERATION_KIND_REFUND, req.GetPaymentId(), "refund_id", req.GetRefundId(), req.GetAmountCents())
	if err != nil {
		return nil, err
	}
	return &codebankv1.RefundResponse{RefundId: req.GetRefundId(), TransactionId: r.tx, AmountCents: r.reply.GetAmountCents(),
		LeftCents: r.reply.GetLeftCents(), RefundedAtUnixMs: r.reply.GetDecidedAtUnixUs() / 1000, Duplicate: r.reply.GetDuplicate()}, nil
}

// credited is a reversal or refund carried out.
type credited struct {
	tx    string
	reply *eventsv1.OperationReply
}

// credit validates a reversal or refund, opens its payment id for the caller's merchant and has
// the authorizer carry it out.
func (s *Server) credit(ctx context.Context, kind eventsv1.OperationKind, paymentID, idField, opID string, amount int64) (credited, error) {
	var v violations
	v.paymentID("payment_id", paymentID)
	v.operationID(idField, opID)
	v.cents("amount_cents", amount)
	if err := v.err(); err != nil {
		return credited{}, err
	}
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != apikey.Merchant || p.Merchant == "" {
		return credited{}, status.Error(codes.PermissionDenied, "reversals and refunds are made by merchants' keys")
	}
	if s.paymentIDs == nil {
		return credited{}, status.Error(codes.FailedPrecondition, "this ingress has no tokenization key: it cannot read payment ids")
	}
	pay, err := s.paymentIDs.Open(p.Merchant, paymentID)
	if err != nil || !pay.Approved {
		// Unknown, altered, another merchant's, or rejected: the same answer.
		return credited{}, errPaymentNotFound
	}
	what := codecs.KindName(kind) + " " + opID
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	reply, err := s.bank.Operate(ctx, pay.CardToken, s.command(ctx, &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Operation{Operation: &eventsv1.Operation{
		Kind: kind, OperationId: opID, AmountCents: amount, MerchantId: p.Merchant, MerchantName: p.MerchantName,
		TransactionId: pay.TransactionID, PurchaseAmountCents: pay.AmountCents, PurchaseDecidedAtUnixUs: pay.DecidedAtUnixUs,
	}}}))
	if err != nil {
		return credited{}, s.callError(err, what)
	}
	switch reply.GetResult() {
	case eventsv1.OperationResult_OPERATION_RESULT_OK:
		return credited{tx: pay.TransactionID, reply: reply}, nil
	case eventsv1.OperationResult_OPERATION_RESULT_NOT_FOUND:
		return credited{}, errPaymentNotFound
	case eventsv1.OperationResult_OPERATION_RESULT_EXCEEDS:
		return credited{}, status.Errorf(codes.FailedPrecondition, "%s: amount_cents %d is more than is left of the payment (%d): nothing was given back",
			what, amount, reply.GetLeftCents())
	case eventsv1.OperationResult_OPERATION_RESULT_EXPIRED:
		return credited{}, status.Errorf(codes.FailedPrecondition, "%s: the payment can no longer be reversed or refunded: "+
			"it was approved more than 30 days ago, or beyond what the card remembers of its credits; nothing was given back", what)
	}
	return credited{}, operationError(reply, what, idField, opID)
}

// errPaymentNotFound answers a payment id that is unknown, another merchant's, or a rejected
// payment's: which one is not said.
var errPaymentNotFound = status.Error(codes.NotFound, "payment not found: no approved payment of yours has this payment_id")

// operationError turns the results every operation shares into a status.
func operationError(reply *eventsv1.OperationReply, what, idField, opID string) error {
	switch reply.GetResult() {
	case eventsv1.OperationResult_OPERATION_RESULT_CONFLICT:
		return status.Errorf(codes.AlreadyExists, "%s %q: this card already has an operation of yours with this id and another amount or payment; "+
			"nothing was changed (use a new id for a new one)", idField, opID)
	case eventsv1.OperationResult_OPERATION_RESULT_UNAVAILABLE:
		return status.Errorf(codes.Unavailable, "%s: the card's stored account cannot be read; nothing was changed", what)
	}
	return status.Errorf(codes.Internal, "%s: %v", what, reply.GetResult())
}

// PayBill records a payment of a card's bill.
func (s cardService) PayBill(ctx context.Context, req *codebankv1.PayBillRequest) (*codebankv1.PayBillResponse, error) {
	var v violations
	token := req.GetCardId()
	if _, err := cardID("card_id", token); err != nil {
		v.add("card_id", "is not a card id: 22 characters of A-Z a-z 0-9 - _, as IssueCard and LookupCard return")
	}
	v.operationID("bill_payment_id", req.GetBillPaymentId())
	v.cents("amount_cents", req.GetAmountCents())
	if err := v.err(); err != nil {
		return nil, err
	}
	what := "bill payment " + req.GetBillPaymentId()
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	reply, err := s.bank.Operate(ctx, token, s.command(ctx, &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Operation{Operation: &eventsv1.Operation{
		Kind: eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT, OperationId: req.GetBillPaymentId(), AmountCents: req.GetAmountCents(),
	}}}))
	if err != nil {
		return nil, s.callError(err, what)
	}
	switch reply.GetResult() {
	case eventsv1.OperationResult_OPERATION_RESULT_OK:
	case eventsv1.OperationResult_OPERATION_RESULT_NOT_FOUND:
		return nil, status.Errorf(codes.NotFound, "card %s not found", token)
	case eventsv1.OperationResult_OPERATION_RESULT_EXCEEDS:
		return nil, status.Errorf(codes.FailedPrecondition, "%s: amount_cents %d is more than the card owes (%s); nothing was recorded",
			what, req.GetAmountCents(), money.Format(reply.GetLeftCents()))
	default:
		return nil, operationError(reply, what, "bill_payment_id", req.GetBillPaymentId())
	}
	c := toCard(token, reply.GetAccount())
	s.audit(ctx, "bill payment recorded", token, reply.GetAccount())
	return &codebankv1.PayBillResponse{Card: c, BillPaymentId: req.GetBillPaymentId(), AmountCents: reply.GetAmountCents(),
		PaidAtUnixMs: reply.GetDecidedAtUnixUs() / 1000, Duplicate: reply.GetDuplicate()}, nil
}

// paymentID checks that a payment id has the form of one (its contents are checked by opening
// it).
func (v *violations) paymentID(field, id string) {
	switch {
	case id == "":
		v.add(field, "is required")
	case len(id) > paymentid.MaxLen || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "":
		v.add(field, "is not a payment id: up to %d characters of A-Z a-z 0-9 - _, as Authorize returns", paymentid.MaxLen)
	}
}

// operationID checks an operation's required idempotency key: the rules of a transaction id.
func (v *violations) operationID(field, id string) {
	if err := codecs.CheckTransactionID(id); err != nil {
		v.add(field, "%v", err)
	}
}
