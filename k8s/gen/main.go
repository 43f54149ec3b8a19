// Command gen writes the generated manifests of k8s/ (k8s.Generate): `go generate ./k8s`, from
// the repository root or from k8s/. With -generation N -partitions P it writes instead the
// KafkaTopics of generation N of the authorizer's topics, for a move (docs/operations.md,
// "Scale").
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/codebank/codebank/k8s"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run() error {
	generation := flag.Int("generation", 0, "write the KafkaTopics of this generation of the authorizer's topics (2 or more) instead")
	partitions := flag.Int("partitions", 0, "with -generation: its partition count")
	flag.Parse()
	root, err := k8s.RepoRoot()
	if err != nil {
		return err
	}
	var files []k8s.File
	switch {
	case *generation > 1 && *partitions > 0:
		env, err := k8s.ReadEnv(filepath.Join(root, filepath.FromSlash(k8s.EnvFile)))
		if err != nil {
			return err
		}
		d, err := k8s.DeploymentOf(env)
		if err != nil {
			return err
		}
		files = []k8s.File{{Path: k8s.GenerationFileOf(*generation), Data: k8s.GenerationYAML(d, *generation, *partitions)}}
	case *generation != 0 || *partitions != 0:
		return fmt.Errorf("-generation needs a generation of 2 or more and -partitions")
	default:
		if files, err = k8s.Generate(root); err != nil {
			return err
		}
	}
	for _, f := range files {
		path := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.WriteFile(path, f.Data, 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", f.Path)
	}
	return nil
}
