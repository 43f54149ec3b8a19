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

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// Bank is what the ingress needs of the authorizer: send a request about a card, named by its
// token, and wait for the answer. KafkaBank is the real one.
type Bank interface {
	Pay(ctx context.Context, token string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error)
	Command(ctx context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.CardReply, error)
	// Operate sends a card command carrying an Operation and waits for its answer.
	Operate(ctx context.Context, token string, cmd *eventsv1.CardCommand) (*eventsv1.OperationReply, error)
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

// IssueCard generates a number, has the authorizer create the account under its token and
// returns the card with its number and CVV, the only time either is given out. A number whose
// token is taken (vanishingly rare) is replaced and tried again.
func (s cardService) IssueCard(ctx context.Context, req *codebankv1.IssueCardRequest) (*codebankv1.IssueCardResponse, error) {
	var v violations
	v.text("holder_name", req.GetHolderName(), MaxHolderLen)
	v.cents("limit_cents", req.GetLimitCents())
	if err := v.err(); err != nil {
		return nil, err
	}
	keyID := s.keys.CardKeyID()
	if keyID == "" {
		return nil, status.Error(codes.FailedPrecondition, "this ingress has no card key: it cannot issue cards")
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	exp := card.ExpiryAfter(s.now(), s.cfg.CardYears)
	holder := card.Redact(strings.Join(strings.Fields(req.GetHolderName()), " "))
	for attempt := 0; attempt < 3; attempt++ {
		number, err := card.NewNumber(s.cfg.BIN)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "generate card number: %v", err)
		}
		token := s.keys.Token(number)
		reply, err := s.bank.Command(ctx, token, s.command(ctx, &eventsv1.CardCommand{
			Command: &eventsv1.CardCommand_Issue{Issue: &eventsv1.IssueCard{
				HolderName: holder, LimitCents: req.GetLimitCents(), Currency: s.cfg.Currency,
				ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year), MaskedNumber: card.Mask(number), CardKeyId: keyID,
			}},
		}))
		if err != nil {
			return nil, s.callError(err, "issue card")
		}
		switch reply.GetResult() {
		case eventsv1.CardResult_CARD_RESULT_ALREADY_EXISTS, eventsv1.CardResult_CARD_RESULT_UNAVAILABLE:
			continue // the token is taken, or its account is damaged: another number
		}
		c := toCard(token, reply.GetAccount())
		c.Number = number
		cvv, _ := s.keys.CVV(keyID, number, exp)
		s.audit(ctx, "card issued", token, reply.GetAccount())
		return &codebankv1.IssueCardResponse{Card: c, Cvv: cvv}, nil
	}
	return nil, status.Error(codes.Aborted, "could not find a free card number; try again")
}

// GetCard reads a card through the authorizer, so it sees every decision made before it.
func (s cardService) GetCard(ctx context.Context, req *codebankv1.GetCardRequest) (*codebankv1.GetCardResponse, error) {
	token, acct, err := s.accountByID(ctx, req.GetCardId())
	if err != nil {
		return nil, err
	}
	return &codebankv1.GetCardResponse{Card: toCard(token, acct)}, nil
}

// LookupCard reads the card with a number.
func (s cardService) LookupCard(ctx context.Context, req *codebankv1.LookupCardRequest) (*codebankv1.LookupCardResponse, error) {
	number := card.NormalizeNumber(req.GetNumber())
	var v violations
	v.number("number", number)
	if err := v.err(); err != nil {
		return nil, err
	}
	token := s.keys.Token(number)
	acct, err := s.account(ctx, token)
	if err != nil {
		return nil, err
	}
	return &codebankv1.LookupCardResponse{Card: toCard(token, acct)}, nil
}

// BlockCard blocks a card.
func (s cardService) BlockCard(ctx context.Context, req *codebankv1.BlockCardRequest) (*codebankv1.BlockCardResponse, error) {
	c, err := s.setStatus(ctx, req.GetCardId(), &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Block{Block: &eventsv1.BlockCard{}}}, "card blocked")
	if err != nil {
		return nil, err
	}
	return &codebankv1.BlockCardResponse{Card: c}, nil
}

