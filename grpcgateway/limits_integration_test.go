package grpcgateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestCallsInFlightLimit: with the authorizer away, calls wait up to the ingress's limit; the
// next is refused at once with RESOURCE_EXHAUSTED (HTTP 429), and the waiting ones get their
// answers when the authorizer is back.
func TestCallsInFlightLimit(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 3, 2)
	a := banktest.StartAuthorizer(t, d, "")
	const limit = 4
	in := banktest.StartIngress(t, d, banktest.IngressOptions{MaxInFlight: limit, Config: grpcgateway.Config{RequestTimeout: 30 * time.Second}})
	cards, payments := codebankv1.NewCardServiceClient(in.Conn), codebankv1.NewPaymentServiceClient(in.Conn)
	c := issue(t, cards, "Maria Silva", 100_000)
	a.Stop(t)

	var wg sync.WaitGroup
	answers := make(chan error, limit)
	for i := range limit {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := payments.Authorize(context.Background(), &codebankv1.AuthorizeRequest{TransactionId: fmt.Sprint("wait-", i), Card: details(c),
				AmountCents: 100, Store: "Code Store", Description: "x"})
			answers <- err
		}()
	}
	wait.Until(t, 10*time.Second, "the calls to start waiting", func() bool {
		return banktest.Value(t, in.Registry, "codebank_ingress_bank_inflight", nil) == limit
	})
	// Refused at once: with no authorizer running, a call that waited could only end in its
	// deadline; RESOURCE_EXHAUSTED and the overload counter say it was turned away.
	_, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "one-too-many", Card: details(c), AmountCents: 100, Store: "Code Store", Description: "x"})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("call beyond the limit = %v, want RESOURCE_EXHAUSTED", err)
	}
	if n := banktest.Value(t, in.Registry, "codebank_ingress_overloaded_total", nil); n != 1 {
		t.Errorf("codebank_ingress_overloaded_total = %v, want 1", n)
	}
	get, err := adminGet(in.HTTPURL + "/v1/cards/" + c.GetCard().GetCardId())
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusTooManyRequests {
		t.Errorf("REST call beyond the limit = %d, want 429", get.StatusCode)
	}
	banktest.StartAuthorizer(t, d, "")
	wg.Wait()
	close(answers)
	for err := range answers {
		if err != nil {
			t.Errorf("a waiting call: %v", err)
		}
	}
	if got := used(t, cards, c); got != limit*100 {
		t.Errorf("used %d, want %d", got, limit*100)
	}
}

// TestOversizeRequests: a gRPC message or a REST body over the limit is refused with the
// documented error, quickly, and nothing reaches Kafka.
func TestOversizeRequests(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 100_000)
	huge := strings.Repeat("x", grpcgateway.DefaultMaxMessageBytes+1)
	_, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: 100, Store: "Code Store", Description: huge})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("gRPC message over the limit = %v, want RESOURCE_EXHAUSTED", err)
	}
	body := `{"card":{"number":"` + c.GetCard().GetNumber() + `"},"amount_cents":100,"store":"Code Store","description":"` + huge + `"}`
	resp, err := http.Post(b.in.HTTPURL+"/v1/payments", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(msg), "over the limit") {
		t.Errorf("REST body over the limit = %d %s, want 413 saying so", resp.StatusCode, msg)
	}
	// Without a Content-Length the body is cut at the limit while it is read.
	resp, err = http.Post(b.in.HTTPURL+"/v1/payments", "application/json", io.MultiReader(strings.NewReader(body)))
	if err != nil {
		t.Fatal(err)
	}
	msg, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(msg), "too large") {
		t.Errorf("streamed REST body over the limit = %d %s, want 400 saying it is too large", resp.StatusCode, msg)
	}
	if got := used(t, b.cards, c); got != 0 {
		t.Errorf("used %d after refused requests, want 0", got)
	}
}

// TestSlowClients holds connections that send half a request, or nothing, to both ports: the
// bank goes on answering others at once, and closes them once their time is up.
func TestSlowClients(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 100_000)
	httpAddr := strings.TrimPrefix(b.in.HTTPURL, "http://")
	var slow []net.Conn
	for i := range 40 {
		target := httpAddr
		if i%2 == 1 {
			target = b.in.GRPCAddr
		}
		conn, err := net.Dial("tcp", target)
		if err != nil {
			t.Fatal(err)
		}
		if target == httpAddr {
			fmt.Fprintf(conn, "POST /v1/payments HTTP/1.1\r\nHost: bank\r\nContent-Type: appl") // and nothing more
		}
		slow = append(slow, conn)
	}
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	start := time.Now()
	for i := range 5 {
		r, err := b.payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{Card: details(c), AmountCents: int64(100 + i), Store: "Code Store", Description: "x"})
		if err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
			t.Fatalf("payment beside slow clients = %v, %v", r, err)
		}
	}
	if resp, err := adminGet(b.in.HTTPURL + "/v1/cards/" + c.GetCard().GetCardId()); err != nil || resp.StatusCode != 200 {
		t.Fatalf("REST beside slow clients = %v, %v", resp, err)
	}
	// The calls were answered while every slow client still held its connection (the server
	// cuts them only after 10 s): they never waited for the slow ones.
	for i, conn := range slow {
		conn.SetReadDeadline(time.Now().Add(time.Millisecond))
		// What the server sent (its HTTP/2 settings) is read; an open connection then has
		// nothing more until the deadline, a closed one ends.
		if _, err := io.Copy(io.Discard, conn); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("slow connection %d had ended before the calls beside it were answered: %v", i, err)
		}
	}
	// Each slow connection is closed by the server: headers are due within 10 s, the HTTP/2
	// handshake within 10 s.
	for i, conn := range slow {
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		if _, err := io.Copy(io.Discard, conn); err != nil { // nil at the server's close
			t.Errorf("slow connection %d was not closed by the server: %v", i, err)
		}
	}
	t.Logf("40 slow connections closed by the server %v after they opened", time.Since(start).Round(time.Second))
}

