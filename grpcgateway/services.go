package grpcgateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// Bank is what the ingress needs of the authorizer: send a request for a card and wait for the
// answer. KafkaBank is the real one.
type Bank interface {
	Pay(ctx context.Context, number string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error)
	Command(ctx context.Context, number string, cmd *eventsv1.CardCommand) (*eventsv1.CardReply, error)
	Ready() bool
}

// Messages of the original bank's contract, kept word for word.
const (
	LegacyRejected    = "transaction rejected by the bank"
	LegacyUnknownCard = "credit card does not exists"
)

// cardService implements codebank.v1.CardService.
type cardService struct {
	codebankv1.UnimplementedCardServiceServer
	*Server
}

// IssueCard generates a number, has the authorizer create the account and returns the card
// with its CVV. A number already in use (vanishingly rare) is replaced and tried again.
func (s cardService) IssueCard(ctx context.Context, req *codebankv1.IssueCardRequest) (*codebankv1.IssueCardResponse, error) {
	var v violations
	v.text("holder_name", req.GetHolderName(), MaxHolderLen)
	v.cents("limit_cents", req.GetLimitCents())
	if err := v.err(); err != nil {
		return nil, err
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	exp := card.ExpiryAfter(s.now(), s.cfg.CardYears)
	holder := strings.Join(strings.Fields(req.GetHolderName()), " ")
	for attempt := 0; attempt < 3; attempt++ {
		number, err := card.NewNumber(s.cfg.BIN)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "generate card number: %v", err)
		}
		reply, err := s.bank.Command(ctx, number, &eventsv1.CardCommand{
			RequestedAtUnixUs: s.now().UnixMicro(),
			Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{
				HolderName: holder, LimitCents: req.GetLimitCents(), Currency: s.cfg.Currency,
				ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year),
			}},
		})
		if err != nil {
			return nil, s.callError(err, "issue card")
		}
		switch reply.GetResult() {
		case eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS, eventsv1.CardResult_CARD_RESULT_UNAVAILABLE:
			continue // the number is taken, or its account is damaged: another number
		}
		return &codebankv1.IssueCardResponse{Card: s.toCard(number, reply.GetAccount()), Cvv: s.keys.CVV(number, exp)}, nil
	}
	return nil, status.Error(codes.Aborted, "could not find a free card number; try again")
}

// GetCard reads a card through the authorizer, so it sees every decision made before it.
func (s cardService) GetCard(ctx context.Context, req *codebankv1.GetCardRequest) (*codebankv1.GetCardResponse, error) {
	number, acct, err := s.cardOf(ctx, req.GetNumber())
	if err != nil {
		return nil, err
	}
	return &codebankv1.GetCardResponse{Card: s.toCard(number, acct)}, nil
}

func (s *Server) toCard(number string, a *eventsv1.Account) *codebankv1.Card {
	return &codebankv1.Card{
		Number: number, MaskedNumber: card.Mask(number), HolderName: a.GetHolderName(),
		ExpiryMonth: a.GetExpiryMonth(), ExpiryYear: a.GetExpiryYear(),
		LimitCents: a.GetLimitCents(), UsedCents: a.GetUsedCents(), AvailableCents: a.GetLimitCents() - a.GetUsedCents(),
		Currency: a.GetCurrency(), Status: publicCardStatus(a.GetStatus()), IssuedAtUnixMs: a.GetIssuedAtUnixUs() / 1000,
	}
}

// paymentService implements codebank.v1.PaymentService.
type paymentService struct {
	codebankv1.UnimplementedPaymentServiceServer
	*Server
}

// Authorize validates the request, sends it to the authorizer and waits for the decision.
func (s paymentService) Authorize(ctx context.Context, req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
	c := req.GetCard()
	number := card.NormalizeNumber(c.GetNumber())
	var v violations
	v.transactionID("transaction_id", req.GetTransactionId())
	if c == nil {
		v.add("card", "is required")
	} else {
		v.number("card.number", number)
		v.text("card.holder_name", c.GetHolderName(), MaxHolderLen)
		v.expiry("card.expiry_month", "card.expiry_year", c.GetExpiryMonth(), c.GetExpiryYear())
		v.cvv("card.cvv", c.GetCvv())
	}
	v.cents("amount_cents", req.GetAmountCents())
	v.text("store", req.GetStore(), MaxStoreLen)
	v.text("description", req.GetDescription(), MaxDescriptionLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	txID := req.GetTransactionId()
	if txID == "" {
		txID = uuid.NewString()
	}
	exp := card.Expiry{Month: int(c.GetExpiryMonth()), Year: card.NormalizeYear(int(c.GetExpiryYear()))}
	reply, err := s.pay(ctx, number, &eventsv1.PaymentRequested{
		TransactionId: txID, HolderName: c.GetHolderName(),
		ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year), CvvMatch: s.keys.VerifyCVV(number, exp, c.GetCvv()),
		AmountCents: req.GetAmountCents(), Store: req.GetStore(), Description: req.GetDescription(),
		Channel: eventsv1.Channel_CHANNEL_API,
	})
	if err != nil {
		return nil, err
	}
	out := reply.GetOutcome()
	if reply.GetConflict() {
		return nil, conflict(txID)
	}
	return &codebankv1.AuthorizeResponse{
		TransactionId: out.GetTransactionId(), Status: publicStatus(out.GetStatus()), Reason: publicReason(out.GetReason()),
		AvailableCents: out.GetAvailableCents(), AmountCents: out.GetAmountCents(),
		AuthorizedAtUnixMs: out.GetDecidedAtUnixUs() / 1000, MaskedNumber: card.Mask(number), Duplicate: reply.GetDuplicate(),
	}, nil
}

