package grafana_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/codebank/codebank/monitoring/grafana"
)

// TestFilesAreGenerated fails while dashboards/ differs from what the code builds.
func TestFilesAreGenerated(t *testing.T) {
	want, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	checkedIn, err := filepath.Glob(filepath.Join(grafana.Dir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range checkedIn {
		if _, ok := want[filepath.Base(f)]; !ok {
			t.Errorf("%s is not built by the code: run `go generate ./monitoring/grafana`", f)
		}
	}
	for name, b := range want {
		got, err := os.ReadFile(filepath.Join(grafana.Dir, name))
		if err != nil {
			t.Errorf("%v: run `go generate ./monitoring/grafana`", err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is stale: run `go generate ./monitoring/grafana`", name)
		}
	}
}

// TestFilesMatchTheSchema reads each file back, strictly (an unknown field is an error), into the
// SDK's types, generated from Grafana's schema, and validates it.
func TestFilesMatchTheSchema(t *testing.T) {
	plugins.RegisterDefaultPlugins()
	files, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		var d dashboard.Dashboard
		if err := sdkError(d.UnmarshalJSONStrict(b)); err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if err := sdkError(d.Validate()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// sdkError returns err, or nil for the empty list of errors the SDK returns when all is well.
func sdkError(err error) error {
	var errs cog.BuildErrors
	if errors.As(err, &errs) && len(errs) == 0 {
		return nil
	}
	return err
}

// target is what the tests read of a panel's query.
type target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Query      string `json:"query"`
	TimeField  string `json:"timeField"`
	Datasource struct {
		Type, UID string
	} `json:"datasource"`
	Metrics []struct {
		Type, Field string
	} `json:"metrics"`
	BucketAggs []struct {
		Type, Field string
		Settings    struct {
			OrderBy string `json:"orderBy"`
		}
	} `json:"bucketAggs"`
}

type panel struct {
	ID      int      `json:"id"`
	Type    string   `json:"type"`
	Title   string   `json:"title"`
	Targets []target `json:"targets"`
}

func panels(t *testing.T) map[string][]panel {
	t.Helper()
	files, err := grafana.Files()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]panel{}
	for name, b := range files {
		var d struct {
			Panels     []panel `json:"panels"`
			Templating struct {
				List []struct{ Name, Query string } `json:"list"`
			} `json:"templating"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatal(err)
		}
		out[name] = d.Panels
	}
	return out
}

// TestTargetsNameTheirDataSource checks that every query reads a data source variable of its
// type, that every panel has a title and an id of its own, and its queries distinct refIds.
func TestTargetsNameTheirDataSource(t *testing.T) {
	vars := map[string]string{"prometheus": "${" + grafana.PrometheusVar + "}", "elasticsearch": "${" + grafana.SearchVar + "}"}
	for name, ps := range panels(t) {
		ids := map[int]bool{}
		for _, p := range ps {
			if p.Title == "" || ids[p.ID] || p.ID == 0 {
				t.Errorf("%s: panel %d %q: no title, or no id of its own", name, p.ID, p.Title)
			}
			ids[p.ID] = true
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", name, p.Title)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if want, ok := vars[tg.Datasource.Type]; !ok || tg.Datasource.UID != want {
					t.Errorf("%s: panel %q reads %s %s, want a data source variable", name, p.Title, tg.Datasource.Type, tg.Datasource.UID)
				}
				if refs[tg.RefID] || tg.RefID == "" {
					t.Errorf("%s: panel %q: refId %q missing or repeated", name, p.Title, tg.RefID)
				}
				refs[tg.RefID] = true
			}
		}
	}
}

// TestSearchQueriesUseIndexedFields checks the results-index queries against the index template:
// every field they filter, bucket or aggregate on is mapped, and with a type that aggregates
// (keyword, number, date; not text).
func TestSearchQueriesUseIndexedFields(t *testing.T) {
	b, err := os.ReadFile("../../analytics/index-template.json")
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Template struct {
			Mappings struct {
				Properties map[string]struct{ Type string } `json:"properties"`
			} `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	aggregatable := []string{"keyword", "long", "integer", "float", "double", "scaled_float", "date"}
	check := func(where, field string) {
		if typ := tmpl.Template.Mappings.Properties[field].Type; !slices.Contains(aggregatable, typ) {
			t.Errorf("%s: field %q is %q in analytics/index-template.json, want one of %v", where, field, typ, aggregatable)
		}
	}
	luceneField := regexp.MustCompile(`([a-z_]+):`)
	n := 0
	for name, ps := range panels(t) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				if tg.Datasource.Type != "elasticsearch" {
					continue
				}
				n++
				where := name + ": " + p.Title
				check(where, tg.TimeField)
				for _, m := range luceneField.FindAllStringSubmatch(tg.Query, -1) {
					check(where, m[1])
				}
				for _, m := range tg.Metrics {
					if m.Type != "count" {
						check(where, m.Field)
					}
				}
				for _, a := range tg.BucketAggs {
					check(where, a.Field)
				}
			}
		}
	}
	if n == 0 {
		t.Error("no query reads the results index")
	}
}
