// Package web serves the Code Store and the bank's pages to people: a catalog of products, a
// checkout that pays with a Code Bank card, order pages, a card's statement that refreshes by
// itself, and a dashboard of the bank's live figures.
//
// The store is a separate client of the bank: it calls PaymentService.Authorize over gRPC like
// any checkout and waits for the answer, with the order id as the transaction id, so a double
// click on "Pay" or a retry after "could not reach the bank" is charged once. Orders are kept
// on Kafka by package web/store. Pages are html/template files and static assets
// embedded with go:embed: no build step, a small CSS file and a few small scripts.
//
// Its main types are Server (New, Handler, Register) and Feed, which aggregates the results
// topic for the dashboard.
//
// Routes (Register; none collides with the bank's /v1/, /healthz, /readyz, /metrics):
//
//	GET  /                  the catalog
//	GET  /products/{slug}   a product and its checkout form
//	POST /checkout          place the order and pay
//	GET  /orders/{id}       an order and the bank's answer
//	POST /orders/{id}/pay   pay a pending order again (same order id)
//	POST /orders/{id}/cancel  cancel an approved order: the bank reverses or refunds it
//	GET  /statement         the statement form
//	POST /statement         a card's statement for a month (the number is kept out of URLs)
//	POST /statement/data    the same as JSON, polled by the page every few seconds
//	GET  /dashboard         the bank's live figures
//	GET  /dashboard/data    the same as JSON
//	GET  /static/...        CSS, scripts and images
//
// Metrics (registered by New when Deps.Registerer is set):
//
//	codebank_web_checkouts_total{result}  payments attempted by the store, by result: approved,
//	                                      rejected, invalid, unreachable, mismatch, store_error
//	codebank_web_cancellations_total{kind,result}  orders cancelled by the store: reversal or
//	                                      refund, ok or the bank's status code
package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/money"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config configures the pages.
type Config struct {
	// StoreName is the merchant name sent to the bank and shown in the header (default
	// "Code Store").
	StoreName string
	// Currency is the ISO 4217 code of the catalog's prices (default "BRL").
	Currency string
	// CurrencySymbol is written before amounts (default "R$").
	CurrencySymbol string
	// DemoCards are shown on a help panel so a visitor can try the store at once. None: no
	// panel.
	DemoCards []DemoCard
	// DemoCardsFile, when set, is a JSON array of DemoCard that `make run` writes once it has
	// issued the demo cards; the panel shows it whenever it exists.
	DemoCardsFile string
	// RequestTimeout bounds one call to the bank and one order write (default 10s; the bank
	// answers within its own request timeout, 5s by default).
	RequestTimeout time.Duration
	// StatementRefresh is how often an open statement asks for new purchases (default 2s).
	StatementRefresh time.Duration
	// Catalog is the products on sale (default: Catalog()).
	Catalog []Product
	// OrderSecret signs the order ids the store puts in its checkout forms, so that a checkout
	// pays only for an order the store issued (16 random bytes or more). Replicas behind one
	// address share it; when empty, each Server picks a random one, and a form issued before a
	// restart or by another replica is refused and shown again with a new id.
	OrderSecret []byte
	// AttemptsPerMinute and ReadsPerMinute limit, per client address, the posts that carry or
	// spend card data (checkout, an order's payment and cancellation, the statement page's
	// verification) and the statement page's refreshes (defaults DefaultAttemptsPerMinute,
	// DefaultReadsPerMinute). Beyond them a post is refused with 429 and Retry-After.
	AttemptsPerMinute, ReadsPerMinute int
	// ClientAddressHeader, when set, names the header that carries the client's address, set
	// by a proxy in front of the pages that drops any a client sent (Istio's gateway:
	// X-Envoy-External-Address); else the connection's peer address is the client's.
	ClientAddressHeader string
}

// DemoCard is a card a visitor may use in the store.
type DemoCard struct {
	Number string
	Holder string
	// Expiry is "MM/YY".
	Expiry string
	CVV    string
}

