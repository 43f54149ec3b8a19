package jvm

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
)

// Build is Java source that Java.Compile compiles into a jar.
type Build struct {
	What      string            // what is compiled, in messages ("the node class")
	Classpath string            // what the sources are compiled against
	Sources   map[string][]byte // Java sources by file name
	Resources map[string][]byte // other files for the jar, by path in the jar
	Jar       string            // the jar to write
}

// Compile compiles b's sources with the javac of j's JDK (else the one on
// PATH) for the Java version FindJava was asked for, and writes the classes
// and resources into b.Jar, which appears complete or not at all.
func (j *Java) Compile(ctx context.Context, b Build) error {
	javac, err := j.javac(b.What)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(b.Jar), ".compile-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src, classes := filepath.Join(tmp, "src"), filepath.Join(tmp, "classes")
	if err := os.Mkdir(src, 0o755); err != nil {
		return err
	}
	args := []string{"--release", strconv.Itoa(j.release), "-proc:none", "-nowarn", "-cp", b.Classpath, "-d", classes}
	for _, name := range slices.Sorted(maps.Keys(b.Sources)) {
		if err := os.WriteFile(filepath.Join(src, name), b.Sources[name], 0o644); err != nil {
			return err
		}
		args = append(args, filepath.Join(src, name))
	}
	if out, err := exec.CommandContext(ctx, javac, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("compiling %s with %s failed: %w\n%s", b.What, javac, err, Tail(out, 40))
	}
	for name, data := range b.Resources {
		path := filepath.Join(classes, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			return err
		}
	}
	jar := filepath.Join(tmp, "out.jar")
	if err := writeJar(jar, classes); err != nil {
		return err
	}
	return os.Rename(jar, b.Jar)
}

// javac returns the javac of the same JDK as j, else the one on PATH.
func (j *Java) javac(what string) (string, error) {
	if real, err := filepath.EvalSymlinks(j.Path); err == nil {
		if c := filepath.Join(filepath.Dir(real), "javac"); fileExists(c) {
			return c, nil
		}
	}
	if c, err := exec.LookPath("javac"); err == nil {
		return c, nil
	}
	return "", fmt.Errorf("javac not found next to %s nor on PATH: %s is compiled once, "+
		"so a JDK is needed, not only a JRE (Debian: apt-get install -y openjdk-%d-jdk-headless)", j.Path, what, j.release)
}

// writeJar stores the files under dir into a new jar (zip) file.
func writeJar(jar, dir string) error {
	f, err := os.Create(jar)
	if err != nil {
		return err
	}
	zw := zip.NewWriter(f)
	err = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		w, err := zw.Create(filepath.ToSlash(rel))
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	})
	return errors.Join(err, zw.Close(), f.Close())
}
