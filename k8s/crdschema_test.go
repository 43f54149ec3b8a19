package k8s

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	goyaml "go.yaml.in/yaml/v3"
)

// schema is the part of a CRD's openAPIV3Schema (a structural schema) that validation reads.
type schema struct {
	Type                  string             `json:"type"`
	Properties            map[string]*schema `json:"properties"`
	AdditionalProperties  *schemaOrBool      `json:"additionalProperties"`
	Items                 *schema            `json:"items"`
	Required              []string           `json:"required"`
	Enum                  []any              `json:"enum"`
	Pattern               string             `json:"pattern"`
	Minimum               *float64           `json:"minimum"`
	Maximum               *float64           `json:"maximum"`
	MinLength             *int               `json:"minLength"`
	MaxLength             *int               `json:"maxLength"`
	MinItems              *int               `json:"minItems"`
	MaxItems              *int               `json:"maxItems"`
	Nullable              bool               `json:"nullable"`
	OneOf                 []*schema          `json:"oneOf"`
	AnyOf                 []*schema          `json:"anyOf"`
	AllOf                 []*schema          `json:"allOf"`
	Not                   *schema            `json:"not"`
	PreserveUnknownFields bool               `json:"x-kubernetes-preserve-unknown-fields"`
	IntOrString           bool               `json:"x-kubernetes-int-or-string"`
	EmbeddedResource      bool               `json:"x-kubernetes-embedded-resource"`
	XValidations          []any              `json:"x-kubernetes-validations"`
}

type schemaOrBool struct {
	Schema *schema
	Bool   bool
}

func (s *schemaOrBool) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("true")) || bytes.Equal(b, []byte("false")) {
		s.Bool = string(b) == "true"
		return nil
	}
	s.Bool = true
	return yaml.Unmarshal(b, &s.Schema)
}

// crdSchemas maps "group/version, Kind" to the schema of that served version, from every CRD in
// testdata/crds.
func crdSchemas(t *testing.T) map[string]*schema {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in testdata/crds: %v", err)
	}
	out := map[string]*schema{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := goyaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc == nil {
				continue
			}
			js, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			var crd struct {
				Kind string `json:"kind"`
				Spec struct {
					Group string `json:"group"`
					Names struct {
						Kind string `json:"kind"`
					} `json:"names"`
					Versions []struct {
						Name   string `json:"name"`
						Served bool   `json:"served"`
						Schema struct {
							OpenAPIV3Schema *schema `json:"openAPIV3Schema"`
						} `json:"schema"`
					} `json:"versions"`
				} `json:"spec"`
			}
			if err := yaml.Unmarshal(js, &crd); err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if crd.Kind != "CustomResourceDefinition" {
				t.Fatalf("%s holds a %s", f, crd.Kind)
			}
			for _, v := range crd.Spec.Versions {
				if v.Served && v.Schema.OpenAPIV3Schema != nil {
					out[crd.Spec.Group+"/"+v.Name+", "+crd.Spec.Names.Kind] = v.Schema.OpenAPIV3Schema
				}
			}
		}
	}
	return out
}

