package localsearch

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is the OpenSearch version run by Start. The 2.19 line is the last
// that runs on Java 17 and still answers as Elasticsearch 7.10.2 with
// compatibility.override_main_response_version.
const Version = "2.19.6"

// log4jVersion matches the log4j-api that org.opensearch:opensearch:2.19.6
// depends on; OpenSearch needs log4j-core at run time but does not declare it.
const log4jVersion = "2.25.4"

// nodeSource is the main class of the node: an org.opensearch.node.Node
// subclass that loads its modules (HTTP transport, analysis, mapper-extras,
// reindex) from the classpath instead of a distribution's modules directory.
// It is compiled once into CacheDir/opensearch-<version>/node-<hash>.jar.
//
//go:embed LocalSearchNode.java
var nodeSource []byte

// nodeMainClass is the class declared in LocalSearchNode.java.
const nodeMainClass = "codebank.localsearch.LocalSearchNode"

// completeMarker is the file written into CacheDir/opensearch-<version> once
// its libs directory is complete.
const completeMarker = "complete"

// installation is a fetched OpenSearch: its jars and the compiled node class.
type installation struct {
	home    string // CacheDir/opensearch-<version>
	libs    string // the OpenSearch jars
	nodeJar string // the compiled LocalSearchNode
}

// classpath returns the java -cp argument: the node jar first, then the
// libs directory (CDS archives need jars, not class directories).
func (in *installation) classpath() string {
	return in.nodeJar + string(os.PathListSeparator) + filepath.Join(in.libs, "*")
}

// fetch resolves the OpenSearch jars from Maven Central into
// cacheDir/opensearch-<version>/libs and compiles the node class, once; later
// calls only check that the files are there. Concurrent callers, in this or
// other processes, are serialised by a file lock.
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
		return nil, fmt.Errorf("localsearch: cache dir: %w", err)
	}
	sum := sha256.Sum256(nodeSource)
	in := &installation{home: filepath.Join(cacheDir, "opensearch-"+Version)}
	in.libs = filepath.Join(in.home, "libs")
	in.nodeJar = filepath.Join(in.home, "node-"+hex.EncodeToString(sum[:6])+".jar")
	marker := filepath.Join(in.home, completeMarker)
	if fileExists(marker) && fileExists(in.nodeJar) {
		return in, nil
	}

	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("localsearch: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "opensearch-"+Version+".lock"), func() {
		log.Info("localsearch: waiting for another process fetching the OpenSearch jars", "version", Version)
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
	if !fileExists(in.nodeJar) {
		if err := compileNode(ctx, in, java, log); err != nil {
			return nil, err
		}
	}
	return in, nil
}

func fetchJars(ctx context.Context, cacheDir string, in *installation, log *slog.Logger) error {
	if _, err := exec.LookPath("mvn"); err != nil {
		return errors.New("localsearch: mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)")
	}
	log.Info("localsearch: fetching OpenSearch jars from Maven Central (first run only)", "version", Version, "dir", in.libs)
	start := time.Now()
	tmp, err := os.MkdirTemp(cacheDir, ".opensearch-"+Version+"-fetch-")
	if err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	defer os.RemoveAll(tmp)
	pom := filepath.Join(tmp, "pom.xml")
	if err := os.WriteFile(pom, []byte(pomXML()), 0o644); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	tmpLibs := filepath.Join(tmp, "libs")
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", pom,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmpLibs)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("localsearch: fetching OpenSearch %s jars: %w", Version, ctx.Err())
		}
		return fmt.Errorf("localsearch: mvn dependency:copy-dependencies for org.opensearch:opensearch:%s failed (is Maven Central reachable?): %w\n%s",
			Version, err, tail(out, 40))
	}
	if !fileExists(filepath.Join(tmpLibs, "opensearch-"+Version+".jar")) {
		return fmt.Errorf("localsearch: mvn did not copy opensearch-%s.jar into %s", Version, tmpLibs)
	}
	// Whatever is in home without a marker is a leftover of an interrupted
	// fetch: replace it.
	if err := os.RemoveAll(in.home); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	if err := os.MkdirAll(in.home, 0o755); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	if err := os.Rename(tmpLibs, in.libs); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(in.home, completeMarker), []byte("org.opensearch:opensearch:"+Version+"\n")); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	log.Info("localsearch: fetched OpenSearch jars", "version", Version, "took", time.Since(start).Round(time.Millisecond))
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
  <groupId>codebank.localsearch</groupId>
  <artifactId>opensearch-node-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
` + dep("org.opensearch", "opensearch", Version) +
		dep("org.opensearch.plugin", "transport-netty4-client", Version) +
		dep("org.opensearch.plugin", "analysis-common", Version) +
		dep("org.opensearch.plugin", "mapper-extras-client", Version) +
		dep("org.opensearch.plugin", "reindex-client", Version) +
		dep("org.apache.logging.log4j", "log4j-core", log4jVersion) +
		`  </dependencies>
</project>
`
}

// compileNode compiles LocalSearchNode.java against the jars and writes the
// class into in.nodeJar.
func compileNode(ctx context.Context, in *installation, java *javaInfo, log *slog.Logger) error {
	javac, err := findJavac(java)
	if err != nil {
		return err
	}
	log.Info("localsearch: compiling the node class", "jar", in.nodeJar)
	tmp, err := os.MkdirTemp(in.home, ".compile-")
	if err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "LocalSearchNode.java")
	if err := os.WriteFile(src, nodeSource, 0o644); err != nil {
		return fmt.Errorf("localsearch: %w", err)
	}
	classes := filepath.Join(tmp, "classes")
	cmd := exec.CommandContext(ctx, javac, "--release", "17", "-proc:none", "-nowarn",
		"-cp", filepath.Join(in.libs, "*"), "-d", classes, src)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("localsearch: compiling LocalSearchNode.java with %s failed: %w\n%s", javac, err, tail(out, 40))
	}
	jar := in.nodeJar + ".tmp" + strconv.Itoa(os.Getpid())
	if err := writeJar(jar, classes); err != nil {
		os.Remove(jar)
		return fmt.Errorf("localsearch: %w", err)
	}
	if err := os.Rename(jar, in.nodeJar); err != nil {
		os.Remove(jar)
		return fmt.Errorf("localsearch: %w", err)
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
	return "", errors.New("localsearch: javac not found next to " + java.path + " nor on PATH: the node class is compiled once, " +
		"so a JDK is needed, not only a JRE (Debian: apt-get install -y openjdk-17-jdk-headless)")
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("CODEBANK_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localsearch: no cache dir (set CODEBANK_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "codebank"), nil
}

const installJava = "install a Java 17+ JDK (Debian: apt-get install -y openjdk-17-jdk-headless)"

// javaInfo is a checked Java runtime.
type javaInfo struct {
	path    string // the java executable
	version string // its "java -version" output
	err     error  // why it cannot run OpenSearch
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
		return nil, errors.New("localsearch: java not found on PATH: " + installJava)
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
		j.err = fmt.Errorf("localsearch: %s -version failed (%v): %s; %s", path, err, j.version, installJava)
		return j
	}
	m := javaVersionRE.FindStringSubmatch(j.version)
	if m == nil {
		j.err = fmt.Errorf("localsearch: cannot read the Java version from %s -version: %s", path, j.version)
		return j
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 and older
		major, _ = strconv.Atoi(m[2])
	}
	if major < 17 {
		j.err = fmt.Errorf("localsearch: %s is Java %d but this needs Java 17+: %s and put it first on PATH", path, major, installJava)
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
