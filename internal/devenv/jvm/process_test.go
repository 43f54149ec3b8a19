//go:build unix

package jvm

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeJava stands in for a java server. Its last argument says what to do:
//
//	serve        touch "ready" and run until SIGTERM; then write the CDS
//	             dump it was asked for and exit 0
//	ignore-term  touch "ready" and run until SIGKILL; print a thread dump on SIGQUIT
//	exit         touch "ready", then exit 2 a moment later
//	bind-fail    log a bind failure with a stack trace and exit 1
const fakeJava = `dump=
for a; do case $a in -XX:ArchiveClassesAtExit=*) dump=${a#*=};; esac; done
eval mode=\${$#}
echo "args: $*"
case $mode in
serve) trap 'echo bye; if [ -n "$dump" ]; then echo classes > "$dump"; fi; exit 0' TERM ;;
ignore-term) trap '' TERM
	trap 'printf "%s\n" "Full thread dump fake:" "" "\"main\" #1 prio=5" "   java.lang.Thread.State: WAITING" "	at java.lang.Thread.join(Thread.java:1)" "	at org.example.Server.stop(Server.java:2)" "" "\"idle\" #2" "	at java.lang.Object.wait(Object.java:3)" "" "JNI global refs: 1"' QUIT ;;
exit) touch ready; sleep 0.2; exit 2 ;;
bind-fail)
	echo "ERROR Failed to bind to /127.0.0.1:4321"
	echo "	at org.example.Server.bind(Server.java:10)"
	echo "	... 3 more"
	echo "Caused by: java.net.BindException: $BIND_CAUSE"
	exit 1 ;;
esac
touch ready
while :; do sleep 0.05; done
`

type fakeServer struct {
	t    *testing.T
	dir  string
	java *Java
	cds  *ClassData
}

func newFakeServer(t *testing.T) *fakeServer {
	bin := fakeBin(t, map[string]string{"java": fakeJava}, true)
	return &fakeServer{
		t:    t,
		dir:  t.TempDir(),
		java: &Java{Path: filepath.Join(bin, "java"), Version: "fake"},
		cds:  NewClassData(filepath.Join(t.TempDir(), "cds"), "server", &Java{Path: "fake"}, ""),
	}
}

func (s *fakeServer) command(mode string) Command {
	return Command{
		Java:        s.java,
		Options:     []string{"-Xmx1m"},
		CDS:         s.cds,
		Classpath:   "libs/*",
		Main:        "org.example.Server",
		Args:        []string{mode},
		Dir:         s.dir,
		Log:         filepath.Join(s.dir, "server.log"),
		Banner:      "=== starting " + mode + " ===",
		Name:        "server",
		Addr:        "127.0.0.1:4321",
		BindFailure: regexp.MustCompile(`Failed to bind to [^\s]*:([0-9]+)`),
	}
}

func (s *fakeServer) start(mode string) *Process {
	s.t.Helper()
	os.Remove(filepath.Join(s.dir, "ready"))
	p, err := StartProcess(s.command(mode))
	if err != nil {
		s.t.Fatal(err)
	}
	return p
}

// ready is a probe that succeeds once the fake server touched "ready".
func (s *fakeServer) ready() error {
	_, err := os.Stat(filepath.Join(s.dir, "ready"))
	return err
}

func (s *fakeServer) log() string {
	data, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
	return string(data)
}

func TestProcess(t *testing.T) {
	s := newFakeServer(t)
	p := s.start("serve")
	if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
		t.Fatal(err)
	}
	if pgid, err := syscall.Getpgid(p.PID()); err != nil || pgid != p.PID() {
		t.Errorf("process group %d (%v), want its own, %d", pgid, err, p.PID())
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	log := s.log()
	for _, want := range []string{
		"=== starting serve ===\n",
		"args: -Xmx1m -XX:ArchiveClassesAtExit=" + s.cds.archive + ".",
		" -Xlog:cds=error,cds+dynamic=error -cp libs/* org.example.Server serve\n",
		"bye\n",
	} {
		if !strings.Contains(log, want) {
			t.Errorf("log lacks %q:\n%s", want, log)
		}
	}
	// The dump of an orderly stop became the archive, which the next start
	// maps.
	if _, err := os.Stat(s.cds.archive); err != nil {
		t.Fatalf("no archive after an orderly stop: %v", err)
	}
	p = s.start("serve")
	if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if want := "args: -Xmx1m -XX:SharedArchiveFile=" + s.cds.archive + " -Xlog"; !strings.Contains(s.log(), want) {
		t.Errorf("log lacks %q:\n%s", want, s.log())
	}
}

func TestProcessKilled(t *testing.T) {
	s := newFakeServer(t)
	p := s.start("ignore-term")
	if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
		t.Fatal(err)
	}
	// Its error says it was killed once the grace period ran out, rather than waited for,
	// with the threads of its dump that a shutdown waits on.
	err := p.Stop(300 * time.Millisecond)
	if err == nil || err.Error() != "server on 127.0.0.1:4321 did not shut down within 300ms and was killed; the threads on the shutdown's way:\n"+
		"\"main\" #1 prio=5\n   java.lang.Thread.State: WAITING\n\tat java.lang.Thread.join(Thread.java:1)\n\tat org.example.Server.stop(Server.java:2)" {
		t.Errorf("Stop: %v", err)
	}
	if _, err := os.Stat(s.cds.archive); !os.IsNotExist(err) {
		t.Errorf("a killed server left an archive: %v", err)
	}
}