// pay stamps and sends a payment request and waits for its decision.
func (s *Server) pay(ctx context.Context, number string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	req.RequestedAtUnixUs = s.now().UnixMicro()
	reply, err := s.bank.Pay(ctx, number, req)
	if err != nil {
		return nil, s.callError(err, "transaction "+req.GetTransactionId())
	}
	return reply, nil
}

// legacyService implements the original bank's payment.PaymentService.
type legacyService struct {
	paymentpb.UnimplementedPaymentServiceServer
	*Server
}

// Payment serves the original contract: Empty when approved; FAILED_PRECONDITION with the
// original messages otherwise. Unlike the original, it also checks name, expiry and CVV.
func (s legacyService) Payment(ctx context.Context, req *paymentpb.PaymentRequest) (*emptypb.Empty, error) {
	c := req.GetCreditCard()
	number := card.NormalizeNumber(c.GetNumber())
	var v violations
	if c == nil {
		v.add("creditCard", "is required")
	} else {
		v.number("creditCard.number", number)
		v.text("creditCard.name", c.GetName(), MaxHolderLen)
		v.expiry("creditCard.expirationMonth", "creditCard.expirationYear", c.GetExpirationMonth(), c.GetExpirationYear())
		if c.GetCvv() < 0 || c.GetCvv() > 999 {
			v.add("creditCard.cvv", "must be 0-999, got %d", c.GetCvv())
		}
	}
	cents, err := money.FromFloat(req.GetAmount())
	if err != nil {
		v.add("amount", "%v", err)
	}
	v.text("store", req.GetStore(), MaxStoreLen)
	v.text("description", req.GetDescription(), MaxDescriptionLen)
	if err := v.err(); err != nil {
		return nil, err
	}
	exp := card.Expiry{Month: int(c.GetExpirationMonth()), Year: card.NormalizeYear(int(c.GetExpirationYear()))}
	reply, err := s.pay(ctx, number, &eventsv1.PaymentRequested{
		TransactionId: uuid.NewString(), HolderName: c.GetName(),
		ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year),
		CvvMatch:    s.keys.VerifyCVV(number, exp, fmt.Sprintf("%03d", c.GetCvv())),
		AmountCents: cents, Store: req.GetStore(), Description: req.GetDescription(),
		Channel: eventsv1.Channel_CHANNEL_LEGACY,
	})
	if err != nil {
		return nil, err
	}
	switch out := reply.GetOutcome(); {
	case reply.GetConflict(): // never with the generated id; kept total
		return nil, status.Error(codes.FailedPrecondition, LegacyRejected)
	case out.GetStatus() == eventsv1.PaymentStatus_PAYMENT_STATUS_APPROVED:
		return &emptypb.Empty{}, nil
	case out.GetReason() == eventsv1.RejectReason_REJECT_REASON_CARD_NOT_FOUND:
		return nil, status.Error(codes.FailedPrecondition, LegacyUnknownCard)
	default:
		return nil, status.Error(codes.FailedPrecondition, LegacyRejected)
	}
}

// conflict is the error of a transaction id that the card already used for another payment.
func conflict(txID string) error {
	return status.Errorf(codes.AlreadyExists, "transaction_id %q: this card already has a payment with this transaction id "+
		"and another amount, store or description; nothing was charged (use a new transaction id for a new payment)", txID)
}

// deadline bounds a call by the configured request timeout.
func (s *Server) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.RequestTimeout)
}

// callError turns a failed round trip to the authorizer into a gRPC status. what names the
// request, so that a caller who timed out knows what to ask for again.
func (s *Server) callError(err error, what string) error {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return status.Errorf(codes.DeadlineExceeded, "%s: no decision within the deadline; ask again with the same id for its final outcome", what)
	case errors.Is(err, context.Canceled):
		return status.Errorf(codes.Canceled, "%s: canceled", what)
	case errors.Is(err, ErrUnavailable):
		return status.Errorf(codes.Unavailable, "%s: %v", what, err)
	case errors.Is(err, ErrOverloaded):
		return status.Errorf(codes.ResourceExhausted, "%s: the bank is at its limit of calls in flight; retry with the same id after a short pause", what)
	case errors.Is(err, ErrRefused):
		s.log.Error("authorizer refused a request", "what", what, "err", err)
		return status.Errorf(codes.Internal, "%s: %v", what, err)
	default:
		s.log.Error("call to authorizer failed", "what", what, "err", err)
		return status.Errorf(codes.Internal, "%s: %v", what, err)
	}
}
