package cli

import (
	"crypto/tls"
	"errors"
	"testing"
)

func TestIsLoopback(t *testing.T) {
	for target, want := range map[string]bool{
		"localhost:50051":            true,
		"LOCALHOST:50051":            true,
		"127.0.0.1:50051":            true,
		"127.9.9.9:50051":            true,
		"[::1]:50051":                true,
		"[::ffff:127.0.0.1]:50051":   true,
		"dns:///localhost:50051":     true,
		"dns://8.8.8.8/[::1]:50051":  true,
		"passthrough:///127.0.0.1:1": true,
		"unix:/run/codebank.sock":    true,
		"unix:///run/codebank.sock":  true,
		"localhost":                  true,
		"ingress:50051":              false,
		"codebank:50051":             false,
		"dns:///statements:50052":    false,
		"10.0.0.7:50051":             false,
		"0.0.0.0:50051":              false,
		"[::]:50051":                 false,
		"localhost.example.com:1":    false,
		"127.0.0.1.nip.io:50051":     false,
		"":                           false,
	} {
		if got := IsLoopback(target); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", target, got, want)
		}
	}
}

// TestDialRefusesPlaintext: keys and card data go in plaintext only to loopback, unless the
// caller says the network is trusted; TLS goes anywhere.
func TestDialRefusesPlaintext(t *testing.T) {
	if _, err := Dial("bank.example:50051", nil, nil, false); !errors.Is(err, ErrPlaintext) {
		t.Errorf("plaintext to bank.example = %v, want ErrPlaintext", err)
	}
	for _, tc := range []struct {
		addr      string
		tls       *tls.Config
		plaintext bool
	}{
		{"localhost:50051", nil, false},
		{"bank.example:50051", nil, true},
		{"bank.example:50051", &tls.Config{}, false},
	} {
		conn, err := Dial(tc.addr, tc.tls, nil, tc.plaintext)
		if err != nil {
			t.Errorf("Dial(%s, TLS %v, plaintext anywhere %v) = %v", tc.addr, tc.tls != nil, tc.plaintext, err)
			continue
		}
		conn.Close()
	}
}
