package grpcgateway

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
)

// apiMethods returns the full method names of every service of the bank's API, from the
// descriptors: the public API (codebank.v1) and the original contract (payment).
func apiMethods(t *testing.T) []string {
	t.Helper()
	var methods []string
	for _, file := range []protoreflect.FileDescriptor{codebankv1.File_codebank_v1_cards_proto, codebankv1.File_codebank_v1_payments_proto,
		codebankv1.File_codebank_v1_statements_proto, paymentpb.File_payment_payment_proto} {
		for i := range file.Services().Len() {
			svc := file.Services().Get(i)
			for j := range svc.Methods().Len() {
				methods = append(methods, "/"+string(svc.FullName())+"/"+string(svc.Methods().Get(j).Name()))
			}
		}
	}
	if len(methods) < 10 {
		t.Fatalf("found only %v", methods)
	}
	return methods
}

// TestEveryMethodIsInTheAccessTable: each method of each service is listed, with roles (or as
// the original contract); the table lists nothing that is not a method of some service.
func TestEveryMethodIsInTheAccessTable(t *testing.T) {
	listed := map[string]bool{}
	for _, m := range apiMethods(t) {
		r, ok := access[m]
		switch {
		case !ok:
			t.Errorf("%s is not in the access table: it is closed to everyone until it is listed", m)
		case r.open:
			t.Errorf("%s is open to every caller", m)
		case !r.legacy && len(r.roles) == 0:
			t.Errorf("%s lists no role", m)
		}
		listed[m] = true
	}
	for m, r := range access {
		if listed[m] || r.open {
			continue
		}
		t.Errorf("the access table lists %s, which no service of the API has", m)
	}
	for m := range access {
		if access[m].open {
			name := protoreflect.FullName(m[1 : len(m)-len(methodName(m))-1])
			if _, err := protoregistry.GlobalFiles.FindDescriptorByName(name); err != nil {
				t.Errorf("open method %s: no such service %s", m, name)
			}
		}
	}
}

func methodName(full string) string {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			return full[i+1:]
		}
	}
	return full
}
