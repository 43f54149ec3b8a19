// Package jvm runs Java servers built from Maven Central jars as child
// processes, for the local servers of development and tests (localkafka,
// localsearch, localconnect).
//
// FindJava finds and checks the java executable and returns a Java, which
// also compiles small classes (Java.Compile). Fetch resolves a FetchSpec's
// Maven dependencies once into an Installation in the cache, serialised
// between processes by a file lock. ClassData keeps a server's class-data
// sharing archive. StartProcess starts a Command as a Process: a java child
// process in its own process group, logging to a file, that
// Process.WaitReady waits for and Process.Stop shuts down. DataDir is the
// directory a server runs in, and OnFreePorts picks its ports. Launch and
// Server are what the launchers share around these: the data directory,
// the ports, the retry and the stop.
//
// Errors carry no package prefix (but Launch's and Server's, which are
// given theirs): callers add theirs.
package jvm

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Java is a checked java executable.
type Java struct {
	Path    string // the java executable
	Version string // its "java -version" output
	release int    // the Java version FindJava was asked for: Compile's --release
}

// javaProbe is what "java -version" told about one executable.
type javaProbe struct {
	version string // the output
	major   int    // 0 if the output has no version
	err     error  // why java -version failed
}

var (
	javaMu     sync.Mutex
	javaProbes = map[string]*javaProbe{}
)

var javaVersionRE = regexp.MustCompile(`version "([0-9]+)(?:\.([0-9]+))?`)

// FindJava returns the java executable on PATH after checking that it is
// Java minMajor or newer; java -version runs once per executable and
// process. The errors say what to install: a JDK if needJDK (the caller
// compiles classes), else a runtime.
func FindJava(minMajor int, needJDK bool) (*Java, error) {
	install := fmt.Sprintf("install a Java %d+ runtime (Debian: apt-get install -y openjdk-%d-jre-headless)", minMajor, minMajor)
	if needJDK {
		install = fmt.Sprintf("install a Java %d+ JDK (Debian: apt-get install -y openjdk-%d-jdk-headless)", minMajor, minMajor)
	}
	path, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("java not found on PATH: " + install)
	}
	javaMu.Lock()
	p, ok := javaProbes[path]
	if !ok {
		p = probeJava(path)
		javaProbes[path] = p
	}
	javaMu.Unlock()
	switch {
	case p.err != nil:
		return nil, fmt.Errorf("%s -version failed (%v): %s; %s", path, p.err, p.version, install)
	case p.major == 0:
		return nil, fmt.Errorf("cannot read the Java version from %s -version: %s", path, p.version)
	case p.major < minMajor:
		return nil, fmt.Errorf("%s is Java %d but this needs Java %d+: %s and put it first on PATH", path, p.major, minMajor, install)
	}
	return &Java{Path: path, Version: p.version, release: minMajor}, nil
}

func probeJava(path string) *javaProbe {
	out, err := exec.Command(path, "-version").CombinedOutput()
	p := &javaProbe{version: string(bytes.TrimSpace(out)), err: err}
	if m := javaVersionRE.FindStringSubmatch(p.version); m != nil {
		p.major, _ = strconv.Atoi(m[1])
		if p.major == 1 && m[2] != "" { // 1.8 and older
			p.major, _ = strconv.Atoi(m[2])
		}
	}
	return p
}

// DataDir is the directory a server keeps its files in: the caller's, or a
// temporary one.
type DataDir struct {
	Path string // absolute
	Temp bool   // made by NewDataDir, deleted by Remove
}

// NewDataDir makes dir absolute and creates it; if dir is empty, it creates
// a temporary directory named pattern (as os.MkdirTemp).
func NewDataDir(dir, pattern string) (DataDir, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", pattern)
		return DataDir{Path: d, Temp: true}, err
	}
	d, err := filepath.Abs(dir)
	if err == nil {
		err = os.MkdirAll(d, 0o755)
	}
	if err != nil {
		return DataDir{}, fmt.Errorf("data dir: %w", err)
	}
	return DataDir{Path: d}, nil
}

// Remove deletes the directory if it is temporary.
func (d DataDir) Remove() error {
	if !d.Temp {
		return nil
	}
	return os.RemoveAll(d.Path)
}

// portAttempts is how often OnFreePorts tries fresh free ports.
const portAttempts = 3

