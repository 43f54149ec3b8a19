// Package localkafka fetches, starts and stops a single-node Apache Kafka 4.x
// broker (KRaft, broker and controller in one process) for local development
// and integration tests, without Docker.
//
// The broker jars come from Maven Central (see Fetch) and are cached, so only
// Java 17+ and Maven need to be installed. Start launches a Broker configured
// by Options as a child java process and returns once it answers a metadata
// request; Broker.Stop shuts it down. Besides its PLAINTEXT listener, a
// broker may have a SASL_SSL one (SASLSSLListener) that, like a bank's
// cluster, takes clients over TLS only and authenticates them with
// SCRAM-SHA-512.
package localkafka

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
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
	"strings"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/internal/devenv/jvm"
)

// DefaultVersion is the org.apache.kafka:kafka_2.13 version used when
// Options.Version is empty.
const DefaultVersion = "4.1.1"

const (
	// startTimeout bounds the wait for a started broker to answer.
	startTimeout = 90 * time.Second
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
	// GC is the garbage collector, jvm.GCG1 (the default, as Kafka's scripts choose) or
	// jvm.GCParallel.
	GC string
	// JVMOptions are more JVM options, after the defaults (e.g. jvm.C1Only).
	JVMOptions []string
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
	// ExtraProperties are appended to server.properties, overriding the
	// defaults (for example num.partitions).
	ExtraProperties map[string]string
	// SASLSSL, if set, adds a SASL_SSL listener on 127.0.0.1 beside the
	// PLAINTEXT one, which stays, as do the controller listener and
	// PLAINTEXT between brokers.
	SASLSSL *SASLSSLListener
}

// SASLSSLListener is a listener that takes clients over TLS only and
// authenticates them with SCRAM-SHA-512. Clients reach it at
// Broker.SASLSSLAddr; the metadata it serves names the broker at that
// address too, so they stay on it.
type SASLSSLListener struct {
	// Port is the listener's port on 127.0.0.1; 0 picks a free port.
	Port int
	// CertPEM is the broker's certificate, PEM, followed by any intermediate
	// certificates; clients check it against 127.0.0.1, so it must name that
	// IP address. KeyPEM is its unencrypted PKCS#8 private key ("PRIVATE
	// KEY"), RSA or EC. Both are written into server.properties (mode 0600).
	CertPEM []byte
	KeyPEM  []byte
	// Users maps the names of the SCRAM-SHA-512 users to their passwords.
	// Neither may be empty, contain a comma or be in double quotes, which
	// kafka-storage's --add-scram cannot pass on.
	//
	// On new storage the users are written into it when it is formatted, so
	// they exist before the listener opens; the passwords are on
	// kafka-storage's command line while it runs. On storage that is reused
	// (DataDir already formatted), Start sets them through the admin API on
	// the PLAINTEXT listener before it returns: users that exist get the
	// passwords given here, and users of earlier starts that are not in
	// Users remain.
	Users map[string]string
}

// scramMechanism is the SCRAM mechanism of the SASL_SSL listener.
const scramMechanism = "SCRAM-SHA-512"

