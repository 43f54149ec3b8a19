package localkafka

import (
	"bytes"
	"context"
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

// slf4jSimpleVersion is the slf4j-simple backend added next to Kafka's jars.
// Kafka 4.0 to 4.4 log through slf4j-api 1.7.36 and ship no backend of their
// own, so without it the broker would log nothing but three NOP-logger lines.
const slf4jSimpleVersion = "1.7.36"

// completeMarker is the file written into CacheDir/kafka-<version> once its
// libs directory is complete.
const completeMarker = "complete"

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.\-]*$`)

// Fetch resolves the Kafka broker jars (org.apache.kafka:kafka_2.13 and its
// runtime dependencies, plus an slf4j backend) from Maven Central into
// cacheDir/kafka-<version>/libs and returns that directory. An empty version
// means DefaultVersion; an empty cacheDir means $CODEBANK_CACHE_DIR, else
// os.UserCacheDir()/codebank. The jars are resolved once: later calls only
// check a marker file. Concurrent callers, in this or other processes, are
// serialised by a file lock so only one of them runs Maven.
func Fetch(ctx context.Context, version, cacheDir string) (string, error) {
	return fetch(ctx, version, cacheDir, slog.Default())
}

func fetch(ctx context.Context, version, cacheDir string, log *slog.Logger) (string, error) {
	if version == "" {
		version = DefaultVersion
	}
	if !versionRE.MatchString(version) {
		return "", fmt.Errorf("localkafka: invalid Kafka version %q", version)
	}
	if cacheDir == "" {
		d, err := defaultCacheDir()
		if err != nil {
			return "", err
		}
		cacheDir = d
	}
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return "", fmt.Errorf("localkafka: cache dir: %w", err)
	}
	home := filepath.Join(cacheDir, "kafka-"+version)
	libs := filepath.Join(home, "libs")
	marker := filepath.Join(home, completeMarker)
	if fileExists(marker) {
		return libs, nil
	}

	if _, err := findJava(); err != nil {
		return "", err
	}
	if _, err := exec.LookPath("mvn"); err != nil {
		return "", errors.New("localkafka: mvn not found on PATH: install Apache Maven (Debian: apt-get install -y maven)")
	}
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return "", fmt.Errorf("localkafka: cache dir: %w", err)
	}
	unlock, err := lockFile(ctx, filepath.Join(cacheDir, "kafka-"+version+".lock"), func() {
		log.Info("localkafka: waiting for another process fetching the Kafka jars", "version", version)
	})
	if err != nil {
		return "", err
	}
	defer unlock()
	if fileExists(marker) {
		return libs, nil
	}

	log.Info("localkafka: fetching Kafka jars from Maven Central (first run only)", "version", version, "dir", libs)
	start := time.Now()
	tmp, err := os.MkdirTemp(cacheDir, ".kafka-"+version+"-fetch-")
	if err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	defer os.RemoveAll(tmp)
	pom := filepath.Join(tmp, "pom.xml")
	if err := os.WriteFile(pom, []byte(pomXML(version)), 0o644); err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	tmpLibs := filepath.Join(tmp, "libs")
	cmd := exec.CommandContext(ctx, "mvn", "-q", "-B", "-f", pom,
		"dependency:copy-dependencies", "-DincludeScope=runtime", "-DoutputDirectory="+tmpLibs)
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("localkafka: fetching Kafka %s jars: %w", version, ctx.Err())
		}
		return "", fmt.Errorf("localkafka: mvn dependency:copy-dependencies for org.apache.kafka:kafka_2.13:%s failed (is Maven Central reachable?): %w\n%s",
			version, err, tail(out, 40))
	}
	if jars, _ := filepath.Glob(filepath.Join(tmpLibs, "kafka_2.13-*.jar")); len(jars) == 0 {
		return "", fmt.Errorf("localkafka: mvn did not copy kafka_2.13-%s.jar into %s", version, tmpLibs)
	}

	// Whatever is in home without a marker is a leftover of an interrupted
	// fetch: replace it.
	if err := os.RemoveAll(home); err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	if err := os.MkdirAll(home, 0o755); err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	if err := os.Rename(tmpLibs, libs); err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	if err := writeFileAtomic(marker, []byte("org.apache.kafka:kafka_2.13:"+version+"\n")); err != nil {
		return "", fmt.Errorf("localkafka: %w", err)
	}
	log.Info("localkafka: fetched Kafka jars", "version", version, "took", time.Since(start).Round(time.Millisecond))
	return libs, nil
}

func pomXML(version string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>codebank.localkafka</groupId>
  <artifactId>kafka-broker-libs</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>` + version + `</version>
    </dependency>
    <dependency>
      <groupId>org.slf4j</groupId>
      <artifactId>slf4j-simple</artifactId>
      <version>` + slf4jSimpleVersion + `</version>
    </dependency>
  </dependencies>
</project>
`
}

func defaultCacheDir() (string, error) {
	if d := os.Getenv("CODEBANK_CACHE_DIR"); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("localkafka: no cache dir (set CODEBANK_CACHE_DIR): %w", err)
	}
	return filepath.Join(d, "codebank"), nil
}

const installJava = "install a Java 17+ runtime (Debian: apt-get install -y openjdk-17-jre-headless)"

// javaInfo is a checked Java runtime.
type javaInfo struct {
	path    string // the java executable
	version string // its "java -version" output
	err     error  // why it cannot run Kafka
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
		return nil, errors.New("localkafka: java not found on PATH: " + installJava)
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
		j.err = fmt.Errorf("localkafka: %s -version failed (%v): %s; %s", path, err, j.version, installJava)
		return j
	}
	m := javaVersionRE.FindStringSubmatch(j.version)
	if m == nil {
		j.err = fmt.Errorf("localkafka: cannot read the Java version from %s -version: %s", path, j.version)
		return j
	}
	major, _ := strconv.Atoi(m[1])
	if major == 1 && m[2] != "" { // 1.8 and older
		major, _ = strconv.Atoi(m[2])
	}
	if major < 17 {
		j.err = fmt.Errorf("localkafka: %s is Java %d but Kafka 4 needs Java 17+: %s and put it first on PATH", path, major, installJava)
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
