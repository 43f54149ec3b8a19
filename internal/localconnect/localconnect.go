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
// Connectors are created over REST: see PutConnector.
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

const (
	defaultHeapMB  = 512
	defaultGroupID = "codebank-connect"
	// startTimeout bounds the wait for a started worker to be ready.
	startTimeout = 120 * time.Second
	// stopTimeout bounds the orderly shutdown before SIGKILL.
	stopTimeout = 30 * time.Second
	// portAttempts is how often Start tries a fresh free port when another
	// process grabbed the picked one before the worker bound it.
	portAttempts = 3
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
	// HeapMB is the maximum Java heap in MiB; default 512.
	HeapMB int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
}

// Worker is a running Kafka Connect worker started by Start.
type Worker struct {
	port    int
	dataDir string
	tempDir bool
	log     *slog.Logger

	cmd     *exec.Cmd
	logFile *os.File
	logFrom int64 // size of worker.log before this process started
	cds     *classData
	exited  chan struct{} // closed when the java process has exited
	waitErr error         // cmd.Wait's result, set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// portInUseError reports that the worker could not bind its REST port.
type portInUseError struct{ port int }

func (e *portInUseError) Error() string {
	return fmt.Sprintf("port %d is already in use", e.port)
}

// bindFailureRE finds the port in Jetty's "Failed to bind to
// /127.0.0.1:PORT" message.
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
		if dataDir, err = os.MkdirTemp("", "localconnect-"); err != nil {
			return nil, fmt.Errorf("localconnect: %w", err)
		}
		tempDir = true
	} else {
		if dataDir, err = filepath.Abs(dataDir); err != nil {
			return nil, fmt.Errorf("localconnect: data dir: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("localconnect: data dir: %w", err)
		}
	}

	for attempt := 1; ; attempt++ {
		port := opts.RESTPort
		if port == 0 {
			if port, err = pickPort(); err != nil {
				return nil, cleanup(err, dataDir, tempDir)
			}
		}
		w, err := launch(ctx, java, in, dataDir, port, opts, log)
		var busy *portInUseError
		if errors.As(err, &busy) && attempt < portAttempts && opts.RESTPort == 0 {
			log.Info("localconnect: the picked port was taken before the worker bound it, retrying with another", "port", busy.port)
			continue
		}
		if err != nil {
			return nil, cleanup(err, dataDir, tempDir)
		}
		w.tempDir = tempDir
		return w, nil
	}
}

func cleanup(err error, dataDir string, tempDir bool) error {
	if tempDir {
		os.RemoveAll(dataDir)
	}
	return err
}

// launch writes worker.properties, starts the java process and waits for
// the worker to be ready.
func launch(ctx context.Context, java *javaInfo, in *installation, dataDir string, port int, opts Options, log *slog.Logger) (*Worker, error) {
	start := time.Now()
	propsFile := filepath.Join(dataDir, "worker.properties")
	if err := os.WriteFile(propsFile, []byte(workerProperties(opts.Brokers, opts.GroupID, port, in.pluginPath)), 0o644); err != nil {
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	cds := newClassData(in, java)

	logPath := filepath.Join(dataDir, "worker.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		cds.finish(false)
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	fmt.Fprintf(logFile, "=== localconnect: %s starting Kafka Connect %s on 127.0.0.1:%d (group %s, brokers %s) ===\n",
		time.Now().Format(time.RFC3339), Version, port, opts.GroupID, opts.Brokers)

	args := append(jvmArgs(opts.HeapMB), cds.workerArgs()...)
	args = append(args, "-cp", in.classpath(), "org.apache.kafka.connect.cli.ConnectDistributed", propsFile)
	cmd := exec.Command(java.path, args...)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		cds.finish(false)
		return nil, fmt.Errorf("localconnect: starting java: %w", err)
	}
	w := &Worker{
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
		w.waitErr = cmd.Wait()
		close(w.exited)
	}()

	if err := w.waitReady(ctx); err != nil {
		w.kill()
		cds.finish(false)
		logTail := w.logTail(40)
		w.logFile.Close()
		if m := bindFailureRE.FindStringSubmatch(logTail); m != nil && strings.Contains(logTail, "Address already in use") {
			p, _ := strconv.Atoi(m[1])
			err = fmt.Errorf("%w (%w)", err, &portInUseError{port: p})
		}
		return nil, fmt.Errorf("localconnect: worker on %s did not start: %w\n--- tail of %s ---\n%s", w.URL(), err, logPath, logTail)
	}
	log.Info("localconnect: worker started", "url", w.URL(), "version", Version, "group", opts.GroupID,
		"took", time.Since(start).Round(time.Millisecond))
	return w, nil
}

// jvmArgs returns the worker's JVM options: those of Kafka's
// connect-distributed.sh with a smaller heap, C1-only JIT compilation (a
// faster start for the small loads of local use), no hsperfdata file, and
// slf4j-simple logging at WARN (INFO for the sink connector) to worker.log.
func jvmArgs(heapMB int) []string {
	return []string{
		"-Xms" + strconv.Itoa(min(128, heapMB)) + "m",
		"-Xmx" + strconv.Itoa(heapMB) + "m",
		"-XX:+UseG1GC",
		"-XX:MaxGCPauseMillis=20",
		"-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:+ExplicitGCInvokesConcurrent",
		"-XX:TieredStopAtLevel=1",
		"-XX:-UsePerfData",
		"-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dorg.slf4j.simpleLogger.log.codebank.connect=info",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
	}
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
		fmt.Fprintf(&buf, "%s=%s\n", k, escapeProperty(p[k]))
	}
	return buf.String()
}

