package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freePorts returns n different free ports on 127.0.0.1, each as ":PORT". Each is held until all
// are chosen: a port closed at once may come back from the next pick, and one run of make test
// gave TestRun's broker and its bank the same port.
func freePorts(t *testing.T, n int) []string {
	ports := make([]string, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ports[i] = l.Addr().String()[strings.LastIndex(l.Addr().String(), ":"):]
	}
	return ports
}

// TestRun runs what `make run` runs, on a fresh data dir, and runs every command it prints, as
// printed (the CLI's through the binary it built, from the directory that holds the data dir, as
// a developer would); pays over the limit, reads the statement and the analytics; starts the
// pages alone in front of it; then restarts it and finds the same cards, balances and keys.
func TestRun(t *testing.T) {
	tier.Servers(t, "the whole bank of make run")
	root := t.TempDir()
	dir := filepath.Join(root, ".data")
	ports := freePorts(t, 9)
	grpcPort, httpPort, opsPort, kafkaPort, searchPort, connectPort, promPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5], ports[6]
	webPort, webOps := ports[7], ports[8] // the store's pages alone, below
	start := func() (context.CancelFunc, chan error, *syncBuffer) {
		ctx, cancel := context.WithCancel(context.Background())
		out := &syncBuffer{}
		done := make(chan error, 1)
		go func() {
			done <- program.Run(ctx, []string{"run", "--data-dir", dir, "--kafka-port", kafkaPort[1:], "--grpc-addr", "127.0.0.1" + grpcPort,
				"--http-addr", "127.0.0.1" + httpPort, "--ops-addr", "127.0.0.1" + opsPort, "--search-port", searchPort[1:], "--connect-port", connectPort[1:],
				"--prometheus-port", promPort[1:]}, out, io.Discard)
		}()
		wait.For(t, 3*time.Minute, "the ready message", func() error {
			select {
			case err := <-done:
				t.Fatalf("codebank-dev run stopped: %v\n%s", err, out.String())
			default:
			}
			if !strings.Contains(out.String(), "Code Bank is ready") {
				return fmt.Errorf("it says:\n%s", out.String())
			}
			return nil
		})
		return cancel, done, out
	}
	stop := func(cancel context.CancelFunc, done chan error) {
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("dev: %v", err)
		}
	}

	cancel, done, out := start()
	var cards []demoCard
	b, err := os.ReadFile(filepath.Join(dir, "demo-cards.json"))
	if err != nil || json.Unmarshal(b, &cards) != nil || len(cards) != 3 {
		t.Fatalf("demo cards: %v %s", err, b)
	}
	if !strings.Contains(out.String(), card.Grouped(cards[0].Number)) {
		t.Errorf("demo card %s not printed:\n%s", cards[0].Number, out.String())
	}
	creds, err := readEnvFile(filepath.Join(dir, "credentials.env"))
	if err != nil || creds["CODEBANK_MERCHANT_KEY"] == "" || creds["CODEBANK_ADMIN_KEY"] == "" {
		t.Fatalf("credentials.env: %v %v", err, creds)
	}
	for _, k := range []string{"CODEBANK_MERCHANT_KEY=" + creds["CODEBANK_MERCHANT_KEY"], "CODEBANK_ADMIN_KEY=" + creds["CODEBANK_ADMIN_KEY"]} {
		if !strings.Contains(out.String(), k) {
			t.Errorf("the credentials are not printed: %s missing", k)
		}
	}
	for _, f := range []string{"credentials.env", "secrets.env", "api-keys"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", f, err, st.Mode().Perm())
		}
	}
	c := cards[0]
	bin := filepath.Join(dir, "bin", "codebank")

	// Prometheus, at the URL printed, scrapes the bank with the rules loaded.
	if !strings.Contains(out.String(), "Prometheus: http://localhost"+promPort) {
		t.Errorf("the Prometheus URL is not printed:\n%s", out.String())
	}
	wait.For(t, 30*time.Second, "Prometheus to scrape the bank", func() error {
		return promScrapes("http://127.0.0.1" + promPort)
	})
	// ... and the Kafka Connect worker, through its JMX exporter: the sink is running.
	wait.For(t, 30*time.Second, "Prometheus to scrape the Connect worker's sink", func() error {
		var st struct {
			Data struct {
				Result []struct{ Metric map[string]string }
			}
		}
		if err := getJSON("http://127.0.0.1"+promPort+`/api/v1/query?query=kafka_connect_connector_status%7Bjob%3D%22connect%22%2Cstatus%3D%22running%22%7D`, &st); err != nil {
			return err
		}
		if len(st.Data.Result) != 1 || st.Data.Result[0].Metric["connector"] != "codebank-results-opensearch" {
			return fmt.Errorf("kafka_connect_connector_status{job=\"connect\",status=\"running\"} = %+v", st.Data.Result)
		}
		return nil
	})
	if !strings.Contains(out.String(), "Search index retention: the search server has neither ILM nor ISM") {
		t.Errorf("make run does not say that nothing deletes old indices locally:\n%s", out.String())
	}

	// Every command printed under "Try it:", as printed, from the directory holding .data.
	printed := printedCommands(out.String())
	if len(printed) != 5 {
		t.Fatalf("%d commands printed, want 5:\n%s", len(printed), out.String())
	}
	wants := []string{"APPROVED", "Used:       BRL 12.34", "1 purchase, total BRL 12.34", "PAYMENT_STATUS_APPROVED", `"usedCents": "2468"`}
	for i, line := range printed {
		line = strings.Replace(line, "go run ./cmd/codebank", bin, 1)
		cmd := exec.Command("sh", "-c", line)
		cmd.Dir = root
		got, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(got), wants[i]) {
			t.Errorf("printed command %q = %v:\n%s\nwant %q", line, err, got, wants[i])
		}
	}

	// codebank, as `make run` built it: the CLI and the other roles, with make run's keys.
	addr := "--addr=127.0.0.1" + grpcPort
	codebank := func(stdout io.Writer, args ...string) error {
		cmd := exec.Command(bin, args...)
		cmd.Dir = root
		cmd.Stdout, cmd.Stderr = stdout, io.Discard
		return cmd.Run()
	}
	var pay bytes.Buffer
	err = codebank(&pay, "pay", addr, "--card", c.Number, "--holder", c.Holder, "--exp", c.Expiry, "--cvv", c.CVV, "--amount", "999999")
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(pay.String(), "Insufficient credit") {
		t.Fatalf("pay over the limit = %v: %s", err, pay.String())
	}
	// Without its keys the CLI is refused, and says why.
	var denied bytes.Buffer
	cmd := exec.Command(bin, "cards", "get", c.Number, addr)
	cmd.Dir = t.TempDir() // no .data here
	cmd.Stderr = &denied
	if err := cmd.Run(); err == nil || !strings.Contains(denied.String(), "UNAUTHENTICATED") {
		t.Errorf("cards get without keys = %v: %s", err, denied.String())
	}
	// The store is served beside the API, with the demo cards on its help panel.
	page, err := http.Get("http://127.0.0.1" + httpPort + "/products/stoneware-mug")
	if err != nil {
		t.Fatal(err)
	}
	html, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(html), "Code Store") || !strings.Contains(string(html), c.Number[12:]) {
		t.Errorf("product page: %d, want Code Store with the demo card ending %s", page.StatusCode, c.Number[12:])
	}
	var st bytes.Buffer
	if err := codebank(&st, "statement", addr, c.Number); err != nil || !strings.Contains(st.String(), "2 purchases, total BRL 24.68") {
		t.Fatalf("statement = %v:\n%s", err, st.String())
	}
	// The store's pages also run alone, in front of this bank, with make run's secrets.
	dev, err := loadDevCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	webRole, err := startChild(bin, filepath.Join(t.TempDir(), "web.log"), dev.Env, "web", "--brokers", "127.0.0.1"+kafkaPort,
		"--http-addr", "127.0.0.1"+webPort, "--ops-addr", "127.0.0.1"+webOps, "--bank-addr", "127.0.0.1"+grpcPort, "--storage-dir", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := webRole.waitReady(context.Background(), "http://127.0.0.1"+webOps+"/readyz", time.Minute); err != nil {
		t.Fatalf("codebank web: %v", err)
	}
	if resp, err := http.Get("http://127.0.0.1" + webPort + "/"); err != nil || resp.StatusCode != 200 {
		t.Errorf("codebank web: GET / = %v %v", resp, err)
	}
	if err := webRole.stop(); err != nil {
		t.Errorf("codebank web: %v", err)
	}

	// Kafka Connect indexes the three authorizations within seconds.
	var figures string
	wait.For(t, 30*time.Second, "the index to hold the 3 authorizations", func() error {
		var an bytes.Buffer
		if err := codebank(&an, "analytics", "--search-url", "http://127.0.0.1"+searchPort); err != nil {
			return err
		}
		if figures = an.String(); !strings.Contains(figures, "total            3 ") {
			return fmt.Errorf("codebank analytics says:\n%s", figures)
		}
		return nil
	})
	if !strings.Contains(figures, "approved         2") || !strings.Contains(figures, "Insufficient credit") {
		t.Errorf("analytics:\n%s", figures)
	}
	stop(cancel, done)

	// A restart keeps the cards, their balances and the keys.
	cancel, done, _ = start()
	defer stop(cancel, done)
	var got bytes.Buffer
	if err := codebank(&got, "cards", "get", c.Number, addr); err != nil || !strings.Contains(got.String(), "Used:       BRL 24.68") {
		t.Fatalf("cards get after restart = %v:\n%s", err, got.String())
	}

	// The load generator, open loop against the running bank, with make run's keys: every call
	// answered.
	t.Setenv("CODEBANK_MERCHANT_KEY", creds["CODEBANK_MERCHANT_KEY"])
	t.Setenv("CODEBANK_ADMIN_KEY", creds["CODEBANK_ADMIN_KEY"])
	var bench bytes.Buffer
	if err := program.Run(context.Background(), []string{"bench", addr, "--cards", "40", "--schedule", "~20:1s,50:3s"}, &bench, io.Discard); err != nil {
		t.Fatalf("bench: %v\n%s", err, bench.String())
	}
	if !strings.Contains(bench.String(), "| 50 | 50 | 150 | 0 |") {
		t.Errorf("bench did not send 150 calls at 50/s without errors:\n%s", bench.String())
	}
}

// printedCommands returns the commands `codebank-dev run` prints under "Try it:".
func printedCommands(out string) []string {
	_, after, ok := strings.Cut(out, "Try it:\n")
	if !ok {
		return nil
	}
	var cmds []string
	for _, line := range strings.Split(after, "\n") {
		if !strings.HasPrefix(line, "  ") {
			break
		}
		cmds = append(cmds, strings.TrimSpace(line))
	}
	return cmds
}
