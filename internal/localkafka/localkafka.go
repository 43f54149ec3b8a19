// Package localkafka fetches, starts and stops a single-node Apache Kafka 4.x
// broker (KRaft, broker and controller in one process) for local development
// and integration tests, without Docker.
//
// The broker jars come from Maven Central (see Fetch) and are cached, so only
// Java 17+ and Maven need to be installed. Start launches a Broker configured
// by Options as a child java process and returns once it answers a metadata
// request; Broker.Stop shuts it down.
package localkafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

// DefaultVersion is the org.apache.kafka:kafka_2.13 version used when
// Options.Version is empty.
const DefaultVersion = "4.1.1"

const (
	defaultHeapMB = 512
	// startTimeout bounds the wait for a started broker to answer.
	startTimeout = 90 * time.Second
	// stopTimeout bounds the controlled shutdown before SIGKILL.
	stopTimeout = 30 * time.Second
	// logSubdir is the directory under DataDir used as log.dirs.
	logSubdir = "data"
	// portAttempts is how often Start tries fresh free ports when another
	// process grabbed a picked port before the broker bound it.
	portAttempts = 3
)

// Options configures Start. The zero value starts a broker of DefaultVersion
// in a temporary directory on free ports.
type Options struct {
	// Version is the org.apache.kafka:kafka_2.13 version; default DefaultVersion.
	Version string
	// CacheDir is the jar cache root; default $CODEBANK_CACHE_DIR, else
	// os.UserCacheDir()/codebank. Jars go into CacheDir/kafka-<version>/libs.
	CacheDir string
	// DataDir holds log.dirs (DataDir/data), server.properties and
	// broker.log. If empty, a temporary directory is created and removed by
	// Stop. Storage that is already formatted is reused, so topics and
	// offsets survive restarts on the same DataDir.
	DataDir string
	// Port is the PLAINTEXT listener port on 127.0.0.1; 0 picks a free port.
	Port int
	// ControllerPort is the KRaft controller listener port on 127.0.0.1;
	// 0 picks a free port.
	ControllerPort int
	// HeapMB is the maximum Java heap in MiB; default 512.
	HeapMB int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
	// ExtraProperties are appended to server.properties, overriding the
	// defaults (for example num.partitions).
	ExtraProperties map[string]string
}

// Broker is a running single-node Kafka broker started by Start.
type Broker struct {
	addr    string
	dataDir string
	tempDir bool
	log     *slog.Logger

	cmd     *exec.Cmd
	logFile *os.File
	logFrom int64 // size of broker.log before this process started
	cds     *classData
	exited  chan struct{} // closed when the java process has exited
	waitErr error         // cmd.Wait's result, set before exited is closed

	stopOnce sync.Once
	stopErr  error
}

// portInUseError reports that the broker could not bind a listener port.
type portInUseError struct{ port int }

func (e *portInUseError) Error() string {
	return fmt.Sprintf("port %d is already in use", e.port)
}

// bindFailureRE finds the port in the broker's "Socket server failed to
// bind to 127.0.0.1:PORT: Address already in use" message.
var bindFailureRE = regexp.MustCompile(`failed to bind to [^\s]*:([0-9]+): Address already in use`)