func (c Config) withDefaults() Config {
	if c.StoreName == "" {
		c.StoreName = "Code Store"
	}
	if c.Currency == "" {
		c.Currency = "BRL"
	}
	if c.CurrencySymbol == "" {
		c.CurrencySymbol = "R$"
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.StatementRefresh <= 0 {
		c.StatementRefresh = 2 * time.Second
	}
	if c.Catalog == nil {
		c.Catalog = Catalog()
	}
	if c.AttemptsPerMinute <= 0 {
		c.AttemptsPerMinute = DefaultAttemptsPerMinute
	}
	if c.ReadsPerMinute <= 0 {
		c.ReadsPerMinute = DefaultReadsPerMinute
	}
	return c
}

// OrderStore keeps orders (store.Store on Kafka; store.Memory in tests).
type OrderStore interface {
	// Get returns an order, or an error wrapping store.ErrNotFound.
	Get(ctx context.Context, id string) (*store.Order, error)
	// Place records an attempt to pay (creating a pending order the first time) and returns
	// the order, which an earlier attempt may have decided already.
	Place(ctx context.Context, id string, p store.Placement) (*store.Order, error)
	// Decide records the bank's answer.
	Decide(ctx context.Context, id string, d store.Decision) (*store.Order, error)
	// Fail records that an attempt got no answer (store.ErrorUnreachable, ErrorInvalid).
	Fail(ctx context.Context, id, why string) (*store.Order, error)
	// Cancelling records an attempt to cancel an approved order, Cancelled the bank's giving
	// its payment back, CancelFailed an attempt that got no answer.
	Cancelling(ctx context.Context, id, kind, cancelID string) (*store.Order, error)
	Cancelled(ctx context.Context, id string) (*store.Order, error)
	CancelFailed(ctx context.Context, id, why string) (*store.Order, error)
}

// Dashboard gives the dashboard its figures (Feed).
type Dashboard interface {
	Snapshot() DashboardData
}

// Deps are the Server's collaborators.
type Deps struct {
	// Payments, Cards and Statements are gRPC clients of the bank: Payments calls with the
	// store's merchant key, Cards (VerifyCard) and Statements with the pages' key.
	Payments   codebankv1.PaymentServiceClient
	Cards      codebankv1.CardServiceClient
	Statements codebankv1.StatementServiceClient
	// Orders keeps the orders.
	Orders OrderStore
	// Dashboard feeds /dashboard; nil shows an empty dashboard.
	Dashboard Dashboard
	// Log receives one line per failed call to the bank or the order store (default
	// slog.Default()). Card numbers are logged masked, CVVs never.
	Log *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registerer receives the metrics listed in the package doc; nil: none.
	Registerer prometheus.Registerer
}

// Server serves the pages. Build it with New.
type Server struct {
	cfg       Config
	payments  codebankv1.PaymentServiceClient
	cards     codebankv1.CardServiceClient
	stmts     codebankv1.StatementServiceClient
	orders    OrderStore
	dashboard Dashboard
	log       *slog.Logger
	now       func() time.Time
	pages     map[string]*template.Template
	static    http.Handler
	version   string // of the static files, for cache busting
	products  map[string]Product
	checkouts *prometheus.CounterVec
	// cancellations counts the store's reversals and refunds of orders.
	cancellations *prometheus.CounterVec
	// attempts and reads limit the anonymous posts per client address (Config).
	attempts, reads *limiter
	m               struct{ throttled *prometheus.CounterVec }
	// orderWait is how long an order page waits for an order it does not know yet.
	orderWait time.Duration
	// orderKey signs order ids (Config.OrderSecret).
	orderKey []byte
	// demo caches DemoCardsFile by its modification time.
	demo struct {
		sync.Mutex
		mod   time.Time
		cards []DemoCard
	}
}

func (s *Server) demoCards() []DemoCard {
	if s.cfg.DemoCardsFile == "" {
		return s.cfg.DemoCards
	}
	s.demo.Lock()
	defer s.demo.Unlock()
	st, err := os.Stat(s.cfg.DemoCardsFile)
	if err != nil || st.ModTime().Equal(s.demo.mod) {
		return s.demo.cards
	}
	b, err := os.ReadFile(s.cfg.DemoCardsFile)
	var cards []DemoCard
	if err == nil && json.Unmarshal(b, &cards) == nil {
		s.demo.mod, s.demo.cards = st.ModTime(), cards
	}
	return s.demo.cards
}

// New returns a Server. It panics if the embedded templates do not parse, which a test of
// this package would have caught.
func New(cfg Config, deps Deps) *Server {
	s := &Server{
		cfg: cfg.withDefaults(), payments: deps.Payments, cards: deps.Cards, stmts: deps.Statements, orders: deps.Orders,
		dashboard: deps.Dashboard, log: deps.Log, now: deps.Now, orderWait: 2 * time.Second,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.orderKey = s.cfg.OrderSecret
	if len(s.orderKey) == 0 {
		s.orderKey = make([]byte, 32)
		rand.Read(s.orderKey)
	}
	s.products = make(map[string]Product, len(s.cfg.Catalog))
	for _, p := range s.cfg.Catalog {
		s.products[p.Slug] = p
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		panic(err)
	}
	s.version = contentVersion(static)
	s.static = http.StripPrefix("/static/", http.FileServerFS(static))
	s.pages = s.parsePages()
	s.checkouts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "codebank_web_checkouts_total", Help: "Payments attempted by the store, by result.",
	}, []string{"result"})
	s.cancellations = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "codebank_web_cancellations_total", Help: "Orders the store cancelled (the bank reversed or refunded their payment), by kind and result.",
	}, []string{"kind", "result"})
	s.attempts = newLimiter("attempts", s.cfg.AttemptsPerMinute, s.now)
	s.reads = newLimiter("reads", s.cfg.ReadsPerMinute, s.now)
	s.m.throttled = newThrottledCounter()
	if deps.Registerer != nil {
		deps.Registerer.MustRegister(s.checkouts, s.cancellations, s.m.throttled)
	}
	return s
}

