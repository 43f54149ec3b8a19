package web_test

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/internal/devenv/chromium"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// browser is one tab of a headless Chromium, with helpers that fail the test.
type browser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string // screenshots
}

// newBrowser starts Chromium (installing it if needed: see internal/devenv/chromium) with one tab.
// The browser test is never skipped: without a browser it fails and says what to install.
func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	path, err := chromium.Find()
	if err != nil {
		t.Fatalf("browser tests need Chromium: %v", err)
	}
	actx, cancel := chromedp.NewExecAllocator(context.Background(), chromium.Options(path, t.TempDir())...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, base: base, dir: screenshotDir(t)}
	b.start()
	return b
}

// tab opens another tab of the same browser.
func (b *browser) tab() *browser {
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	nb := *b
	nb.ctx = ctx
	nb.start()
	return &nb
}

// start opens the tab (and the browser, the first time). Its context must have no timeout:
// the tab lives as long as the context of its first action.
func (b *browser) start() {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		b.t.Fatalf("start the browser: %v", err)
	}
}

func (b *browser) do(steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.t.Fatalf("browser: %v", err)
	}
}

func (b *browser) open(path string) { b.t.Helper(); b.do(chromedp.Navigate(b.base + path)) }

func (b *browser) text(sel string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.t.Fatalf("browser: text of %s: %v", sel, err)
	}
	return strings.TrimSpace(s)
}

func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("browser: %s: %v", js, err)
	}
	return v
}

// waitText waits until the element's text contains want.
func (b *browser) waitText(sel, want string, within time.Duration) string {
	b.t.Helper()
	var got string
	wait.For(b.t, within, fmt.Sprintf("%s to say %q", sel, want), func() error {
		got = eval[string](b, fmt.Sprintf(`(document.querySelector(%q) || {}).textContent || ""`, sel))
		if !strings.Contains(got, want) {
			return fmt.Errorf("it says %q", got)
		}
		return nil
	})
	return got
}

// shot saves a screenshot of the whole page as name.png.
func (b *browser) shot(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", path)
}

// pay fills the product page's form with card c (through the demo card's "Use" button) and
// quantity, clicks Pay and waits for the order page.
func (b *browser) pay(slug string, c web.DemoCard, quantity int) {
	b.t.Helper()
	b.open("/products/" + slug)
	b.do(
		chromedp.WaitVisible(chromedp.CSS(`.use-card[data-number="`+c.Number+`"]`)),
		chromedp.Click(chromedp.CSS(`.use-card[data-number="`+c.Number+`"]`)),
		chromedp.SetValue(chromedp.ID("quantity"), fmt.Sprint(quantity)),
		chromedp.Click(chromedp.CSS("button.pay")),
		chromedp.WaitVisible(chromedp.ID("order-status")),
	)
}

