package apikey

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReloadInterval is how often a Store looks at its file for changes.
const ReloadInterval = 5 * time.Second

// Store is a keys file, read again whenever it changes (Run). A file that no longer parses
// leaves the last good set in use, and is logged and counted until it is fixed.
//
// Metrics (registered by Open):
//
//	codebank_api_keys          keys in use
//	codebank_api_keys_reload_errors_total  times the file could not be read or parsed
type Store struct {
	path string
	log  *slog.Logger
	set  atomic.Pointer[Set]
	last []byte

	keys   prometheus.GaugeFunc
	errors prometheus.Counter
}

// Open reads the keys file at path. It fails when the file cannot be read or parsed, or holds no
// key: a bank that nobody may call is a mistake.
func Open(path string, reg prometheus.Registerer, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{path: path, log: log}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	set, err := Parse(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if set.Len() == 0 {
		return nil, fmt.Errorf("%s: no API keys: nobody could call the bank", path)
	}
	s.set.Store(set)
	s.last = b
	s.keys = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "codebank_api_keys", Help: "API keys in use."},
		func() float64 { return float64(s.set.Load().Len()) })
	s.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_api_keys_reload_errors_total",
		Help: "Times the API keys file could not be read or parsed; the last good keys stay in use."})
	if reg != nil {
		reg.MustRegister(s.keys, s.errors)
	}
	log.Info("API keys loaded", "file", path, "keys", set.Len())
	return s, nil
}

// Set returns the keys in use.
func (s *Store) Set() *Set { return s.set.Load() }

// Authenticate authenticates key against the keys in use (Set.Authenticate).
func (s *Store) Authenticate(key string) (Principal, error) { return s.set.Load().Authenticate(key) }

// Reload reads the file again, and uses it if it changed and parses.
func (s *Store) Reload() error {
	b, err := os.ReadFile(s.path)
	if err == nil && bytes.Equal(b, s.last) {
		return nil
	}
	var set *Set
	if err == nil {
		set, err = Parse(bytes.NewReader(b))
	}
	if err == nil && set.Len() == 0 {
		err = fmt.Errorf("%s: no API keys", s.path)
	}
	if err != nil {
		s.errors.Inc()
		s.log.Error("API keys file not reloaded: the last good keys stay in use", "file", s.path, "err", err)
		return err
	}
	s.set.Store(set)
	s.last = b
	s.log.Info("API keys reloaded", "file", s.path, "keys", set.Len())
	return nil
}

// Run reloads the file every ReloadInterval until ctx ends.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Reload()
		}
	}
}
