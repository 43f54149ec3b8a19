//go:build unix

package jvm

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeBin makes a directory holding the given shell scripts and puts it on
// PATH: alone, or in front of the system's directories if withSystem.
func fakeBin(t *testing.T, scripts map[string]string, withSystem bool) string {
	t.Helper()
	dir := t.TempDir()
	for name, script := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if withSystem {
		t.Setenv("PATH", dir+string(os.PathListSeparator)+"/usr/bin"+string(os.PathListSeparator)+"/bin")
	} else {
		t.Setenv("PATH", dir)
	}
	return dir
}

func javaVersion(version string) string {
	return "echo 'openjdk version \"" + version + "\" 2024-01-16' >&2\n"
}

func TestFindJava(t *testing.T) {
	const runtime = "install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)"
	const jdk = "install a Java 17+ JDK (Debian: apt-get install -y openjdk-17-jdk-headless)"
	for _, tc := range []struct {
		name    string
		scripts map[string]string
		needJDK bool
		want    string // "" for success
	}{
		{"no java", nil, false, "java not found on PATH: " + runtime},
		{"no java, JDK", nil, true, "java not found on PATH: " + jdk},
		{"old java", map[string]string{"java": javaVersion("11.0.22")}, false, "is Java 11 but this needs Java 17+: " + runtime + " and put it first on PATH"},
		{"old java, JDK", map[string]string{"java": javaVersion("11.0.22")}, true, "is Java 11 but this needs Java 17+: " + jdk},
		{"java 8", map[string]string{"java": javaVersion("1.8.0_392")}, false, "is Java 8 but"},
		{"broken java", map[string]string{"java": "echo 'Error: no JVM' >&2\nexit 3\n"}, false, "-version failed (exit status 3): Error: no JVM; " + runtime},
		{"odd java", map[string]string{"java": "echo 'hello'\n"}, false, "cannot read the Java version from"},
		{"java 17", map[string]string{"java": javaVersion("17.0.15")}, false, ""},
		{"java 21", map[string]string{"java": javaVersion("21.0.2")}, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := fakeBin(t, tc.scripts, false)
			java, err := FindJava(17, tc.needJDK)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("FindJava: %v", err)
				}
				if java.Path != filepath.Join(dir, "java") || !strings.Contains(java.Version, "openjdk version") {
					t.Errorf("FindJava = %+v", java)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("FindJava: err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFindJavaChecksOnce(t *testing.T) {
	dir := fakeBin(t, nil, true)
	count := filepath.Join(dir, "count")
	script := "echo run >> " + count + "\n" + javaVersion("17.0.1")
	if err := os.WriteFile(filepath.Join(dir, "java"), []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := FindJava(17, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := FindJava(21, false); err == nil || !strings.Contains(err.Error(), "is Java 17 but this needs Java 21+") {
		t.Errorf("FindJava(21): %v", err)
	}
	if data, _ := os.ReadFile(count); string(data) != "run\n" {
		t.Errorf("java -version ran %d times, want once", strings.Count(string(data), "run"))
	}
}

func TestDataDir(t *testing.T) {
	d, err := NewDataDir("", "jvmtest-")
	if err != nil || !d.Temp || !strings.HasPrefix(filepath.Base(d.Path), "jvmtest-") {
		t.Fatalf("NewDataDir(\"\") = %+v, %v", d, err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); !os.IsNotExist(err) {
		t.Errorf("temporary %s still there: %v", d.Path, err)
	}

	t.Chdir(t.TempDir())
	d, err = NewDataDir("a/b", "jvmtest-")
	if err != nil || d.Temp || !filepath.IsAbs(d.Path) {
		t.Fatalf("NewDataDir(a/b) = %+v, %v", d, err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(d.Path); err != nil {
		t.Errorf("Remove deleted a caller's directory: %v", err)
	}
	if _, err := NewDataDir(filepath.Join(d.Path, "\x00"), ""); err == nil || !strings.HasPrefix(err.Error(), "data dir: ") {
		t.Errorf("NewDataDir of a bad name: %v", err)
	}
}

func TestFreePorts(t *testing.T) {
	ports, err := freePorts(5)
	if err != nil {
		t.Fatal(err)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ports)))) != 5 {
		t.Errorf("freePorts(5) = %v, not distinct", ports)
	}
}

func TestOnFreePorts(t *testing.T) {
	fixed := 1 // a port no listener can have: not picked
	var calls [][]int
	var retried []int
	got, err := OnFreePorts([]int{0, fixed, 0}, func(ports []int) (string, error) {
		calls = append(calls, ports)
		if len(calls) == 1 { // as if someone took the second picked port first
			return "", fmt.Errorf("no start (%w)", &PortInUseError{Port: ports[2]})
		}
		return "started", nil
	}, func(port int) { retried = append(retried, port) })
	if err != nil || got != "started" || len(calls) != 2 {
		t.Fatalf("OnFreePorts = %q, %v after %d calls", got, err, len(calls))
	}
	for _, ports := range calls {
		if ports[0] == 0 || ports[1] != fixed || ports[2] == 0 || ports[0] == ports[2] {
			t.Errorf("launched with ports %v", ports)
		}
	}
	if !slices.Equal(retried, []int{calls[0][2]}) {
		t.Errorf("retrying(%v), want the taken port %d", retried, calls[0][2])
	}

	// Three attempts at most; a fixed port in use is no reason to retry.
	for _, tc := range []struct {
		ports     []int
		busyIndex int
		calls     int
	}{{[]int{0}, 0, 3}, {[]int{fixed, 0}, 0, 1}} {
		calls := 0
		_, err = OnFreePorts(tc.ports, func(ports []int) (string, error) {
			calls++
			return "", &PortInUseError{Port: ports[tc.busyIndex]}
		}, func(int) {})
		var busy *PortInUseError
		if !errors.As(err, &busy) || calls != tc.calls {
			t.Errorf("ports %v, always busy: %v after %d calls, want %d", tc.ports, err, calls, tc.calls)
		}
	}
}

func TestEscapeProperty(t *testing.T) {
	for in, want := range map[string]string{
		`plain`:    `plain`,
		`C:\dir`:   `C:\\dir`,
		"a\nb\rc":  `a\nb\rc`,
		"  padded": `\  padded`,
	} {
		if got := EscapeProperty(in); got != want {
			t.Errorf("EscapeProperty(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTail(t *testing.T) {
	if got := Tail([]byte("a\nb\nc\n\n"), 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail([]byte("a"), 2); got != "a" {
		t.Errorf("Tail = %q", got)
	}
}

// TestKafkaOptions: the servers' collector is G1 unless asked for the parallel one, never both,
// and an unknown one is refused.
func TestKafkaOptions(t *testing.T) {
	for gc, want := range map[string]string{"": "-XX:+UseG1GC", GCG1: "-XX:+UseG1GC", GCParallel: "-XX:+UseParallelGC"} {
		opts, err := KafkaOptions(Heap(128, 512, HeapGrows), gc)
		if err != nil {
			t.Fatalf("KafkaOptions(%q): %v", gc, err)
		}
		var collectors []string
		for _, o := range opts {
			if strings.HasPrefix(o, "-XX:+Use") && strings.HasSuffix(o, "GC") {
				collectors = append(collectors, o)
			}
		}
		if len(collectors) != 1 || collectors[0] != want {
			t.Errorf("KafkaOptions(%q) chooses %v, want %s", gc, collectors, want)
		}
	}
	if _, err := KafkaOptions(Heap(128, 512, HeapGrows), "zgc"); err == nil {
		t.Error("an unknown collector was accepted")
	}
}

// TestHeap: a growing heap starts small; a fixed one starts at its maximum.
func TestHeap(t *testing.T) {
	if got, want := strings.Join(Heap(256, 512, HeapGrows), " "), "-Xms256m -Xmx512m"; got != want {
		t.Errorf("growing heap: %q, want %q", got, want)
	}
	if got, want := strings.Join(Heap(256, 128, HeapGrows), " "), "-Xms128m -Xmx128m"; got != want {
		t.Errorf("growing heap under its start: %q, want %q", got, want)
	}
	if got, want := strings.Join(Heap(256, 512, HeapFixed), " "), "-Xms512m -Xmx512m"; got != want {
		t.Errorf("fixed heap: %q, want %q", got, want)
	}
}
