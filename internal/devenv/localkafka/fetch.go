package localkafka

import (
	"context"
	"fmt"
	"log/slog"
	"regexp"

	"github.com/codebank/codebank/internal/devenv/jvm"
)

// slf4jSimpleVersion is the slf4j-simple backend added next to Kafka's jars.
// Kafka 4.0 to 4.4 log through slf4j-api 1.7.36 and ship no backend of their
// own, so without it the broker would log nothing but three NOP-logger lines.
const slf4jSimpleVersion = "1.7.36"

// javaMajor is the oldest Java that runs Kafka 4.
const javaMajor = 17

var versionRE = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.\-]*$`)

// Fetch resolves the Kafka broker jars (org.apache.kafka:kafka_2.13 and its
// runtime dependencies, plus an slf4j backend) from Maven Central into
// cacheDir/kafka-<version>/libs and returns that directory. An empty version
// means DefaultVersion; an empty cacheDir means $CODEBANK_CACHE_DIR, else
// os.UserCacheDir()/codebank. The jars are resolved once: later calls only
// check a marker file. Concurrent callers, in this or other processes, are
// serialised by a file lock so only one of them runs Maven.
func Fetch(ctx context.Context, version, cacheDir string) (string, error) {
	in, err := fetch(ctx, version, cacheDir, slog.Default())
	if err != nil {
		return "", err
	}
	return in.Libs, nil
}

func fetch(ctx context.Context, version, cacheDir string, log *slog.Logger) (*jvm.Installation, error) {
	if version == "" {
		version = DefaultVersion
	}
	if !versionRE.MatchString(version) {
		return nil, fmt.Errorf("localkafka: invalid Kafka version %q", version)
	}
	in, err := jvm.Fetch(ctx, jvm.FetchSpec{
		CacheDir: cacheDir,
		Name:     "kafka-" + version,
		Title:    "Kafka",
		Dependencies: []string{
			"org.apache.kafka:kafka_2.13:" + version,
			"org.slf4j:slf4j-simple:" + slf4jSimpleVersion,
		},
		// Fetch has no java yet: Maven needs one.
		Check: func() error {
			_, err := jvm.FindJava(javaMajor, false)
			return err
		},
		Log:       log,
		LogPrefix: "localkafka: ",
	})
	if err != nil {
		return nil, fmt.Errorf("localkafka: %w", err)
	}
	return in, nil
}
