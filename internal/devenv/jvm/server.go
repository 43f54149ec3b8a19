package jvm

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Launch is the start every launcher shares. It makes the data directory
// (dir, or a temporary one named after pkg), then calls start with it and
// ports, each 0 replaced by a free port; when a picked port is taken before
// the server binds it, it logs that and starts again on others (see
// OnFreePorts). If start fails, a temporary directory is removed. Errors are
// prefixed with pkg, e.g. "localkafka: ...".
func Launch[T any](pkg, name, dir string, ports []int, log *slog.Logger, start func(dir DataDir, ports []int) (T, error)) (T, error) {
	var zero T
	dataDir, err := NewDataDir(dir, pkg+"-")
	if err != nil {
		return zero, fmt.Errorf("%s: %w", pkg, err)
	}
	v, err := OnFreePorts(ports, func(p []int) (T, error) { return start(dataDir, p) }, func(port int) {
		log.Info(pkg+": a picked port was taken before the "+name+" bound it, retrying with another", "port", port)
	})
	if err != nil {
		dataDir.Remove()
		return zero, fmt.Errorf("%s: %w", pkg, err)
	}
	return v, nil
}

// Server is a started server as its launcher keeps it: the process and the
// directory it runs in.
type Server struct {
	Pkg  string // the launcher, e.g. "localkafka", for messages
	Name string // what it starts, e.g. "broker"
	Dir  DataDir
	Proc *Process
	Log  *slog.Logger

	stopOnce sync.Once
	stopErr  error
}

// The defaults the local servers share.
const (
	// DefaultHeapMB is a server's maximum Java heap in MiB when its options name none.
	DefaultHeapMB = 512
	// StopTimeout bounds a server's orderly shutdown before SIGKILL.
	StopTimeout = 30 * time.Second
)

// Stop ends the process (SIGTERM, then SIGKILL after StopTimeout) and removes
// the directory if it is temporary, and logs attrs with the time it took.
// It returns an error if the process had to be killed or had already exited
// on its own (with the tail of its log). Stop is safe to call more than
// once; later calls return the first call's result.
func (s *Server) Stop(attrs ...any) error {
	s.stopOnce.Do(func() {
		start := time.Now()
		var errs []error
		if err := s.Proc.Stop(StopTimeout); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Pkg, err))
		}
		if err := s.Dir.Remove(); err != nil {
			errs = append(errs, fmt.Errorf("%s: removing data dir: %w", s.Pkg, err))
		}
		s.Log.Info(s.Pkg+": "+s.Name+" stopped", append(attrs, "took", time.Since(start).Round(time.Millisecond))...)
		s.stopErr = errors.Join(errs...)
	})
	return s.stopErr
}
