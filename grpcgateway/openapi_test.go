package grpcgateway

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// TestOpenAPI: the ingress serves the API's OpenAPI document at /openapi.json to a caller
// without a key; it holds every REST route of the protos with its HTTP method, and describes
// every field as protojson writes it: by its proto name, 64-bit integers (cents, *_unix_ms) as
// strings.
func TestOpenAPI(t *testing.T) {
	s, _, _ := newTestServer(t)
	rec := httptest.NewRecorder()
	s.http.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/openapi.json", nil))
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json without a key = %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	var doc struct {
		Swagger     string
		Paths       map[string]map[string]struct{ OperationID string }
		Definitions map[string]struct {
			Properties map[string]struct{ Type, Format string }
		}
		SecurityDefinitions map[string]struct{ Type, In, Name string }
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Swagger != "2.0" || doc.SecurityDefinitions["apiKey"].Name != "authorization" {
		t.Errorf("swagger %q, security %v", doc.Swagger, doc.SecurityDefinitions)
	}
	routes := 0
	for _, fd := range []protoreflect.FileDescriptor{codebankv1.File_codebank_v1_payments_proto, codebankv1.File_codebank_v1_cards_proto,
		codebankv1.File_codebank_v1_statements_proto} {
		for i := 0; i < fd.Services().Len(); i++ {
			svc := fd.Services().Get(i)
			for j := 0; j < svc.Methods().Len(); j++ {
				m := svc.Methods().Get(j)
				rule, _ := proto.GetExtension(m.Options(), annotations.E_Http).(*annotations.HttpRule)
				for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
					for method, path := range map[string]string{"get": r.GetGet(), "post": r.GetPost(), "put": r.GetPut(), "delete": r.GetDelete(), "patch": r.GetPatch()} {
						if path == "" {
							continue
						}
						routes++
						// OpenAPI writes a path parameter {card_id}, as the proto does.
						// An additional binding's operation is GetStatement2.
						if op, ok := doc.Paths[path][method]; !ok || !regexp.MustCompile(`_`+string(m.Name())+`\d*$`).MatchString(op.OperationID) {
							t.Errorf("%s %s (%s) is not in the document: %v", strings.ToUpper(method), path, m.FullName(), doc.Paths[path])
						}
					}
				}
			}
		}
		for k := 0; k < fd.Messages().Len(); k++ {
			checkFields(t, fd.Messages().Get(k), doc.Definitions)
		}
	}
	if routes < 10 {
		t.Errorf("only %d routes found in the protos", routes)
	}
}

var int64Kinds = map[protoreflect.Kind]bool{protoreflect.Int64Kind: true, protoreflect.Sint64Kind: true, protoreflect.Sfixed64Kind: true,
	protoreflect.Uint64Kind: true, protoreflect.Fixed64Kind: true}

// checkFields checks that a message's definition, where the document has one, names each field
// by its proto name and gives 64-bit integers the type string.
func checkFields(t *testing.T, md protoreflect.MessageDescriptor, defs map[string]struct {
	Properties map[string]struct{ Type, Format string }
}) {
	t.Helper()
	def, ok := defs[string(md.Name())]
	if !ok {
		return // a request whose fields all travel in the path, or a message no route uses
	}
	for i := 0; i < md.Fields().Len(); i++ {
		f := md.Fields().Get(i)
		p, ok := def.Properties[string(f.Name())]
		if !ok {
			if !regexp.MustCompile(`^(card_id|month)$`).MatchString(string(f.Name())) { // path parameters
				t.Errorf("%s: field %s is not in the document's definition", md.FullName(), f.Name())
			}
			continue
		}
		if int64Kinds[f.Kind()] && (p.Type != "string" || !strings.HasSuffix(p.Format, "64")) {
			t.Errorf("%s.%s: %s/%s, want a string (protojson writes 64-bit integers as strings)", md.Name(), f.Name(), p.Type, p.Format)
		}
	}
}
