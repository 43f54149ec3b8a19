// Package localsearch fetches, starts and stops a single local OpenSearch
// node that speaks the Elasticsearch 7 REST API, for local development and
// integration tests, without Docker.
//
// The node is OpenSearch 2.19 (see Version) run from its Maven Central jars
// with the modules transport-netty4 (HTTP), analysis-common, mapper-extras
// and reindex, and no security plugin: plain HTTP on 127.0.0.1, no users. It
// reports version 7.10.2 on GET / (compatibility.override_main_response_version),
// so Elasticsearch 7 clients such as github.com/olivere/elastic/v7 (with
// sniffing off) accept it.
//
// Only Java 17+ (a JDK: a small main class is compiled once) and Maven need
// to be installed. Start launches the node as a child java process and
// returns once GET /_cluster/health answers green or yellow; Node.Stop shuts
// it down.
package localsearch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

const (
	defaultHeapMB = 512
	// startTimeout bounds the wait for a started node to answer.
	startTimeout = 120 * time.Second
	// stopTimeout bounds the orderly shutdown before SIGKILL.
	stopTimeout = 30 * time.Second
	// portAttempts is how often Start tries a fresh free port when another
	// process grabbed the picked one before the node bound it.
	portAttempts = 3
	// clusterName is fixed: a data directory belongs to its cluster.
	clusterName = "localsearch"
)

// Options configures Start. The zero value starts a node in a temporary
// directory on a free port.
type Options struct {
	// CacheDir is the jar cache root; default $CODEBANK_CACHE_DIR, else
	// os.UserCacheDir()/codebank. Jars go into CacheDir/opensearch-<version>.
	CacheDir string
	// DataDir holds the node's data (DataDir/data), its configuration
	// (DataDir/config/opensearch.yml, written on every start) and node.log.
	// If empty, a temporary directory is created and removed by Stop; else
	// indices survive restarts on the same DataDir.
	DataDir string
	// HTTPPort is the HTTP port on 127.0.0.1; 0 picks a free port. The
	// node-to-node transport port is the first free one of 9300-9400.
	HTTPPort int
	// HeapMB is the maximum Java heap in MiB; default 512.
	HeapMB int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
}

// Node is a running OpenSearch node started by Start.
type Node struct {
	port    int
	dataDir string
	tempDir bool
	log     *slog.Logger

	cmd     *exec.Cmd
	logFile *os.File
	logFrom int64 // size of node.log before this process started
	cds     *classData
	exited  chan struct{} // closed when the java process has exited
	waitErr error         // cmd.Wait's result, set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// portInUseError reports that the node could not bind its HTTP port.
type portInUseError struct{ port int }

func (e *portInUseError) Error() string {
	return fmt.Sprintf("port %d is already in use", e.port)
}

// bindFailureRE finds the port in OpenSearch's "BindHttpException: Failed to
// bind to 127.0.0.1:PORT" message.
var bindFailureRE = regexp.MustCompile(`BindHttpException[^\n]*Failed to bind to [^\s\]]*:([0-9]+)`)

// Start fetches the jars and compiles the node class if needed, starts the
// node as a child java process and waits until GET /_cluster/health answers
// green or yellow. ctx bounds the start-up only (including a first fetch);
// the node runs until Stop is called or the calling process dies. If the
// node exits or does not answer within two minutes, the error includes the
// tail of node.log.
func Start(ctx context.Context, opts Options) (*Node, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.HeapMB <= 0 {
		opts.HeapMB = defaultHeapMB
	}
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	in, err := fetch(ctx, opts.CacheDir, java, log)
	if err != nil {
		return nil, err
	}

	dataDir, tempDir := opts.DataDir, false
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "localsearch-"); err != nil {
			return nil, fmt.Errorf("localsearch: %w", err)
		}
		tempDir = true
	} else if dataDir, err = filepath.Abs(dataDir); err != nil {
		return nil, fmt.Errorf("localsearch: data dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dataDir, "config"), 0o755); err != nil {
		return nil, cleanup(fmt.Errorf("localsearch: data dir: %w", err), dataDir, tempDir)
	}

	for attempt := 1; ; attempt++ {
		port := opts.HTTPPort
		if port == 0 {
			if port, err = pickPort(); err != nil {
				return nil, cleanup(err, dataDir, tempDir)
			}
		}
		n, err := launch(ctx, java, in, dataDir, port, opts, log)
		var busy *portInUseError
		if errors.As(err, &busy) && attempt < portAttempts && opts.HTTPPort == 0 {
			log.Info("localsearch: the picked port was taken before the node bound it, retrying with another", "port", busy.port)
			continue
		}
		if err != nil {
			return nil, cleanup(err, dataDir, tempDir)
		}
		n.tempDir = tempDir
		return n, nil
	}
}