// Start fetches the broker jars if needed, formats the storage in
// opts.DataDir if it is new, starts the broker as a child java process and
// waits until it answers a Kafka metadata request. ctx bounds the start-up
// only (including a first fetch); the broker runs until Stop is called or the
// calling process dies. If the broker exits or does not answer within 90
// seconds, the error includes the tail of broker.log.
func Start(ctx context.Context, opts Options) (*Broker, error) {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.HeapMB <= 0 {
		opts.HeapMB = defaultHeapMB
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	java, err := findJava()
	if err != nil {
		return nil, err
	}
	libs, err := fetch(ctx, opts.Version, opts.CacheDir, log)
	if err != nil {
		return nil, err
	}

	dataDir, tempDir := opts.DataDir, false
	if dataDir == "" {
		if dataDir, err = os.MkdirTemp("", "localkafka-"); err != nil {
			return nil, fmt.Errorf("localkafka: %w", err)
		}
		tempDir = true
	} else {
		if dataDir, err = filepath.Abs(dataDir); err != nil {
			return nil, fmt.Errorf("localkafka: data dir: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o755); err != nil {
			return nil, fmt.Errorf("localkafka: data dir: %w", err)
		}
	}

	for attempt := 1; ; attempt++ {
		port, controllerPort := opts.Port, opts.ControllerPort
		if port == 0 || controllerPort == 0 {
			p, c, err := pickPorts()
			if err != nil {
				return nil, cleanup(err, dataDir, tempDir)
			}
			if port == 0 {
				port = p
			}
			if controllerPort == 0 {
				controllerPort = c
			}
			if port == controllerPort { // a fixed port that was also picked
				attempt--
				continue
			}
		}
		b, err := launch(ctx, java, libs, dataDir, port, controllerPort, opts, log)
		var busy *portInUseError
		if errors.As(err, &busy) && attempt < portAttempts &&
			(busy.port == port && opts.Port == 0 || busy.port == controllerPort && opts.ControllerPort == 0) {
			log.Info("localkafka: a picked port was taken before the broker bound it, retrying with other ports", "port", busy.port)
			continue
		}
		if err != nil {
			return nil, cleanup(err, dataDir, tempDir)
		}
		b.tempDir = tempDir
		return b, nil
	}
}

func cleanup(err error, dataDir string, tempDir bool) error {
	if tempDir {
		os.RemoveAll(dataDir)
	}
	return err
}

// launch writes server.properties, formats the storage if needed, starts
// the java process and waits for it to answer.
func launch(ctx context.Context, java *javaInfo, libs, dataDir string, port, controllerPort int, opts Options, log *slog.Logger) (*Broker, error) {
	start := time.Now()
	logDir := filepath.Join(dataDir, logSubdir)
	propsFile := filepath.Join(dataDir, "server.properties")
	props := serverProperties(logDir, port, controllerPort, opts.ExtraProperties)
	if err := os.WriteFile(propsFile, []byte(props), 0o644); err != nil {
		return nil, fmt.Errorf("localkafka: %w", err)
	}
	classpath := filepath.Join(libs, "*")
	cds := newClassData(libs, java)

	if !fileExists(filepath.Join(logDir, "meta.properties")) {
		log.Info("localkafka: formatting storage", "dir", logDir)
		// A one-shot tool: start-up time matters more than peak speed here.
		args := []string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
			"-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"}
		args = append(args, cds.useArgs()...)
		args = append(args, "-cp", classpath, "kafka.tools.StorageTool",
			"format", "--cluster-id="+newClusterID(), "-c", propsFile) // "=": an id may start with "-"
		cmd := exec.CommandContext(ctx, java.path, args...)
		cmd.Dir = dataDir
		if out, err := cmd.CombinedOutput(); err != nil {
			cds.finish(false)
			return nil, fmt.Errorf("localkafka: formatting %s failed: %w\n%s", logDir, err, tail(out, 40))
		}
	}

	logPath := filepath.Join(dataDir, "broker.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		cds.finish(false)
		return nil, fmt.Errorf("localkafka: %w", err)
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	fmt.Fprintf(logFile, "=== localkafka: %s starting Kafka %s on %s (controller port %d) ===\n",
		time.Now().Format(time.RFC3339), opts.Version, addr, controllerPort)

	args := append(jvmArgs(opts.HeapMB), cds.brokerArgs()...)
	args = append(args, "-cp", classpath, "kafka.Kafka", propsFile)
	cmd := exec.Command(java.path, args...)
	cmd.Dir = dataDir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		cds.finish(false)
		return nil, fmt.Errorf("localkafka: starting java: %w", err)
	}
	b := &Broker{
		addr:    addr,
		dataDir: dataDir,
		log:     log,
		cmd:     cmd,
		logFile: logFile,
		logFrom: logFrom,
		cds:     cds,
		exited:  make(chan struct{}),
	}
	go func() {
		b.waitErr = cmd.Wait()
		close(b.exited)
	}()

	if err := b.waitReady(ctx); err != nil {
		b.kill()
		cds.finish(false)
		logTail := b.logTail(40)
		b.logFile.Close()
		if m := bindFailureRE.FindStringSubmatch(logTail); m != nil {
			p, _ := strconv.Atoi(m[1])
			err = fmt.Errorf("%w (%w)", err, &portInUseError{port: p})
		}
		return nil, fmt.Errorf("localkafka: broker on %s did not start: %w\n--- tail of %s ---\n%s", addr, err, logPath, logTail)
	}
	log.Info("localkafka: broker started", "addr", addr, "version", opts.Version, "dataDir", dataDir,
		"took", time.Since(start).Round(time.Millisecond))
	return b, nil
}

// jvmArgs returns the broker's JVM options: the defaults of Kafka's
// kafka-run-class.sh and kafka-server-start.sh with a smaller heap, no
// hsperfdata file, and slf4j-simple logging at WARN (to broker.log).
func jvmArgs(heapMB int) []string {
	return []string{
		"-Xms" + strconv.Itoa(min(256, heapMB)) + "m",
		"-Xmx" + strconv.Itoa(heapMB) + "m",
		"-XX:+UseG1GC",
		"-XX:MaxGCPauseMillis=20",
		"-XX:InitiatingHeapOccupancyPercent=35",
		"-XX:+ExplicitGCInvokesConcurrent",
		"-XX:-UsePerfData",
		"-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		"-Dorg.slf4j.simpleLogger.showDateTime=true",
		"-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
	}
}

// serverProperties renders the broker configuration; extra entries come last
// and so override the defaults.
func serverProperties(logDir string, port, controllerPort int, extra map[string]string) string {
	var buf bytes.Buffer
	buf.WriteString("# Written by localkafka on every start.\n")
	set := func(k, v string) {
		fmt.Fprintf(&buf, "%s=%s\n", k, escapeProperty(v))
	}
	set("process.roles", "broker,controller")
	set("node.id", "1")
	set("controller.quorum.voters", fmt.Sprintf("1@127.0.0.1:%d", controllerPort))
	set("listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", port, controllerPort))
	set("advertised.listeners", fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", port))
	set("controller.listener.names", "CONTROLLER")
	set("inter.broker.listener.name", "PLAINTEXT")
	set("listener.security.protocol.map", "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT")
	set("log.dirs", logDir)
	set("num.partitions", "1")
	set("offsets.topic.replication.factor", "1")
	set("transaction.state.log.replication.factor", "1")
	set("transaction.state.log.min.isr", "1")
	set("share.coordinator.state.topic.replication.factor", "1")
	set("share.coordinator.state.topic.min.isr", "1")
	set("group.initial.rebalance.delay.ms", "0")
	set("log.retention.check.interval.ms", "60000")
	set("log.cleaner.enable", "true")
	if len(extra) > 0 {
		buf.WriteString("# Options.ExtraProperties\n")
		for _, k := range slices.Sorted(maps.Keys(extra)) {
			set(k, extra[k])
		}
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

// newClusterID returns a random 22-character base64url cluster id, as
// kafka-storage.sh random-uuid does.
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// pickPorts is freePorts; tests replace it.
var pickPorts = freePorts

// freePorts picks two distinct free ports on 127.0.0.1.
func freePorts() (int, int, error) {
	var ports [2]int
	var ls [2]net.Listener
	for i := range ls {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, l := range ls[:i] {
				l.Close()
			}
			return 0, 0, fmt.Errorf("localkafka: picking a free port: %w", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		l.Close()
	}
	return ports[0], ports[1], nil
}

// waitReady polls the broker with metadata requests until one succeeds, the
// process exits, ctx is done or startTimeout passes.
func (b *Broker) waitReady(ctx context.Context) error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "localkafka-probe"
	cfg.Version = sarama.V4_0_0_0
	cfg.Net.DialTimeout = time.Second
	cfg.Net.ReadTimeout = 3 * time.Second
	cfg.Net.WriteTimeout = 3 * time.Second
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false

	timeout := time.NewTimer(startTimeout)
	defer timeout.Stop()
	var lastErr error
	// wait returns nil when c delivers, or why to give up.
	wait := func(c <-chan error) (error, bool) {
		select {
		case err := <-c:
			return err, false
		case <-b.exited:
			return fmt.Errorf("java exited: %v", b.waitErr), true
		case <-ctx.Done():
			return ctx.Err(), true
		case <-timeout.C:
			return fmt.Errorf("no answer to a metadata request within %s (last error: %v)", startTimeout, lastErr), true
		}
	}
	for {
		// The probe runs aside so that a process exiting is noticed at
		// once, even while a probe waits on a port someone else listens on.
		res := make(chan error, 1)
		go func() { res <- probe(b.addr, cfg) }()
		err, stop := wait(res)
		if stop {
			return err
		}
		if err == nil {
			return nil
		}
		lastErr = err
		if err, stop := wait(afterChan(100 * time.Millisecond)); stop {
			return err
		}
	}
}

// afterChan returns a channel that delivers nil after d.
func afterChan(d time.Duration) <-chan error {
	c := make(chan error, 1)
	time.AfterFunc(d, func() { c <- nil })
	return c
}

// probe succeeds if the broker at addr answers a metadata request that lists
// at least one broker.
func probe(addr string, cfg *sarama.Config) error {
	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	if err := client.RefreshMetadata(); err != nil {
		return err
	}
	if len(client.Brokers()) == 0 {
		return errors.New("metadata lists no brokers")
	}
	return nil
}

// logTail returns the last n lines written to broker.log by this process.
func (b *Broker) logTail(n int) string {
	f, err := os.Open(filepath.Join(b.dataDir, "broker.log"))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	defer f.Close()
	const maxBytes = 64 << 10
	from := b.logFrom
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
	return tail(kept, n)
}

// kill stops the process at once and waits for it.
func (b *Broker) kill() {
	select {
	case <-b.exited:
	default:
		_ = b.cmd.Process.Kill()
		<-b.exited
	}
}

// Addr returns the PLAINTEXT listener address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// DataDir returns the directory holding the broker's storage,
// server.properties and broker.log.
func (b *Broker) DataDir() string { return b.dataDir }

// PID returns the process id of the broker's JVM, for resource accounting.
func (b *Broker) PID() int { return b.cmd.Process.Pid }

// Stop shuts the broker down: it sends SIGTERM for a controlled shutdown,
// waits up to 30 seconds, then sends SIGKILL. It removes the DataDir if Start
// created it. It returns an error if the broker had to be killed or had
// already exited on its own (with the tail of broker.log). Stop is safe to
// call more than once; later calls return the first call's result.
func (b *Broker) Stop() error {
	b.stopOnce.Do(func() { b.stopErr = b.stop() })
	return b.stopErr
}

func (b *Broker) stop() error {
	start := time.Now()
	var errs []error
	orderly := false
	select {
	case <-b.exited:
		errs = append(errs, fmt.Errorf("localkafka: broker on %s had exited before Stop (%v)\n--- tail of %s ---\n%s",
			b.addr, b.waitErr, filepath.Join(b.dataDir, "broker.log"), b.logTail(40)))
	default:
		if err := terminate(b.cmd.Process); err != nil {
			errs = append(errs, fmt.Errorf("localkafka: signalling broker: %w", err))
		}
		timer := time.NewTimer(stopTimeout)
		select {
		case <-b.exited:
			timer.Stop()
			orderly = true
		case <-timer.C:
			b.kill()
			errs = append(errs, fmt.Errorf("localkafka: broker on %s did not shut down within %s and was killed", b.addr, stopTimeout))
		}
	}
	b.cds.finish(orderly)
	b.logFile.Close()
	if b.tempDir {
		if err := os.RemoveAll(b.dataDir); err != nil {
			errs = append(errs, fmt.Errorf("localkafka: removing data dir: %w", err))
		}
	}
	b.log.Info("localkafka: broker stopped", "addr", b.addr, "took", time.Since(start).Round(time.Millisecond))
	return errors.Join(errs...)
}
