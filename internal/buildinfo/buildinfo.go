// Package buildinfo says which build of Code Bank is running: its version, the source revision
// it was built from and the Go that built it, for `codebank --version` and the metric
// codebank_build_info{version,revision,goversion} (always 1) that every role exports.
//
// The go command records the revision in the binary when it builds from a git checkout
// (runtime/debug.BuildInfo, vcs.revision); an image built without the repository's .git sets
// them with the linker instead:
//
//	go build -ldflags "-X github.com/codebank/codebank/internal/buildinfo.version=1.2.0 \
//	  -X github.com/codebank/codebank/internal/buildinfo.revision=$(git rev-parse HEAD)" ./cmd/codebank
package buildinfo

import (
	"cmp"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Set by the linker (-X); empty means: read from the binary's build information.
var version, revision string

// Info is one build of the binary.
type Info struct {
	// Version is the module version the go command stamped (a tag, or a pseudo-version of the
	// commit), or the linker's; "(devel)" for a build whose version is unknown.
	Version string
	// Revision is the commit the binary was built from, with "-dirty" when the work tree had
	// changes; "unknown" without version control information.
	Revision string
	// GoVersion is the Go that built it, e.g. go1.26.8.
	GoVersion string
}

// Read returns the running binary's build.
func Read() Info {
	info := Info{Version: version, Revision: revision, GoVersion: runtime.Version()}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" {
			info.Version = bi.Main.Version
		}
		dirty := false
		rev := ""
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if info.Revision == "" && rev != "" {
			info.Revision = rev
			if dirty {
				info.Revision += "-dirty"
			}
		}
	}
	info.Version = cmp.Or(info.Version, "(devel)")
	info.Revision = cmp.Or(info.Revision, "unknown")
	return info
}

// String is the line `codebank --version` prints.
func (i Info) String() string {
	return fmt.Sprintf("%s (revision %s, %s %s/%s)", i.Version, i.Revision, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// Collector returns the gauge codebank_build_info, 1 with the build's labels: join it to other
// series (`* on (instance) group_left (version) codebank_build_info`) to see which build
// reports them, or count the builds running during a rollout.
func (i Info) Collector() prometheus.Collector {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "codebank_build_info",
		Help: "The build of the running binary: its version, source revision and Go version; always 1.",
	}, []string{"version", "revision", "goversion"})
	g.WithLabelValues(i.Version, i.Revision, i.GoVersion).Set(1)
	return g
}
