package web

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// MaxQuantity is the most units of a product one order may hold.
const MaxQuantity = 10

// maxHolderLen is the bank's limit on holder names (grpcgateway.MaxHolderLen).
const maxHolderLen = 64

// Messages about the whole form, not one field.
const (
	msgStoreDown = "We could not save your order, so nothing was charged. Please try again in a moment."
	msgNotReady  = "The store is starting up. Please try again in a moment."
)

// checkoutForm is the checkout form as typed, re-displayed next to its errors (without the
// CVV).
type checkoutForm struct {
	OrderID  string
	Product  string
	Quantity string
	Holder   string
	Number   string
	Expiry   string
	CVV      string
}

func parseCheckout(r *http.Request) checkoutForm {
	v := func(name string) string { return strings.TrimSpace(r.PostFormValue(name)) }
	return checkoutForm{
		OrderID: v("order_id"), Product: v("product"), Quantity: v("quantity"),
		Holder: v("holder"), Number: v("number"), Expiry: v("expiry"), CVV: v("cvv"),
	}
}

// cardInput is a validated card, held only for the duration of one request.
type cardInput struct {
	number string
	holder string
	exp    card.Expiry
	cvv    string
}

// orderIDPattern matches newOrderID's ids; they are valid bank transaction ids.
var orderIDPattern = regexp.MustCompile(`^order-[a-z2-7]{16}-[a-z2-7]{16}$`)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// newOrderID returns a new order id: "order-", 16 random characters (80 bits), "-" and 16
// characters (80 bits) of their HMAC under the store's key. The product page puts it in the
// checkout form, so that every submission of that form, a double click included, is the same
// order and the same transaction for the bank; and the checkout pays only for ids it issued.
func (s *Server) newOrderID() string {
	var b [10]byte
	rand.Read(b[:])
	id := "order-" + strings.ToLower(idEncoding.EncodeToString(b[:]))
	return id + "-" + s.orderSig(id)
}

func (s *Server) orderSig(id string) string {
	m := hmac.New(sha256.New, s.orderKey)
	m.Write([]byte(id))
	return strings.ToLower(idEncoding.EncodeToString(m.Sum(nil)[:10]))
}

// issued reports whether id is an order id this store issued (newOrderID).
func (s *Server) issued(id string) bool {
	if !orderIDPattern.MatchString(id) {
		return false
	}
	body, sig := id[:len(id)-17], id[len(id)-16:]
	return hmac.Equal([]byte(sig), []byte(s.orderSig(body)))
}

// msgNotIssued says why a checkout form with an order id the store did not issue is refused.
const msgNotIssued = "This order form has expired or was not issued by the store. Check the details and pay again."

// validateCard checks the card fields and adds a message per field at fault to errs.
func validateCard(f checkoutForm, now time.Time, errs map[string]string) cardInput {
	c := cardInput{number: card.NormalizeNumber(f.Number), holder: f.Holder, cvv: f.CVV}
	switch n := utf8.RuneCountInString(f.Holder); {
	case n == 0:
		errs["holder"] = "Enter the name on the card"
	case n > maxHolderLen:
		errs["holder"] = "The name can have at most " + strconv.Itoa(maxHolderLen) + " characters"
	case !utf8.ValidString(f.Holder) || strings.IndexFunc(f.Holder, unicode.IsControl) >= 0:
		errs["holder"] = "Use letters and spaces only"
	}
	switch err := card.ValidateNumber(c.number); {
	case c.number == "":
		errs["number"] = "Enter the card number"
	case errors.Is(err, card.ErrNumberDigits):
		errs["number"] = "Use digits only"
	case errors.Is(err, card.ErrNumberLength):
		errs["number"] = "A card number has 16 digits"
	case err != nil:
		errs["number"] = "This card number is not valid: check the digits"
	}
	var msg string
	c.exp, msg = parseExpiry(f.Expiry, now)
	if msg != "" {
		errs["expiry"] = msg
	}
	switch {
	case f.CVV == "":
		errs["cvv"] = "Enter the CVV"
	case len(f.CVV) != 3 || strings.Trim(f.CVV, "0123456789") != "":
		errs["cvv"] = "The CVV is the 3 digits on the back of the card"
	}
	return c
}

