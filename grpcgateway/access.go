package grpcgateway

import (
	"context"
	"errors"
	"path"
	"slices"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/apikey"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// Authenticator tells who an API key speaks for (apikey.Store).
type Authenticator interface {
	Authenticate(key string) (apikey.Principal, error)
}

// rule says who may call a method.
type rule struct {
	// roles may call it with their API key.
	roles []apikey.Role
	// open methods need no key: health checks, and server reflection when it is served.
	open bool
	// legacy is the original contract's method: it carries no key, and is served only when
	// Config.Legacy names the merchant its callers are booked as.
	legacy bool
}

// access is the bank's one table of who may call what, over gRPC and REST alike (REST runs
// through the same gRPC server). A method that is not in it is refused to everyone with
// PERMISSION_DENIED: a new method stays closed until it is listed here.
var access = map[string]rule{
	codebankv1.PaymentService_Authorize_FullMethodName: {roles: []apikey.Role{apikey.Merchant}},
	codebankv1.PaymentService_Reverse_FullMethodName:   {roles: []apikey.Role{apikey.Merchant}},
	codebankv1.PaymentService_Refund_FullMethodName:    {roles: []apikey.Role{apikey.Merchant}},

	codebankv1.CardService_IssueCard_FullMethodName:   {roles: []apikey.Role{apikey.Admin}},
	codebankv1.CardService_GetCard_FullMethodName:     {roles: []apikey.Role{apikey.Admin}},
	codebankv1.CardService_LookupCard_FullMethodName:  {roles: []apikey.Role{apikey.Admin}},
	codebankv1.CardService_BlockCard_FullMethodName:   {roles: []apikey.Role{apikey.Admin}},
	codebankv1.CardService_UnblockCard_FullMethodName: {roles: []apikey.Role{apikey.Admin}},
	codebankv1.CardService_VerifyCard_FullMethodName:  {roles: []apikey.Role{apikey.Pages}},
	codebankv1.CardService_PayBill_FullMethodName:     {roles: []apikey.Role{apikey.Admin}},

	codebankv1.StatementService_GetStatement_FullMethodName:   {roles: []apikey.Role{apikey.Admin, apikey.Pages}},
	codebankv1.StatementService_ListStatements_FullMethodName: {roles: []apikey.Role{apikey.Admin, apikey.Pages}},

	paymentpb.PaymentService_Payment_FullMethodName: {legacy: true},

	healthpb.Health_Check_FullMethodName:                                   {open: true},
	healthpb.Health_List_FullMethodName:                                    {open: true},
	healthpb.Health_Watch_FullMethodName:                                   {open: true},
	reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName:      {open: true},
	reflectionv1alpha.ServerReflection_ServerReflectionInfo_FullMethodName: {open: true},
}

// Access returns, for each method of the bank's API, the roles that may call it; the original
// contract's method is listed with the role "legacy", and open methods are left out.
func Access() map[string][]string {
	out := map[string][]string{}
	for m, r := range access {
		switch {
		case r.legacy:
			out[m] = []string{"legacy"}
		case !r.open:
			for _, role := range r.roles {
				out[m] = append(out[m], string(role))
			}
		}
	}
	return out
}

type principalKey struct{}

// PrincipalFrom returns who made the call being served.
func PrincipalFrom(ctx context.Context) (apikey.Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(apikey.Principal)
	return p, ok
}

// bearer returns the API key of a call: its authorization metadata ("Bearer <key>"), which the
// REST gateway fills from the HTTP header.
func bearer(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		if key, ok := strings.CutPrefix(v, "Bearer "); ok {
			return strings.TrimSpace(key)
		}
		if key, ok := strings.CutPrefix(v, "bearer "); ok {
			return strings.TrimSpace(key)
		}
	}
	return ""
}

// admit decides whether the call of method may go on, and returns the context it runs in,
// which carries its principal. Refusals are counted and logged, with the key's id when it has
// one, never the key.
func (s *Server) admit(ctx context.Context, method string) (context.Context, error) {
	r, listed := access[method]
	switch {
	case r.open:
		return ctx, nil
	case r.legacy && s.cfg.Legacy != nil:
		return context.WithValue(ctx, principalKey{}, apikey.Principal{KeyID: "legacy", Role: apikey.Merchant,
			Merchant: s.cfg.Legacy.Merchant, MerchantName: s.cfg.Legacy.MerchantName}), nil
	}
	key := bearer(ctx)
	if s.auth == nil || !listed || r.legacy {
		return nil, s.deny(method, codes.PermissionDenied, key, "", "this method is not open to any caller")
	}
	p, err := s.auth.Authenticate(key)
	if err != nil {
		why := "unknown or revoked API key"
		if errors.Is(err, apikey.ErrMissing) {
			why = "no API key: send the header authorization: Bearer <key>"
		}
		return nil, s.deny(method, codes.Unauthenticated, key, "", why)
	}
	if !slices.Contains(r.roles, p.Role) {
		return nil, s.deny(method, codes.PermissionDenied, key, string(p.Role),
			"API key "+p.KeyID+" ("+string(p.Role)+") may not call "+path.Base(method))
	}
	return context.WithValue(ctx, principalKey{}, p), nil
}

// deny counts and logs a refused call and returns its status.
func (s *Server) deny(method string, code codes.Code, key, role, why string) error {
	id, _ := apikey.KeyID(key)
	s.metrics.denied.WithLabelValues(methodLabel(method), code.String()).Inc()
	s.log.Warn("call refused", "method", method, "code", code.String(), "key_id", id, "role", role, "why", why)
	return status.Error(code, why)
}

func (s *Server) authUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	ctx, err := s.admit(ctx, info.FullMethod)
	if err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (s *Server) authStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if _, err := s.admit(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// methodLabel is a method's name in metrics: "Authorize", or "legacy.Payment".
func methodLabel(fullMethod string) string {
	method := path.Base(fullMethod)
	if pkg := path.Dir(fullMethod); pkg == "/payment.PaymentService" {
		method = "legacy." + method
	}
	return method
}
