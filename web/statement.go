package web

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// statementPageSize is how many lines the statement shows: the bank's largest page.
const statementPageSize = 1000

const monthLayout = "2006-01"

const msgBankDown = "Could not reach the bank, try again."

// statementForm is the statement form as typed: the card's number, expiry and CVV prove it is
// the customer's. View replaces them once proven (see viewToken).
type statementForm struct {
	Number string
	Expiry string
	CVV    string
	Month  string
	View   string
}

// viewFor is how long a proven card's statement may be refreshed and browsed without proving it
// again.
const viewFor = 30 * time.Minute

// msgNotVerified is all the page says when a card does not verify: not which of the number,
// expiry or CVV is wrong, nor whether the card exists or is blocked.
const msgNotVerified = "We could not verify this card. Check the card number, the expiry date and the CVV."

// statementView is the data of the statement page.
type statementView struct {
	Form      statementForm
	Errors    map[string]string
	General   string
	Statement *statementData
	// View lets the page refresh the statement without the card's details (viewToken).
	View string
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
	// Bill is the month as a bill.
	Bill statementBill `json:"bill"`
}

// statementBill is a month's bill, formatted for the page.
type statementBill struct {
	Opening   string `json:"opening"`
	Purchases string `json:"purchases"`
	Reversals string `json:"reversals"`
	Refunds   string `json:"refunds"`
	Payments  string `json:"payments"`
	// Closing is the closing balance, ClosingCents its amount, ClosingLabel what it is: a
	// balance owed, or a credit balance (shown positive).
	Closing      string `json:"closing"`
	ClosingCents int64  `json:"closing_cents"`
	ClosingLabel string `json:"closing_label"`
	Due          string `json:"due"`
	Minimum      string `json:"minimum"`
	// Status says where the bill stands, in words; StatusCode as the API names it.
	Status     string `json:"status"`
	StatusCode string `json:"status_code"`
}

// statementLine is one purchase, or one operation that gave credit back.
type statementLine struct {
	// Key tells the lines apart on the page: the transaction id of a purchase, the kind and id
	// of an operation.
	Key           string `json:"key"`
	TransactionID string `json:"transaction_id"`
	Date          string `json:"date"`
	Store         string `json:"store"`
	Description   string `json:"description"`
	AmountCents   int64  `json:"amount_cents"`
	// Amount is the amount as it counts on the bill: a credit with a minus sign.
	Amount string `json:"amount"`
	// Kind is "purchase", "reversal", "refund" or "bill_payment"; Credit is true for the last
	// three.
	Kind   string `json:"kind"`
	Credit bool   `json:"credit"`
}

func (s *Server) statementForm(w http.ResponseWriter, r *http.Request) {
	s.renderStatement(w, http.StatusOK, statementView{Form: statementForm{Month: s.now().UTC().Format(monthLayout)}})
}

func (s *Server) renderStatement(w http.ResponseWriter, code int, v statementView) {
	v.RefreshMs = s.cfg.StatementRefresh.Milliseconds()
	s.render(w, code, "statement.html", page{Title: "Statement", Nav: "statement", Data: v})
}

func parseStatementForm(r *http.Request) statementForm {
	v := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	return statementForm{Number: v("number"), Expiry: v("expiry"), CVV: v("cvv"), Month: v("month"), View: v("view")}
}

// statement shows a card's month to whoever proves the card is theirs: its number, expiry and
// CVV, checked by the bank (VerifyCard), whose failures count toward the card's lockout; or the
// view token of an earlier proof. The card's details come in a POST body, never in a URL, so
// they stay out of browser histories and access logs, and the page never echoes the CVV.
func (s *Server) statement(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	f := parseStatementForm(r)
	if f.Month == "" {
		f.Month = s.now().UTC().Format(monthLayout)
	}
	data, view, errs, general, code := s.lookupStatement(r.Context(), f)
	f.CVV = ""
	if data != nil {
		f.Number, f.Expiry = "", ""
	}
	s.renderStatement(w, code, statementView{Form: f, Errors: errs, General: general, Statement: data, View: view})
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
	data, _, errs, general, code := s.lookupStatement(r.Context(), f)
	if data == nil {
		if general == "" {
			general = "Check the fields"
		}
		writeJSON(w, code, map[string]any{"error": general, "fields": errs})
		return
	}
	writeJSON(w, http.StatusOK, data)
}

