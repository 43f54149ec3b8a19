package grpcgateway_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/codebank/codebank/grpcgateway"
	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// apiMethod is one method of the bank's API, from its descriptor.
type apiMethod struct {
	full  string
	desc  protoreflect.MethodDescriptor
	roles []string
}

// policy is who may call what, as README's Security section states it: the access table must
// say exactly this.
var policy = map[string]string{
	"/codebank.v1.PaymentService/Authorize":        "merchant",
	"/codebank.v1.PaymentService/Reverse":          "merchant",
	"/codebank.v1.PaymentService/Refund":           "merchant",
	"/codebank.v1.CardService/IssueCard":           "admin",
	"/codebank.v1.CardService/GetCard":             "admin",
	"/codebank.v1.CardService/LookupCard":          "admin",
	"/codebank.v1.CardService/BlockCard":           "admin",
	"/codebank.v1.CardService/UnblockCard":         "admin",
	"/codebank.v1.CardService/VerifyCard":          "pages",
	"/codebank.v1.CardService/PayBill":             "admin",
	"/codebank.v1.StatementService/GetStatement":   "admin,pages",
	"/codebank.v1.StatementService/ListStatements": "admin,pages",
	"/payment.PaymentService/Payment":              "legacy",
}

func apiMethods(t *testing.T) []apiMethod {
	t.Helper()
	table := grpcgateway.Access()
	var out []apiMethod
	for _, file := range []protoreflect.FileDescriptor{codebankv1.File_codebank_v1_cards_proto, codebankv1.File_codebank_v1_payments_proto,
		codebankv1.File_codebank_v1_statements_proto, paymentpb.File_payment_payment_proto} {
		for i := range file.Services().Len() {
			svc := file.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				full := "/" + string(svc.FullName()) + "/" + string(m.Name())
				out = append(out, apiMethod{full: full, desc: m, roles: table[full]})
			}
		}
	}
	return out
}

