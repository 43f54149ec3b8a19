package web

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/codebank/codebank/web/store"
)

// TestLimiter: a client's bucket holds half a minute's posts, refills at its rate, and a post
// beyond it is told how long to wait; clients count apart, an IPv6 client by its /64.
func TestLimiter(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter("attempts", 10, func() time.Time { return now })
	a, b := netip.MustParsePrefix("192.0.2.1/32"), netip.MustParsePrefix("192.0.2.2/32")
	for i := range 5 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("post %d of a burst of 5 refused", i+1)
		}
	}
	ok, wait := l.allow(a)
	if ok || wait != 6*time.Second {
		t.Fatalf("the 6th post at once = %v, wait %v; want refused, wait 6s (10 a minute)", ok, wait)
	}
	if ok, _ := l.allow(b); !ok {
		t.Error("another client was refused")
	}
	now = now.Add(6 * time.Second)
	if ok, _ := l.allow(a); !ok {
		t.Error("refused 6 s later, when a post's worth has come back")
	}
	if ok, _ := l.allow(a); ok {
		t.Error("two posts allowed 6 s after the bucket emptied")
	}
	now = now.Add(time.Hour)
	for i := range 5 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("after an hour, post %d of a burst refused: the bucket holds 5 at most and refills", i+1)
		}
	}
	if ok, _ := l.allow(a); ok {
		t.Error("an hour of rest gave more than a burst of 5")
	}
}

// TestLimiterClockStepsBack: a clock that steps back (an NTP correction; a test's clock set
// back) neither drains a bucket nor fills it.
func TestLimiterClockStepsBack(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter("attempts", 10, func() time.Time { return now })
	a := netip.MustParsePrefix("192.0.2.1/32")
	if ok, _ := l.allow(a); !ok {
		t.Fatal("first post refused")
	}
	now = now.Add(-time.Hour)
	for i := range 4 {
		if ok, _ := l.allow(a); !ok {
			t.Fatalf("after the clock stepped back an hour, post %d of the 4 left in the bucket refused", i+2)
		}
	}
	if ok, _ := l.allow(a); ok {
		t.Error("the clock stepping back filled the bucket")
	}
}

// TestLimiterMemoryIsBounded: addresses beyond maxClients make the limiter forget others, first
// those whose buckets are full again, then the fullest: the client that spent its posts is
// remembered whatever the order of the limiter's map (forgetting any one failed 11 of 100 runs).
func TestLimiterMemoryIsBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	l := newLimiter("attempts", 10, func() time.Time { return now })
	busy := netip.MustParsePrefix("198.51.100.7/32")
	for range 5 {
		l.allow(busy)
	}
	for i := range maxClients + 500 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		l.allow(netip.PrefixFrom(addr, 32))
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d clients remembered, want at most %d", n, maxClients)
	}
	if ok, _ := l.allow(busy); ok {
		t.Error("the client whose bucket was empty was forgotten before those whose buckets were full")
	}
}

func TestClientOf(t *testing.T) {
	for _, tc := range []struct{ remote, header, value, want string }{
		{"192.0.2.1:4321", "", "", "192.0.2.1/32"},
		{"[2001:db8:1:2:3::4]:4321", "", "", "2001:db8:1:2::/64"},
		{"[::ffff:192.0.2.9]:1", "", "", "192.0.2.9/32"},
		{"10.0.0.5:80", "X-Envoy-External-Address", "203.0.113.8", "203.0.113.8/32"},
		{"10.0.0.5:80", "X-Envoy-External-Address", "", "10.0.0.5/32"}, // no header: the peer
		{"10.0.0.5:80", "", "203.0.113.8", "10.0.0.5/32"},              // a header not configured counts for nothing
	} {
		r := httptest.NewRequest(http.MethodPost, "/checkout", nil)
		r.RemoteAddr = tc.remote
		if tc.value != "" {
			r.Header.Set("X-Envoy-External-Address", tc.value)
		}
		if got := clientOf(r, tc.header); got.String() != tc.want {
			t.Errorf("clientOf(%s, header %q = %q) = %s, want %s", tc.remote, tc.header, tc.value, got, tc.want)
		}
	}
}

// TestPostsLimitedPerAddress: with the default limits, an address that posts card data more
// than the limit allows is refused with 429 and Retry-After before its post reaches the bank,
// and counted; another address is not; the statement page's refreshes have their own, larger
// limit.
func TestPostsLimitedPerAddress(t *testing.T) {
	bank := &fakeBank{statement: statementResponse}
	reg := prometheus.NewRegistry()
	now := testNow
	srv := New(Config{OrderSecret: testOrderSecret}, Deps{Payments: bank, Cards: bank, Statements: bank, Orders: store.NewMemory(func() time.Time { return now }),
		Now: func() time.Time { return now }, Log: quietLog(), Registerer: reg})
	h := srv.Handler()
	post := func(from, path string, form url.Values) *http.Response {
		req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.RemoteAddr = from
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}
	guess := proof("2026-11")
	guess.Set("cvv", "000")
	burst := DefaultAttemptsPerMinute / 2
	for i := range burst {
		if resp := post("203.0.113.9:1000", "/statement", guess); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("guess %d of %d refused", i+1, burst)
		}
	}
	before := bank.verifications
	resp := post("203.0.113.9:1001", "/statement", guess)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != strconv.Itoa(60/DefaultAttemptsPerMinute) {
		t.Fatalf("a guess beyond the limit = %d, Retry-After %q; want 429, %d", resp.StatusCode, resp.Header.Get("Retry-After"), 60/DefaultAttemptsPerMinute)
	}
	if bank.verifications != before {
		t.Error("the refused guess reached the bank")
	}
	for _, path := range []string{"/checkout", "/orders/" + newOrderID() + "/pay", "/orders/" + newOrderID() + "/cancel"} {
		if resp := post("203.0.113.9:1002", path, checkoutForm0(newOrderID())); resp.StatusCode != http.StatusTooManyRequests {
			t.Errorf("POST %s from the same address = %d, want 429: card data posts share one limit", path, resp.StatusCode)
		}
	}
	if resp := post("198.51.100.4:1000", "/statement", guess); resp.StatusCode == http.StatusTooManyRequests {
		t.Error("another address was refused")
	}
	// Refreshes of a statement the address proved count apart, with more room.
	for i := range DefaultReadsPerMinute / 2 {
		if resp := post("203.0.113.9:1003", "/statement/data", proof("2026-11")); resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("refresh %d refused", i+1)
		}
	}
	if got := testutil.ToFloat64(srv.m.throttled.WithLabelValues("attempts")); got != 4 {
		t.Errorf("codebank_web_throttled_total{route=attempts} = %v, want 4", got)
	}
	now = now.Add(time.Minute)
	if resp := post("203.0.113.9:1004", "/statement", guess); resp.StatusCode == http.StatusTooManyRequests {
		t.Errorf("a guess a minute later was refused: %d", resp.StatusCode)
	}
}