// UnblockCard makes a card usable again.
func (s cardService) UnblockCard(ctx context.Context, req *codebankv1.UnblockCardRequest) (*codebankv1.UnblockCardResponse, error) {
	c, err := s.setStatus(ctx, req.GetCardId(), &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Unblock{Unblock: &eventsv1.UnblockCard{}}}, "card unblocked")
	if err != nil {
		return nil, err
	}
	return &codebankv1.UnblockCardResponse{Card: c}, nil
}

func (s cardService) setStatus(ctx context.Context, id string, cmd *eventsv1.CardCommand, what string) (*codebankv1.Card, error) {
	token, err := cardID("card_id", id)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	reply, err := s.bank.Command(ctx, token, s.command(ctx, cmd))
	if err != nil {
		return nil, s.callError(err, what)
	}
	if err := cardResultError(reply, token); err != nil {
		return nil, err
	}
	s.audit(ctx, what, token, reply.GetAccount())
	return toCard(token, reply.GetAccount()), nil
}

// VerifyCard proves a card with its number, expiry and CVV. It answers yes or no and nothing
// more: a card that does not exist, data that does not match and a blocked card all read no.
func (s cardService) VerifyCard(ctx context.Context, req *codebankv1.VerifyCardRequest) (*codebankv1.VerifyCardResponse, error) {
	number := card.NormalizeNumber(req.GetNumber())
	var v violations
	v.number("number", number)
	v.expiry("expiry_month", "expiry_year", req.GetExpiryMonth(), req.GetExpiryYear())
	v.cvv("cvv", req.GetCvv())
	if err := v.err(); err != nil {
		return nil, err
	}
	exp := card.Expiry{Month: int(req.GetExpiryMonth()), Year: card.NormalizeYear(int(req.GetExpiryYear()))}
	token := s.keys.Token(number)
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	reply, err := s.bank.Command(ctx, token, s.command(ctx, &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Verify{Verify: &eventsv1.VerifyCard{
		ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year), CvvKeyIds: s.keys.MatchCVV(number, exp, req.GetCvv()),
	}}}))
	if err != nil {
		return nil, s.callError(err, "verify card")
	}
	switch reply.GetResult() {
	case eventsv1.CardResult_CARD_RESULT_OK:
		return &codebankv1.VerifyCardResponse{Verified: true, CardId: token, MaskedNumber: card.Mask(number)}, nil
	case eventsv1.CardResult_CARD_RESULT_UNAVAILABLE:
		return nil, status.Error(codes.Unavailable, "verify card: the card's stored account cannot be read; try again later")
	}
	return &codebankv1.VerifyCardResponse{}, nil
}

// command stamps a card command with the time and the caller's key id.
func (s *Server) command(ctx context.Context, cmd *eventsv1.CardCommand) *eventsv1.CardCommand {
	cmd.RequestedAtUnixUs = s.now().UnixMicro()
	if p, ok := PrincipalFrom(ctx); ok {
		cmd.Actor = p.KeyID
	}
	return cmd
}

// audit logs an operator's action with the key that made it.
func (s *Server) audit(ctx context.Context, what, token string, a *eventsv1.Account) {
	p, _ := PrincipalFrom(ctx)
	s.log.Info(what, "card", a.GetMaskedNumber(), "card_id", token, "key_id", p.KeyID, "role", string(p.Role))
}

// toCard is the public view of an account: never its number.
func toCard(token string, a *eventsv1.Account) *codebankv1.Card {
	return &codebankv1.Card{
		CardId: token, MaskedNumber: a.GetMaskedNumber(), HolderName: a.GetHolderName(),
		ExpiryMonth: a.GetExpiryMonth(), ExpiryYear: a.GetExpiryYear(),
		LimitCents: a.GetLimitCents(), UsedCents: a.GetUsedCents(), AvailableCents: a.GetLimitCents() - a.GetUsedCents(),
		Currency: a.GetCurrency(), Status: publicCardStatus(a.GetStatus()), IssuedAtUnixMs: a.GetIssuedAtUnixUs() / 1000,
		BlockReason: publicBlockReason(a.GetBlockReason()), VerificationFailures: a.GetVerifyFailures(),
	}
}

