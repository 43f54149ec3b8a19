package main

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// declaredMetric is a metric as the code declares it: prometheus.NewCounterVec(
// prometheus.CounterOpts{Name: "…"}, []string{"label", …}) and its kin.
type declaredMetric struct {
	kind   string // counter, gauge, histogram or summary
	labels []string
	at     string // file:line
}

// declaredMetrics finds every metric declared in the non-test Go files under root.
func declaredMetrics(t *testing.T, root string) map[string]declaredMetric {
	t.Helper()
	found := map[string]declaredMetric{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) == 0 {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if pkg, isIdent := selX(sel); !ok || !isIdent || pkg != "prometheus" || !strings.HasPrefix(sel.Sel.Name, "New") {
				return true
			}
			opts, ok := call.Args[0].(*ast.CompositeLit)
			if !ok {
				return true
			}
			var name string
			for _, el := range opts.Elts {
				kv, ok := el.(*ast.KeyValueExpr)
				if key, isIdent := kv.Key.(*ast.Ident); ok && isIdent && key.Name == "Name" {
					if lit, ok := kv.Value.(*ast.BasicLit); ok {
						name, _ = strconv.Unquote(lit.Value)
					}
				}
			}
			if !strings.HasPrefix(name, "codebank_") {
				return true
			}
			kind := strings.ToLower(strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(sel.Sel.Name, "New"), "Vec"), "Func"))
			m := declaredMetric{kind: kind, at: fset.Position(call.Pos()).String()}
			if len(call.Args) > 1 {
				if labels, ok := call.Args[1].(*ast.CompositeLit); ok {
					for _, el := range labels.Elts {
						if lit, ok := el.(*ast.BasicLit); ok {
							l, _ := strconv.Unquote(lit.Value)
							m.labels = append(m.labels, l)
						}
					}
				}
			}
			if prev, dup := found[name]; dup {
				t.Errorf("%s is declared twice: %s and %s", name, prev.at, m.at)
			}
			found[name] = m
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return found
}

func selX(sel *ast.SelectorExpr) (string, bool) {
	if sel == nil {
		return "", false
	}
	id, ok := sel.X.(*ast.Ident)
	if !ok {
		return "", false
	}
	return id.Name, true
}

// TestMetricsDoc: docs/metrics.md lists every metric the code declares, with its type and its
// labels, and nothing else.
func TestMetricsDoc(t *testing.T) {
	root := filepath.Join("..", "..")
	code := declaredMetrics(t, root)
	if len(code) < 15 {
		t.Fatalf("found only %d metrics in the code: %v", len(code), code)
	}
	f, err := os.Open(filepath.Join(root, "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	documented := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		cells := strings.Split(sc.Text(), "|")
		if len(cells) < 6 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`codebank_") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		kind := strings.TrimSpace(cells[2])
		var labels []string
		for _, l := range strings.Split(cells[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" {
				labels = append(labels, l)
			}
		}
		documented[name] = true
		m, ok := code[name]
		switch {
		case !ok:
			t.Errorf("docs/metrics.md lists %s, which the code does not declare", name)
		case m.kind != kind:
			t.Errorf("%s is a %s (%s); docs/metrics.md says %s", name, m.kind, m.at, kind)
		case !slices.Equal(m.labels, labels):
			t.Errorf("%s has labels %v (%s); docs/metrics.md says %v", name, m.labels, m.at, labels)
		}
	}
	for name, m := range code {
		if !documented[name] {
			t.Errorf("%s (%s) is not in docs/metrics.md", name, m.at)
		}
	}
}