// TestBrowser buys in the store with a real headless Chromium against Code Bank on Kafka:
// approved, on the statement (which refreshes by itself), rejected beyond the limit, charged
// once on a double submission; errors inline; the dashboard. It saves a screenshot of each
// page.
func TestBrowser(t *testing.T) {
	t.Parallel()
	var maria *codebankv1.IssueCardResponse
	s := startStack(t, func(cards codebankv1.CardServiceClient) []web.DemoCard {
		maria = issue(t, cards, "Maria Silva", 100_000)
		return []web.DemoCard{demoCard(maria), demoCard(issue(t, cards, "Ana Costa", 20_000))}
	})
	card := demoCard(maria)
	b := newBrowser(t, s.url)

	// The store.
	b.open("/")
	if got := b.text(".products"); !contains(got, "Stoneware Mug", "Wireless Headphones", "R$ 59.90") {
		t.Fatalf("catalog shows %q", got)
	}
	b.shot("01-store")

	// A product, then its checkout with a mistake: the error is next to the field.
	b.do(chromedp.Click(chromedp.CSS(`a[href="/products/stoneware-mug"]`)), chromedp.WaitVisible(chromedp.ID("checkout-title")))
	b.shot("02-product")
	b.do(
		chromedp.Click(chromedp.CSS(`.use-card[data-number="`+card.Number+`"]`)),
		chromedp.SetValue(chromedp.ID("cvv"), "12"),
		chromedp.SetValue(chromedp.ID("expiry"), "13/40"),
		chromedp.Click(chromedp.CSS("button.pay")),
		chromedp.WaitVisible(chromedp.ID("cvv-error")),
	)
	if got := b.text("#cvv-error"); !strings.Contains(got, "The CVV is the 3 digits on the back of the card") {
		t.Errorf("CVV error = %q", got)
	}
	if got := b.text("#expiry-error"); !strings.Contains(got, "The month must be from 01 to 12") {
		t.Errorf("expiry error = %q", got)
	}
	if focused := eval[string](b, `document.activeElement.id`); focused != "expiry" {
		t.Errorf("focus is on %q, want the first field in error, expiry", focused)
	}
	b.shot("03-checkout-errors")

	// Buy two mugs: approved.
	b.pay("stoneware-mug", card, 2)
	if got := b.text("#order-status"); got != "✓ Approved" && got != "Approved" {
		t.Fatalf("order status = %q, want Approved", got)
	}
	if got := b.text("#order-card"); got != card.Number[:6]+"******"+card.Number[12:] {
		t.Errorf("order card = %q", got)
	}
	b.waitText("#order-total", "R$ 119.80", time.Second)
	b.shot("04-order-approved")

	// The statement: prove the card with its number, expiry and CVV; see the purchase and the
	// total.
	b.open("/statement")
	b.do(chromedp.SendKeys(chromedp.ID("number"), card.Number), chromedp.SendKeys(chromedp.ID("expiry"), card.Expiry), chromedp.SendKeys(chromedp.ID("cvv"), card.CVV),
		chromedp.Click(chromedp.CSS(".statement-form button")), chromedp.WaitVisible(chromedp.ID("statement-lines")))
	if got := b.text("#statement-lines"); !contains(got, "Produtos: 2x Stoneware Mug", "Code Store", "R$ 119.80") {
		t.Fatalf("statement lines = %q", got)
	}
	if got := b.text("#statement-total"); got != "R$ 119.80" {
		t.Errorf("statement total = %q", got)
	}
	b.shot("05-statement")

	// A purchase in another tab lands on the open statement without a reload.
	eval[bool](b, `window.notReloaded = true`)
	other := b.tab()
	other.pay("dot-grid-notebook", card, 1)
	if got := other.text("#order-status"); !strings.Contains(got, "Approved") {
		t.Fatalf("second order = %q", got)
	}
	b.waitText("#statement-total", "R$ 159.70", 15*time.Second)
	if got := b.text("#statement-lines"); !contains(got, "Produtos: Dot-Grid Notebook", "R$ 39.90") {
		t.Errorf("refreshed statement = %q", got)
	}
	if !eval[bool](b, `window.notReloaded === true`) {
		t.Error("the statement page reloaded")
	}
	b.waitText("#statement-live", "new purchase", time.Second)
	b.shot("06-statement-refreshed")

	// Beyond the limit: three headphones (1497.00) on 840.30 of credit.
	b.pay("wireless-headphones", card, 3)
	if got := b.text("#order-status"); !strings.Contains(got, "Rejected") {
		t.Fatalf("order beyond the limit = %q, want Rejected", got)
	}
	if got := b.text("#order-message"); got != "Insufficient credit on this card" {
		t.Errorf("rejection says %q", got)
	}
	b.shot("07-order-rejected")

	// Pay submitted twice at once, then double-clicked: one order, one charge.
	before := usedCents(t, s.cards, card.Number)
	b.open("/products/stream-processing-book")
	b.do(chromedp.Click(chromedp.CSS(`.use-card[data-number="` + card.Number + `"]`)))
	urls := eval[[]string](b, `(async () => {
		const form = new URLSearchParams(new FormData(document.querySelector('form.pay-form')));
		const send = () => fetch('/checkout', {method: 'POST', body: form}).then(r => r.url);
		return Promise.all([send(), send()]);
	})()`)
	if len(urls) != 2 || urls[0] != urls[1] || !strings.Contains(urls[0], "/orders/order-") {
		t.Fatalf("two submissions of one form ended on %v, want the same order", urls)
	}
	b.do(chromedp.DoubleClick(chromedp.CSS("button.pay")), chromedp.WaitVisible(chromedp.ID("order-status")))
	if got, url := b.text("#order-status"), eval[string](b, `location.href`); !strings.Contains(got, "Approved") || url != urls[0] {
		t.Errorf("after a double click: %q on %s, want Approved on %s", got, url, urls[0])
	}
	if used := usedCents(t, s.cards, card.Number); used-before != 12900 {
		t.Errorf("the book was charged %d, want 12900 once", used-before)
	}

	// The bank unreachable: the order stays pending and says so; paying again, once the bank
	// is back, pays that order.
	down, err := grpc.NewClient("127.0.0.1:1", grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer down.Close()
	cut := httptest.NewServer(web.New(web.Config{DemoCards: []web.DemoCard{card}, RequestTimeout: 2 * time.Second, AttemptsPerMinute: testPostsPerMinute, ReadsPerMinute: testPostsPerMinute}, web.Deps{
		Payments: codebankv1.NewPaymentServiceClient(down), Cards: codebankv1.NewCardServiceClient(down), Statements: codebankv1.NewStatementServiceClient(down),
		Orders: s.store, Log: banktest.Logger()}).Handler())
	defer cut.Close()
	offline := *b
	offline.base = cut.URL
	offline.pay("organic-cotton-tshirt", card, 1)
	if got := offline.text("#order-message"); !strings.Contains(got, "We could not reach the bank, try again.") {
		t.Fatalf("order with the bank unreachable says %q", got)
	}
	orderPath := eval[string](b, `location.pathname`)
	b.shot("08-order-unreachable")
	b.open(orderPath) // the same order, on the store that reaches the bank
	b.do(
		chromedp.Click(chromedp.CSS(`.use-card[data-number="`+card.Number+`"]`)),
		chromedp.Click(chromedp.CSS("button.pay")),
		chromedp.WaitVisible(chromedp.CSS(".status-approved")),
	)
	if got := eval[string](b, `location.pathname`); got != orderPath {
		t.Errorf("the retry ended on %s, want the same order %s", got, orderPath)
	}

	// The dashboard shows the figures of these payments.
	b.open("/dashboard")
	b.waitText("#sum-approved", "4", 15*time.Second)
	b.waitText("#sum-rejected", "1", 5*time.Second)
	if got := b.text("#table-stores"); !contains(got, "Code Store", "R$ 368.60") {
		t.Errorf("stores table = %q", got)
	}
	if got := b.text("#table-reasons"); !contains(got, "Insufficient credit") {
		t.Errorf("reasons table = %q", got)
	}
	if n := eval[int](b, `document.querySelectorAll('#chart-rate svg rect').length`); n == 0 {
		t.Error("the rate chart has no bars")
	}
	b.shot("09-dashboard")

	// Phone width.
	b.do(chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile, chromedp.EmulateScale(2)))
	b.open("/")
	b.shot("10-store-phone")
	b.open("/products/everyday-backpack")
	b.shot("11-product-phone")
	if w := eval[int](b, `document.documentElement.scrollWidth`); w > 375 {
		t.Errorf("the product page is %dpx wide on a 375px phone", w)
	}
	b.open(strings.TrimPrefix(urls[0], s.url))
	b.shot("12-order-phone")
}

