package web

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// orderPage is the data of the order page.
type orderPage struct {
	Order *store.Order
	// Now is when the page is shown: it says whether a cancellation would be a reversal.
	Now time.Time
	// Retry form of a pending order: what was typed, and the errors.
	Form    checkoutForm
	Errors  map[string]string
	General string
}

// Status is the order's state as a word for the page and its tests.
func (p orderPage) Status() string {
	switch {
	case p.Order.Cancelled():
		return "Cancelled"
	case p.Order.Status == store.StatusApproved:
		return "Approved"
	case p.Order.Status == store.StatusRejected:
		return "Rejected"
	case p.Order.LastError != "":
		return "Not paid yet"
	default:
		return "Waiting for the bank"
	}
}

// Message says what happened, in a customer's words.
func (p orderPage) Message() string {
	o := p.Order
	switch {
	case o.Cancelled() && o.Cancellation.Kind == store.CancelReversal:
		return "The order is cancelled: the bank reversed the payment, and the credit is back on your card."
	case o.Cancelled():
		return "The order is cancelled: the bank refunded the payment to your card."
	case o.Cancellation != nil && o.Cancellation.LastError != "":
		return "We could not cancel the order just now: try again. The bank gives the money back once, however many times you try."
	case o.Status == store.StatusApproved:
		return "The bank approved the payment. Thank you for your order!"
	case o.Status == store.StatusRejected:
		return codecs.ReasonOf(o.Reason).Customer
	case o.LastError == store.ErrorUnreachable:
		return "We could not reach the bank, try again. You will not be charged twice."
	case o.LastError == store.ErrorInvalid:
		return "The bank could not accept the card details. Check them and try again."
	case o.LastError == store.ErrorMismatch:
		return "The bank's answer did not match this order, so it is not marked as paid. Please contact us before paying again."
	default:
		return "The bank has not answered yet. If this does not change, pay again below: you will not be charged twice."
	}
}

// Last4 is the card's last four digits.
func (p orderPage) Last4() string { return card.Last4(p.Order.CardMasked) }

// Retry reports whether the page offers to pay again: not after an answer that did not match
// the order, which another attempt would only repeat.
func (p orderPage) Retry() bool {
	return !p.Order.Decided() && p.Order.LastError != store.ErrorMismatch
}

// CancelAs says how the order would be cancelled now ("reversal" or "refund"), empty when it
// cannot be.
func (p orderPage) CancelAs() string {
	o := p.Order
	switch {
	case !o.Cancellable():
		return ""
	case o.Cancellation != nil:
		return o.Cancellation.Kind
	}
	return store.CancelKindAt(o.DecidedAt, p.Now)
}

// Waiting reports whether an attempt may be in flight: the page then refreshes itself.
func (p orderPage) Waiting() bool { return !p.Order.Decided() && p.Order.LastError == "" }

func (s *Server) order(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !orderIDPattern.MatchString(id) {
		s.notFound(w, r)
		return
	}
	o, err := s.orders.Get(r.Context(), id)
	// Right after a checkout on another replica this replica's view may not have the order
	// yet: wait a moment before saying there is none.
	for deadline := time.Now().Add(s.orderWait); errors.Is(err, store.ErrNotFound) && time.Now().Before(deadline); {
		select {
		case <-r.Context().Done():
			return
		case <-time.After(50 * time.Millisecond):
		}
		o, err = s.orders.Get(r.Context(), id)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
	case err != nil:
		s.unavailable(w, err, "read order", id)
	default:
		s.renderOrder(w, http.StatusOK, orderPage{Order: o})
	}
}

// readOrder reads order id. When it cannot, it answers the request (404 for no such order, 503
// when the orders cannot be read) and returns nil.
func (s *Server) readOrder(ctx context.Context, w http.ResponseWriter, r *http.Request, id string) *store.Order {
	o, err := s.orders.Get(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		s.notFound(w, r)
		return nil
	case err != nil:
		s.unavailable(w, err, "read order", id)
		return nil
	}
	return o
}

