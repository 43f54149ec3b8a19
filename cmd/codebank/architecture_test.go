package main

import (
	"bufio"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// mapRow is a row of ARCHITECTURE.md's file map.
type mapRow struct {
	paths     []string // slash-separated, from the repository's root; directories end in /
	audiences []string
	text      string // what it holds
}

// audiences are who a path of the file map is for.
var audiences = []string{"serving", "operations", "developer tools", "tests"}

var backticked = regexp.MustCompile("`([^`]+)`")

// fileMap reads the rows of ARCHITECTURE.md's file map. A path cell's first path is from the
// root; a later one that is not is relative to the first one's parent ("`a/b/`, `c/`" names
// a/b/ and a/c/).
func fileMap(t *testing.T, root string) []mapRow {
	t.Helper()
	f, err := os.Open(filepath.Join(root, "ARCHITECTURE.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var rows []mapRow
	inMap := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			inMap = line == "## File map"
			continue
		}
		cells := strings.Split(line, " | ")
		if !inMap || !strings.HasPrefix(line, "| `") || len(cells) != 3 {
			continue
		}
		r := mapRow{text: cells[2]}
		for i, m := range backticked.FindAllStringSubmatch(cells[0], -1) {
			p := m[1]
			if i > 0 && !exists(root, p) {
				p = path.Join(path.Dir(strings.TrimSuffix(r.paths[0], "/")), p) + "/"
			}
			r.paths = append(r.paths, p)
		}
		for _, a := range strings.Split(cells[1], ",") {
			r.audiences = append(r.audiences, strings.TrimSpace(a))
		}
		rows = append(rows, r)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(rows) < 20 {
		t.Fatalf("ARCHITECTURE.md's file map has %d rows: is its table still under \"## File map\", as | path | audience | what it holds |?", len(rows))
	}
	return rows
}

func exists(root, p string) bool {
	_, err := os.Stat(filepath.Join(root, filepath.FromSlash(p)))
	return err == nil
}

// TestArchitectureMap: ARCHITECTURE.md's file map names every Go package (in a row of its own,
// or in its parent's row as a relative path), every path at the top of the repository, and an
// audience for each row; and every path it names exists.
func TestArchitectureMap(t *testing.T) {
	root := filepath.Join("..", "..")
	rows := fileMap(t, root)
	for _, r := range rows {
		for _, p := range r.paths {
			if !exists(root, p) {
				t.Errorf("the file map names %s, which does not exist", p)
			}
		}
		for _, a := range r.audiences {
			if !slices.Contains(audiences, a) {
				t.Errorf("the file map's row of %v says its audience is %q, not one of %q", r.paths, a, audiences)
			}
		}
	}

	// Every package: a row of its own, or named in the row of its nearest mapped parent.
	packages := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, root+string(filepath.Separator)))
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata" || rel == "third_party/goka" || ignored(root, rel)) {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".go") {
			packages[path.Dir(rel)+"/"] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(packages) < 30 {
		t.Fatalf("found only %d packages under %s", len(packages), root)
	}
	for pkg := range packages {
		var nearest *mapRow
		var near string
		for i, r := range rows {
			for _, p := range r.paths {
				if strings.HasPrefix(pkg, p) && len(p) > len(near) {
					nearest, near = &rows[i], p
				}
			}
		}
		switch {
		case nearest == nil:
			t.Errorf("the file map does not name the package %s", pkg)
		case near != pkg && !strings.Contains(nearest.text, "`"+strings.TrimPrefix(pkg, near)):
			t.Errorf("the file map names neither the package %s nor %s in the row of %s", pkg, strings.TrimPrefix(pkg, near), near)
		}
	}

	// Every path at the top of the repository.
	top, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range top {
		name := e.Name()
		if name == ".git" || ignored(root, name) {
			continue
		}
		named := false
		for _, r := range rows {
			for _, p := range r.paths {
				named = named || p == name || strings.HasPrefix(p, name+"/")
			}
		}
		if !named {
			t.Errorf("the file map does not name %s, at the top of the repository", name)
		}
	}
}

// ignored reports whether .gitignore leaves rel out (its patterns are names from the root,
// "/name" or "/name/", and globs of names, "*.test").
func ignored(root, rel string) bool {
	b, err := os.ReadFile(filepath.Join(root, ".gitignore"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "/") {
			if strings.TrimSuffix(strings.TrimPrefix(line, "/"), "/") == rel {
				return true
			}
			continue
		}
		if ok, _ := path.Match(line, path.Base(rel)); ok {
			return true
		}
	}
	return false
}