// parseExpiry reads "MM/YY" (also "MM/YYYY", "MMYY" and spaces) and returns the expiry or a
// message for the field.
func parseExpiry(s string, now time.Time) (card.Expiry, string) {
	s = strings.ReplaceAll(s, " ", "")
	if s == "" {
		return card.Expiry{}, "Enter the expiry date, as on the card (MM/YY)"
	}
	mm, yy, ok := strings.Cut(s, "/")
	if !ok && len(s) == 4 {
		mm, yy, ok = s[:2], s[2:], true
	}
	digits := func(d string) bool { return d != "" && strings.Trim(d, "0123456789") == "" }
	if !ok || !digits(mm) || !digits(yy) || len(mm) > 2 || (len(yy) != 2 && len(yy) != 4) {
		return card.Expiry{}, "Use MM/YY, for example 11/31"
	}
	m, _ := strconv.Atoi(mm)
	y, _ := strconv.Atoi(yy)
	if m < 1 || m > 12 {
		return card.Expiry{}, "The month must be from 01 to 12"
	}
	exp := card.Expiry{Month: m, Year: card.NormalizeYear(y)}
	if exp.Year > now.Year()+30 {
		return card.Expiry{}, "Check the year of the expiry date"
	}
	if exp.Expired(now) {
		return card.Expiry{}, "This card has expired"
	}
	return exp, ""
}

// validateQuantity returns the quantity, or adds a message to errs.
func validateQuantity(s string, errs map[string]string) int {
	if s == "" {
		errs["quantity"] = "Choose a quantity"
		return 0
	}
	q, err := strconv.Atoi(s)
	if errors.Is(err, strconv.ErrRange) { // a number too large for an int, either way
		q, err = 1-2*MaxQuantity, nil
		if !strings.HasPrefix(s, "-") {
			q = 2 * MaxQuantity
		}
	}
	switch {
	case err != nil:
		errs["quantity"] = "Enter a whole number"
	case q < 1:
		errs["quantity"] = "Choose at least 1"
	case q > MaxQuantity:
		errs["quantity"] = "You can buy at most " + strconv.Itoa(MaxQuantity) + " at a time"
	}
	return q
}

// checkout validates the form, places the order and pays for it.
func (s *Server) checkout(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	f := parseCheckout(r)
	p, ok := s.products[f.Product]
	if !ok {
		s.notFound(w, r)
		return
	}
	errs := map[string]string{}
	qty := validateQuantity(f.Quantity, errs)
	c := validateCard(f, s.now(), errs)
	issued := s.issued(f.OrderID)
	if !issued {
		f.OrderID = s.newOrderID() // the form shown again is one the store issued
	}
	switch {
	case len(errs) > 0:
		s.checkouts.WithLabelValues("invalid").Inc()
		s.renderProduct(w, http.StatusUnprocessableEntity, p, f, errs, "")
		return
	case !issued:
		s.checkouts.WithLabelValues("invalid").Inc()
		s.renderProduct(w, http.StatusBadRequest, p, f, nil, msgNotIssued)
		return
	}
	items := []store.Item{{Slug: p.Slug, Name: p.Name, PriceCents: p.PriceCents, Quantity: qty}}
	s.pay(w, r, f.OrderID, items, c, func(code int, errs map[string]string, general string) {
		s.renderProduct(w, code, p, f, errs, general)
	})
}