// Register adds the store's routes to mux, which may already serve the bank's REST gateway
// at "/" (codebank all): every pattern here is more specific than "/". Every POST refuses a
// request sent from another site (http.CrossOriginProtection): a page elsewhere cannot make a
// visitor's browser pay, or prove a card. Every POST counts against its client address's limit
// (Config.AttemptsPerMinute, ReadsPerMinute), and one beyond it is refused with 429.
func (s *Server) Register(mux *http.ServeMux) {
	cop := http.NewCrossOriginProtection()
	post := func(l *limiter, h http.HandlerFunc) http.Handler { return cop.Handler(s.throttle(l, limitForm(h))) }
	mux.HandleFunc("GET /{$}", s.catalog)
	mux.HandleFunc("GET /products/{slug}", s.product)
	mux.Handle("POST /checkout", post(s.attempts, s.checkout))
	mux.HandleFunc("GET /orders/{id}", s.order)
	mux.Handle("POST /orders/{id}/pay", post(s.attempts, s.retry))
	mux.Handle("POST /orders/{id}/cancel", post(s.attempts, s.cancel))
	mux.HandleFunc("GET /statement", s.statementForm)
	mux.Handle("POST /statement", post(s.attempts, s.statement))
	mux.Handle("POST /statement/data", post(s.reads, s.statementData))
	mux.HandleFunc("GET /dashboard", s.dashboardPage)
	mux.HandleFunc("GET /dashboard/data", s.dashboardData)
	mux.Handle("GET /static/", s.staticFiles())
}

// Handler returns the store's routes alone, with a friendly 404 for other paths (codebank
// web).
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	s.Register(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { s.notFound(w, r) })
	return mux
}

// MaxFormBytes bounds the body of the pages' forms, which hold a few short fields.
const MaxFormBytes = 16 << 10

// limitForm refuses a form body over MaxFormBytes with 413 before its handler parses it.
func limitForm(h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > MaxFormBytes {
			http.Error(w, fmt.Sprintf("form of %d bytes is over the limit of %d bytes", r.ContentLength, MaxFormBytes), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
		h(w, r)
	})
}

// parseForm parses a POST form; on failure it answers 413 (over MaxFormBytes) or 400 with the
// reason, and returns false.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		http.Error(w, fmt.Sprintf("form over the limit of %d bytes", MaxFormBytes), http.StatusRequestEntityTooLarge)
		return false
	}
	http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
	return false
}

func (s *Server) staticFiles() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("v") == s.version {
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=300")
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		s.static.ServeHTTP(w, r)
	})
}

// contentVersion hashes the static files, so their URLs change when they do.
func contentVersion(fsys fs.FS) string {
	h := sha256.New()
	fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := fs.ReadFile(fsys, path)
			h.Write([]byte(path))
			h.Write(b)
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// page is what every template gets.
type page struct {
	Title     string
	Nav       string // the current section: store, statement, dashboard
	StoreName string
	DemoCards []DemoCard
	Data      any
}

func (s *Server) parsePages() map[string]*template.Template {
	funcs := template.FuncMap{
		"money":  s.money,
		"static": func(name string) string { return "/static/" + name + "?v=" + s.version },
		"spaced": spaced,
		"reason": func(code string) string { return codecs.ReasonOf(code).Customer },
		"date":   func(t time.Time) string { return t.UTC().Format("2 Jan 2006, 15:04 UTC") },
		"field":  field,
		"focus":  focus,
		"mul":    func(cents int64, n int) int64 { return cents * int64(n) },
	}
	base := template.Must(template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/partials.html"))
	pages := map[string]*template.Template{}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		panic(err)
	}
	for _, n := range names {
		name := strings.TrimPrefix(n, "templates/")
		if name == "layout.html" || name == "partials.html" {
			continue
		}
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

// render writes a page with the layout. Templates execute into a buffer first, so a template
// error becomes a clean 500 and not half a page.
func (s *Server) render(w http.ResponseWriter, code int, name string, p page) {
	t, ok := s.pages[name]
	if !ok {
		panic("web: no template " + name)
	}
	p.StoreName, p.DemoCards = s.cfg.StoreName, s.demoCards()
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, "layout.html", p); err != nil {
		s.log.Error("render page", "template", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	securityHeaders(h)
	w.WriteHeader(code)
	fmt.Fprint(w, b.String())
}

// securityHeaders allows scripts, styles and images from this origin only: pages have no
// inline script or style.
func securityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
}

func (s *Server) notFound(w http.ResponseWriter, _ *http.Request) {
	s.render(w, http.StatusNotFound, "notfound.html", page{Title: "Page not found"})
}

// money formats cents with the currency symbol and thousands separated: "R$ 1,059.90".
func (s *Server) money(cents int64) string {
	return s.cfg.CurrencySymbol + " " + groupThousands(money.Format(cents))
}

// groupThousands puts commas between groups of three digits of a decimal's integer part.
func groupThousands(dec string) string {
	sign, rest := "", dec
	if strings.HasPrefix(rest, "-") {
		sign, rest = "-", rest[1:]
	}
	whole, frac, _ := strings.Cut(rest, ".")
	var b strings.Builder
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return sign + b.String() + "." + frac
}

// spaced writes a card number in groups of four digits.
func spaced(number string) string {
	var b strings.Builder
	for i, r := range number {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}
