package web

import (
	"cmp"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Limits of the anonymous pages' posts, per client address. A visitor needs a checkout, a
// retry or two and a statement to look at; a guesser trying card numbers, expiries and CVVs
// needs thousands. Defaults of Config.
const (
	// DefaultAttemptsPerMinute bounds the posts that carry card data or spend it: the checkout,
	// an order's payment and cancellation, and the statement page's verification of a card.
	DefaultAttemptsPerMinute = 10
	// DefaultReadsPerMinute bounds the statement page's refreshes of a card it already proved.
	DefaultReadsPerMinute = 120
)

// maxClients bounds the addresses a limiter remembers: beyond it, the addresses whose bucket is
// full again (none of their posts counts any more) are forgotten first, then any.
const maxClients = 10_000

// limiter is a token bucket per client address: each holds up to burst posts and refills at
// perMinute a minute. Its memory is bounded (maxClients).
type limiter struct {
	route     string
	perMinute float64
	burst     float64
	now       func() time.Time

	mu      sync.Mutex
	clients map[netip.Prefix]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(route string, perMinute int, now func() time.Time) *limiter {
	return &limiter{route: route, perMinute: float64(perMinute), burst: math.Max(1, float64(perMinute)/2), now: now, clients: map[netip.Prefix]*bucket{}}
}

// allow takes a token from the client's bucket; when there is none it reports how long until
// there is one.
func (l *limiter) allow(client netip.Prefix) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.clients[client]
	if b == nil {
		l.makeRoom(now)
		b = &bucket{tokens: l.burst, at: now}
		l.clients[client] = b
	}
	b.tokens = math.Min(l.burst, b.tokens+max(now.Sub(b.at), 0).Minutes()*l.perMinute) // a clock stepping back gives nothing, takes nothing
	b.at = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.perMinute * float64(time.Minute))
	return false, wait
}

// makeRoom makes room when maxClients are remembered: it forgets the clients whose bucket has
// refilled (none of their posts counts any more) and, if that leaves more than nine tenths of
// maxClients, the fullest of the others down to nine tenths, so that a client that spent its
// posts is the last to be forgotten and the next tenth of new clients costs no scan.
func (l *limiter) makeRoom(now time.Time) {
	if len(l.clients) < maxClients {
		return
	}
	type remembered struct {
		client netip.Prefix
		level  float64
	}
	others := make([]remembered, 0, len(l.clients))
	for k, b := range l.clients {
		level := b.tokens + max(now.Sub(b.at), 0).Minutes()*l.perMinute
		if level >= l.burst {
			delete(l.clients, k)
			continue
		}
		others = append(others, remembered{k, level})
	}
	excess := len(l.clients) - maxClients*9/10
	if excess <= 0 {
		return
	}
	slices.SortFunc(others, func(a, b remembered) int { return cmp.Compare(b.level, a.level) })
	for _, r := range others[:excess] {
		delete(l.clients, r.client)
	}
}

// clientOf returns the address a request is counted under: the header named by header when set
// (a proxy in front of the pages that sets it, and drops any a client sent, such as Istio's
// gateway with X-Envoy-External-Address), else the connection's peer. IPv6 addresses count by
// their /64, which one client holds whole.
func clientOf(r *http.Request, header string) netip.Prefix {
	raw := r.RemoteAddr
	if header != "" {
		if v := r.Header.Get(header); v != "" {
			raw = v
		}
	}
	if host, _, err := net.SplitHostPort(raw); err == nil {
		raw = host
	}
	addr, err := netip.ParseAddr(raw)
	if err != nil {
		return netip.Prefix{} // one bucket for every unparsable address
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p
	}
	return netip.PrefixFrom(addr, 32)
}

// throttle refuses a request beyond its client's limit with 429 and Retry-After, counting it
// in codebank_web_throttled_total{route}; others go on to h.
func (s *Server) throttle(l *limiter, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ok, wait := l.allow(clientOf(r, s.cfg.ClientAddressHeader))
		if ok {
			h.ServeHTTP(w, r)
			return
		}
		s.m.throttled.WithLabelValues(l.route).Inc()
		secs := int(math.Ceil(wait.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		http.Error(w, fmt.Sprintf("Too many attempts from your address: try again in %d seconds.", secs), http.StatusTooManyRequests)
	})
}

func newThrottledCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: "codebank_web_throttled_total",
		Help: "Posts of the anonymous pages refused with 429 because their client address was over its limit, by route."}, []string{"route"})
}