// pay records the attempt, calls the bank and records its answer, then sends the browser to
// the order page. formError re-displays the form with errors.
//
// The order is written pending before the bank is called and decided after, so a failure at
// any step leaves a pending order whose retry, with the same id, the bank charges at most
// once. The steps run to the end even if the browser goes away (a second click on "Pay"
// cancels the first request): an attempt is never left half-way.
func (s *Server) pay(w http.ResponseWriter, r *http.Request, id string, items []store.Item, c cardInput,
	formError func(code int, errs map[string]string, general string)) {
	base := context.WithoutCancel(r.Context())
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(base, s.cfg.RequestTimeout) }
	masked := card.Mask(c.number)
	log := s.log.With("order_id", id, "card", masked)

	ctx, cancel := step()
	existing, err := s.orders.Get(ctx, id)
	cancel()
	switch {
	case errors.Is(err, store.ErrNotFound):
	case errors.Is(err, store.ErrNotReady):
		formError(http.StatusServiceUnavailable, nil, msgNotReady)
		return
	case err != nil:
		log.Error("read order", "err", err)
		s.checkouts.WithLabelValues("store_error").Inc()
		formError(http.StatusServiceUnavailable, nil, msgStoreDown)
		return
	case existing.Decided():
		s.redirectToOrder(w, r, id)
		return
	case existing.CardMasked != masked:
		formError(http.StatusUnprocessableEntity, map[string]string{
			"number": "This order was started with the card ending in " + card.Last4(existing.CardMasked) + ": use the same card, or start a new order",
		}, "")
		return
	default:
		items = existing.Items // a retry pays for what was first ordered
	}

	ctx, cancel = step()
	o, err := s.orders.Place(ctx, id, store.Placement{Items: items, Currency: s.cfg.Currency, CardMasked: masked})
	cancel()
	if err != nil {
		log.Error("place order", "err", err)
		s.checkouts.WithLabelValues("store_error").Inc()
		formError(http.StatusServiceUnavailable, nil, msgStoreDown)
		return
	}
	if o.Decided() { // an earlier attempt got the answer in the meantime
		s.redirectToOrder(w, r, id)
		return
	}

	ctx, cancel = step()
	resp, err := s.payments.Authorize(ctx, &codebankv1.AuthorizeRequest{
		TransactionId: id,
		Card: &codebankv1.CardDetails{Number: c.number, HolderName: c.holder,
			ExpiryMonth: int32(c.exp.Month), ExpiryYear: int32(c.exp.Year), Cvv: c.cvv},
		AmountCents: o.TotalCents, Store: s.cfg.StoreName, Description: description(o.Items),
	})
	cancel()
	if err == nil {
		if mismatch := s.checkAnswer(base, o, masked, resp); mismatch != "" {
			err = errors.New(mismatch)
		} else if resp.GetReason() == codebankv1.RejectReason_REJECT_REASON_ACCOUNT_UNAVAILABLE {
			// Not a decision: the bank could not read the card's account, and a retry with the
			// same id is decided once it can.
			err, resp = status.Error(codes.Unavailable, "the bank could not read the card's account"), nil
		}
	}
	if err != nil {
		why, result := store.ErrorUnreachable, "unreachable"
		fieldErrs, general := bankViolations(err)
		switch {
		case fieldErrs != nil || general != "":
			why, result = store.ErrorInvalid, "invalid"
		case status.Code(err) == codes.AlreadyExists || resp != nil:
			// The bank holds another payment under this order's id, or answered for another
			// payment: the order is not marked paid, and people look at it.
			why, result = store.ErrorMismatch, "mismatch"
			log.Error("bank's answer is not about this order; not marked paid", "err", err)
		}
		s.checkouts.WithLabelValues(result).Inc()
		log.Warn("bank did not decide", "code", status.Code(err).String(), "err", err)
		ctx, cancel = step()
		if _, ferr := s.orders.Fail(ctx, id, why); ferr != nil {
			log.Error("record failed attempt", "err", ferr)
		}
		cancel()
		if why == store.ErrorInvalid {
			formError(http.StatusUnprocessableEntity, fieldErrs, general)
			return
		}
		s.redirectToOrder(w, r, id)
		return
	}
	d := decisionOf(resp)
	s.checkouts.WithLabelValues(string(d.Status)).Inc()
	ctx, cancel = step()
	_, err = s.orders.Decide(ctx, id, d)
	cancel()
	if err != nil {
		// The bank has decided, the store could not record it: show the answer now; the order
		// stays pending, and a retry gets the same answer from the bank.
		log.Error("record decision", "status", d.Status, "err", err)
		local := store.Apply(o, id, &store.Event{Kind: store.EventDecided, At: s.now().UTC(), Status: d.Status, Reason: d.Reason, TransactionID: d.TransactionID, PaymentID: d.PaymentID}, o.Offset)
		s.renderOrder(w, http.StatusOK, orderPage{Order: local})
		return
	}
	s.redirectToOrder(w, r, id)
}