func cleanup(err error, dataDir string, tempDir bool) error {
	if tempDir {
		os.RemoveAll(dataDir)
	}
	return err
}

// launch writes opensearch.yml, starts the java process and waits for the
// node to answer.
func launch(ctx context.Context, java *javaInfo, in *installation, dataDir string, port int, opts Options, log *slog.Logger) (*Node, error) {
	start := time.Now()
	if err := os.WriteFile(filepath.Join(dataDir, "config", "opensearch.yml"), []byte(nodeConfig(dataDir, port)), 0o644); err != nil {
		return nil, fmt.Errorf("localsearch: %w", err)
	}
	cds := newClassData(in, java)

	logPath := filepath.Join(dataDir, "node.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		cds.finish(false)
		return nil, fmt.Errorf("localsearch: %w", err)
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	fmt.Fprintf(logFile, "=== localsearch: %s starting OpenSearch %s on 127.0.0.1:%d ===\n",
		time.Now().Format(time.RFC3339), Version, port)

	args := append(jvmArgs(opts.HeapMB, dataDir), cds.nodeArgs()...)
	args = append(args, "-cp", in.classpath(), nodeMainClass, dataDir)
	cmd := exec.Command(java.path, args...)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		cds.finish(false)
		return nil, fmt.Errorf("localsearch: starting java: %w", err)
	}
	n := &Node{
		port:    port,
		dataDir: dataDir,
		log:     log,
		cmd:     cmd,
		logFile: logFile,
		logFrom: logFrom,
		cds:     cds,
		exited:  make(chan struct{}),
	}
	go func() {
		n.waitErr = cmd.Wait()
		close(n.exited)
	}()

	if err := n.waitReady(ctx); err != nil {
		n.kill()
		cds.finish(false)
		logTail := n.logTail(40)
		n.logFile.Close()
		if m := bindFailureRE.FindStringSubmatch(logTail); m != nil {
			p, _ := strconv.Atoi(m[1])
			err = fmt.Errorf("%w (%w)", err, &portInUseError{port: p})
		}
		return nil, fmt.Errorf("localsearch: node on %s did not start: %w\n--- tail of %s ---\n%s", n.HostPort(), err, logPath, logTail)
	}
	log.Info("localsearch: node started", "url", n.URL(), "version", Version, "dataDir", dataDir,
		"took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// jvmArgs returns the node's JVM options: those of OpenSearch's jvm.options
// that matter here, a small heap, and C1-only JIT compilation, which halves
// the start-up time on a small machine at the cost of peak speed that local
// development and tests do not need.
func jvmArgs(heapMB int, dataDir string) []string {
	return []string{
		"-Xms" + strconv.Itoa(min(256, heapMB)) + "m",
		"-Xmx" + strconv.Itoa(heapMB) + "m",
		"-Xss1m",
		"-XX:+UseG1GC",
		"-XX:TieredStopAtLevel=1",
		"-XX:-UsePerfData",
		"-XX:+HeapDumpOnOutOfMemoryError",
		"-XX:HeapDumpPath=" + dataDir,
		"-Djava.awt.headless=true",
		"-Dfile.encoding=UTF-8",
		"-Djna.nosys=true",
		"-Dio.netty.noUnsafe=true",
		"-Dio.netty.noKeySetOptimization=true",
		"-Dio.netty.recycler.maxCapacityPerThread=0",
		"-Dlog4j.shutdownHookEnabled=false",
		"-Dlog4j2.disable.jmx=true",
	}
}

// nodeConfig renders opensearch.yml. Values are JSON strings, which YAML
// reads as they are.
func nodeConfig(dataDir string, port int) string {
	var buf bytes.Buffer
	buf.WriteString("# Written by localsearch on every start.\n")
	set := func(k string, v any) {
		b, _ := json.Marshal(v)
		fmt.Fprintf(&buf, "%s: %s\n", k, b)
	}
	set("cluster.name", clusterName)
	set("node.name", clusterName)
	set("path.data", filepath.Join(dataDir, "data"))
	set("path.logs", filepath.Join(dataDir, "logs"))
	set("discovery.type", "single-node")
	set("network.host", "127.0.0.1")
	set("http.port", port)
	set("compatibility.override_main_response_version", true)
	set("cluster.routing.allocation.disk.threshold_enabled", false)
	set("action.auto_create_index", true)
	set("logger.level", "WARN")
	return buf.String()
}

// pickPort is freePort; tests replace it.
var pickPort = freePort

// freePort picks a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localsearch: picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls GET /_cluster/health until it reports green or yellow, the
// process exits, ctx is done or startTimeout passes.
func (n *Node) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 3 * time.Second}
	url := n.URL() + "/_cluster/health"
	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	var lastErr error
	for {
		res := make(chan error, 1)
		go func() { res <- probe(client, url) }()
		var err error
		select {
		case err = <-res:
		case <-n.exited:
			return fmt.Errorf("java exited: %v", n.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("no green or yellow cluster health within %s (last error: %v)", startTimeout, lastErr)
		}
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-time.After(100 * time.Millisecond):
		case <-n.exited:
			return fmt.Errorf("java exited: %v", n.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("no green or yellow cluster health within %s (last error: %v)", startTimeout, lastErr)
		}
	}
}

// probe succeeds if url answers a cluster health of green or yellow.
func probe(client *http.Client, url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	var health struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &health); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if health.Status != "green" && health.Status != "yellow" {
		return fmt.Errorf("cluster health is %q", health.Status)
	}
	return nil
}

