// Package localprometheus fetches, starts and stops a real Prometheus server for local
// development and integration tests, without Docker, and runs its promtool.
//
// Prometheus comes from Debian's `prometheus` package, downloaded and unpacked into the cache
// without installing anything (Fetch), so that `make run` and the tests need no root and leave
// the system alone. Start launches a Server configured by Options (the jobs and targets it
// scrapes, its rule files, its port and data directory) as a child process and returns once it
// is ready; Server.Stop shuts it down. Installation.RunPromtool runs promtool, e.g. `check rules`
// and `test rules`.
package localprometheus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/codebank/codebank/internal/devenv/osproc"
)

const (
	// DefaultScrapeInterval is Options.ScrapeInterval's default.
	DefaultScrapeInterval = 5 * time.Second
	// startTimeout bounds the wait for a started server to be ready.
	startTimeout = 60 * time.Second
	// stopTimeout bounds the orderly shutdown before SIGKILL.
	stopTimeout = 15 * time.Second
	// portAttempts is how often Start tries when a port it picked is taken before the server
	// binds it.
	portAttempts = 3
)

// Options configures Start. The zero value starts a server that scrapes nothing, in a temporary
// directory, on a free port.
type Options struct {
	// CacheDir is the cache root Fetch uses; default $CODEBANK_CACHE_DIR, else
	// os.UserCacheDir()/codebank.
	CacheDir string
	// DataDir holds the configuration (prometheus.yml, written at every start), the time series
	// (DataDir/data) and the server's output (prometheus.log). If empty, a temporary directory
	// is created and removed by Stop; else the series survive restarts on the same DataDir.
	DataDir string
	// Port is the HTTP port on 127.0.0.1 (the API and the web UI); 0 picks a free port.
	Port int
	// Jobs are what the server scrapes.
	Jobs []Job
	// ScrapeInterval is how often each target is scraped and the rules evaluated; default
	// DefaultScrapeInterval.
	ScrapeInterval time.Duration
	// RuleFiles are recording and alerting rule files, loaded as they are (paths relative to
	// the working directory).
	RuleFiles []string
	// Retention is how long series are kept; default Prometheus's (15 days).
	Retention time.Duration
	// Nice, when positive, runs the server at that niceness (nice(1)): below the servers a
	// payment's answer waits for, on a machine they share.
	Nice int
	// Logger receives progress messages; default slog.Default().
	Logger *slog.Logger
}

// Job is a scrape job: its name (the job label) and its targets' host:port, scraped at /metrics
// over HTTP.
type Job struct {
	Name    string
	Targets []string
}

// Server is a running Prometheus started by Start.
type Server struct {
	in       *Installation
	port     int
	dataDir  string
	tempDir  bool
	log      *slog.Logger
	cmd      *exec.Cmd
	logFile  *os.File
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // cmd.Wait's result, set before exited is closed
	stopOnce sync.Once
	stopErr  error
}

// Start fetches Prometheus if needed (Fetch), writes its configuration and starts it, and
// returns once GET /-/ready answers 200. Stop it with Server.Stop.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.ScrapeInterval <= 0 {
		o.ScrapeInterval = DefaultScrapeInterval
	}
	in, err := fetch(ctx, o.CacheDir, o.Logger)
	if err != nil {
		return nil, err
	}
	dir, temp := o.DataDir, o.DataDir == ""
	if temp {
		dir, err = os.MkdirTemp("", "localprometheus-")
	} else if dir, err = filepath.Abs(dir); err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return nil, fmt.Errorf("localprometheus: data dir: %w", err)
	}
	config, err := configYAML(o)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "prometheus.yml"), config, 0o644)
	}
	if err != nil {
		if temp {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("localprometheus: config: %w", err)
	}
	for attempt := 1; ; attempt++ {
		port := o.Port
		if port == 0 {
			if port, err = freePort(); err != nil {
				return nil, fmt.Errorf("localprometheus: %w", err)
			}
		}
		s := &Server{in: in, port: port, dataDir: dir, tempDir: temp, log: o.Logger}
		err = s.start(ctx, o.Retention, o.Nice)
		if err == nil {
			o.Logger.Info("localprometheus: ready", "url", s.URL(), "version", in.Version)
			return s, nil
		}
		if errors.Is(err, errPortInUse) && o.Port == 0 && attempt < portAttempts {
			o.Logger.Info("localprometheus: a picked port was taken before the server bound it, retrying with another", "port", port)
			continue
		}
		if temp {
			os.RemoveAll(dir)
		}
		return nil, fmt.Errorf("localprometheus: %w", err)
	}
}

var errPortInUse = errors.New("port in use")

