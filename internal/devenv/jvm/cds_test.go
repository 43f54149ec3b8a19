//go:build unix

package jvm

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestClassDataName pins the archive names: caches hold archives under them.
func TestClassDataName(t *testing.T) {
	java := &Java{Path: "/usr/bin/java", Version: `openjdk version "17"`}
	if cd := NewClassData("/c/cds", "broker", java, ""); cd.archive != "/c/cds/broker-f2950016ae0499f9.jsa" || cd.lock != "/c/cds/broker-f2950016ae0499f9.lock" {
		t.Errorf("archive %s, lock %s", cd.archive, cd.lock)
	}
	if cd := NewClassData("/c/cds", "node", java, "/c/libs/*"); cd.archive != "/c/cds/node-485ea71b0ac755ec.jsa" {
		t.Errorf("archive %s", cd.archive)
	}
}

func TestClassDataDump(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cds")
	java := &Java{Path: "/usr/bin/java", Version: "17"}
	first := NewClassData(dir, "server", java, "")
	stale := first.archive + ".0123456789ab.tmp"
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	if args := first.UseArgs(); args != nil {
		t.Errorf("UseArgs without an archive = %v", args)
	}

	// The first server dumps; another one at the same time neither dumps
	// nor maps.
	args := first.serverArgs()
	if want := []string{"-XX:ArchiveClassesAtExit=" + first.dumpTo, "-Xlog:cds=error,cds+dynamic=error"}; !slices.Equal(args, want) {
		t.Errorf("first serverArgs = %v, want %v", args, want)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale dump left: %v", err)
	}
	second := NewClassData(dir, "server", java, "")
	if args := second.serverArgs(); args != nil {
		t.Errorf("second serverArgs while the first dumps = %v", args)
	}
	second.finish(true)

	// The JVM writes its dump at exit; after an orderly stop it is the
	// archive.
	if err := os.WriteFile(first.dumpTo, []byte("classes"), 0o644); err != nil {
		t.Fatal(err)
	}
	first.finish(true)
	if data, err := os.ReadFile(first.archive); err != nil || string(data) != "classes" {
		t.Fatalf("archive %q, %v", data, err)
	}
	third := NewClassData(dir, "server", java, "")
	want := []string{"-XX:SharedArchiveFile=" + third.archive, "-Xlog:cds=error,cds+dynamic=error"}
	if args := third.serverArgs(); !slices.Equal(args, want) {
		t.Errorf("serverArgs with an archive = %v, want %v", args, want)
	}
	if args := third.UseArgs(); !slices.Equal(args, want) {
		t.Errorf("UseArgs with an archive = %v, want %v", args, want)
	}
	third.finish(true)
}

func TestClassDataKilled(t *testing.T) {
	dir := t.TempDir()
	cd := NewClassData(dir, "server", &Java{Path: "java"}, "")
	cd.serverArgs()
	if err := os.WriteFile(cd.dumpTo, []byte("classes"), 0o644); err != nil {
		t.Fatal(err)
	}
	cd.finish(false)
	if _, err := os.Stat(cd.archive); !os.IsNotExist(err) {
		t.Errorf("a killed server's dump became the archive: %v", err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, "*.tmp")); len(tmp) > 0 {
		t.Errorf("dump left: %v", tmp)
	}
	// The lock is free again: the next server dumps.
	if next := NewClassData(dir, "server", &Java{Path: "java"}, ""); next.serverArgs() == nil || next.dumpTo == "" {
		t.Error("the next server does not dump")
	} else {
		next.finish(false)
	}
}