// retry pays for a pending order again, with the card typed again: the store never kept the
// number nor the CVV. The order id, hence the bank's transaction id, is the same.
func (s *Server) retry(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !orderIDPattern.MatchString(id) {
		s.notFound(w, r)
		return
	}
	if !parseForm(w, r) {
		return
	}
	o := s.readOrder(r.Context(), w, r, id)
	switch {
	case o == nil:
		return
	case o.Decided():
		s.redirectToOrder(w, r, id)
		return
	}
	f := parseCheckout(r)
	f.OrderID = id
	errs := map[string]string{}
	c := validateCard(f, s.now(), errs)
	if len(errs) > 0 {
		s.checkouts.WithLabelValues("invalid").Inc()
		s.renderOrder(w, http.StatusUnprocessableEntity, orderPage{Order: o, Form: f, Errors: errs})
		return
	}
	s.pay(w, r, id, o.Items, c, func(code int, errs map[string]string, general string) {
		if msg, ok := errs["quantity"]; ok { // no such field here
			delete(errs, "quantity")
			general = msg
		}
		s.renderOrder(w, code, orderPage{Order: o, Form: f, Errors: errs, General: general})
	})
}

// cancel cancels an approved order: the bank reverses its payment within a day of the
// approval, refunds it after, in full, under the order id. The attempt is recorded before the
// bank is called (store.Orders.Cancelling, which fixes its kind), and the answer after; a
// retry, with the same id, never gives back twice.
func (s *Server) cancel(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !orderIDPattern.MatchString(id) {
		s.notFound(w, r)
		return
	}
	base := context.WithoutCancel(r.Context())
	step := func() (context.Context, context.CancelFunc) { return context.WithTimeout(base, s.cfg.RequestTimeout) }
	ctx, cancel := step()
	o := s.readOrder(ctx, w, r, id)
	cancel()
	switch {
	case o == nil:
		return
	case !o.Cancellable():
		s.redirectToOrder(w, r, id)
		return
	}
	kind := store.CancelKindAt(o.DecidedAt, s.now())
	ctx, cancel = step()
	o, err := s.orders.Cancelling(ctx, id, kind, id)
	cancel()
	if err != nil {
		s.unavailable(w, err, "record cancellation", id)
		return
	}
	if o.Cancelled() {
		s.redirectToOrder(w, r, id)
		return
	}
	c := o.Cancellation // the first attempt's kind
	log := s.log.With("order_id", id, "kind", c.Kind)
	ctx, cancel = step()
	if c.Kind == store.CancelReversal {
		_, err = s.payments.Reverse(ctx, &codebankv1.ReverseRequest{PaymentId: o.PaymentID, ReversalId: c.ID, AmountCents: c.AmountCents})
	} else {
		_, err = s.payments.Refund(ctx, &codebankv1.RefundRequest{PaymentId: o.PaymentID, RefundId: c.ID, AmountCents: c.AmountCents})
	}
	cancel()
	s.cancellations.WithLabelValues(c.Kind, cancelResult(err)).Inc()
	ctx, cancel = step()
	defer cancel()
	if err != nil {
		why := store.ErrorUnreachable
		if code := status.Code(err); code != codes.Unavailable && code != codes.DeadlineExceeded && code != codes.ResourceExhausted && code != codes.Canceled {
			why = store.ErrorInvalid
		}
		log.Warn("bank did not give the payment back", "code", status.Code(err).String(), "err", err)
		if _, ferr := s.orders.CancelFailed(ctx, id, why); ferr != nil {
			log.Error("record failed cancellation", "err", ferr)
		}
	} else if _, err := s.orders.Cancelled(ctx, id); err != nil {
		// The bank gave the money back; a retry is answered as a duplicate and records it.
		log.Error("record cancellation", "err", err)
	}
	s.redirectToOrder(w, r, id)
}

// cancelResult is a cancellation's result in codebank_web_cancellations_total.
func cancelResult(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ToLower(status.Code(err).String())
}

func (s *Server) renderOrder(w http.ResponseWriter, code int, p orderPage) {
	p.Form.CVV = ""
	p.Now = s.now()
	s.render(w, code, "order.html", page{Title: "Order " + p.Order.ID, Nav: "store", Data: p})
}

// unavailable answers 503 when the order store cannot be read.
func (s *Server) unavailable(w http.ResponseWriter, err error, what, id string) {
	if !errors.Is(err, store.ErrNotReady) {
		s.log.Error(what, "order_id", id, "err", err)
	}
	s.render(w, http.StatusServiceUnavailable, "unavailable.html", page{Title: "Try again in a moment", Nav: "store"})
}