// bankFailed turns a failed call to the bank into what the statement form answers: the bank's
// complaints about the fields, or "try again later" (logged with what, and args).
func (s *Server) bankFailed(err error, what string, args ...any) (map[string]string, string, int) {
	if status.Code(err) == codes.InvalidArgument {
		fields, general := bankViolations(err)
		return fields, general, http.StatusUnprocessableEntity
	}
	s.log.Warn(what, append(args, "code", status.Code(err).String(), "err", err)...)
	return nil, msgBankDown, http.StatusServiceUnavailable
}

// lookupStatement validates the form, has the bank verify the card (or checks the view token)
// and reads the month. It returns the statement and a view token for it, or the errors per
// field and about the whole form with the HTTP status to answer.
func (s *Server) lookupStatement(ctx context.Context, f statementForm) (*statementData, string, map[string]string, string, int) {
	errs := map[string]string{}
	month, err := time.Parse(monthLayout, f.Month)
	if err != nil || month.Format(monthLayout) != f.Month {
		errs["month"] = "Use YYYY-MM, for example " + s.now().UTC().Format(monthLayout)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
	defer cancel()
	var cardID string
	if f.View != "" {
		var ok bool
		if cardID, ok = s.checkView(f.View); !ok {
			return nil, "", nil, "This statement view has expired: enter the card's details again.", http.StatusForbidden
		}
	} else {
		c := validateCard(checkoutForm{Number: f.Number, Expiry: f.Expiry, CVV: f.CVV, Holder: "-"}, s.now(), errs)
		if len(errs) > 0 {
			return nil, "", errs, "", http.StatusUnprocessableEntity
		}
		v, err := s.cards.VerifyCard(ctx, &codebankv1.VerifyCardRequest{Number: c.number, ExpiryMonth: int32(c.exp.Month),
			ExpiryYear: int32(c.exp.Year), Cvv: c.cvv})
		if err != nil {
			fields, general, code := s.bankFailed(err, "bank did not verify a card")
			return nil, "", fields, general, code
		}
		if !v.GetVerified() {
			return nil, "", nil, msgNotVerified, http.StatusUnprocessableEntity
		}
		cardID = v.GetCardId()
	}
	if len(errs) > 0 {
		return nil, "", errs, "", http.StatusUnprocessableEntity
	}
	resp, err := s.stmts.GetStatement(ctx, &codebankv1.GetStatementRequest{CardId: cardID, Month: f.Month, PageSize: statementPageSize})
	if err != nil {
		fields, general, code := s.bankFailed(err, "bank did not answer a statement", "card_id", cardID, "month", f.Month)
		return nil, "", fields, general, code
	}
	d := &statementData{
		MaskedNumber: resp.GetMaskedNumber(), Holder: resp.GetHolderName(), Month: resp.GetMonth(),
		MonthLabel: month.Format("January 2006"), Count: resp.GetCount(),
		TotalCents: resp.GetTotalCents(), Total: s.money(resp.GetTotalCents()),
		AvailableCents: resp.GetAvailableCents(), Available: s.money(resp.GetAvailableCents()), Limit: s.money(resp.GetLimitCents()),
		More: int64(len(resp.GetLines())) < resp.GetCount(), UpToDate: resp.GetUpToDate(),
		Lines: make([]statementLine, 0, len(resp.GetLines())), Bill: s.bill(resp.GetBill()),
	}
	for _, l := range resp.GetLines() {
		d.Lines = append(d.Lines, s.line(l))
	}
	return d, s.viewToken(cardID), nil, "", http.StatusOK
}

// line formats a statement line: a purchase as it is, an operation naming the purchase it
// credits, its amount taken from the balance.
func (s *Server) line(l *codebankv1.StatementLine) statementLine {
	out := statementLine{
		Key: l.GetTransactionId(), TransactionID: l.GetTransactionId(), Kind: "purchase",
		Date:  time.UnixMilli(l.GetAuthorizedAtUnixMs()).UTC().Format("02 Jan 15:04"),
		Store: l.GetStore(), Description: l.GetDescription(),
		AmountCents: l.GetAmountCents(), Amount: s.money(l.GetAmountCents()),
	}
	switch l.GetKind() {
	case codebankv1.LineKind_LINE_KIND_REVERSAL:
		out.Kind, out.Description = "reversal", "Reversal of "+l.GetTransactionId()
	case codebankv1.LineKind_LINE_KIND_REFUND:
		out.Kind, out.Description = "refund", "Refund of "+l.GetTransactionId()
	case codebankv1.LineKind_LINE_KIND_BILL_PAYMENT:
		out.Kind, out.Store, out.Description = "bill_payment", "Code Bank", "Bill payment, thank you"
	default:
		return out
	}
	out.Key, out.Credit, out.Amount = out.Kind+"/"+l.GetOperationId(), true, "−"+s.money(l.GetAmountCents())
	return out
}

// bill formats a month's bill.
func (s *Server) bill(b *codebankv1.Bill) statementBill {
	out := statementBill{Opening: s.money(b.GetOpeningBalanceCents()), Purchases: s.money(b.GetPurchasesCents()),
		Reversals: s.money(b.GetReversalsCents()), Refunds: s.money(b.GetRefundsCents()), Payments: s.money(b.GetPaymentsCents()),
		ClosingCents: b.GetClosingBalanceCents(), Closing: s.money(b.GetClosingBalanceCents()), ClosingLabel: "Closing balance",
		Minimum: s.money(b.GetMinimumPaymentCents()), StatusCode: strings.TrimPrefix(b.GetStatus().String(), "BILL_STATUS_")}
	if due, err := time.Parse("2006-01-02", b.GetDueDate()); err == nil {
		out.Due = due.Format("02 Jan 2006")
	}
	if b.GetClosingBalanceCents() < 0 {
		out.ClosingLabel, out.Closing = "Credit balance", s.money(-b.GetClosingBalanceCents())
	}
	switch b.GetStatus() {
	case codebankv1.BillStatus_BILL_STATUS_NOTHING_DUE:
		out.Status = "Nothing to pay"
	case codebankv1.BillStatus_BILL_STATUS_OPEN:
		out.Status = "To pay by " + out.Due
	case codebankv1.BillStatus_BILL_STATUS_PAID:
		out.Status = "Paid by the due date"
	case codebankv1.BillStatus_BILL_STATUS_OVERDUE:
		out.Status = "Overdue since " + out.Due
	}
	return out
}

// viewToken lets the page refresh a proven card's statement, and show its other months, for
// viewFor without the card's details: the card id and an expiry, signed with the store's
// secret (which replicas share).
func (s *Server) viewToken(cardID string) string {
	body := cardID + "." + strconv.FormatInt(s.now().Add(viewFor).Unix(), 10)
	return body + "." + s.sign("statement-view", body)
}

// checkView returns the card id of a view token that the server signed and that has not
// expired.
func (s *Server) checkView(token string) (string, bool) {
	i := strings.LastIndexByte(token, '.')
	if i < 0 {
		return "", false
	}
	body, sig := token[:i], token[i+1:]
	cardID, until, ok := strings.Cut(body, ".")
	exp, err := strconv.ParseInt(until, 10, 64)
	if !ok || err != nil || !hmac.Equal([]byte(sig), []byte(s.sign("statement-view", body))) || s.now().Unix() > exp {
		return "", false
	}
	return cardID, true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

// sign returns a signature of body for one use (domain) under the store's secret.
func (s *Server) sign(domain, body string) string {
	m := hmac.New(sha256.New, s.orderKey)
	m.Write([]byte(domain))
	m.Write([]byte{0})
	m.Write([]byte(body))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}