func TestProcessExitedBeforeStop(t *testing.T) {
	s := newFakeServer(t)
	p := s.start("exit")
	if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
		t.Fatal(err)
	}
	<-p.exited
	err := p.Stop(time.Second)
	if err == nil || !strings.HasPrefix(err.Error(), "server on 127.0.0.1:4321 had exited before Stop (exit status 2)\n--- tail of "+
		filepath.Join(s.dir, "server.log")+" ---\n=== starting exit ===\nargs: ") {
		t.Errorf("Stop: %v", err)
	}
}

func TestProcessBindFailure(t *testing.T) {
	s := newFakeServer(t)
	// Only this start's lines make the tail.
	if err := os.WriteFile(filepath.Join(s.dir, "server.log"), []byte("an older start's line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("BIND_CAUSE", "Address already in use")
	p := s.start("bind-fail")
	err := p.WaitReady(context.Background(), 10*time.Second, "not ready", func() error { return errors.New("refused") })
	var busy *PortInUseError
	if !errors.As(err, &busy) || busy.Port != 4321 {
		t.Errorf("WaitReady: %v, want a *PortInUseError for 4321", err)
	}
	want := "server on 127.0.0.1:4321 did not start: java exited: exit status 1 (port 4321 is already in use)\n" +
		"--- tail of " + filepath.Join(s.dir, "server.log") + " ---\n=== starting bind-fail ===\n"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("WaitReady: %v\nwant it to start with %s", err, want)
	}
	if msg := err.Error(); strings.Contains(msg, "older start") || strings.Contains(msg, "Server.java") || strings.Contains(msg, "3 more") ||
		!strings.HasSuffix(msg, "ERROR Failed to bind to /127.0.0.1:4321\nCaused by: java.net.BindException: Address already in use") {
		t.Errorf("the tail is not this start's without stack frames:\n%s", msg)
	}

	// Some other bind failure is not a port in use.
	t.Setenv("BIND_CAUSE", "Cannot assign requested address")
	p = s.start("bind-fail")
	err = p.WaitReady(context.Background(), 10*time.Second, "not ready", func() error { return errors.New("refused") })
	if err == nil || errors.As(err, &busy) {
		t.Errorf("WaitReady: %v, want no *PortInUseError", err)
	}
}

func TestProcessNotReady(t *testing.T) {
	s := newFakeServer(t)
	p := s.start("serve")
	err := p.WaitReady(context.Background(), 300*time.Millisecond, "no answer", func() error { return errors.New("refused") })
	if err == nil || !strings.HasPrefix(err.Error(), "server on 127.0.0.1:4321 did not start: no answer within 300ms (last error: refused)\n--- tail of ") {
		t.Errorf("WaitReady: %v", err)
	}
	select {
	case <-p.exited:
	default:
		t.Error("the process runs on after WaitReady failed")
	}
	if tmp, _ := filepath.Glob(filepath.Join(filepath.Dir(s.cds.archive), "*")); len(tmp) != 1 || !strings.HasSuffix(tmp[0], ".lock") {
		t.Errorf("left in the archive's directory: %v", tmp)
	}

	ctx, cancel := context.WithCancel(context.Background())
	p = s.start("serve")
	time.AfterFunc(200*time.Millisecond, cancel)
	// A probe that hangs does not hold WaitReady up.
	hang := make(chan struct{})
	defer close(hang)
	err = p.WaitReady(ctx, time.Minute, "no answer", func() error { <-hang; return nil })
	if err == nil || !strings.Contains(err.Error(), "did not start: context canceled\n") {
		t.Errorf("WaitReady with a cancelled context: %v", err)
	}
}

// A JVM with an agent refuses to dump the archive ("Must enable AllowArchivingWithJavaAgent"),
// so it only maps one that exists.
func TestProcessWithAgentMapsButNeverDumps(t *testing.T) {
	s := newFakeServer(t)
	withAgent := func() {
		c := s.command("serve")
		c.Options = append(c.Options, "-javaagent:agent.jar=127.0.0.1:0:config.yaml")
		os.Remove(filepath.Join(s.dir, "ready"))
		p, err := StartProcess(c)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
			t.Fatal(err)
		}
		if err := p.Stop(10 * time.Second); err != nil {
			t.Errorf("Stop: %v", err)
		}
	}
	withAgent()
	if strings.Contains(s.log(), "-XX:ArchiveClassesAtExit") {
		t.Errorf("a JVM with an agent was asked to dump:\n%s", s.log())
	}
	if _, err := os.Stat(s.cds.archive); !os.IsNotExist(err) {
		t.Fatalf("an archive without a dump: %v", err)
	}
	// One without the agent dumps it; the next with the agent maps it.
	p := s.start("serve")
	if err := p.WaitReady(context.Background(), 10*time.Second, "not ready", s.ready); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		t.Errorf("Stop: %v", err)
	}
	withAgent()
	if want := "-javaagent:agent.jar=127.0.0.1:0:config.yaml -XX:SharedArchiveFile=" + s.cds.archive; !strings.Contains(s.log(), want) {
		t.Errorf("log lacks %q:\n%s", want, s.log())
	}
}
