package grpcgateway

import (
	"context"
	"fmt"

	"google.golang.org/grpc/credentials"

	"github.com/codebank/codebank/internal/apikey"
)

// CallerKeys are a client's API keys, one per role it acts in, sent as per-call credentials:
// each call carries the key of a role that the access table lets call its method. A client that
// pays and reads cards, like the CLI, holds a merchant key and an admin key and never chooses
// between them.
type CallerKeys struct {
	Merchant, Admin, Pages string
	// Insecure allows the keys over a connection without TLS: a loopback address, or a mesh
	// that encrypts the hop.
	Insecure bool
}

// Key returns the key CallerKeys send for a method, or false when none of its keys may call it.
func (k CallerKeys) Key(method string) (string, bool) {
	for _, role := range access[method].roles {
		var key string
		switch role {
		case apikey.Merchant:
			key = k.Merchant
		case apikey.Admin:
			key = k.Admin
		case apikey.Pages:
			key = k.Pages
		}
		if key != "" {
			return key, true
		}
	}
	return "", false
}

// GetRequestMetadata implements credentials.PerRPCCredentials.
func (k CallerKeys) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	ri, ok := credentials.RequestInfoFromContext(ctx)
	if !ok {
		return nil, fmt.Errorf("no method to choose an API key for")
	}
	key, ok := k.Key(ri.Method)
	if !ok {
		return nil, nil // open methods need none; others are refused by the bank, which says why
	}
	return map[string]string{"authorization": "Bearer " + key}, nil
}

// RequireTransportSecurity implements credentials.PerRPCCredentials.
func (k CallerKeys) RequireTransportSecurity() bool { return !k.Insecure }