// cardID validates a card id field; it is the card's token.
func cardID(field, id string) (string, error) {
	var v violations
	switch {
	case id == "":
		v.add(field, "is required")
	case !card.ValidToken(id):
		v.add(field, "is not a card id: 22 characters of A-Z a-z 0-9 - _, as IssueCard and LookupCard return")
	}
	return id, v.err()
}

// paymentService implements codebank.v1.PaymentService.
type paymentService struct {
	codebankv1.UnimplementedPaymentServiceServer
	*Server
}

// Authorize validates the request, sends it to the authorizer under the caller's merchant and
// waits for the decision. Merchants are told DO_NOT_HONOR for every reason that would say which
// card data was wrong, and never the available credit. A card number in a free-text field
// (holder name, store, description) is masked (card.Redact) before anything is written; a
// transaction id that holds the card's own number is refused.
func (s paymentService) Authorize(ctx context.Context, req *codebankv1.AuthorizeRequest) (*codebankv1.AuthorizeResponse, error) {
	c := req.GetCard()
	p := cardPayment{number: card.NormalizeNumber(c.GetNumber()), holder: c.GetHolderName(), month: c.GetExpiryMonth(), year: c.GetExpiryYear(),
		cvv: c.GetCvv(), cents: req.GetAmountCents(), store: req.GetStore(), description: req.GetDescription()}
	var v violations
	v.transactionID("transaction_id", req.GetTransactionId())
	v.notTheNumber("transaction_id", req.GetTransactionId(), p.number)
	if v.card(authorizeCard, c != nil, p) {
		v.cvv("card.cvv", c.GetCvv())
	}
	v.cents("amount_cents", req.GetAmountCents())
	v.purchase(p)
	if err := v.err(); err != nil {
		return nil, err
	}
	txID := req.GetTransactionId()
	if txID == "" {
		txID = uuid.NewString()
	}
	reply, err := s.payCard(ctx, txID, p, eventsv1.Channel_CHANNEL_API)
	if err != nil {
		return nil, err
	}
	out := reply.GetOutcome()
	if reply.GetConflict() {
		return nil, conflict(card.Redact(txID))
	}
	paymentID, err := s.paymentID(ctx, reply)
	if err != nil {
		return nil, err
	}
	return &codebankv1.AuthorizeResponse{
		TransactionId: out.GetTransactionId(), Status: publicStatus(out.GetStatus()), Reason: merchantReason(out.GetReason()),
		AmountCents: out.GetAmountCents(), AuthorizedAtUnixMs: out.GetDecidedAtUnixUs() / 1000, MaskedNumber: card.Mask(p.number),
		Duplicate: reply.GetDuplicate(), PaymentId: paymentID,
	}, nil
}

// cardPayment is a payment as a contract gives it: the card's data, the amount and the
// purchase's free text.
type cardPayment struct {
	number, holder, cvv string
	month, year         int32
	cents               int64
	store, description  string
}

// cardFields are the names a contract gives the fields of a card.
type cardFields struct{ card, number, holder, expiryMonth, expiryYear string }

var (
	authorizeCard = cardFields{"card", "card.number", "card.holder_name", "card.expiry_month", "card.expiry_year"}
	legacyCard    = cardFields{"creditCard", "creditCard.number", "creditCard.name", "creditCard.expirationMonth", "creditCard.expirationYear"}
)

// card checks the card of p (its CVV is the caller's: the contracts differ), named as f names
// its fields; given says whether the request has a card at all. It reports whether it had.
func (v *violations) card(f cardFields, given bool, p cardPayment) bool {
	if !given {
		v.add(f.card, "is required")
		return false
	}
	v.number(f.number, p.number)
	v.text(f.holder, p.holder, MaxHolderLen)
	v.expiry(f.expiryMonth, f.expiryYear, p.month, p.year)
	return true
}

// purchase checks p's store and description.
func (v *violations) purchase(p cardPayment) {
	v.optionalText("store", p.store, MaxStoreLen)
	v.text("description", p.description, MaxDescriptionLen)
}

