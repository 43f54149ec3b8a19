package localsearch

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/codebank/codebank/internal/devenv/jvm"
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

// javaMajor is the oldest Java that runs OpenSearch 2.19.
const javaMajor = 17

// classpath returns the java -cp argument: the node jar (in.Extra) first,
// then the libs directory (CDS archives need jars, not class directories).
func classpath(in *jvm.Installation) string {
	return in.Extra + string(os.PathListSeparator) + filepath.Join(in.Libs, "*")
}

// fetch resolves the OpenSearch jars from Maven Central into
// cacheDir/opensearch-<version>/libs and compiles the node class into
// Installation.Extra, once; later
// calls only check that the files are there. Concurrent callers, in this or
// other processes, are serialised by a file lock.
func fetch(ctx context.Context, cacheDir string, java *jvm.Java, log *slog.Logger) (*jvm.Installation, error) {
	sum := sha256.Sum256(nodeSource)
	in, err := jvm.Fetch(ctx, jvm.FetchSpec{
		CacheDir: cacheDir,
		Name:     "opensearch-" + Version,
		Title:    "OpenSearch",
		Dependencies: []string{
			"org.opensearch:opensearch:" + Version,
			"org.opensearch.plugin:transport-netty4-client:" + Version,
			"org.opensearch.plugin:analysis-common:" + Version,
			"org.opensearch.plugin:mapper-extras-client:" + Version,
			"org.opensearch.plugin:reindex-client:" + Version,
			"org.apache.logging.log4j:log4j-core:" + log4jVersion,
		},
		Extra: "node-" + hex.EncodeToString(sum[:6]) + ".jar",
		MakeExtra: func(ctx context.Context, libs, nodeJar string) error {
			log.Info("localsearch: compiling the node class", "jar", nodeJar)
			return java.Compile(ctx, jvm.Build{
				What:      "the node class",
				Classpath: filepath.Join(libs, "*"),
				Sources:   map[string][]byte{"LocalSearchNode.java": nodeSource},
				Jar:       nodeJar,
			})
		},
		Log:       log,
		LogPrefix: "localsearch: ",
	})
	if err != nil {
		return nil, fmt.Errorf("localsearch: %w", err)
	}
	return in, nil
}
