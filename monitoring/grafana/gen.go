//go:build ignore

// gen writes the dashboards that package grafana builds into dashboards/, and removes the files
// there it no longer builds: `go generate ./monitoring/grafana`.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/codebank/codebank/monitoring/grafana"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	files, err := grafana.Files()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(grafana.Dir, 0o755); err != nil {
		return err
	}
	old, err := filepath.Glob(filepath.Join(grafana.Dir, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range old {
		if _, ok := files[filepath.Base(f)]; !ok {
			if err := os.Remove(f); err != nil {
				return err
			}
		}
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(grafana.Dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