// lockedBuffer is a log destination shared by the ingress's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestAccessEveryMethodAndRoute calls every method of every service, from the descriptors, over
// gRPC and over each of its REST routes: without a key (UNAUTHENTICATED, 401), with a key of a
// role the access table does not list for it (PERMISSION_DENIED, 403), with a revoked key
// (UNAUTHENTICATED, 401), and with a key of a listed role (admitted). The original contract is
// served without a key when enabled, and not at all when not. Refusals are counted and logged,
// never with the key; operators' actions are logged with their key's id.
func TestAccessEveryMethodAndRoute(t *testing.T) {
	t.Parallel()
	d := banktest.NewDeployment(t, brokerAddr, kafkatest.Name(t), 2, 2)
	banktest.StartAuthorizer(t, d, "")

	// A keys file of a key per role and one more, revoked below.
	keys := map[string]string{}
	var lines []string
	for _, p := range []apikey.Principal{
		{KeyID: "merchant-1", Role: apikey.Merchant, Merchant: "code-store", MerchantName: "Code Store"},
		{KeyID: "admin-1", Role: apikey.Admin}, {KeyID: "pages-1", Role: apikey.Pages},
		{KeyID: "admin-old", Role: apikey.Admin},
	} {
		k, err := apikey.New(p.KeyID)
		if err != nil {
			t.Fatal(err)
		}
		keys[p.KeyID] = k
		lines = append(lines, apikey.Line(p, k))
	}
	file := filepath.Join(t.TempDir(), "api-keys")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	store, err := apikey.Open(file, prometheus.NewRegistry(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines[:3], "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := store.Reload(); err != nil {
		t.Fatal(err)
	}
	revoked := keys["admin-old"]
	logs := &lockedBuffer{}
	in := banktest.StartIngress(t, d, banktest.IngressOptions{APIKeys: store, Statements: banktest.StartStatementsView(t, d),
		Log: slog.New(slog.NewTextHandler(logs, nil))})
	conn, err := grpc.NewClient(in.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	keyOf := map[string]string{"merchant": keys["merchant-1"], "admin": keys["admin-1"], "pages": keys["pages-1"]}

	grpcCall := func(m apiMethod, key string) error {
		ctx := ctxT(t)
		var opts []grpc.CallOption
		if key != "" {
			opts = append(opts, grpc.PerRPCCredentials(grpcgateway.CallerKeys{Merchant: key, Admin: key, Pages: key, Insecure: true}))
		}
		return conn.Invoke(ctx, m.full, dynamicpb.NewMessage(m.desc.Input()), dynamicpb.NewMessage(m.desc.Output()), opts...)
	}
	restCall := func(method, path, key string) int {
		var body *strings.Reader
		if method == http.MethodGet {
			body = strings.NewReader("")
		} else {
			body = strings.NewReader("{}")
		}
		req, _ := http.NewRequest(method, in.HTTPURL+path, body)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	denied := func(code codes.Code) bool { return code == codes.Unauthenticated || code == codes.PermissionDenied }

	routes := 0
	methods := apiMethods(t)
	if len(methods) != len(policy) {
		t.Errorf("the API has %d methods, the policy %d: state the new ones' callers in README and here", len(methods), len(policy))
	}
	for _, m := range methods {
		if got := strings.Join(m.roles, ","); got != policy[m.full] {
			t.Errorf("%s: the access table lets %q call it, the policy %q", m.full, got, policy[m.full])
			continue
		}
		legacy := m.roles[0] == "legacy"
		var wrong string
		for role, k := range keyOf {
			if !strings.Contains(strings.Join(m.roles, ","), role) {
				wrong = k
			}
		}
		// gRPC.
		if code := status.Code(grpcCall(m, "")); legacy && denied(code) || !legacy && code != codes.Unauthenticated {
			t.Errorf("%s without a key = %v", m.full, code)
		}
		if legacy {
			continue // served without keys, to the merchant the flag names
		}
		if code := status.Code(grpcCall(m, revoked)); code != codes.Unauthenticated {
			t.Errorf("%s with a revoked key = %v, want UNAUTHENTICATED", m.full, code)
		}
		if code := status.Code(grpcCall(m, "cb_admin-1_"+strings.Repeat("A", 43))); code != codes.Unauthenticated {
			t.Errorf("%s with a guessed secret of a known key id = %v, want UNAUTHENTICATED", m.full, code)
		}
		if wrong != "" {
			if code := status.Code(grpcCall(m, wrong)); code != codes.PermissionDenied {
				t.Errorf("%s with a key of an unlisted role = %v, want PERMISSION_DENIED", m.full, code)
			}
		}
		if code := status.Code(grpcCall(m, keyOf[m.roles[0]])); denied(code) {
			t.Errorf("%s with a %s key = %v, want admitted", m.full, m.roles[0], code)
		}
		// REST, every binding of the method.
		rule, _ := proto.GetExtension(m.desc.Options(), annotations.E_Http).(*annotations.HttpRule)
		for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
			method, path := http.MethodGet, r.GetGet()
			if r.GetPost() != "" {
				method, path = http.MethodPost, r.GetPost()
			}
			if path == "" {
				continue
			}
			path = strings.NewReplacer("{card_id}", "gzNcUY7KgaoXOFX_qNg2gQ", "{month}", "2026-11", "{payment_id}", "AQID").Replace(path)
			routes++
			if code := restCall(method, path, ""); code != http.StatusUnauthorized {
				t.Errorf("%s %s without a key = %d, want 401", method, path, code)
			}
			if code := restCall(method, path, revoked); code != http.StatusUnauthorized {
				t.Errorf("%s %s with a revoked key = %d, want 401", method, path, code)
			}
			if wrong != "" {
				if code := restCall(method, path, wrong); code != http.StatusForbidden {
					t.Errorf("%s %s with a key of an unlisted role = %d, want 403", method, path, code)
				}
			}
			if code := restCall(method, path, keyOf[m.roles[0]]); code == http.StatusUnauthorized || code == http.StatusForbidden {
				t.Errorf("%s %s with a %s key = %d, want admitted", method, path, m.roles[0], code)
			}
		}
	}
	if routes < 12 {
		t.Errorf("checked %d REST routes, want every one of the API's", routes)
	}
	if n := banktest.Value(t, in.Registry, "codebank_ingress_denied_total", map[string]string{"method": "IssueCard", "code": "Unauthenticated"}); n < 3 {
		t.Errorf("codebank_ingress_denied_total{IssueCard,Unauthenticated} = %v, want the refusals counted", n)
	}
	for id, k := range keys {
		if strings.Contains(logs.String(), k[len(k)-20:]) {
			t.Errorf("the logs hold key %s", id)
		}
	}
	if !strings.Contains(logs.String(), "key_id=admin-old") || !strings.Contains(logs.String(), "code=PermissionDenied") {
		t.Errorf("refusals are not logged with the key's id and code:\n%s", logs.String())
	}

	// Operators' actions, logged with the key that made them.
	ops := codebankv1.NewCardServiceClient(conn)
	as := grpc.PerRPCCredentials(grpcgateway.CallerKeys{Admin: keyOf["admin"], Insecure: true})
	c, err := ops.IssueCard(ctxT(t), &codebankv1.IssueCardRequest{HolderName: "Maria Silva", LimitCents: 1000}, as)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ops.BlockCard(ctxT(t), &codebankv1.BlockCardRequest{CardId: c.GetCard().GetCardId()}, as); err != nil {
		t.Fatal(err)
	}
	if _, err := ops.UnblockCard(ctxT(t), &codebankv1.UnblockCardRequest{CardId: c.GetCard().GetCardId()}, as); err != nil {
		t.Fatal(err)
	}
	for _, what := range []string{"card issued", "card blocked", "card unblocked"} {
		if !strings.Contains(logs.String(), `msg="`+what+`" card=`+c.GetCard().GetMaskedNumber()) || !strings.Contains(logs.String(), "key_id=admin-1") {
			t.Errorf("%q is not logged with the card and the key's id:\n%s", what, logs.String())
		}
	}
	if strings.Contains(logs.String(), c.GetCard().GetNumber()) {
		t.Error("the logs hold a card number")
	}

	// The original contract, when not enabled, is not served at all.
	closed := banktest.StartIngress(t, d, banktest.IngressOptions{NoLegacy: true, ReplyPartition: 1})
	_, err = paymentpb.NewPaymentServiceClient(closed.Conn).Payment(ctxT(t), &paymentpb.PaymentRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("the original contract on an ingress without --legacy-merchant = %v, want UNIMPLEMENTED", err)
	}
}
