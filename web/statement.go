package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/card"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// statementPageSize is how many lines the statement shows: the bank's largest page.
const statementPageSize = 1000

const monthLayout = "2006-01"

const msgBankDown = "Could not reach the bank, try again."

// statementForm is the statement form as typed.
type statementForm struct {
	Number string
	Month  string
}

// statementView is the data of the statement page.
type statementView struct {
	Form      statementForm
	Errors    map[string]string
	General   string
	Statement *statementData
	// RefreshMs is how often the page asks for new purchases.
	RefreshMs int64
}

// statementData is one month of a card's statement, formatted for the page; /statement/data
// serves it as JSON.
type statementData struct {
	MaskedNumber   string          `json:"masked_number"`
	Holder         string          `json:"holder"`
	Month          string          `json:"month"`
	MonthLabel     string          `json:"month_label"`
	Lines          []statementLine `json:"lines"`
	Count          int64           `json:"count"`
	TotalCents     int64           `json:"total_cents"`
	Total          string          `json:"total"`
	AvailableCents int64           `json:"available_cents"`
	Available      string          `json:"available"`
	Limit          string          `json:"limit"`
	// More is true when the month has more lines than the page shows.
	More     bool `json:"more"`
	UpToDate bool `json:"up_to_date"`
}

// statementLine is one purchase.
type statementLine struct {
	TransactionID string `json:"transaction_id"`
	Date          string `json:"date"`
	Store         string `json:"store"`
	Description   string `json:"description"`
	AmountCents   int64  `json:"amount_cents"`
	Amount        string `json:"amount"`
}

func (s *Server) statementForm(w http.ResponseWriter, r *http.Request) {
	s.renderStatement(w, http.StatusOK, statementView{Form: statementForm{Month: s.now().UTC().Format(monthLayout)}})
}

func (s *Server) renderStatement(w http.ResponseWriter, code int, v statementView) {
	v.RefreshMs = s.cfg.StatementRefresh.Milliseconds()
	s.render(w, code, "statement.html", page{Title: "Statement", Nav: "statement", Data: v})
}

func parseStatementForm(r *http.Request) statementForm {
	return statementForm{Number: strings.TrimSpace(r.PostFormValue("number")), Month: strings.TrimSpace(r.PostFormValue("month"))}
}

// statement shows a card's month. The card number comes in a POST body, never in a URL, so
// it stays out of browser histories and access logs.
func (s *Server) statement(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	f := parseStatementForm(r)
	if f.Month == "" {
		f.Month = s.now().UTC().Format(monthLayout)
	}
	data, errs, general, code := s.lookupStatement(r.Context(), f)
	s.renderStatement(w, code, statementView{Form: f, Errors: errs, General: general, Statement: data})
}

// statementData serves the statement as JSON for the page's live refresh: the statement, or
// {"error": ..., "fields": {...}}.
func (s *Server) statementData(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		code := http.StatusBadRequest
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, code, map[string]any{"error": "bad form: " + err.Error()})
		return
	}
	f := parseStatementForm(r)
	if f.Month == "" {
		f.Month = s.now().UTC().Format(monthLayout)
	}
	data, errs, general, code := s.lookupStatement(r.Context(), f)
	if data == nil {
		if general == "" {
			general = "Check the fields"
		}
		writeJSON(w, code, map[string]any{"error": general, "fields": errs})
		return
	}
	writeJSON(w, http.StatusOK, data)
}

// lookupStatement validates the form and asks the bank. It returns the statement, or the
// errors per field and about the whole form with the HTTP status to answer.
func (s *Server) lookupStatement(ctx context.Context, f statementForm) (*statementData, map[string]string, string, int) {
	errs := map[string]string{}
	number := card.NormalizeNumber(f.Number)
	switch err := card.ValidateNumber(number); {
	case number == "":
		errs["number"] = "Enter the card number"
	case errors.Is(err, card.ErrNumberDigits):
		errs["number"] = "Use digits only"
	case errors.Is(err, card.ErrNumberLength):
		errs["number"] = "A card number has 16 digits"
	case err != nil:
		errs["number"] = "This card number is not valid: check the digits"
	}
	month, err := time.Parse(monthLayout, f.Month)
	if err != nil || month.Format(monthLayout) != f.Month {
		errs["month"] = "Use YYYY-MM, for example " + s.now().UTC().Format(monthLayout)
	}
	if len(errs) > 0 {
		return nil, errs, "", http.StatusUnprocessableEntity
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	resp, err := s.stmts.GetStatement(ctx, &codebankv1.GetStatementRequest{Number: number, Month: f.Month, PageSize: statementPageSize})
	switch status.Code(err) {
	case codes.OK:
	case codes.NotFound:
		return nil, map[string]string{"number": "Card not recognised"}, "", http.StatusNotFound
	case codes.InvalidArgument:
		fields, general := bankViolations(err)
		return nil, fields, general, http.StatusUnprocessableEntity
	default:
		s.log.Warn("bank did not answer a statement", "card", card.Mask(number), "month", f.Month, "code", status.Code(err).String(), "err", err)
		return nil, nil, msgBankDown, http.StatusServiceUnavailable
	}
	d := &statementData{
		MaskedNumber: resp.GetMaskedNumber(), Holder: resp.GetHolderName(), Month: resp.GetMonth(),
		MonthLabel: month.Format("January 2006"), Count: resp.GetCount(),
		TotalCents: resp.GetTotalCents(), Total: s.money(resp.GetTotalCents()),
		AvailableCents: resp.GetAvailableCents(), Available: s.money(resp.GetAvailableCents()), Limit: s.money(resp.GetLimitCents()),
		More: int64(len(resp.GetLines())) < resp.GetCount(), UpToDate: resp.GetUpToDate(),
		Lines: make([]statementLine, 0, len(resp.GetLines())),
	}
	for _, l := range resp.GetLines() {
		d.Lines = append(d.Lines, statementLine{
			TransactionID: l.GetTransactionId(),
			Date:          time.UnixMilli(l.GetAuthorizedAtUnixMs()).UTC().Format("02 Jan 15:04"),
			Store:         l.GetStore(), Description: l.GetDescription(),
			AmountCents: l.GetAmountCents(), Amount: s.money(l.GetAmountCents()),
		})
	}
	return d, nil, "", http.StatusOK
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
