// Package localconnect fetches, starts and stops a Kafka Connect worker in
// distributed mode, with Code Bank's OpenSearch sink connector (package
// github.com/codebank/codebank/connect) in its plugin.path, for local
// development and integration tests, without Docker.
//
// The worker jars come from Maven Central and the connector is compiled from
// its source once, both cached, so only Java 17+ (a JDK) and Maven need to be
// installed. A distributed worker keeps connector configurations, sink
// offsets and statuses in Kafka topics named after Options.GroupID, so a
// restarted worker with the same GroupID resumes its connectors by itself.
// Connectors are created over REST: see connect.PutConnector.
package localconnect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/internal/devenv/jvm"
)

const (
	defaultGroupID = "codebank-connect"
	// startTimeout bounds the wait for a started worker to be ready.
	startTimeout = 120 * time.Second
)

// Options configures Start.
type Options struct {
	// CacheDir is the jar cache root; default $CODEBANK_CACHE_DIR, else
	// os.UserCacheDir()/codebank. Jars go into CacheDir/connect-<version>.
	CacheDir string
	// DataDir holds worker.properties (written on every start) and
	// worker.log. If empty, a temporary directory is created and removed by
	// Stop. The worker's state lives in Kafka, not here.
	DataDir string
	// Brokers is the Kafka bootstrap address list, e.g. "127.0.0.1:9092".
	// Required.
	Brokers string
	// RESTPort is the REST API port on 127.0.0.1; 0 picks a free port.
	RESTPort int
	// GroupID is the worker group's group.id and the prefix of its internal
	// topics GroupID-configs, GroupID-offsets and GroupID-status
	// (replication factor 1); default "codebank-connect". Workers sharing it
	// share connectors.
	GroupID string
	// PeakJIT compiles hot code fully (C1 then C2), for steady load: a slower start, and
	// less CPU under load. Default: C1 only, the quicker start tests want.
	PeakJIT bool
	// HeapMB is the maximum Java heap in MiB; default 512.
	HeapMB int
	// Heap is how the heap takes its memory: it grows from a small start (jvm.HeapGrows, the
	// default, for tests), or starts at HeapMB (jvm.HeapFixed), for long runs.
	Heap jvm.HeapMode
	// Metrics, when set, is the configuration (YAML) of the Prometheus JMX exporter agent
	// (JMXExporterVersion, from Maven Central): the worker then serves its metrics on
	// MetricsPort at /metrics, for a local Prometheus.
	Metrics []byte
	// MetricsPort is the metrics port on 127.0.0.1, with Metrics; 0 picks a free port.
	MetricsPort int
	// Nice, when positive, runs the JVM at that niceness (nice(1)): below the servers a
	// payment's answer waits for, on a machine they share.
	Nice int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
}

// Worker is a running Kafka Connect worker started by Start.
type Worker struct {
	port, metricsPort int
	srv               *jvm.Server
}

// bindFailureRE finds the port in Jetty's "Failed to bind to
// /127.0.0.1:PORT" message (which jvm.Process takes to mean the port is in
// use only if the log also says "Address already in use").
var bindFailureRE = regexp.MustCompile(`Failed to bind to [^\s]*:([0-9]+)`)

