package web

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
)

// FuzzCheckoutForm posts arbitrary checkout forms to the store: it answers a page, never a
// server error; it calls the bank only for an order it issued, with a valid card, a quantity of
// 1 to MaxQuantity and the product's price times it; and a field it refuses has a message.
func FuzzCheckoutForm(f *testing.F) {
	id := newOrderID()
	f.Add(id, "stoneware-mug", "2", goodHolder, "5454 5406 8756 8555", "11/31", "755")
	f.Add(id, "stoneware-mug", "99999999999999999999", "", "5454540687568556", "13/31", "75")
	f.Add("order-"+id[6:22]+"-aaaaaaaaaaaaaaaa", "nope", "-1", "\x00", "", "1131", "abc")
	f.Add(id, "stoneware-mug", "1", "José", "5454540687568555", "01/2099", "000")
	f.Fuzz(func(t *testing.T, orderID, product, quantity, holder, number, expiry, cvv string) {
		fx := newFixture(t)
		form := url.Values{"order_id": {orderID}, "product": {product}, "quantity": {quantity}, "holder": {holder}, "number": {number}, "expiry": {expiry}, "cvv": {cvv}}
		resp, body := fx.post(t, "/checkout", form)
		if resp.StatusCode >= 500 {
			t.Fatalf("checkout = %d:\n%s", resp.StatusCode, body)
		}
		calls := fx.bank.calls
		if len(calls) == 0 {
			return
		}
		s := &Server{orderKey: testOrderSecret}
		p, ok := Catalog()[0], false
		for _, c := range Catalog() {
			if c.Slug == product {
				p, ok = c, true
			}
		}
		q, err := strconv.Atoi(quantity)
		req := calls[0]
		switch {
		case len(calls) != 1:
			t.Fatalf("one checkout called the bank %d times", len(calls))
		case !s.issued(orderID) || req.GetTransactionId() != orderID:
			t.Fatalf("paid for order %q (form %q), which the store did not issue", req.GetTransactionId(), orderID)
		case !ok || err != nil || q < 1 || q > MaxQuantity || req.GetAmountCents() != p.PriceCents*int64(q):
			t.Fatalf("paid %d for %q x %q", req.GetAmountCents(), quantity, product)
		case resp.StatusCode != http.StatusSeeOther:
			t.Fatalf("a paid checkout answered %d", resp.StatusCode)
		}
	})
}

// FuzzParseExpiry: an expiry the form accepts is a month 1-12 of a year within 30 years that
// has not passed; a refused one has a message.
func FuzzParseExpiry(f *testing.F) {
	for _, s := range []string{"11/31", "1131", "11/2031", " 1 / 31 ", "13/31", "00/31", "10/26", "11/26", "12/99", "/", "٣/٣١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		exp, msg := parseExpiry(s, testNow)
		if msg != "" {
			return
		}
		if exp.Month < 1 || exp.Month > 12 || exp.Year > testNow.Year()+30 || exp.Expired(testNow) {
			t.Fatalf("parseExpiry(%q) accepted %+v", s, exp)
		}
	})
}