// checkAnswer returns what, if anything, makes the bank's answer not an answer to this
// attempt at order o: another transaction, amount or card, or a replay of an earlier attempt
// when the store never made one.
func (s *Server) checkAnswer(ctx context.Context, o *store.Order, masked string, resp *codebankv1.AuthorizeResponse) string {
	switch {
	case resp.GetTransactionId() != o.ID:
		return "the answer is for another transaction"
	case resp.GetAmountCents() != o.TotalCents:
		return fmt.Sprintf("the answer is for %d cents, the order is for %d", resp.GetAmountCents(), o.TotalCents)
	case resp.GetMaskedNumber() != masked:
		return "the answer is for another card"
	case resp.GetDuplicate():
		// A replay is the answer to an earlier attempt at this order: there must have been one.
		// (With a double click, the other click's placement is in before its request was
		// decided, so the order read now counts it.)
		ctx, cancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
		defer cancel()
		if now, err := s.orders.Get(ctx, o.ID); err == nil && now.Attempts < 2 {
			return "the bank replayed an earlier payment for an order the store paid only once"
		}
	}
	return ""
}

func (s *Server) redirectToOrder(w http.ResponseWriter, r *http.Request, id string) {
	http.Redirect(w, r, "/orders/"+id, http.StatusSeeOther)
}

// decisionOf turns the bank's answer into the order's decision.
func decisionOf(resp *codebankv1.AuthorizeResponse) store.Decision {
	d := store.Decision{Status: store.StatusApproved, TransactionID: resp.GetTransactionId(), PaymentID: resp.GetPaymentId()}
	if resp.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		d.Status, d.Reason = store.StatusRejected, codecs.ReasonName(resp.GetReason())
	}
	return d
}

// formFields maps the bank's field names (google.rpc.BadRequest) to the form's, with the
// label that starts a message.
var formFields = map[string]struct{ field, label string }{
	"card":              {"number", "Card"},
	"card.number":       {"number", "Card number"},
	"card.holder_name":  {"holder", "Name on card"},
	"card.expiry_month": {"expiry", "Expiry month"},
	"card.expiry_year":  {"expiry", "Expiry year"},
	"card.cvv":          {"cvv", "CVV"},
	"amount_cents":      {"quantity", "Amount"},
	"number":            {"number", "Card number"},
	"month":             {"month", "Month"},
}

// bankViolations reads an INVALID_ARGUMENT status: a message per form field named in its
// google.rpc.BadRequest details, and one about the rest. Both are empty for other errors.
func bankViolations(err error) (map[string]string, string) {
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		return nil, ""
	}
	errs := map[string]string{}
	var rest []string
	for _, d := range st.Details() {
		br, ok := d.(*errdetails.BadRequest)
		if !ok {
			continue
		}
		for _, v := range br.GetFieldViolations() {
			f, ok := formFields[v.GetField()]
			if !ok {
				rest = append(rest, v.GetField()+" "+v.GetDescription())
				continue
			}
			if _, dup := errs[f.field]; !dup {
				errs[f.field] = sentence(f.label, v.GetDescription())
			}
		}
	}
	general := ""
	if len(rest) > 0 {
		general = "The bank could not accept this payment: " + strings.Join(rest, "; ")
	}
	if len(errs) == 0 && general == "" {
		general = "The bank could not accept this payment: " + st.Message()
	}
	if len(errs) == 0 {
		errs = nil
	}
	return errs, general
}

// sentence makes a message of the bank's description of a field: "must be 3 digits" becomes
// "CVV must be 3 digits", "card number fails the Luhn check" becomes "Card number fails the
// Luhn check".
func sentence(label, desc string) string {
	if desc == "" {
		return label + " is not valid"
	}
	first := strings.Fields(desc)[0]
	switch first {
	case "must", "is", "may", "should", "cannot":
		return label + " " + desc
	}
	r, n := utf8.DecodeRuneInString(desc)
	return string(unicode.ToUpper(r)) + desc[n:]
}
