package buildinfo

import (
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
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
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || len(mfs[0].GetMetric()) != 1 {
		t.Fatalf("gather: %v %v", mfs, err)
	}
	m := mfs[0].GetMetric()[0]
	got := map[string]string{}
	for _, l := range m.GetLabel() {
		got[l.GetName()] = l.GetValue()
	}
	if mfs[0].GetName() != "codebank_build_info" || m.GetGauge().GetValue() != 1 ||
		got["version"] != "1.2.3" || got["revision"] != "0123abc" || got["goversion"] != runtime.Version() {
		t.Errorf("metric %s %v = %v", mfs[0].GetName(), got, m.GetGauge().GetValue())
	}

	version, revision = "", ""
	if i := Read(); i.Version == "" || i.Revision == "" {
		t.Errorf("Read() without the linker's values = %+v, want a version and a revision", i)
	}
}