// payCard sends the payment p, validated, under txID and waits for its decision (pay). The
// holder name, store and description are masked (card.Redact) first, and the CVV checked here
// (card.Keys.MatchCVV): only the ids of the keys it matched travel on.
func (s *Server) payCard(ctx context.Context, txID string, p cardPayment, channel eventsv1.Channel) (*eventsv1.PaymentReply, error) {
	exp := card.Expiry{Month: int(p.month), Year: card.NormalizeYear(int(p.year))}
	return s.pay(ctx, p.number, &eventsv1.PaymentRequested{
		TransactionId: txID, HolderName: card.Redact(p.holder),
		ExpiryMonth: int32(exp.Month), ExpiryYear: int32(exp.Year), CvvKeyIds: s.keys.MatchCVV(p.number, exp, p.cvv),
		AmountCents: p.cents, Store: card.Redact(p.store), Description: card.Redact(p.description),
		Channel: channel,
	})
}

// pay stamps a payment request with the card's token and masked number, the caller's merchant
// and the time, sends it and waits for its decision.
func (s *Server) pay(ctx context.Context, number string, req *eventsv1.PaymentRequested) (*eventsv1.PaymentReply, error) {
	p, ok := PrincipalFrom(ctx)
	if !ok || p.Role != apikey.Merchant || p.Merchant == "" {
		return nil, status.Error(codes.PermissionDenied, "payments are made by merchants' keys")
	}
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	req.MerchantId, req.MerchantName = p.Merchant, p.MerchantName
	req.MaskedNumber = card.Mask(number)
	req.RequestedAtUnixUs = s.now().UnixMicro()
	reply, err := s.bank.Pay(ctx, s.keys.Token(number), req)
	if err != nil {
		return nil, s.callError(err, "transaction "+card.Redact(req.GetTransactionId()))
	}
	return reply, nil
}

// legacyService implements the original bank's payment.PaymentService.
type legacyService struct {
	paymentpb.UnimplementedPaymentServiceServer
	*Server
}

// Payment serves the original contract: Empty when approved; FAILED_PRECONDITION with the
// original messages otherwise. Unlike the original, it also checks name, expiry and CVV. Its
// callers are booked as the merchant Config.Legacy names.
func (s legacyService) Payment(ctx context.Context, req *paymentpb.PaymentRequest) (*emptypb.Empty, error) {
	c := req.GetCreditCard()
	p := cardPayment{number: card.NormalizeNumber(c.GetNumber()), holder: c.GetName(), month: c.GetExpirationMonth(), year: c.GetExpirationYear(),
		cvv: fmt.Sprintf("%03d", c.GetCvv()), store: req.GetStore(), description: req.GetDescription()}
	var v violations
	if v.card(legacyCard, c != nil, p) && (c.GetCvv() < 0 || c.GetCvv() > 999) {
		v.add("creditCard.cvv", "must be 0-999, got %d", c.GetCvv())
	}
	var err error
	if p.cents, err = money.FromFloat(req.GetAmount()); err != nil {
		v.add("amount", "%v", err)
	}
	v.purchase(p)
	if err := v.err(); err != nil {
		return nil, err
	}
	reply, err := s.payCard(ctx, uuid.NewString(), p, eventsv1.Channel_CHANNEL_LEGACY)
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
	return status.Errorf(codes.AlreadyExists, "transaction_id %q: this card already has a payment of yours with this transaction id "+
		"and another amount, store or description; nothing was charged (use a new transaction id for a new payment)", txID)
}

// cardResultError turns a card command's result other than OK into a status.
func cardResultError(r *eventsv1.CardReply, token string) error {
	switch r.GetResult() {
	case eventsv1.CardResult_CARD_RESULT_OK:
		return nil
	case eventsv1.CardResult_CARD_RESULT_NOT_FOUND:
		return status.Errorf(codes.NotFound, "card %s not found", token)
	case eventsv1.CardResult_CARD_RESULT_UNAVAILABLE:
		return status.Errorf(codes.Unavailable, "card %s: its stored account cannot be read; nothing was changed", token)
	}
	return status.Errorf(codes.Internal, "card %s: %v", token, r.GetResult())
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
