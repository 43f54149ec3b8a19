package localconnect

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/codebank/codebank/connect"
)

// Version is the Kafka Connect version run by Start, the same as the
// broker's (localkafka.DefaultVersion).
const Version = "4.1.1"

// slf4jSimpleVersion is the slf4j backend added next to the worker's jars:
// Kafka 4.1 logs through slf4j-api 1.7.36 and Maven brings no backend.
const slf4jSimpleVersion = "1.7.36"

// completeMarker is the file written into CacheDir/connect-<version> once
// its libs directory is complete.
const completeMarker = "complete"

// pluginName is the directory, under the plugin path, of Code Bank's
// OpenSearch sink connector.
const pluginName = "codebank-opensearch-sink"

// installation is a fetched Kafka Connect with the compiled sink connector.
type installation struct {
	home       string // CacheDir/connect-<version>
	libs       string // the worker's jars
	pluginPath string // the worker's plugin.path: one directory per plugin
}

// classpath returns the worker's java -cp argument.
func (in *installation) classpath() string { return filepath.Join(in.libs, "*") }

// fetch resolves the Kafka Connect jars from Maven Central into
// cacheDir/connect-<version>/libs and compiles the sink connector into a
// plugin directory, once; later calls only check that the files are there.
// Concurrent callers, in this or other processes, are serialised by a file
// lock.
func fetch(ctx context.Context, cacheDir string, java *javaInfo, log *slog.Logger) (*installation, error) {
	if cacheDir == "" {
		d, err := defaultCacheDir()
		if err != nil {
			return nil, err
		}
		cacheDir = d
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, fmt.Errorf("localconnect: cache dir: %w", err)
	}
	sources, err := connect.SinkSources()
	if err != nil {
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		fmt.Fprintf(h, "%s\n%d\n", name, len(sources[name]))
		h.Write(sources[name])
	}
	in := &installation{home: filepath.Join(cacheDir, "connect-"+Version)}
	in.libs = filepath.Join(in.home, "libs")
	in.pluginPath = filepath.Join(in.home, "plugins-"+hex.EncodeToString(h.Sum(nil)[:6]))
	marker := filepath.Join(in.home, completeMarker)
	if fileExists(marker) && fileExists(in.pluginPath) {
		return in, nil
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("localconnect: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "connect-"+Version+".lock"), func() {
		log.Info("localconnect: waiting for another process fetching the Kafka Connect jars", "version", Version)
	})
	if err != nil {
		return nil, err
	}
	defer unlock()

	if !fileExists(marker) {
		if err := fetchJars(ctx, cacheDir, in, log); err != nil {
			return nil, err
		}
	}
	if !fileExists(in.pluginPath) {
		if err := buildPlugin(ctx, in, sources, java, log); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func fetchJars(ctx context.Context, cacheDir string, in *installation, log *slog.Logger) error {
	if _, err := exec.LookPath("mvn"); err != nil {
		return errors.New("localconnect: mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)")
	}
	log.Info("localconnect: fetching Kafka Connect jars from Maven Central (first run only)", "version", Version, "dir", in.libs)
	start := time.Now()
	tmp, err := os.MkdirTemp(cacheDir, ".connect-"+Version+"-fetch-")
	if err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	defer os.RemoveAll(tmp)
	pom := filepath.Join(tmp, "pom.xml")
	if err := os.WriteFile(pom, []byte(pomXML()), 0o644); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	tmpLibs := filepath.Join(tmp, "libs")
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", pom,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmpLibs)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("localconnect: fetching Kafka Connect %s jars: %w", Version, ctx.Err())
		}
		return fmt.Errorf("localconnect: mvn dependency:copy-dependencies for org.apache.kafka:connect-runtime:%s failed (is Maven Central reachable?): %w\n%s",
			Version, err, tail(out, 40))
	}
	if !fileExists(filepath.Join(tmpLibs, "connect-runtime-"+Version+".jar")) {
		return fmt.Errorf("localconnect: mvn did not copy connect-runtime-%s.jar into %s", Version, tmpLibs)
	}
	// Whatever is in home without a marker is a leftover of an interrupted
	// fetch: replace it.
	if err := os.RemoveAll(in.home); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := os.MkdirAll(in.home, 0o755); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := os.Rename(tmpLibs, in.libs); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(in.home, completeMarker), []byte("org.apache.kafka:connect-runtime:"+Version+"\n")); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	log.Info("localconnect: fetched Kafka Connect jars", "version", Version, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

func pomXML() string {
	dep := func(group, artifact, version string) string {
		return "    <dependency><groupId>" + group + "</groupId><artifactId>" + artifact +
			"</artifactId><version>" + version + "</version></dependency>\n"
	}
	return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>codebank.localconnect</groupId>
  <artifactId>connect-worker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
` + dep("org.apache.kafka", "connect-runtime", Version) +
		dep("org.apache.kafka", "connect-json", Version) +
		dep("org.apache.kafka", "connect-transforms", Version) +
		dep("org.slf4j", "slf4j-simple", slf4jSimpleVersion) +
		`  </dependencies>
</project>
`
}

// buildPlugin compiles the sink connector against the worker's jars into
// in.pluginPath/codebank-opensearch-sink/codebank-opensearch-sink.jar, with
// the service file that plugin.discovery=service_load looks for.
func buildPlugin(ctx context.Context, in *installation, sources map[string][]byte, java *javaInfo, log *slog.Logger) error {
	javac, err := findJavac(java)
	if err != nil {
		return err
	}
	log.Info("localconnect: compiling the OpenSearch sink connector", "dir", in.pluginPath)
	tmp, err := os.MkdirTemp(in.home, ".plugins-")
	if err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	args := []string{"--release", "17", "-proc:none", "-nowarn", "-cp", in.classpath(), "-d", filepath.Join(tmp, "classes")}
	for name, data := range sources {
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			return fmt.Errorf("localconnect: %w", err)
		}
		args = append(args, filepath.Join(src, name))
	}
	if out, err := exec.CommandContext(ctx, javac, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("localconnect: compiling the sink connector with %s failed: %w\n%s", javac, err, tail(out, 40))
	}
	services := filepath.Join(tmp, "classes", "META-INF", "services")
	if err := os.MkdirAll(services, 0o755); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := os.WriteFile(filepath.Join(services, "org.apache.kafka.connect.sink.SinkConnector"),
		[]byte(connect.OpenSearchSinkClass+"\n"), 0o644); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	plugin := filepath.Join(tmp, "plugins", pluginName)
	if err := os.MkdirAll(plugin, 0o755); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := writeJar(filepath.Join(plugin, pluginName+".jar"), filepath.Join(tmp, "classes")); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	if err := os.Rename(filepath.Join(tmp, "plugins"), in.pluginPath); err != nil {
		return fmt.Errorf("localconnect: %w", err)
	}
	return nil
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
	if cerr := zw.Close(); err == nil {
		err = cerr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// findJavac returns the javac of the same JDK as java, else the one on PATH.
func findJavac(java *javaInfo) (string, error) {
	if real, err := filepath.EvalSymlinks(java.path); err == nil {
		if c := filepath.Join(filepath.Dir(real), "javac"); fileExists(c) {
			return c, nil
		}
	}
	if c, err := exec.LookPath("javac"); err == nil {
		return c, nil
	}
	return "", errors.New("localconnect: javac not found next to " + java.path + " nor on PATH: the sink connector is compiled once, " +
		"so a JDK is needed, not only a JRE (Debian: apt-get install -y openjdk-17-jdk-headless)")
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("CODEBANK_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localconnect: no cache dir (set CODEBANK_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "codebank"), nil
}

const installJava = "install a Java 17+ JDK (Debian: apt-get install -y openjdk-17-jdk-headless)"

// javaInfo is a checked Java runtime.
type javaInfo struct {
	path    string // the java executable
	version string // its "java -version" output
	err     error  // why it cannot run Kafka Connect
}

var (
	javaMu    sync.Mutex
	javaCache = map[string]*javaInfo{}
)

var javaVersionRE = regexp.MustCompile(`version "([0-9]+)(?:\.([0-9]+))?`)

// findJava returns the java executable on PATH after checking that it is a
// Java 17 or newer runtime. The check runs once per executable.
func findJava() (*javaInfo, error) {
	path, err := exec.LookPath("java")
	if err != nil {
		return nil, errors.New("localconnect: java not found on PATH: " + installJava)
	}
	javaMu.Lock()
	defer javaMu.Unlock()
	j, ok := javaCache[path]
	if !ok {
		j = checkJava(path)
		javaCache[path] = j
	}
	if j.err != nil {
		return nil, j.err
	}
	return j, nil
}

func checkJava(path string) *javaInfo {
	j := &javaInfo{path: path}
	out, err := exec.Command(path, "-version").CombinedOutput()
	j.version = string(bytes.TrimSpace(out))
	if err != nil {
		j.err = fmt.Errorf("localconnect: %s -version failed (%v): %s; %s", path, err, j.version, installJava)
		return j
	}
	m := javaVersionRE.FindStringSubmatch(j.version)
	if m == nil {
		j.err = fmt.Errorf("localconnect: cannot read the Java version from %s -version: %s", path, j.version)
		return j
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 and older
		major, _ = strconv.Atoi(m[2])
	}
	if major < 17 {
		j.err = fmt.Errorf("localconnect: %s is Java %d but this needs Java 17+: %s and put it first on PATH", path, major, installJava)
	}
	return j
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

// tail returns the last n lines of b.
func tail(b []byte, n int) string {
	s := strings.TrimRight(string(b), "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