// adminGet gets url with the test admin key.
func adminGet(url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+banktest.AdminKey)
	return http.DefaultClient.Do(req)
}

// TestHeaderLimit: a call whose headers are over the limit (a huge API key, or huge metadata
// beside a good key) is refused by the transport before its key is looked at: nothing is
// counted or logged as a refused key. Headers under the limit pass, over gRPC and REST.
func TestHeaderLimit(t *testing.T) {
	t.Parallel()
	b := startBank(t)
	c := issue(t, b.cards, "Maria Silva", 100_000)
	conn, err := grpc.NewClient(b.in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cards := codebankv1.NewCardServiceClient(conn)
	denied := func() float64 {
		var sum float64
		for _, code := range []string{"Unauthenticated", "PermissionDenied"} {
			sum += banktest.Value(t, b.in.Registry, "codebank_ingress_denied_total", map[string]string{"method": "GetCard", "code": code})
		}
		return sum
	}
	get := func(md ...string) error {
		_, err := cards.GetCard(metadata.AppendToOutgoingContext(ctxT(t), md...), &codebankv1.GetCardRequest{CardId: c.GetCard().GetCardId()})
		return err
	}
	over := strings.Repeat("k", grpcgateway.DefaultMaxHeaderBytes)
	if err := get("authorization", "Bearer cb_ops-1_"+over); err == nil || status.Code(err) == codes.Unauthenticated {
		t.Errorf("a key over the header limit = %v, want it refused before the key check", err)
	}
	if err := get("authorization", "Bearer "+banktest.AdminKey, "x-padding", over); err == nil {
		t.Error("a good key beside metadata over the header limit was served")
	}
	if n := denied(); n != 0 {
		t.Errorf("codebank_ingress_denied_total = %v: a call over the header limit reached the key check", n)
	}
	under := strings.Repeat("p", grpcgateway.DefaultMaxHeaderBytes/2)
	if err := get("authorization", "Bearer "+banktest.AdminKey, "x-padding", under); err != nil {
		t.Errorf("a call with headers under the limit = %v", err)
	}
	if err := get("authorization", "Bearer cb_ops-1_"+under); status.Code(err) != codes.Unauthenticated || denied() != 1 {
		t.Errorf("an unknown key under the limit = %v, denied %v; want UNAUTHENTICATED, counted", err, denied())
	}

	rest := func(key, padding string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, b.in.HTTPURL+"/v1/cards/"+c.GetCard().GetCardId(), nil)
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("X-Padding", padding)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := rest("cb_ops-1_"+over, ""); code != http.StatusRequestHeaderFieldsTooLarge || !strings.Contains(body, "over the limit") {
		t.Errorf("REST with a key over the header limit = %d %s, want 431 saying so", code, body)
	}
	if code, _ := rest(banktest.AdminKey, over); code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("REST with a good key beside headers over the limit = %d, want 431", code)
	}
	if n := denied(); n != 1 {
		t.Errorf("codebank_ingress_denied_total = %v after REST calls over the header limit, want still 1", n)
	}
	if code, body := rest(banktest.AdminKey, under); code != http.StatusOK {
		t.Errorf("REST with headers under the limit = %d %s", code, body)
	}
}

// TestReadmeStatesTheLimits: the limits the README's API section states are the ingress's.
func TestReadmeStatesTheLimits(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := strings.Join(strings.Fields(string(b)), " ")
	thousands := func(n int) string {
		s := fmt.Sprint(n)
		for i := len(s) - 3; i > 0; i -= 3 {
			s = s[:i] + "," + s[i:]
		}
		return s
	}
	for _, want := range []string{
		fmt.Sprintf("a connection may have %s calls open at once", thousands(grpcgateway.DefaultMaxConcurrentStreams)),
		fmt.Sprintf("a gRPC message or REST body over %d KiB", grpcgateway.DefaultMaxMessageBytes>>10),
		fmt.Sprintf("headers over %d KiB", grpcgateway.DefaultMaxHeaderBytes>>10),
		fmt.Sprintf("beyond `--max-inflight` calls waiting for the authorizer (%s)", thousands(grpcgateway.DefaultMaxInFlight)),
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README.md does not say %q", want)
		}
	}
}