// OnFreePorts calls launch with ports, each 0 replaced by a free port on
// 127.0.0.1 (distinct from each other and from the fixed ones). When launch
// fails with a *PortInUseError for a picked port, which another process took
// before the server bound it, OnFreePorts calls retrying with that port and
// tries again with new free ports, three times in all at most.
func OnFreePorts[T any](ports []int, launch func(ports []int) (T, error), retrying func(port int)) (T, error) {
	for attempt := 1; ; attempt++ {
		picked, err := pickPorts(ports)
		if err != nil {
			var zero T
			return zero, err
		}
		v, err := launch(picked)
		var busy *PortInUseError
		if errors.As(err, &busy) && attempt < portAttempts {
			if i := slices.Index(picked, busy.Port); i >= 0 && ports[i] == 0 {
				retrying(busy.Port)
				continue
			}
		}
		return v, err
	}
}

// pickPorts returns ports with each 0 replaced by a free port, distinct
// from the others.
func pickPorts(ports []int) ([]int, error) {
	for {
		free, err := freePorts(len(ports))
		if err != nil {
			return nil, err
		}
		picked := slices.Clone(ports)
		for i, p := range picked {
			if p == 0 {
				picked[i] = free[i]
			}
		}
		if len(slices.Compact(slices.Sorted(slices.Values(picked)))) == len(picked) {
			return picked, nil
		}
		// A fixed port was also picked.
	}
}

// freePorts picks n distinct free ports on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("picking a free port: %w", err)
		}
		defer l.Close() // held until all are picked, so they differ
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// PortInUseError reports that a server could not bind a listener port.
type PortInUseError struct{ Port int }

func (e *PortInUseError) Error() string {
	return fmt.Sprintf("port %d is already in use", e.Port)
}

// EscapeProperty escapes a value for a java.util.Properties file.
func EscapeProperty(v string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
	v = r.Replace(v)
	if strings.HasPrefix(v, " ") {
		v = `\` + v
	}
	return v
}

// Tail returns the last n lines of b, for error messages quoting a
// command's output.
func Tail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// C1Only limits JIT compilation to the C1 compiler: about half the start-up time of a server
// on a small machine, and one-shot tools, at the cost of speed under steady load.
const C1Only = "-XX:TieredStopAtLevel=1"

// The garbage collectors a server may run with (KafkaOptions): G1, Kafka's own choice, or the
// parallel collector, which spends less CPU on a small heap for pauses of a few milliseconds.
const (
	GCG1       = "g1"
	GCParallel = "parallel"
)

// gcOptions returns the JVM options of a garbage collector, G1 when gc is empty.
func gcOptions(gc string) ([]string, error) {
	switch gc {
	case "", GCG1:
		return []string{"-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35", "-XX:+ExplicitGCInvokesConcurrent"}, nil
	case GCParallel:
		return []string{"-XX:+UseParallelGC"}, nil
	}
	return nil, fmt.Errorf("unknown garbage collector %q: want %s or %s", gc, GCG1, GCParallel)
}

// HeapMode is how a server's Java heap takes its memory (Heap).
type HeapMode int

const (
	// HeapGrows starts the heap small and grows it as the server needs: what tests want, as
	// they start many short-lived servers.
	HeapGrows HeapMode = iota
	// HeapFixed starts the heap at its maximum (-Xms = -Xmx), as servers run in production:
	// the collector never resizes it, and a long run's RSS does not step up when it would.
	// (Its pages are not touched at start, -XX:+AlwaysPreTouch: BENCHMARKS.md, "Memory taken
	// at start", says what that cost.)
	HeapFixed
)

// Heap returns the options of a heap of at most maxMB MiB that starts at startMB if mode is
// HeapGrows.
func Heap(startMB, maxMB int, mode HeapMode) []string {
	if mode == HeapGrows {
		startMB = min(startMB, maxMB)
	} else {
		startMB = maxMB
	}
	return []string{"-Xms" + strconv.Itoa(startMB) + "m", "-Xmx" + strconv.Itoa(maxMB) + "m"}
}

// KafkaOptions are the JVM options Kafka's own scripts (kafka-run-class.sh) start the broker
// and the Connect worker with, on the heap given (Heap), without an hsperfdata file, and with
// slf4j-simple logging at WARN with timestamps. gc chooses the garbage collector (GCG1 when
// empty, as Kafka's scripts do).
func KafkaOptions(heap []string, gc string) ([]string, error) {
	collector, err := gcOptions(gc)
	if err != nil {
		return nil, err
	}
	return append(append(append([]string{}, heap...), collector...),
		"-XX:-UsePerfData",
		"-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
	), nil
}
