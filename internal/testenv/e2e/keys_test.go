package e2e_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/wait"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestKeysFileFailsClosed runs a statements role (a role that admits callers by the keys file)
// and makes its keys file empty, malformed, then deletes it: each time every key is refused
// (UNAUTHENTICATED), and the role says so in its log, in codebank_api_keys_revoked and on
// /readyz (503). The good file again admits the keys again.
func TestKeysFileFailsClosed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	prefix := kafkatest.Name(t) + "-"
	common := []string{"--brokers", servers.Broker, "--topic-prefix", prefix, "--partitions", "2", "--reply-partitions", "2"}
	if out, err := exec.CommandContext(ctx, binary, append([]string{"setup"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	keysFile := filepath.Join(t.TempDir(), "api-keys")
	good, err := os.ReadFile(banktest.KeysFile(t))
	if err != nil {
		t.Fatal(err)
	}
	write := func(b []byte) {
		t.Helper()
		// As a Secret is updated: a complete file renamed into place.
		tmp := keysFile + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, keysFile); err != nil {
			t.Fatal(err)
		}
	}
	write(good)
	grpcAddr, httpAddr, ops := addr(), addr(), addr()
	stmts := startRole(t, "statements", "http://"+ops+"/readyz", append([]string{"statements", "--storage-dir", t.TempDir(), "--grpc-addr", grpcAddr,
		"--http-addr", httpAddr, "--ops-addr", ops, "--api-keys-file", keysFile}, common...)...)
	stmts.waitReady(t, 2*time.Minute)
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	statements := codebankv1.NewStatementServiceClient(conn)
	call := func() error {
		_, err := statements.ListStatements(ctxT(t), &codebankv1.ListStatementsRequest{CardId: "gzNcUY7KgaoXOFX_qNg2gQ"})
		return err
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + ops + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	admitted := func(what string) {
		t.Helper()
		wait.For(t, time.Minute, "the keys to be admitted "+what, func() error {
			if err := call(); status.Code(err) == codes.Unauthenticated {
				return err
			}
			if code, body := get("/readyz"); code != http.StatusOK {
				return fmt.Errorf("/readyz = %d %s", code, body)
			}
			return nil
		})
	}
	admitted("at start")

	for _, tc := range []struct {
		name  string
		spoil func()
	}{
		{"empty", func() { write(nil) }},
		{"malformed", func() { write([]byte("test-ops admin not-a-hash\n")) }},
		{"deleted", func() {
			if err := os.Remove(keysFile); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		tc.spoil()
		wait.For(t, time.Minute, "every key to be refused with the keys file "+tc.name, func() error {
			if err := call(); status.Code(err) != codes.Unauthenticated {
				return fmt.Errorf("a call = %v, want UNAUTHENTICATED", err)
			}
			return nil
		})
		if code, body := get("/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, apikey.ErrRevoked.Error()) {
			t.Errorf("keys file %s: /readyz = %d %q, want 503 saying every key is revoked", tc.name, code, body)
		}
		if _, body := get("/metrics"); !strings.Contains(body, "\ncodebank_api_keys_revoked 1\n") {
			t.Errorf("keys file %s: the metrics do not say codebank_api_keys_revoked 1", tc.name)
		}
		if b, _ := os.ReadFile(stmts.logFile); !strings.Contains(string(b), "every key is revoked") {
			t.Errorf("keys file %s: the log does not say every key is revoked:\n%s", tc.name, tail(string(b), 2000))
		}
		write(good)
		admitted("with the good file again, after it was " + tc.name)
		if _, body := get("/metrics"); !strings.Contains(body, "\ncodebank_api_keys_revoked 0\n") {
			t.Errorf("after the keys file %s was fixed: codebank_api_keys_revoked is not 0", tc.name)
		}
	}
}
