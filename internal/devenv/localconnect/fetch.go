package localconnect

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/codebank/codebank/connect"
	"github.com/codebank/codebank/internal/devenv/jvm"
)

// Version is the Kafka Connect version run by Start, the same as the
// broker's (localkafka.DefaultVersion).
const Version = "4.1.1"

// slf4jSimpleVersion is the slf4j backend added next to the worker's jars:
// Kafka 4.1 logs through slf4j-api 1.7.36 and Maven brings no backend.
const slf4jSimpleVersion = "1.7.36"

// JMXExporterVersion is the Prometheus JMX exporter agent that Options.Metrics runs, from Maven
// Central (io.prometheus.jmx:jmx_prometheus_javaagent).
const JMXExporterVersion = "1.0.1"

// pluginName is the directory, under the plugin path, of Code Bank's
// OpenSearch sink connector.
const pluginName = "codebank-opensearch-sink"

// javaMajor is the oldest Java that runs Kafka Connect 4.
const javaMajor = 17

// fetch resolves the Kafka Connect jars from Maven Central into
// cacheDir/connect-<version>/libs and compiles the sink connector into a
// plugin directory (the plugin.path, Installation.Extra), once; later calls
// only check that the files are there. Concurrent callers, in this or other
// processes, are serialised by a file lock.
func fetch(ctx context.Context, cacheDir string, java *jvm.Java, log *slog.Logger) (*jvm.Installation, error) {
	sources, err := connect.SinkSources()
	if err != nil {
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	h := sha256.New()
	for _, name := range slices.Sorted(maps.Keys(sources)) {
		fmt.Fprintf(h, "%s\n%d\n", name, len(sources[name]))
		h.Write(sources[name])
	}
	in, err := jvm.Fetch(ctx, jvm.FetchSpec{
		CacheDir: cacheDir,
		Name:     "connect-" + Version,
		Title:    "Kafka Connect",
		Dependencies: []string{
			"org.apache.kafka:connect-runtime:" + Version,
			"org.apache.kafka:connect-json:" + Version,
			"org.apache.kafka:connect-transforms:" + Version,
			"org.slf4j:slf4j-simple:" + slf4jSimpleVersion,
		},
		Extra: "plugins-" + hex.EncodeToString(h.Sum(nil)[:6]),
		MakeExtra: func(ctx context.Context, libs, pluginPath string) error {
			return buildPlugin(ctx, java, libs, pluginPath, sources, log)
		},
		Log:       log,
		LogPrefix: "localconnect: ",
	})
	if err != nil {
		return nil, fmt.Errorf("localconnect: %w", err)
	}
	return in, nil
}

// buildPlugin compiles the sink connector against the worker's jars into
// pluginPath/codebank-opensearch-sink/codebank-opensearch-sink.jar, with
// the service file that plugin.discovery=service_load looks for.
func buildPlugin(ctx context.Context, java *jvm.Java, libs, pluginPath string, sources map[string][]byte, log *slog.Logger) error {
	log.Info("localconnect: compiling the OpenSearch sink connector", "dir", pluginPath)
	tmp, err := os.MkdirTemp(filepath.Dir(pluginPath), ".plugins-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	plugin := filepath.Join(tmp, "plugins", pluginName)
	if err := os.MkdirAll(plugin, 0o755); err != nil {
		return err
	}
	if err := java.Compile(ctx, jvm.Build{
		What:      "the sink connector",
		Classpath: filepath.Join(libs, "*"),
		Sources:   sources,
		Resources: map[string][]byte{
			"META-INF/services/org.apache.kafka.connect.sink.SinkConnector": []byte(connect.OpenSearchSinkClass + "\n"),
		},
		Jar: filepath.Join(plugin, pluginName+".jar"),
	}); err != nil {
		return err
	}
	return os.Rename(filepath.Join(tmp, "plugins"), pluginPath)
}

// fetchJMXExporter resolves the Prometheus JMX exporter agent from Maven Central into
// cacheDir/jmx-exporter-<version>/libs, once, and returns the agent's jar.
func fetchJMXExporter(ctx context.Context, cacheDir string, log *slog.Logger) (string, error) {
	in, err := jvm.Fetch(ctx, jvm.FetchSpec{
		CacheDir:     cacheDir,
		Name:         "jmx-exporter-" + JMXExporterVersion,
		Title:        "Prometheus JMX exporter",
		Dependencies: []string{"io.prometheus.jmx:jmx_prometheus_javaagent:" + JMXExporterVersion},
		Log:          log,
		LogPrefix:    "localconnect: ",
	})
	if err != nil {
		return "", fmt.Errorf("localconnect: %w", err)
	}
	jar := filepath.Join(in.Libs, "jmx_prometheus_javaagent-"+JMXExporterVersion+".jar")
	if _, err := os.Stat(jar); err != nil {
		return "", fmt.Errorf("localconnect: the JMX exporter agent: %w", err)
	}
	return jar, nil
}
