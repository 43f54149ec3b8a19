package web_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/stream"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web"
	"github.com/codebank/codebank/web/store"
)

// The integration tests share one real Kafka broker and run Code Bank in-process (banktest);
// each test has its own topics.

var brokerAddr string

// testPostsPerMinute lifts the pages' limits per client address for the integration and browser
// tests, which post many forms from 127.0.0.1; the limits have a test of their own
// (TestPostsLimitedPerAddress).
const testPostsPerMinute = 1_000_000

func TestMain(m *testing.M) { os.Exit(kafkatest.Run(m, &brokerAddr)) }

// stack is Code Bank and the store, running for one test.
type stack struct {
	d        banktest.Deployment
	cards    codebankv1.CardServiceClient
	payments codebankv1.PaymentServiceClient
	stmts    codebankv1.StatementServiceClient
	store    *store.Orders
	feed     *web.Feed
	url      string
}

// startStack runs the authorizer, the statements processor and its view, an ingress with
// statements, and the web role (the orders group, the orders view, the dashboard feed and the
// pages, on a loopback port), each as codebank builds it. demo, when set, issues the demo
// cards the pages show and returns them.
func startStack(t *testing.T, demo func(codebankv1.CardServiceClient) []web.DemoCard) *stack {
	t.Helper()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	banktest.StartAuthorizer(t, d, "")
	st := banktest.StartStatements(t, d, "")
	in := banktest.StartIngress(t, d, banktest.IngressOptions{Statements: st.Reader})
	s := &stack{d: d, cards: codebankv1.NewCardServiceClient(in.Conn), payments: codebankv1.NewPaymentServiceClient(in.Conn),
		stmts: codebankv1.NewStatementServiceClient(in.Conn)}
	var cards []web.DemoCard
	if demo != nil {
		cards = demo(s.cards)
	}
	w := banktest.StartWeb(t, d, in, web.Config{DemoCards: cards, AttemptsPerMinute: testPostsPerMinute, ReadsPerMinute: testPostsPerMinute})
	s.store, s.feed, s.url = w.Orders, w.Feed, w.URL
	return s
}

// running is a component started by a test, stopped by stop or when the test ends.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	select {
	case err := <-r.done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("stopped with: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("did not stop within 60s")
	}
}

func runUntilCleanup(t *testing.T, what string, run func(context.Context) error) *running {
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// startOrders runs an instance of the orders group with its storage in dir.
func startOrders(t *testing.T, d banktest.Deployment, dir string) *banktest.Processor {
	t.Helper()
	g, err := stream.NewGroup(d.Kafka, store.New(d.Store, store.Deps{Log: banktest.Logger()}).Graph(), dir, banktest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	return banktest.Run(t, g, "orders processor", nil)
}

// startStore runs an orders store (emitter and view) and waits until its view has recovered.
func startStore(t *testing.T, d banktest.Deployment) *store.Orders {
	t.Helper()
	st, err := store.NewOrders(d.Kafka, d.Store, "", banktest.Logger())
	if err != nil {
		t.Fatal(err)
	}
	r := runUntilCleanup(t, "orders store", st.Run)
	t.Cleanup(func() { r.stop(t); st.Close() })
	wait.Until(t, time.Minute, "the orders view to recover", st.Ready)
	return st
}

func demoCard(c *codebankv1.IssueCardResponse) web.DemoCard {
	return web.DemoCard{Number: c.GetCard().GetNumber(), Holder: c.GetCard().GetHolderName(),
		Expiry: fmt.Sprintf("%02d/%02d", c.GetCard().GetExpiryMonth(), c.GetCard().GetExpiryYear()%100), CVV: c.GetCvv()}
}

func usedCents(t *testing.T, cards codebankv1.CardServiceClient, number string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, err := cards.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: number})
	if err != nil {
		t.Fatalf("LookupCard: %v", err)
	}
	return resp.GetCard().GetUsedCents()
}

// screenshotDir is where the browser test writes its screenshots: $CODEBANK_TEST_OUT/screenshots
// when set (kept), else a temporary directory.
func screenshotDir(t *testing.T) string {
	out := os.Getenv("CODEBANK_TEST_OUT")
	if out == "" {
		return t.TempDir()
	}
	dir, err := filepath.Abs(filepath.Join(out, "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

var issue = banktest.Issue

// TestStatementPageCountsTowardLockout: the statement page shows a card only to whoever proves
// it (number, expiry, CVV); five failed proofs block the card, as five failed payments would, and
// the page then shows nothing even for the right details.
func TestStatementPageCountsTowardLockout(t *testing.T) {
	t.Parallel()
	s := startStack(t, nil)
	c := banktest.Issue(t, s.cards, "Maria Silva", 100_000)
	form := func(cvv string) url.Values {
		return url.Values{"number": {c.GetCard().GetNumber()}, "expiry": {fmt.Sprintf("%02d/%02d", c.GetCard().GetExpiryMonth(), c.GetCard().GetExpiryYear()%100)},
			"cvv": {cvv}, "month": {time.Now().UTC().Format("2006-01")}}
	}
	wrong := fmt.Sprintf("%03d", (mustAtoi(t, c.GetCvv())+1)%1000)
	post := func(f url.Values) (int, string) {
		resp, err := http.PostForm(s.url+"/statement", f)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := post(form(c.GetCvv())); code != 200 || !strings.Contains(body, c.GetCard().GetMaskedNumber()) {
		t.Fatalf("the statement with the card's details = %d", code)
	}
	for i := range 5 {
		if code, body := post(form(wrong)); code != 422 || !strings.Contains(body, "We could not verify this card") {
			t.Fatalf("proof %d with a wrong CVV = %d", i, code)
		}
	}
	if code, body := post(form(c.GetCvv())); code != 422 || strings.Contains(body, c.GetCard().GetMaskedNumber()) {
		t.Errorf("the card's details after the lockout = %d, want nothing shown", code)
	}
	got, err := s.cards.GetCard(banktest.Ctx(t), &codebankv1.GetCardRequest{CardId: c.GetCard().GetCardId()})
	if err != nil || got.GetCard().GetStatus() != codebankv1.CardStatus_CARD_STATUS_BLOCKED ||
		got.GetCard().GetBlockReason() != codebankv1.BlockReason_BLOCK_REASON_VERIFICATION_FAILURES {
		t.Errorf("the card after 5 failed proofs on the page = %v, %v; want blocked for verification failures", got.GetCard(), err)
	}
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