func (s *Server) start(ctx context.Context, retention time.Duration, nice int) error {
	logPath := filepath.Join(s.dataDir, "prometheus.log")
	logFile, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	var logFrom int64
	if fi, err := logFile.Stat(); err == nil {
		logFrom = fi.Size()
	}
	args := append([]string{
		"--config.file=" + filepath.Join(s.dataDir, "prometheus.yml"),
		"--storage.tsdb.path=" + filepath.Join(s.dataDir, "data"),
		"--web.listen-address=" + s.Addr(),
	}, s.in.assets()...)
	if retention > 0 {
		args = append(args, "--storage.tsdb.retention.time="+strconv.FormatInt(int64(retention/time.Second), 10)+"s")
	}
	path, args := osproc.Niced(nice, s.in.Prometheus, args)
	cmd := exec.Command(path, args...)
	cmd.Dir = s.dataDir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = osproc.SysProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return fmt.Errorf("start %s: %w", s.in.Prometheus, err)
	}
	s.cmd, s.logFile, s.exited = cmd, logFile, make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitReady(ctx); err != nil {
		s.kill()
		logFile.Close()
		out := readFrom(logPath, logFrom)
		if strings.Contains(out, "address already in use") {
			err = fmt.Errorf("%w (%w)", err, errPortInUse)
		}
		return fmt.Errorf("prometheus on %s did not start: %w\n--- tail of %s ---\n%s", s.Addr(), err, logPath, tail([]byte(out), 20))
	}
	return nil
}

// waitReady polls /-/ready until it answers 200, the process exits, ctx ends or startTimeout
// passes.
func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	client := &http.Client{Timeout: time.Second}
	for {
		resp, err := client.Get(s.URL() + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-s.exited:
			return fmt.Errorf("prometheus exited: %v", s.waitErr)
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline.C:
			return fmt.Errorf("not ready within %s", startTimeout)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// URL returns the server's base URL, http://127.0.0.1:PORT.
func (s *Server) URL() string { return "http://" + s.Addr() }

// Addr returns the server's host:port.
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// DataDir returns the directory of the server's configuration, series and log.
func (s *Server) DataDir() string { return s.dataDir }

// Installation returns the Prometheus the server runs, whose promtool goes with it.
func (s *Server) Installation() *Installation { return s.in }

// Stop shuts the server down (SIGTERM, then SIGKILL after 15 s) and removes its data directory
// if it is temporary. It returns an error if the server had to be killed or had exited on its
// own. It is safe to call more than once; later calls return the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		start := time.Now()
		var errs []error
		select {
		case <-s.exited:
			errs = append(errs, fmt.Errorf("localprometheus: prometheus on %s had exited before Stop: %v", s.Addr(), s.waitErr))
		default:
			if err := osproc.Terminate(s.cmd.Process); err != nil {
				errs = append(errs, fmt.Errorf("localprometheus: signal prometheus: %w", err))
			}
			select {
			case <-s.exited:
			case <-time.After(stopTimeout):
				s.kill()
				errs = append(errs, fmt.Errorf("localprometheus: prometheus on %s did not stop within %s and was killed", s.Addr(), stopTimeout))
			}
		}
		s.logFile.Close()
		if s.tempDir {
			if err := os.RemoveAll(s.dataDir); err != nil {
				errs = append(errs, fmt.Errorf("localprometheus: remove data dir: %w", err))
			}
		}
		s.log.Info("localprometheus: stopped", "url", s.URL(), "took", time.Since(start).Round(time.Millisecond))
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}

// kill ends the process at once and waits for it.
func (s *Server) kill() {
	select {
	case <-s.exited:
	default:
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// config is the part of prometheus.yml that Options set.
type config struct {
	Global struct {
		ScrapeInterval     string `yaml:"scrape_interval"`
		ScrapeTimeout      string `yaml:"scrape_timeout"`
		EvaluationInterval string `yaml:"evaluation_interval"`
	} `yaml:"global"`
	RuleFiles     []string       `yaml:"rule_files,omitempty"`
	ScrapeConfigs []scrapeConfig `yaml:"scrape_configs"`
}

type scrapeConfig struct {
	JobName       string         `yaml:"job_name"`
	StaticConfigs []staticConfig `yaml:"static_configs"`
}

type staticConfig struct {
	Targets []string `yaml:"targets"`
}

// configYAML returns the prometheus.yml of o; the rule files' paths made absolute.
func configYAML(o Options) ([]byte, error) {
	var c config
	interval := model(o.ScrapeInterval)
	c.Global.ScrapeInterval, c.Global.EvaluationInterval = interval, interval
	// A scrape must end before the next begins.
	c.Global.ScrapeTimeout = model(min(o.ScrapeInterval, 10*time.Second))
	for _, f := range o.RuleFiles {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		c.RuleFiles = append(c.RuleFiles, abs)
	}
	c.ScrapeConfigs = []scrapeConfig{}
	for _, j := range o.Jobs {
		if j.Name == "" || len(j.Targets) == 0 {
			return nil, fmt.Errorf("job %q: a job needs a name and targets", j.Name)
		}
		c.ScrapeConfigs = append(c.ScrapeConfigs, scrapeConfig{JobName: j.Name, StaticConfigs: []staticConfig{{Targets: j.Targets}}})
	}
	return yaml.Marshal(&c)
}

// model formats d as a Prometheus duration: whole milliseconds.
func model(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// readFrom returns what the file at path holds from offset on.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	if offset > int64(len(b)) {
		offset = 0
	}
	return string(b[offset:])
}