// TestBrowserMoneyBack, in a real headless Chromium: an order cancelled from its page (the bank
// reverses its payment), a refund of part of another purchase, and a bill payment, all on the
// month's statement as lines of their own, with the bill (opening and closing balance, due
// date, minimum payment); and on the dashboard. Screenshots of each page.
func TestBrowserMoneyBack(t *testing.T) {
	t.Parallel()
	var maria *codebankv1.IssueCardResponse
	s := startStack(t, func(cards codebankv1.CardServiceClient) []web.DemoCard {
		maria = issue(t, cards, "Maria Silva", 100_000)
		return []web.DemoCard{demoCard(maria)}
	})
	card := demoCard(maria)
	b := newBrowser(t, s.url)
	orderOf := func() *store.Order {
		t.Helper()
		id := strings.TrimPrefix(eval[string](b, `location.pathname`), "/orders/")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		o, err := s.store.Get(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}

	// Two mugs, then the order cancelled from its page: a reversal, the credit back at once.
	b.pay("stoneware-mug", card, 2)
	mugs := orderOf()
	b.do(chromedp.WaitVisible(chromedp.ID("cancel-order")))
	if got := b.text(".cancel-form"); !strings.Contains(got, "reverses the payment") {
		t.Errorf("cancel form says %q", got)
	}
	b.do(chromedp.Click(chromedp.ID("cancel-order")), chromedp.WaitVisible(chromedp.ID("order-cancelled")))
	if got := b.text("#order-status"); !strings.Contains(got, "Cancelled") {
		t.Errorf("cancelled order's status = %q", got)
	}
	if got := b.text("#order-cancelled"); !strings.Contains(got, "Payment reversed: R$ 119.80 back on the card") {
		t.Errorf("cancelled order says %q", got)
	}
	b.shot("13-order-cancelled")
	if used := usedCents(t, s.cards, card.Number); used != 0 {
		t.Errorf("used %d after the order was cancelled, want 0", used)
	}

	// A notebook and a book; 30.00 of the book refunded by the store's merchant; a bill payment
	// of 50.00 recorded by an operator.
	b.pay("dot-grid-notebook", card, 1)
	b.pay("stream-processing-book", card, 1)
	book := orderOf()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := s.payments.Refund(ctx, &codebankv1.RefundRequest{PaymentId: book.PaymentID, RefundId: book.ID + "-r1", AmountCents: 3_000}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.cards.PayBill(ctx, &codebankv1.PayBillRequest{CardId: maria.GetCard().GetCardId(), BillPaymentId: "boleto-1", AmountCents: 5_000}); err != nil {
		t.Fatal(err)
	}

	// The statement: every line, and the month as a bill.
	b.open("/statement")
	b.do(chromedp.SendKeys(chromedp.ID("number"), card.Number), chromedp.SendKeys(chromedp.ID("expiry"), card.Expiry), chromedp.SendKeys(chromedp.ID("cvv"), card.CVV),
		chromedp.Click(chromedp.CSS(".statement-form button")), chromedp.WaitVisible(chromedp.ID("statement-lines")))
	lines := b.text("#statement-lines")
	for _, want := range []string{"Produtos: 2x Stoneware Mug", "R$ 119.80", "Reversal of " + mugs.ID, "−R$ 119.80", "Produtos: Dot-Grid Notebook", "R$ 39.90",
		"Refund of " + book.ID, "−R$ 30.00", "Bill payment", "−R$ 50.00"} {
		if !strings.Contains(lines, want) {
			t.Errorf("statement lines lack %q:\n%s", want, lines)
		}
	}
	purchases := 11_980 + 3_990 + book.TotalCents
	closing := purchases - 11_980 - 3_000 - 5_000
	now := time.Now().UTC()
	due := time.Date(now.Year(), now.Month()+1, 10, 0, 0, 0, 0, time.UTC).Format("02 Jan 2006")
	for sel, want := range map[string]string{
		"#statement-total":     "R$ " + fmtCents(purchases),
		"#statement-reversals": "−R$ 119.80",
		"#statement-refunds":   "−R$ 30.00",
		"#statement-payments":  "−R$ 50.00",
		"#statement-closing":   "R$ " + fmtCents(closing),
		"#statement-minimum":   "R$ 50.00",
		"#statement-due":       due,
		"#statement-opening":   "R$ 0.00",
	} {
		if got := b.text(sel); got != want {
			t.Errorf("%s = %q, want %q", sel, got, want)
		}
	}
	b.shot("14-statement-bill")

	// The dashboard: the reversal and the refund, the refund rate.
	b.open("/dashboard")
	b.waitText("#sum-reversals", "1", 15*time.Second)
	b.waitText("#sum-refunds", "1", 5*time.Second)
	if got := b.text("#kpi-refund-rate"); got != "66.7%" {
		t.Errorf("refund rate = %q, want 66.7%% (2 of 3 purchases)", got)
	}
	wait.For(t, 10*time.Second, "the money-back chart's bars", func() error {
		if n := eval[int](b, `document.querySelectorAll('#chart-credits svg rect').length`); n == 0 {
			return errors.New("none drawn")
		}
		return nil
	})
	b.shot("15-dashboard-money-back")
}

func fmtCents(c int64) string { return fmt.Sprintf("%d.%02d", c/100, c%100) }
