package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// role is one codebank process of the test, kept running like a pod: a process that exits or
// is killed is started again by its supervisor, unless the test stops it.
type role struct {
	name    string
	args    []string
	readyz  string // URL that answers 200 once the process is ready
	logFile string
	env     []string // the deployment's secrets and keys

	mu      sync.Mutex
	cmd     *exec.Cmd
	exited  chan struct{}
	stopped bool
	starts  int
}

func startRole(t *testing.T, name, readyz string, args ...string) *role {
	t.Helper()
	r := &role{name: name, args: args, readyz: readyz, logFile: filepath.Join(t.TempDir(), name+".log"), env: banktest.Env(t)}
	r.start(t)
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *role) start(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	log, err := os.OpenFile(r.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, r.args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = append(os.Environ(), append(r.env, "CODEBANK_LOG_FORMAT=text", "CODEBANK_LOG_LEVEL=warn")...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.name, err)
	}
	r.cmd, r.exited = cmd, make(chan struct{})
	r.starts++
	exited := r.exited
	go func() {
		cmd.Wait()
		log.Close()
		close(exited)
		r.mu.Lock()
		again := !r.stopped && r.cmd == cmd
		r.mu.Unlock()
		if again { // a crash of its own: the supervisor starts it again, as Kubernetes would
			time.Sleep(500 * time.Millisecond)
			r.mu.Lock()
			stopped := r.stopped
			r.mu.Unlock()
			if !stopped {
				r.start(t)
			}
		}
	}()
}

// kill9 kills the process with SIGKILL and starts it again at once.
func (r *role) kill9(t *testing.T) {
	t.Helper()
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.cmd = nil // not a crash of its own: no restart by the supervisor
	r.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	r.start(t)
}

func (r *role) stop(t *testing.T) {
	r.mu.Lock()
	r.stopped = true
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}

// waitReady waits until the role's readyz answers 200.
func (r *role) waitReady(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	return wait.For(t, within, r.name+" to be ready", func() error {
		resp, err := http.Get(r.readyz)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = errors.New(resp.Status)
		}
		b, _ := os.ReadFile(r.logFile)
		return fmt.Errorf("%v; its log:\n%s", err, tail(string(b), 3000))
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

func addr() string { return "127.0.0.1:" + strconv.Itoa(banktest.FreePort()) }

// payer is one client paying in a loop, retrying every call with the same transaction id until
// it gets the bank's final answer, like a careful checkout.
type payer struct {
	mu       sync.Mutex
	approved map[string][]string // card number -> transaction ids approved
	cents    map[string]int64
	calls    int
	retries  int
	longest  map[string]time.Duration // phase -> longest wait for a final answer of a call that ended in it
	phase    string
	inflight atomic.Int64
	stuck    error
}

// decide waits until the clients have had n more final answers: the bank is deciding.
func (p *payer) decide(t *testing.T, n int) {
	t.Helper()
	decided := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.calls
	}
	from := decided()
	wait.For(t, 2*time.Minute, fmt.Sprintf("%d more final answers", n), func() error {
		p.mu.Lock()
		stuck := p.stuck
		p.mu.Unlock()
		if stuck != nil {
			t.Fatal(stuck)
		}
		if got := decided() - from; got < n {
			return fmt.Errorf("%d so far", got)
		}
		return nil
	})
}

// newPayer returns a payer whose calls start in phase.
func newPayer(phase string) *payer {
	return &payer{approved: map[string][]string{}, cents: map[string]int64{}, longest: map[string]time.Duration{}, phase: phase}
}

// start runs n clients of the cards until the function it returns is called, which fails the
// test if a payment got no final answer. Client i pays through conns[i % len(conns)], with
// transaction ids of its own (first+i).
func (p *payer) start(ctx context.Context, t *testing.T, n, first int, conns []*grpc.ClientConn, cards []*codebankv1.IssueCardResponse) (stop func()) {
	loadCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.run(loadCtx, first+i, codebankv1.NewPaymentServiceClient(conns[i%len(conns)]), cards)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
		if p.stuck != nil {
			t.Fatal(p.stuck)
		}
	}
}