// check reports settings the broker would refuse, or that kafka-storage
// could not pass on.
func (l *SASLSSLListener) check() error {
	if len(l.CertPEM) == 0 || len(l.KeyPEM) == 0 {
		return errors.New("SASL_SSL listener needs CertPEM and KeyPEM")
	}
	if _, err := tls.X509KeyPair(l.CertPEM, l.KeyPEM); err != nil {
		return fmt.Errorf("SASL_SSL listener's CertPEM and KeyPEM: %w", err)
	}
	// Kafka's PEM keystore reads PKCS#8 keys only.
	if block, _ := pem.Decode(l.KeyPEM); block == nil || block.Type != "PRIVATE KEY" {
		return errors.New(`SASL_SSL listener's KeyPEM is not an unencrypted PKCS#8 key ("PRIVATE KEY")`)
	}
	// kafka-storage splits "name=N,password=P" at commas and takes the
	// quotes off a value in double quotes.
	quoted := func(v string) bool { return len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' }
	for name, password := range l.Users {
		switch {
		case name == "" || password == "":
			return fmt.Errorf("SASL_SSL user %q: empty name or password", name)
		case strings.Contains(name, ",") || quoted(name):
			return fmt.Errorf("SASL_SSL user %q: a name cannot contain a comma or be in double quotes", name)
		case strings.Contains(password, ",") || quoted(password):
			return fmt.Errorf("SASL_SSL user %q: a password cannot contain a comma or be in double quotes", name)
		}
	}
	return nil
}

// scramArgs returns the kafka-storage format arguments that add users.
func (l *SASLSSLListener) scramArgs() []string {
	var args []string
	for _, name := range slices.Sorted(maps.Keys(l.Users)) {
		args = append(args, "--add-scram", fmt.Sprintf("%s=[name=%s,password=%s]", scramMechanism, name, l.Users[name]))
	}
	return args
}

// redact replaces the users' passwords in a command's output.
func (l *SASLSSLListener) redact(out []byte) []byte {
	for _, password := range l.Users {
		out = bytes.ReplaceAll(out, []byte(password), []byte("***"))
	}
	return out
}

// Broker is a running single-node Kafka broker started by Start.
type Broker struct {
	addr        string
	saslSSLAddr string
	srv         *jvm.Server
}

// listenerPorts are the ports of a broker's listeners; saslSSL is 0 when
// there is no SASL_SSL listener.
type listenerPorts struct {
	plain, controller, saslSSL int
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
		opts.HeapMB = jvm.DefaultHeapMB
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	ports := []int{opts.Port, opts.ControllerPort}
	if opts.SASLSSL != nil {
		if err := opts.SASLSSL.check(); err != nil {
			return nil, fmt.Errorf("localkafka: %w", err)
		}
		ports = append(ports, opts.SASLSSL.Port)
	}
	java, err := jvm.FindJava(javaMajor, false)
	if err != nil {
		return nil, fmt.Errorf("localkafka: %w", err)
	}
	in, err := fetch(ctx, opts.Version, opts.CacheDir, log)
	if err != nil {
		return nil, err
	}
	return jvm.Launch("localkafka", "broker", opts.DataDir, ports, log,
		func(dataDir jvm.DataDir, p []int) (*Broker, error) {
			lp := listenerPorts{plain: p[0], controller: p[1]}
			if opts.SASLSSL != nil {
				lp.saslSSL = p[2]
			}
			return launch(ctx, java, in, dataDir, lp, opts, log)
		})
}

// launch writes server.properties, formats the storage if needed, starts
// the java process and waits for it to answer.
func launch(ctx context.Context, java *jvm.Java, in *jvm.Installation, dataDir jvm.DataDir, ports listenerPorts, opts Options, log *slog.Logger) (*Broker, error) {
	start := time.Now()
	logDir := filepath.Join(dataDir.Path, logSubdir)
	propsFile := filepath.Join(dataDir.Path, "server.properties")
	props := serverProperties(logDir, ports, opts.SASLSSL, opts.ExtraProperties)
	// 0600: it may hold the SASL_SSL listener's private key. WriteFile keeps
	// the mode of a file that exists.
	if err := os.WriteFile(propsFile, []byte(props), 0o600); err != nil {
		return nil, err
	}
	if err := os.Chmod(propsFile, 0o600); err != nil {
		return nil, err
	}
	classpath := filepath.Join(in.Libs, "*")
	// The archive's key leaves out the classpath, which the version
	// directory fixes.
	cds := jvm.NewClassData(filepath.Join(in.Dir, "cds"), "broker", java, "")

	_, err := os.Stat(filepath.Join(logDir, "meta.properties"))
	formatted := err == nil
	if !formatted {
		log.Info("localkafka: formatting storage", "dir", logDir)
		// A one-shot tool: start-up time matters more than peak speed here.
		args := []string{"-Xmx256m", jvm.C1Only, "-XX:+UseSerialGC", "-XX:-UsePerfData",
			"-Djava.awt.headless=true", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"}
		args = append(args, cds.UseArgs()...)
		args = append(args, "-cp", classpath, "kafka.tools.StorageTool",
			"format", "--cluster-id="+newClusterID(), "-c", propsFile) // "=": an id may start with "-"
		if opts.SASLSSL != nil {
			args = append(args, opts.SASLSSL.scramArgs()...)
		}
		cmd := exec.CommandContext(ctx, java.Path, args...)
		cmd.Dir = dataDir.Path
		if out, err := cmd.CombinedOutput(); err != nil {
			if opts.SASLSSL != nil {
				out = opts.SASLSSL.redact(out)
			}
			return nil, fmt.Errorf("formatting %s failed: %w\n%s", logDir, err, jvm.Tail(out, 40))
		}
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.plain))
	var saslSSLAddr string
	if opts.SASLSSL != nil {
		saslSSLAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports.saslSSL))
	}
	options, err := jvmArgs(opts.HeapMB, opts.GC)
	if err != nil {
		return nil, err
	}
	proc, err := jvm.StartProcess(jvm.Command{
		Java:      java,
		Options:   append(options, opts.JVMOptions...),
		CDS:       cds,
		Classpath: classpath,
		Main:      "kafka.Kafka",
		Args:      []string{propsFile},
		Dir:       dataDir.Path,
		Log:       filepath.Join(dataDir.Path, "broker.log"),
		Banner: fmt.Sprintf("=== localkafka: %s starting Kafka %s on %s (controller port %d) ===",
			time.Now().Format(time.RFC3339), opts.Version, addr, ports.controller),
		Name:        "broker",
		Addr:        addr,
		BindFailure: bindFailureRE,
	})
	if err != nil {
		return nil, err
	}
	ready, notReady := probe(addr), "no answer to a metadata request"
	if opts.SASLSSL != nil {
		ready, notReady = probeSASLSSL(addr, saslSSLAddr, opts.SASLSSL.CertPEM), notReady+" or no TLS handshake on the SASL_SSL listener"
	}
	if err := proc.WaitReady(ctx, startTimeout, notReady, ready); err != nil {
		return nil, err
	}
	if formatted && opts.SASLSSL != nil && len(opts.SASLSSL.Users) > 0 {
		if err := setUsers(ctx, addr, opts.SASLSSL.Users); err != nil {
			return nil, errors.Join(fmt.Errorf("setting the SASL_SSL users: %w", err), proc.Stop(jvm.StopTimeout))
		}
	}
	attrs := []any{"addr", addr, "version", opts.Version, "dataDir", dataDir.Path, "took", time.Since(start).Round(time.Millisecond)}
	if saslSSLAddr != "" {
		attrs = append(attrs, "sasl_ssl_addr", saslSSLAddr)
	}
	log.Info("localkafka: broker started", attrs...)
	return &Broker{addr: addr, saslSSLAddr: saslSSLAddr,
		srv: &jvm.Server{Pkg: "localkafka", Name: "broker", Dir: dataDir, Proc: proc, Log: log}}, nil
}