// escapeProperty escapes a value for a java.util.Properties file.
func escapeProperty(v string) string {
	r := strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`)
	v = r.Replace(v)
	if strings.HasPrefix(v, " ") {
		v = `\` + v
	}
	return v
}

// pickPort is freePort; tests replace it.
var pickPort = freePort

// freePort picks a free port on 127.0.0.1.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localconnect: picking a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// waitReady polls the REST API until the worker is ready and lists the sink
// connector, the process exits, ctx is done or startTimeout passes.
func (w *Worker) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 5 * time.Second}
	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	var lastErr error
	for {
		res := make(chan error, 1)
		go func() { res <- probe(client, w.URL()) }()
		var err error
		select {
		case err = <-res:
		case <-w.exited:
			return fmt.Errorf("java exited: %v", w.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("not ready within %s (last error: %v)", startTimeout, lastErr)
		}
		if err == nil {
			return nil
		}
		lastErr = err
		select {
		case <-time.After(100 * time.Millisecond):
		case <-w.exited:
			return fmt.Errorf("java exited: %v", w.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-timeout.C:
			return fmt.Errorf("not ready within %s (last error: %v)", startTimeout, lastErr)
		}
	}
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

// logTail returns the last n lines written to worker.log by this process.
func (w *Worker) logTail(lines int) string {
	f, err := os.Open(filepath.Join(w.dataDir, "worker.log"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const maxBytes = 64 << 10
	from := w.logFrom
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
func (w *Worker) kill() {
	select {
	case <-w.exited:
	default:
		_ = w.cmd.Process.Kill()
		<-w.exited
	}
}

// URL returns the worker's REST address, "http://127.0.0.1:PORT".
func (w *Worker) URL() string { return "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(w.port)) }

// DataDir returns the directory holding worker.properties and worker.log.
func (w *Worker) DataDir() string { return w.dataDir }

// PutConnector creates or updates the connector name with config on this
// worker and waits until it and all its tasks are RUNNING: see the function
// PutConnector.
func (w *Worker) PutConnector(ctx context.Context, name string, config map[string]string) error {
	return PutConnector(ctx, w.URL(), name, config)
}

// Stop shuts the worker down: it sends SIGTERM for an orderly shutdown
// (tasks stop and commit their offsets), waits up to 30 seconds, then sends
// SIGKILL. It removes the DataDir if Start created it. It returns an error if
// the worker had to be killed or had already exited on its own (with the
// tail of worker.log). Stop is safe to call more than once; later calls
// return the first call's result.
func (w *Worker) Stop() error {
	w.stopOnce.Do(func() { w.stopErr = w.stop() })
	return w.stopErr
}

func (w *Worker) stop() error {
	start := time.Now()
	var errs []error
	orderly := false
	select {
	case <-w.exited:
		errs = append(errs, fmt.Errorf("localconnect: worker on %s had exited before Stop (%v)\n--- tail of %s ---\n%s",
			w.URL(), w.waitErr, filepath.Join(w.dataDir, "worker.log"), w.logTail(40)))
	default:
		if err := terminate(w.cmd.Process); err != nil {
			errs = append(errs, fmt.Errorf("localconnect: signalling worker: %w", err))
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-w.exited:
			timer.Stop()
			orderly = true
		case <-timer.C:
			w.kill()
			errs = append(errs, fmt.Errorf("localconnect: worker on %s did not shut down within %s and was killed", w.URL(), stopTimeout))
		}
	}
	w.cds.finish(orderly)
	w.logFile.Close()
	if w.tempDir {
		if err := os.RemoveAll(w.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("localconnect: removing data dir: %w", err))
		}
	}
	w.log.Info("localconnect: worker stopped", "url", w.URL(), "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}