// validateSchema checks value against s as the API server would for a custom resource:
// types, formats of the structural schema, required fields, enums, patterns, bounds,
// oneOf/anyOf/allOf/not; and, with strict, fields the schema does not know (which the API
// server would silently prune, so a misspelt field would be lost) are errors. It does not run
// CEL rules (x-kubernetes-validations).
func validateSchema(s *schema, v any, path string, strict bool) []string {
	if s == nil {
		return nil
	}
	var errs []string
	fail := func(format string, args ...any) { errs = append(errs, path+": "+fmt.Sprintf(format, args...)) }
	if v == nil {
		if !s.Nullable && s.Type != "" {
			fail("null, want %s", s.Type)
		}
		return errs
	}
	typ := s.Type
	if _, isMap := v.(map[string]any); typ == "" && isMap && (len(s.Required) > 0 || len(s.Properties) > 0) {
		// A value validation (a branch of oneOf, anyOf...) on an object: its fields, without
		// the type.
		typ = "object"
	}
	switch {
	case s.IntOrString:
		switch v.(type) {
		case string, float64, int, int64:
		default:
			fail("%T, want an integer or a string", v)
		}
	case typ == "object":
		m, ok := v.(map[string]any)
		if !ok {
			fail("%T, want an object", v)
			return errs
		}
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				fail("missing required field %q", r)
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := path + "." + k
			if ps, ok := s.Properties[k]; ok {
				errs = append(errs, validateSchema(ps, m[k], p, strict)...)
				continue
			}
			if s.AdditionalProperties != nil && s.AdditionalProperties.Bool {
				errs = append(errs, validateSchema(s.AdditionalProperties.Schema, m[k], p, strict)...)
				continue
			}
			if s.EmbeddedResource && (k == "apiVersion" || k == "kind" || k == "metadata") {
				continue
			}
			if strict && !s.PreserveUnknownFields {
				errs = append(errs, p+": unknown field")
			}
		}
	case s.Type == "array":
		a, ok := v.([]any)
		if !ok {
			fail("%T, want an array", v)
			return errs
		}
		if s.MinItems != nil && len(a) < *s.MinItems {
			fail("%d items, want at least %d", len(a), *s.MinItems)
		}
		if s.MaxItems != nil && len(a) > *s.MaxItems {
			fail("%d items, want at most %d", len(a), *s.MaxItems)
		}
		for i, item := range a {
			errs = append(errs, validateSchema(s.Items, item, fmt.Sprintf("%s[%d]", path, i), strict)...)
		}
	case s.Type == "string":
		str, ok := v.(string)
		if !ok {
			fail("%T (%v), want a string", v, v)
			return errs
		}
		if s.Pattern != "" {
			re, err := regexp.Compile(s.Pattern)
			if err != nil {
				fail("pattern %q: %v", s.Pattern, err)
			} else if !re.MatchString(str) {
				fail("%q does not match %s", str, s.Pattern)
			}
		}
		if s.MinLength != nil && len(str) < *s.MinLength {
			fail("%q shorter than %d", str, *s.MinLength)
		}
		if s.MaxLength != nil && len(str) > *s.MaxLength {
			fail("%q longer than %d", str, *s.MaxLength)
		}
	case s.Type == "integer", s.Type == "number":
		n, ok := v.(float64)
		if !ok {
			fail("%T (%v), want a %s", v, v, s.Type)
			return errs
		}
		if s.Type == "integer" && n != math.Trunc(n) {
			fail("%v, want an integer", n)
		}
		if s.Minimum != nil && n < *s.Minimum {
			fail("%v below the minimum %v", n, *s.Minimum)
		}
		if s.Maximum != nil && n > *s.Maximum {
			fail("%v above the maximum %v", n, *s.Maximum)
		}
	case s.Type == "boolean":
		if _, ok := v.(bool); !ok {
			fail("%T (%v), want a boolean", v, v)
		}
	}
	if len(s.Enum) > 0 && !slices.ContainsFunc(s.Enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		fail("%v, want one of %v", v, s.Enum)
	}
	// Value validations: their branches name only some fields, so unknown ones are not
	// theirs to judge.
	for _, sub := range s.AllOf {
		errs = append(errs, validateSchema(sub, v, path, false)...)
	}
	if len(s.OneOf) > 0 {
		n := 0
		for _, sub := range s.OneOf {
			if len(validateSchema(sub, v, path, false)) == 0 {
				n++
			}
		}
		if n != 1 {
			fail("matches %d of the oneOf alternatives, want exactly 1", n)
		}
	}
	if len(s.AnyOf) > 0 && !slices.ContainsFunc(s.AnyOf, func(sub *schema) bool { return len(validateSchema(sub, v, path, false)) == 0 }) {
		fail("matches none of the anyOf alternatives")
	}
	if s.Not != nil && len(validateSchema(s.Not, v, path, false)) == 0 {
		fail("matches what it must not")
	}
	return errs
}

// validateCustomResource checks a custom resource against its CRD's schema: everything but
// apiVersion, kind and metadata, which the API server checks itself (metadata as an
// ObjectMeta: decodeStrictly does that here).
func validateCustomResource(s *schema, obj map[string]any) []string {
	rest := map[string]any{}
	for k, v := range obj {
		if k != "metadata" && k != "apiVersion" && k != "kind" {
			rest[k] = v
		}
	}
	return validateSchema(s, rest, "", true)
}

// TestSchemaValidator: the validator of the CRD schemas finds what it must.
func TestSchemaValidator(t *testing.T) {
	schemas := crdSchemas(t)
	topic := schemas["kafka.strimzi.io/v1, KafkaTopic"]
	if topic == nil {
		t.Fatal("no KafkaTopic schema")
	}
	for _, c := range []struct {
		doc  string
		want string // part of the first error, or "" for none
	}{
		{`{"apiVersion":"kafka.strimzi.io/v1","kind":"KafkaTopic","metadata":{"name":"a"},"spec":{"partitions":3,"replicas":3,"config":{"x":"y"}}}`, ""},
		{`{"apiVersion":"kafka.strimzi.io/v1","kind":"KafkaTopic","metadata":{"name":"a"},"spec":{"partition":3}}`, ".spec.partition: unknown field"},
		{`{"apiVersion":"kafka.strimzi.io/v1","kind":"KafkaTopic","metadata":{"name":"a"},"spec":{"partitions":"3"}}`, "want a integer"},
	} {
		var v map[string]any
		if err := yaml.Unmarshal([]byte(c.doc), &v); err != nil {
			t.Fatal(err)
		}
		errs := validateCustomResource(topic, v)
		switch {
		case c.want == "" && len(errs) > 0:
			t.Errorf("%s: %v, want no error", c.doc, errs)
		case c.want != "" && (len(errs) == 0 || !strings.Contains(errs[0], c.want)):
			t.Errorf("%s: %v, want %q", c.doc, errs, c.want)
		}
	}
	user := schemas["kafka.strimzi.io/v1, KafkaUser"]
	var v map[string]any
	yaml.Unmarshal([]byte(`{"spec":{"authorization":{"type":"simple","acls":[{"resource":{"type":"topic","name":"a"},"operations":["Reed"]}]}}}`), &v)
	if errs := validateSchema(user, v, "", true); len(errs) == 0 || !strings.Contains(errs[0], "want one of") {
		t.Errorf("an unknown ACL operation: %v, want an enum error", errs)
	}
}
