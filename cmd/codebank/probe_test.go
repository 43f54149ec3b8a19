package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codebank/codebank/grpcgateway"
)

// TestProbe: `codebank probe` succeeds on a role's operations port once it is ready, and fails,
// saying why, while it is not or when nothing answers.
func TestProbe(t *testing.T) {
	var ready atomic.Bool
	mux := http.NewServeMux()
	grpcgateway.OpsRoutes(prometheus.NewRegistry(), func() error {
		if !ready.Load() {
			return errors.New("recovering state")
		}
		return nil
	}, false)(mux)
	srv := httptest.NewServer(mux)
	addr := strings.TrimPrefix(srv.URL, "http://")

	probe := func(args ...string) error {
		return program.Run(context.Background(), append([]string{"probe", "--ops-addr", addr}, args...), io.Discard, io.Discard)
	}
	if err := probe(); err == nil || !strings.Contains(err.Error(), "503") || !strings.Contains(err.Error(), "recovering state") {
		t.Errorf("probe of a role not ready = %v, want its 503 and reason", err)
	}
	if err := probe("--path", "/healthz"); err != nil {
		t.Errorf("probe --path /healthz of a live role = %v", err)
	}
	ready.Store(true)
	if err := probe(); err != nil {
		t.Errorf("probe of a ready role = %v", err)
	}
	srv.Close()
	if err := probe(); err == nil {
		t.Error("probe with nothing listening succeeded")
	}
	t.Setenv("CODEBANK_OPS_ADDR", "")
	if err := program.Run(context.Background(), []string{"probe"}, io.Discard, io.Discard); err == nil {
		t.Error("probe of a role without an operations address succeeded")
	}
}