func (p *payer) setPhase(name string) {
	p.mu.Lock()
	p.phase = name
	p.mu.Unlock()
}

func (p *payer) run(ctx context.Context, id int, client codebankv1.PaymentServiceClient, cards []*codebankv1.IssueCardResponse) {
	for i := 0; ctx.Err() == nil; i++ {
		c := cards[rand.IntN(len(cards))]
		req := &codebankv1.AuthorizeRequest{TransactionId: fmt.Sprintf("p%d-%d", id, i), Card: details(c),
			AmountCents: int64(100 + rand.IntN(900)), Store: "Code Store", Description: "Produtos: caneca"}
		start := time.Now()
		p.inflight.Add(1)
		var resp *codebankv1.AuthorizeResponse
		for attempt := 0; ; attempt++ {
			callCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			var err error
			resp, err = client.Authorize(callCtx, req)
			cancel()
			if err == nil {
				break
			}
			if time.Since(start) > 2*time.Minute {
				p.inflight.Add(-1)
				p.mu.Lock()
				p.stuck = fmt.Errorf("%s: no final answer in 2 minutes: %v", req.TransactionId, err)
				p.mu.Unlock()
				return
			}
			p.mu.Lock()
			p.retries++
			p.mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		wait := time.Since(start)
		p.inflight.Add(-1)
		p.mu.Lock()
		p.calls++
		if wait > p.longest[p.phase] {
			p.longest[p.phase] = wait
		}
		if resp.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			n := c.GetCard().GetNumber()
			p.approved[n] = append(p.approved[n], req.TransactionId)
			p.cents[n] += req.AmountCents
		}
		p.mu.Unlock()
	}
}

