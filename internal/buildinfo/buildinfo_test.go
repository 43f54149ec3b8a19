package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestBuildInfo: the linker's version and revision win over the binary's build information;
// without either, the build still says what it is; the metric carries them, always 1.
func TestBuildInfo(t *testing.T) {
	version, revision = "1.2.3", "0123abc"
	defer func() { version, revision = "", "" }()
	i := Read()
	if i.Version != "1.2.3" || i.Revision != "0123abc" || i.GoVersion != runtime.Version() {
		t.Errorf("Read() = %+v, want the linker's version and revision", i)
	}
	if !strings.HasPrefix(i.String(), "1.2.3 (revision 0123abc, go") {
		t.Errorf("String() = %q", i.String())
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(i.Collector())
	want := `# HELP codebank_build_info The build of the running binary: its version, source revision and Go version; always 1.
# TYPE codebank_build_info gauge
codebank_build_info{goversion="` + runtime.Version() + `",revision="0123abc",version="1.2.3"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "codebank_build_info"); err != nil {
		t.Error(err)
	}

	version, revision = "", ""
	if i := Read(); i.Version == "" || i.Revision == "" {
		t.Errorf("Read() without the linker's values = %+v, want a version and a revision", i)
	}
}
