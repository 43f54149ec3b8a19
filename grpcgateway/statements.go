package grpcgateway

import (
	"context"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/processors/statements"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// StatementReader reads the statements processor's state (statements.Reader is the real one).
type StatementReader interface {
	// Months returns the months of a card's statement, oldest first.
	Months(token string) ([]*eventsv1.MonthTotal, error)
	// Lines returns up to n lines of a card's month, oldest first, from the line at index from.
	Lines(token, month string, from, n int64) ([]*eventsv1.StatementLine, error)
	// Await calls check until it reports done or fails, again each time the statements change,
	// until ctx ends.
	Await(ctx context.Context, check func() (bool, error)) error
}

// Statement paging and waiting.
const (
	DefaultStatementPage = 100
	MaxStatementPage     = 1000
	// StatementWait is how long GetStatement waits for the statement to catch up with the
	// card's latest approval.
	StatementWait = 3 * time.Second
)

const monthLayout = "2006-01"

// statementService implements codebank.v1.StatementService.
type statementService struct {
	codebankv1.UnimplementedStatementServiceServer
	*Server
}

// account reads a card through the authorizer; NOT_FOUND when there is no such card.
func (s *Server) account(ctx context.Context, token string) (*eventsv1.Account, error) {
	ctx, cancel := s.deadline(ctx)
	defer cancel()
	reply, err := s.bank.Command(ctx, token, s.command(ctx, &eventsv1.CardCommand{Command: &eventsv1.CardCommand_Get{Get: &eventsv1.GetCard{}}}))
	if err != nil {
		return nil, s.callError(err, "get card "+token)
	}
	if err := cardResultError(reply, token); err != nil {
		return nil, err
	}
	return reply.GetAccount(), nil
}

// accountByID reads the card a request's card_id names (account); INVALID_ARGUMENT when id is
// not a card id.
func (s *Server) accountByID(ctx context.Context, id string) (string, *eventsv1.Account, error) {
	token, err := cardID("card_id", id)
	if err != nil {
		return "", nil, err
	}
	acct, err := s.account(ctx, token)
	return token, acct, err
}

// GetStatement returns one page of a month, with the month's bill. It first asks the
// authorizer for the card, whose count of approvals and operations (reversals, refunds, bill
// payments) the statement's lines must reach, and waits up to StatementWait for the statements
// processor to have written them: a statement read right after an approved Authorize, or a
// Refund, shows it.
func (s statementService) GetStatement(ctx context.Context, req *codebankv1.GetStatementRequest) (*codebankv1.GetStatementResponse, error) {
	month := req.GetMonth()
	if month == "" {
		month = s.now().UTC().Format(monthLayout)
	}
	var v violations
	token := req.GetCardId()
	if _, err := cardID("card_id", token); err != nil {
		v.add("card_id", "is not a card id: 22 characters of A-Z a-z 0-9 - _, as IssueCard and LookupCard return")
	}
	if t, err := time.Parse(monthLayout, month); err != nil || t.Format(monthLayout) != month {
		v.add("month", "must be YYYY-MM, e.g. 2026-11, got %q", month)
	}
	size := int64(req.GetPageSize())
	switch {
	case size == 0:
		size = DefaultStatementPage
	case size < 0 || size > MaxStatementPage:
		v.add("page_size", "must be 1-%d, got %d", MaxStatementPage, size)
	}
	var from int64
	if tok := req.GetPageToken(); tok != "" {
		n, err := strconv.ParseInt(tok, 10, 64)
		if err != nil || n < 0 {
			v.add("page_token", "is not a token this service returned")
		}
		from = n
	}
	if err := v.err(); err != nil {
		return nil, err
	}
	acct, err := s.account(ctx, token)
	if err != nil {
		return nil, err
	}

	resp := &codebankv1.GetStatementResponse{
		MaskedNumber: acct.GetMaskedNumber(), HolderName: acct.GetHolderName(), Month: month,
		AvailableCents: acct.GetLimitCents() - acct.GetUsedCents(), LimitCents: acct.GetLimitCents(), Currency: acct.GetCurrency(),
	}
	// Read the page, again each time the statements change, until the card's statement counts
	// all its approvals and operations or StatementWait has passed.
	wait, cancel := context.WithTimeout(ctx, StatementWait)
	defer cancel()
	now := s.now()
	err = s.statements.Await(wait, func() (bool, error) {
		months, err := s.statements.Months(token)
		if err != nil {
			return false, err
		}
		var applied int64
		resp.TotalCents, resp.Count = 0, 0
		for _, m := range months {
			if m.GetMonth() == month {
				resp.TotalCents, resp.Count = m.GetTotalCents(), m.GetCount()
			}
			applied += m.GetCount()
		}
		resp.Bill = publicBill(statements.BillOf(months, month, now))
		want := max(min(size, resp.GetCount()-from), 0)
		resp.Lines = nil
		if want > 0 {
			lines, err := s.statements.Lines(token, month, from, want)
			if err != nil {
				return false, err
			}
			resp.Lines = publicLines(lines)
		}
		resp.UpToDate = applied >= acct.GetApprovals()+acct.GetOperations() && int64(len(resp.Lines)) == want
		return resp.UpToDate, nil
	})
	if err != nil && wait.Err() == nil {
		return nil, status.Errorf(codes.Unavailable, "read statement: %v", err)
	}
	if next := from + int64(len(resp.GetLines())); next < resp.GetCount() {
		resp.NextPageToken = strconv.FormatInt(next, 10)
	}
	return resp, nil
}

// ListStatements lists the months with lines, newest first, each with its closing balance and
// whether it was paid by its due date.
func (s statementService) ListStatements(ctx context.Context, req *codebankv1.ListStatementsRequest) (*codebankv1.ListStatementsResponse, error) {
	token, acct, err := s.accountByID(ctx, req.GetCardId())
	if err != nil {
		return nil, err
	}
	months, err := s.statements.Months(token)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "read statement: %v", err)
	}
	resp := &codebankv1.ListStatementsResponse{MaskedNumber: acct.GetMaskedNumber(), HolderName: acct.GetHolderName(), Currency: acct.GetCurrency()}
	bills := statements.Bills(months, s.now())
	for i, m := range months {
		b := publicBill(bills[i])
		resp.Statements = append(resp.Statements, &codebankv1.StatementSummary{Month: m.GetMonth(), TotalCents: m.GetTotalCents(), Count: m.GetCount(),
			ClosingBalanceCents: b.GetClosingBalanceCents(), PaidByDueDate: b.GetStatus() == codebankv1.BillStatus_BILL_STATUS_PAID ||
				b.GetStatus() == codebankv1.BillStatus_BILL_STATUS_NOTHING_DUE, Bill: b})
	}
	slices.SortFunc(resp.Statements, func(a, b *codebankv1.StatementSummary) int {
		if a.GetMonth() > b.GetMonth() {
			return -1
		}
		return 1
	})
	return resp, nil
}
