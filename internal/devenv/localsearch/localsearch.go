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
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/codebank/codebank/internal/devenv/jvm"
)

const (
	// startTimeout bounds the wait for a started node to answer.
	startTimeout = 120 * time.Second
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
	// PeakJIT compiles hot code fully (C1 then C2), for steady load: a slower start, and
	// less CPU under load. Default: C1 only, the quicker start tests want.
	PeakJIT bool
	// HeapMB is the maximum Java heap in MiB; default 512.
	HeapMB int
	// Heap is how the heap takes its memory: it grows from a small start (jvm.HeapGrows, the
	// default, for tests), or starts at HeapMB (jvm.HeapFixed), for long runs.
	Heap jvm.HeapMode
	// Nice, when positive, runs the JVM at that niceness (nice(1)): below the servers a
	// payment's answer waits for, on a machine they share.
	Nice int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
}

// Node is a running OpenSearch node started by Start.
type Node struct {
	port int
	srv  *jvm.Server
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
		opts.HeapMB = jvm.DefaultHeapMB
	}
	java, err := jvm.FindJava(javaMajor, true)
	if err != nil {
		return nil, fmt.Errorf("localsearch: %w", err)
	}
	in, err := fetch(ctx, opts.CacheDir, java, log)
	if err != nil {
		return nil, err
	}

	return jvm.Launch("localsearch", "node", opts.DataDir, []int{opts.HTTPPort}, log,
		func(dataDir jvm.DataDir, p []int) (*Node, error) {
			return launch(ctx, java, in, dataDir, p[0], opts, log)
		})
}

// launch writes opensearch.yml, starts the java process and waits for the
// node to answer.
func launch(ctx context.Context, java *jvm.Java, in *jvm.Installation, dataDir jvm.DataDir, port int, opts Options, log *slog.Logger) (*Node, error) {
	start := time.Now()
	config := filepath.Join(dataDir.Path, "config")
	if err := os.MkdirAll(config, 0o755); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(config, "opensearch.yml"), []byte(nodeConfig(dataDir.Path, port)), 0o644); err != nil {
		return nil, err
	}
	n := &Node{port: port}
	proc, err := jvm.StartProcess(jvm.Command{
		Java:      java,
		Options:   jvmArgs(opts.HeapMB, opts.Heap, dataDir.Path, opts.PeakJIT),
		Nice:      opts.Nice,
		CDS:       jvm.NewClassData(filepath.Join(in.Dir, "cds"), "node", java, classpath(in)),
		Classpath: classpath(in),
		Main:      nodeMainClass,
		Args:      []string{dataDir.Path},
		Dir:       dataDir.Path,
		Log:       filepath.Join(dataDir.Path, "node.log"),
		Banner: fmt.Sprintf("=== localsearch: %s starting OpenSearch %s on 127.0.0.1:%d ===",
			time.Now().Format(time.RFC3339), Version, port),
		Name:        "node",
		Addr:        n.HostPort(),
		BindFailure: bindFailureRE,
	})
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 3 * time.Second}
	health := n.URL() + "/_cluster/health"
	if err := proc.WaitReady(ctx, startTimeout, "no green or yellow cluster health", func() error { return probe(client, health) }); err != nil {
		return nil, err
	}
	n.srv = &jvm.Server{Pkg: "localsearch", Name: "node", Dir: dataDir, Proc: proc, Log: log}
	log.Info("localsearch: node started", "url", n.URL(), "version", Version, "dataDir", dataDir.Path,
		"took", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// jvmArgs returns the node's JVM options: those of OpenSearch's jvm.options
// that matter here, a small heap, and, unless peakJIT, C1-only JIT
// compilation, which halves the start-up time on a small machine at the cost
// of peak speed that tests do not need.
func jvmArgs(heapMB int, heap jvm.HeapMode, dataDir string, peakJIT bool) []string {
	args := append(jvm.Heap(256, heapMB, heap),
		"-Xss1m",
		"-XX:+UseG1GC",
		"-XX:-UsePerfData",
		"-XX:+HeapDumpOnOutOfMemoryError",
		"-XX:HeapDumpPath="+dataDir,
		"-Djava.awt.headless=true",
		"-Dfile.encoding=UTF-8",
		"-Djna.nosys=true",
		"-Dio.netty.noUnsafe=true",
		"-Dio.netty.noKeySetOptimization=true",
		"-Dio.netty.recycler.maxCapacityPerThread=0",
		"-Dlog4j.shutdownHookEnabled=false",
		"-Dlog4j2.disable.jmx=true",
	)
	if !peakJIT {
		args = append(args, jvm.C1Only)
	}
	return args
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

// URL returns the node's HTTP address, "http://127.0.0.1:PORT".
// PID is the process id of the node's JVM.
func (n *Node) PID() int { return n.srv.Proc.PID() }

func (n *Node) URL() string { return "http://" + n.HostPort() }

// HostPort returns the node's HTTP address as "127.0.0.1:PORT", the form
// that clients configured with host addresses instead of URLs take.
func (n *Node) HostPort() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(n.port)) }

// DataDir returns the directory holding the node's data, configuration and
// node.log.
func (n *Node) DataDir() string { return n.srv.Dir.Path }

// Stop shuts the node down: it sends SIGTERM for an orderly shutdown, waits
// up to 30 seconds, then sends SIGKILL. It removes the DataDir if Start
// created it. It returns an error if the node had to be killed or had
// already exited on its own (with the tail of node.log). Stop is safe to call
// more than once; later calls return the first call's result.
func (n *Node) Stop() error { return n.srv.Stop("url", n.URL()) }