// logTail returns the last n lines written to node.log by this process.
func (n *Node) logTail(lines int) string {
	f, err := os.Open(filepath.Join(n.dataDir, "node.log"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const maxBytes = 64 << 10
	from := n.logFrom
	if fi, err := f.Stat(); err == nil && fi.Size()-from > maxBytes {
		from = fi.Size() - maxBytes
	}
	data, err := io.ReadAll(io.NewSectionReader(f, from, maxBytes))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	// Stack frames crowd out the messages that say what went wrong.
	var kept []byte
	for line := range bytes.Lines(data) {
		if t := bytes.TrimSpace(line); !bytes.HasPrefix(t, []byte("at ")) && !bytes.HasPrefix(t, []byte("... ")) {
			kept = append(kept, line...)
		}
	}
	return tail(kept, lines)
}

// kill stops the process at once and waits for it.
func (n *Node) kill() {
	select {
	case <-n.exited:
	default:
		_ = n.cmd.Process.Kill()
		<-n.exited
	}
}

// URL returns the node's HTTP address, "http://127.0.0.1:PORT".
func (n *Node) URL() string { return "http://" + n.HostPort() }

// HostPort returns the node's HTTP address as "127.0.0.1:PORT", the form
// that clients configured with host addresses instead of URLs take.
func (n *Node) HostPort() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// DataDir returns the directory holding the node's data, configuration and
// node.log.
func (n *Node) DataDir() string { return n.dataDir }

// Stop shuts the node down: it sends SIGTERM for an orderly shutdown, waits
// up to 30 seconds, then sends SIGKILL. It removes the DataDir if Start
// created it. It returns an error if the node had to be killed or had
// already exited on its own (with the tail of node.log). Stop is safe to call
// more than once; later calls return the first call's result.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() { n.stopErr = n.stop() })
	return n.stopErr
}

func (n *Node) stop() error {
	start := time.Now()
	var errs []error
	orderly := false
	select {
	case <-n.exited:
		errs = append(errs, fmt.Errorf("localsearch: node on %s had exited before Stop (%v)\n--- tail of %s ---\n%s",
			n.HostPort(), n.waitErr, filepath.Join(n.dataDir, "node.log"), n.logTail(40)))
	default:
		if err := terminate(n.cmd.Process); err != nil {
			errs = append(errs, fmt.Errorf("localsearch: signalling node: %w", err))
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-n.exited:
			timer.Stop()
			orderly = true
		case <-timer.C:
			n.kill()
			errs = append(errs, fmt.Errorf("localsearch: node on %s did not shut down within %s and was killed", n.HostPort(), stopTimeout))
		}
	}
	n.cds.finish(orderly)
	n.logFile.Close()
	if n.tempDir {
		if err := os.RemoveAll(n.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("localsearch: removing data dir: %w", err))
		}
	}
	n.log.Info("localsearch: node stopped", "url", n.URL(), "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}
