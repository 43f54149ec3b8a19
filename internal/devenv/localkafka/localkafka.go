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
	"log/slog"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/devenv/jvm"
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
	addr string
	srv  *jvm.Server
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
	java, err := jvm.FindJava(javaMajor, false)
	if err != nil {
		return nil, fmt.Errorf("localkafka: %w", err)
	}
	in, err := fetch(ctx, opts.Version, opts.CacheDir, log)
	if err != nil {
		return nil, err
	}
	return jvm.Launch("localkafka", "broker", opts.DataDir, []int{opts.Port, opts.ControllerPort}, log,
		func(dataDir jvm.DataDir, p []int) (*Broker, error) {
			return launch(ctx, java, in, dataDir, p[0], p[1], opts, log)
		})
}

// launch writes server.properties, formats the storage if needed, starts
// the java process and waits for it to answer.
func launch(ctx context.Context, java *jvm.Java, in *jvm.Installation, dataDir jvm.DataDir, port, controllerPort int, opts Options, log *slog.Logger) (*Broker, error) {
	start := time.Now()
	logDir := filepath.Join(dataDir.Path, logSubdir)
	propsFile := filepath.Join(dataDir.Path, "server.properties")
	props := serverProperties(logDir, port, controllerPort, opts.ExtraProperties)
	if err := os.WriteFile(propsFile, []byte(props), 0o644); err != nil {
		return nil, err
	}
	classpath := filepath.Join(in.Libs, "*")
	// The archive's key leaves out the classpath, which the version
	// directory fixes.
	cds := jvm.NewClassData(filepath.Join(in.Dir, "cds"), "broker", java, "")

	if _, err := os.Stat(filepath.Join(logDir, "meta.properties")); err != nil {
		log.Info("localkafka: formatting storage", "dir", logDir)
		// A one-shot tool: start-up time matters more than peak speed here.
		args := []string{"-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData",
			"-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"}
		args = append(args, cds.UseArgs()...)
		args = append(args, "-cp", classpath, "kafka.tools.StorageTool",
			"format", "--cluster-id="+newClusterID(), "-c", propsFile) // "=": an id may start with "-"
		cmd := exec.CommandContext(ctx, java.Path, args...)
		cmd.Dir = dataDir.Path
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("formatting %s failed: %w\n%s", logDir, err, jvm.Tail(out, 40))
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	proc, err := jvm.StartProcess(jvm.Command{
		Java:      java,
		Options:   jvmArgs(opts.HeapMB),
		CDS:       cds,
		Classpath: classpath,
		Main:      "kafka.Kafka",
		Args:      []string{propsFile},
		Dir:       dataDir.Path,
		Log:       filepath.Join(dataDir.Path, "broker.log"),
		Banner: fmt.Sprintf("=== localkafka: %s starting Kafka %s on %s (controller port %d) ===",
			time.Now().Format(time.RFC3339), opts.Version, addr, controllerPort),
		Name:        "broker",
		Addr:        addr,
		BindFailure: bindFailureRE,
	})
	if err != nil {
		return nil, err
	}
	if err := proc.WaitReady(ctx, startTimeout, "no answer to a metadata request", probe(addr)); err != nil {
		return nil, err
	}
	log.Info("localkafka: broker started", "addr", addr, "version", opts.Version, "dataDir", dataDir.Path,
		"took", time.Since(start).Round(time.Millisecond))
	return &Broker{addr: addr, srv: &jvm.Server{Pkg: "localkafka", Name: "broker", Dir: dataDir, Proc: proc, Log: log}}, nil
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
		fmt.Fprintf(&buf, "%s=%s\n", k, jvm.EscapeProperty(v))
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

// newClusterID returns a random 22-character base64url cluster id, as
// kafka-storage.sh random-uuid does.
func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// probe returns the probe of Process.WaitReady: it succeeds if the broker at
// addr answers a metadata request that lists at least one broker.
func probe(addr string) func() error {
	cfg := sarama.NewConfig()
	cfg.ClientID = "localkafka-probe"
	cfg.Version = sarama.V4_0_0_0
	cfg.Net.DialTimeout = time.Second
	cfg.Net.ReadTimeout = 3 * time.Second
	cfg.Net.WriteTimeout = 3 * time.Second
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false
	return func() error {
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
}

// Addr returns the PLAINTEXT listener address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// DataDir returns the directory holding the broker's storage,
// server.properties and broker.log.
func (b *Broker) DataDir() string { return b.srv.Dir.Path }

// PID returns the process id of the broker's JVM, for resource accounting.
func (b *Broker) PID() int { return b.srv.Proc.PID() }

// Stop shuts the broker down: it sends SIGTERM for a controlled shutdown,
// waits up to 30 seconds, then sends SIGKILL. It removes the DataDir if Start
// created it. It returns an error if the broker had to be killed or had
// already exited on its own (with the tail of broker.log). Stop is safe to
// call more than once; later calls return the first call's result.
func (b *Broker) Stop() error { return b.srv.Stop(stopTimeout, "addr", b.addr) }