// setUsers sets the SCRAM credentials of users through the PLAINTEXT
// listener at addr and waits, up to 30 seconds, until the broker lists them
// all.
func setUsers(ctx context.Context, addr string, users map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg := clientConfig("localkafka-users")
	cfg.Metadata.Full = true // the admin finds the controller in a full metadata response
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	names := slices.Sorted(maps.Keys(users))
	var upserts []sarama.AlterUserScramCredentialsUpsert
	for _, name := range names {
		salt := make([]byte, 32)
		_, _ = rand.Read(salt)
		upserts = append(upserts, sarama.AlterUserScramCredentialsUpsert{
			Name: name, Mechanism: sarama.SCRAM_MECHANISM_SHA_512, Iterations: 4096,
			Salt: salt, Password: []byte(users[name]),
		})
	}
	results, err := admin.UpsertUserScramCredentials(upserts)
	if err != nil {
		return err
	}
	for _, r := range results {
		if r.ErrorCode != sarama.ErrNoError {
			return fmt.Errorf("user %q: %w", r.User, r.ErrorCode)
		}
	}
	// The controller has the credentials; the broker learns them from the
	// metadata log a moment later, and describes them from what it learnt.
	for {
		described, err := admin.DescribeUserScramCredentials(names)
		if err == nil {
			missing := len(names)
			for _, d := range described {
				if d.ErrorCode == sarama.ErrNoError && slices.ContainsFunc(d.CredentialInfos, func(i *sarama.UserScramCredentialsResponseInfo) bool {
					return i.Mechanism == sarama.SCRAM_MECHANISM_SHA_512
				}) {
					missing--
				}
			}
			if missing == 0 {
				return nil
			}
			err = fmt.Errorf("%d of %d users not listed yet", missing, len(names))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// jvmArgs returns the broker's JVM options: the defaults of Kafka's
// kafka-run-class.sh and kafka-server-start.sh with a smaller heap, no
// hsperfdata file, and slf4j-simple logging at WARN (to broker.log).
func jvmArgs(heapMB int, gc string) ([]string, error) {
	return jvm.KafkaOptions(jvm.Heap(256, heapMB, jvm.HeapGrows), gc)
}

// serverProperties renders the broker configuration; extra entries come last
// and so override the defaults.
func serverProperties(logDir string, ports listenerPorts, saslSSL *SASLSSLListener, extra map[string]string) string {
	var buf bytes.Buffer
	buf.WriteString("# Written by localkafka on every start.\n")
	set := func(k, v string) {
		fmt.Fprintf(&buf, "%s=%s\n", k, jvm.EscapeProperty(v))
	}
	listeners := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d,CONTROLLER://127.0.0.1:%d", ports.plain, ports.controller)
	advertised := fmt.Sprintf("PLAINTEXT://127.0.0.1:%d", ports.plain)
	protocols := "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
	if saslSSL != nil {
		listeners += fmt.Sprintf(",SASL_SSL://127.0.0.1:%d", ports.saslSSL)
		advertised += fmt.Sprintf(",SASL_SSL://127.0.0.1:%d", ports.saslSSL)
		protocols += ",SASL_SSL:SASL_SSL"
	}
	set("process.roles", "broker,controller")
	set("node.id", "1")
	set("controller.quorum.voters", fmt.Sprintf("1@127.0.0.1:%d", ports.controller))
	set("listeners", listeners)
	set("advertised.listeners", advertised)
	set("controller.listener.names", "CONTROLLER")
	set("inter.broker.listener.name", "PLAINTEXT")
	set("listener.security.protocol.map", protocols)
	if saslSSL != nil {
		// SCRAM only, with the credentials of the metadata log; the key and
		// its chain inline, in Kafka's PEM keystore.
		const l = "listener.name.sasl_ssl."
		set(l+"sasl.enabled.mechanisms", scramMechanism)
		set(l+strings.ToLower(scramMechanism)+".sasl.jaas.config", "org.apache.kafka.common.security.scram.ScramLoginModule required;")
		set(l+"ssl.keystore.type", "PEM")
		set(l+"ssl.keystore.certificate.chain", string(saslSSL.CertPEM))
		set(l+"ssl.keystore.key", string(saslSSL.KeyPEM))
	}
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

// clientConfig returns the configuration of localkafka's own short-lived
// clients: short timeouts, no retries.
func clientConfig(clientID string) *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.ClientID = clientID
	cfg.Version = sarama.V4_0_0_0
	cfg.Net.DialTimeout = time.Second
	cfg.Net.ReadTimeout = 3 * time.Second
	cfg.Net.WriteTimeout = 3 * time.Second
	cfg.Metadata.Retry.Max = 0
	cfg.Metadata.Full = false
	return cfg
}

// probe returns the probe of Process.WaitReady: it succeeds if the broker at
// addr answers a metadata request that lists at least one broker.
func probe(addr string) func() error {
	cfg := clientConfig("localkafka-probe")
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

// probeSASLSSL returns the probe of a broker with a SASL_SSL listener at
// saslSSLAddr: it succeeds if probe(addr) does and the listener completes a
// TLS handshake showing the certificate certPEM. The broker opens that
// listener after the PLAINTEXT one, and when it cannot bind the port it only
// stops a little later: without the handshake, Start could return a broker
// that is about to exit, or take another process on that port for it.
func probeSASLSSL(addr, saslSSLAddr string, certPEM []byte) func() error {
	plain := probe(addr)
	block, _ := pem.Decode(certPEM) // check made sure there is one
	cfg := &tls.Config{
		// The probe does not know the CA; it checks that the listener shows
		// the broker's own certificate instead, in VerifyConnection.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 || !bytes.Equal(cs.PeerCertificates[0].Raw, block.Bytes) {
				return errors.New("the SASL_SSL port shows another certificate than the broker's")
			}
			return nil
		},
	}
	dialer := &tls.Dialer{NetDialer: &net.Dialer{Timeout: time.Second}, Config: cfg}
	return func() error {
		if err := plain(); err != nil {
			return err
		}
		conn, err := dialer.Dial("tcp", saslSSLAddr) // the timeout bounds the handshake too
		if err != nil {
			return fmt.Errorf("SASL_SSL listener: %w", err)
		}
		return conn.Close()
	}
}

// Addr returns the PLAINTEXT listener address, "127.0.0.1:PORT".
func (b *Broker) Addr() string { return b.addr }

// SASLSSLAddr returns the SASL_SSL listener address, "127.0.0.1:PORT", or ""
// if the broker has none.
func (b *Broker) SASLSSLAddr() string { return b.saslSSLAddr }

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
func (b *Broker) Stop() error { return b.srv.Stop("addr", b.addr) }