// Start fetches the jars and builds the connector if needed, starts a
// distributed worker as a child java process and waits until its REST API
// answers, GET /health reports it ready and GET /connector-plugins lists the
// OpenSearch sink. ctx bounds the start-up only (including a first fetch);
// the worker runs until Stop is called or the calling process dies. If the
// worker exits or is not ready within two minutes, the error includes the
// tail of worker.log.
func Start(ctx context.Context, opts Options) (*Worker, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	if opts.Brokers == "" {
		return nil, errors.New("localconnect: Options.Brokers is empty")
	}
	if opts.GroupID == "" {
		opts.GroupID = defaultGroupID
	}
	if opts.HeapMB <= 0 {
		opts.HeapMB = jvm.DefaultHeapMB
	}
	java, err := jvm.FindJava(javaMajor, true)
	if err != nil {
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	in, err := fetch(ctx, opts.CacheDir, java, log)
	if err != nil {
		return nil, err
	}
	agent := ""
	ports := []int{opts.RESTPort}
	if opts.Metrics != nil {
		if agent, err = fetchJMXExporter(ctx, opts.CacheDir, log); err != nil {
			return nil, err
		}
		ports = append(ports, opts.MetricsPort)
	}

	return jvm.Launch("localconnect", "worker", opts.DataDir, ports, log,
		func(dataDir jvm.DataDir, p []int) (*Worker, error) {
			w := &Worker{port: p[0]}
			if agent != "" {
				w.metricsPort = p[1]
			}
			return launch(ctx, java, in, dataDir, w, agent, opts, log)
		})
}

// launch writes worker.properties, starts the java process and waits for
// the worker to be ready.
func launch(ctx context.Context, java *jvm.Java, in *jvm.Installation, dataDir jvm.DataDir, w *Worker, agent string, opts Options, log *slog.Logger) (*Worker, error) {
	start := time.Now()
	port := w.port
	propsFile := filepath.Join(dataDir.Path, "worker.properties")
	if err := os.WriteFile(propsFile, []byte(workerProperties(opts.Brokers, opts.GroupID, port, in.Extra)), 0o644); err != nil {
		return nil, err
	}
	classpath := filepath.Join(in.Libs, "*")
	options := jvmArgs(opts.HeapMB, opts.Heap, opts.PeakJIT)
	if agent != "" {
		config := filepath.Join(dataDir.Path, "jmx-exporter.yaml")
		if err := os.WriteFile(config, opts.Metrics, 0o644); err != nil {
			return nil, err
		}
		options = append(options, fmt.Sprintf("-javaagent:%s=127.0.0.1:%d:%s", agent, w.metricsPort, config))
	}
	proc, err := jvm.StartProcess(jvm.Command{
		Java:      java,
		Options:   options,
		Nice:      opts.Nice,
		CDS:       jvm.NewClassData(filepath.Join(in.Dir, "cds"), "worker", java, classpath),
		Classpath: classpath,
		Main:      "org.apache.kafka.connect.cli.ConnectDistributed",
		Args:      []string{propsFile},
		Dir:       dataDir.Path,
		Log:       filepath.Join(dataDir.Path, "worker.log"),
		Banner: fmt.Sprintf("=== localconnect: %s starting Kafka Connect %s on 127.0.0.1:%d (group %s, brokers %s) ===",
			time.Now().Format(time.RFC3339), Version, port, opts.GroupID, opts.Brokers),
		Name:        "worker",
		Addr:        w.URL(),
		BindFailure: bindFailureRE,
	})
	if err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 5 * time.Second}
	if err := proc.WaitReady(ctx, startTimeout, "not ready", func() error {
		if err := probe(client, w.URL()); err != nil {
			return err
		}
		if w.metricsPort != 0 {
			_, err := get(client, "http://"+w.MetricsAddr()+"/metrics")
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	w.srv = &jvm.Server{Pkg: "localconnect", Name: "worker", Dir: dataDir, Proc: proc, Log: log}
	log.Info("localconnect: worker started", "url", w.URL(), "version", Version, "group", opts.GroupID,
		"took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// jvmArgs returns the worker's JVM options: those of Kafka's
// connect-distributed.sh with a smaller heap, unless peakJIT C1-only JIT
// compilation (a faster start for the small loads of tests), no hsperfdata file, and
// slf4j-simple logging at WARN (INFO for the sink connector) to worker.log.
func jvmArgs(heapMB int, heap jvm.HeapMode, peakJIT bool) []string {
	args, _ := jvm.KafkaOptions(jvm.Heap(128, heapMB, heap), jvm.GCG1)
	args = append(args, "-Dorg.slf4j.simpleLogger.log.codebank.connect=info")
	if !peakJIT {
		args = append(args, jvm.C1Only)
	}
	return args
}

// workerProperties renders the distributed worker's configuration.
func workerProperties(brokers, groupID string, port int, pluginPath string) string {
	p := map[string]string{
		"bootstrap.servers": brokers,
		"group.id":          groupID,
		// The sink parses JSON itself; most Connect users expect strings.
		"key.converter":   "org.apache.kafka.connect.storage.StringConverter",
		"value.converter": "org.apache.kafka.connect.storage.StringConverter",
		// Internal topics, one partition each on a single local broker.
		"config.storage.topic":              groupID + "-configs",
		"offset.storage.topic":              groupID + "-offsets",
		"status.storage.topic":              groupID + "-status",
		"config.storage.replication.factor": "1",
		"offset.storage.replication.factor": "1",
		"status.storage.replication.factor": "1",
		"offset.storage.partitions":         "1",
		"status.storage.partitions":         "1",
		"listeners":                         "http://127.0.0.1:" + strconv.Itoa(port),
		"rest.advertised.host.name":         "127.0.0.1",
		"rest.advertised.port":              strconv.Itoa(port),
		"plugin.path":                       pluginPath,
		// Plugins declare themselves in META-INF/services: no classpath scan.
		"plugin.discovery": "service_load",
		// Sink offsets are committed every second instead of every minute,
		// so a restarted worker redelivers little.
		"offset.flush.interval.ms": "1000",
		// A restarted lone worker gets its connectors back at once instead
		// of after the default five minutes.
		"scheduled.rebalance.max.delay.ms": "0",
	}
	var buf bytes.Buffer
	buf.WriteString("# Written by localconnect on every start.\n")
	for _, k := range slices.Sorted(maps.Keys(p)) {
		fmt.Fprintf(&buf, "%s=%s\n", k, jvm.EscapeProperty(p[k]))
	}
	return buf.String()
}

// probe succeeds if the worker at url answers GET / and GET /health with
// 200 (GET /health answers 503 until the worker has joined its group and
// read its configuration topic) and GET /connector-plugins lists the sink.
func probe(client *http.Client, url string) error {
	for _, path := range []string{"/", "/health"} {
		if _, err := get(client, url+path); err != nil {
			return err
		}
	}
	body, err := get(client, url+"/connector-plugins")
	if err != nil {
		return err
	}
	var plugins []struct {
		Class string `json:"class"`
	}
	if err := json.Unmarshal(body, &plugins); err != nil {
		return fmt.Errorf("GET %s/connector-plugins: %w", url, err)
	}
	for _, p := range plugins {
		if p.Class == connect.OpenSearchSinkClass {
			return nil
		}
	}
	return fmt.Errorf("GET %s/connector-plugins does not list %s: %s", url, connect.OpenSearchSinkClass, body)
}

func get(client *http.Client, url string) ([]byte, error) {
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(body))
	}
	return body, nil
}

// URL returns the worker's REST address, "http://127.0.0.1:PORT".
// PID is the process id of the worker's JVM.
func (w *Worker) PID() int { return w.srv.Proc.PID() }

func (w *Worker) URL() string { return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)) }

// MetricsAddr returns the host:port of the worker's Prometheus metrics (/metrics), "" without
// Options.Metrics.
func (w *Worker) MetricsAddr() string {
	if w.metricsPort == 0 {
		return ""
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(w.metricsPort))
}

// DataDir returns the directory holding worker.properties and worker.log.
func (w *Worker) DataDir() string { return w.srv.Dir.Path }

// PutConnector creates or updates the connector name with config on this
// worker and waits until it and all its tasks are RUNNING: see the function
// PutConnector.
func (w *Worker) PutConnector(ctx context.Context, name string, config map[string]string) error {
	return connect.PutConnector(ctx, w.URL(), name, config)
}

// Stop shuts the worker down: it sends SIGTERM for an orderly shutdown
// (tasks stop and commit their offsets), waits up to 30 seconds, then sends
// SIGKILL. It removes the DataDir if Start created it. It returns an error if
// the worker had to be killed or had already exited on its own (with the
// tail of worker.log). Stop is safe to call more than once; later calls
// return the first call's result.
func (w *Worker) Stop() error { return w.srv.Stop("url", w.URL()) }