// TestFaultsUnderLoad runs the bank as separate processes (authorizer, statements, ingress) on
// a broker of its own, under a steady load of careful clients, and kills with SIGKILL: the
// authorizer three times, then the broker, then the ingress with calls in flight. Every client
// gets a final answer for every payment (retrying with the same id), the books balance, and
// every approval the clients were told of is on its card's statement.
func TestFaultsUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	kafkaDir := t.TempDir()
	kafkaOpts := localkafka.Options{DataDir: kafkaDir, Port: banktest.FreePort(), ControllerPort: banktest.FreePort()}
	broker, err := localkafka.Start(ctx, kafkaOpts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Stop() })
	prefix := kafkatest.Name(t) + "-"
	common := []string{"--brokers", broker.Addr(), "--topic-prefix", prefix, "--partitions", "3", "--reply-partitions", "2"}

	setup := exec.Command(binary, append([]string{"setup"}, common...)...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	authOps, stmtHTTP, stmtGRPC, stmtOps, inHTTP, inGRPC, inOps := addr(), addr(), addr(), addr(), addr(), addr(), addr()
	auth := startRole(t, "authorizer", "http://"+authOps+"/readyz",
		append([]string{"authorizer", "--storage-dir", t.TempDir(), "--ops-addr", authOps}, common...)...)
	auth.waitReady(t, time.Minute)
	stmts := startRole(t, "statements", "http://"+stmtOps+"/readyz",
		append([]string{"statements", "--storage-dir", t.TempDir(), "--grpc-addr", stmtGRPC, "--http-addr", stmtHTTP, "--ops-addr", stmtOps, "--reply-partition", "1"}, common...)...)
	in := startRole(t, "ingress", "http://"+inOps+"/readyz",
		append([]string{"ingress", "--grpc-addr", inGRPC, "--http-addr", inHTTP, "--ops-addr", inOps, "--reply-partition", "0", "--request-timeout", "3s"}, common...)...)
	stmts.waitReady(t, time.Minute)
	in.waitReady(t, time.Minute)

	conn, err := grpc.NewClient(inGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cardsClient := codebankv1.NewCardServiceClient(conn)
	var cards []*codebankv1.IssueCardResponse
	for _, h := range []string{"Maria Silva", "Joao Souza", "Ana Costa", "Rita Lee"} {
		cards = append(cards, issue(t, cardsClient, h, 1_000_000_000))
	}

	p := newPayer("steady")
	stopLoad := p.start(ctx, t, 6, 0, []*grpc.ClientConn{conn}, cards)
	p.decide(t, 500)
	for i := 1; i <= 3; i++ {
		p.setPhase(fmt.Sprintf("authorizer kill -9 #%d", i))
		auth.kill9(t)
		t.Logf("authorizer killed (#%d); ready again after %v", i, auth.waitReady(t, 2*time.Minute).Round(time.Millisecond))
		p.decide(t, 500)
	}
	p.setPhase("broker kill -9")
	syscall.Kill(broker.PID(), syscall.SIGKILL)
	broker.Stop() // reaps it; the data dir is the test's
	if broker, err = localkafka.Start(ctx, kafkaOpts); err != nil {
		t.Fatalf("restart the broker: %v", err)
	}
	t.Cleanup(func() { broker.Stop() })
	for _, r := range []*role{auth, stmts, in} {
		r.waitReady(t, 2*time.Minute)
	}
	t.Log("broker killed and restarted; every role ready again")
	p.decide(t, 500)
	p.setPhase("ingress kill -9")
	inflight := p.inflight.Load()
	in.kill9(t)
	t.Logf("ingress killed with %d calls in flight; ready again after %v", inflight, in.waitReady(t, time.Minute).Round(time.Millisecond))
	p.decide(t, 500)
	p.setPhase("steady after the faults")
	p.decide(t, 500)
	stopLoad()
	for _, phase := range []string{"steady", "authorizer kill -9 #1", "authorizer kill -9 #2", "authorizer kill -9 #3", "broker kill -9", "ingress kill -9", "steady after the faults"} {
		t.Logf("longest wait for a final answer, %s: %v", phase, p.longest[phase].Round(time.Millisecond))
	}
	t.Logf("%d payments decided, %d retries; restarts: authorizer %d, statements %d, ingress %d", p.calls, p.retries, auth.starts, stmts.starts, in.starts)

	// The books, from the topics; and every approval on its statement.
	kc := kafkaconf.Config{Brokers: []string{broker.Addr()}, ClientID: "test"}
	topo := processors.Topology{Prefix: prefix, Partitions: 3, ReplyPartitions: 2}
	rep := balanced(t, audit.Config{Kafka: kc, Topo: topo, Consumers: store.Topology{Prefix: prefix}.Consumers()})
	t.Logf("audit: %d payments, %d approved, %d replays", rep.Payments, rep.Approved, rep.Replays)
	stmtConn, err := grpc.NewClient(stmtGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer stmtConn.Close()
	statements := codebankv1.NewStatementServiceClient(stmtConn)
	for _, c := range cards {
		n := c.GetCard().GetNumber()
		onStatement := statementLines(t, statements, c.GetCard().GetCardId())
		for _, tx := range p.approved[n] {
			if !onStatement[tx] {
				t.Errorf("card %s: approved payment %s is not on the statement", card.Mask(n), tx)
			}
		}
		if got := used(t, cardsClient, c); got != p.cents[n] {
			t.Errorf("card %s: used %d, the clients were told of approvals for %d", card.Mask(n), got, p.cents[n])
		}
	}
}

// statementLines returns the transaction ids on a card's statements, every month and page.
func statementLines(t *testing.T, s codebankv1.StatementServiceClient, cardID string) map[string]bool {
	t.Helper()
	months, err := s.ListStatements(ctxT(t), &codebankv1.ListStatementsRequest{CardId: cardID})
	if err != nil {
		t.Fatalf("ListStatements: %v", err)
	}
	out := map[string]bool{}
	for _, m := range months.GetStatements() {
		token := ""
		for {
			resp, err := s.GetStatement(ctxT(t), &codebankv1.GetStatementRequest{CardId: cardID, Month: m.GetMonth(), PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatalf("GetStatement: %v", err)
			}
			for _, l := range resp.GetLines() {
				out[l.GetTransactionId()] = true
			}
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
	}
	return out
}
