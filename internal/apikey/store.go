package apikey

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ReloadInterval is how often a Store looks at its file for changes.
const ReloadInterval = 5 * time.Second

// Store is a keys file, read again whenever it changes (Reload, which the process that serves
// calls every ReloadInterval). It fails closed: a file that can no longer be read (deleted,
// unreadable), that does not parse, or that holds no key revokes every key until it is fixed; callers are refused, and the store says so in its log, in
// codebank_api_keys_revoked and through Ready. A good file again admits its keys at the next
// reload. Write the file by renaming a complete one into place (as a mounted Kubernetes Secret
// is updated): a file caught half-written revokes every key until the next reload.
//
// Metrics (registered by Open):
//
//	codebank_api_keys                      keys in use (0 while revoked)
//	codebank_api_keys_revoked              1 while every key is refused because the file cannot be used
//	codebank_api_keys_reload_errors_total  times the file could not be read or parsed, or held no key
type Store struct {
	path  string
	log   *slog.Logger
	check func(*Set) error
	set   atomic.Pointer[Set]
	last  []byte // the file as last used; nil while revoked

	mu      sync.Mutex // guards revoked, set by Reload and read by Ready
	revoked error

	keys    prometheus.GaugeFunc
	revokes prometheus.GaugeFunc
	errors  prometheus.Counter
}

// ErrRevoked is what Ready returns, wrapped with the cause, while the keys file cannot be used
// and every key is refused.
var ErrRevoked = errors.New("every API key is revoked: the keys file cannot be used")

// Open reads the keys file at path. It fails when the file cannot be read or parsed, or holds no
// key (a bank that nobody may call is a mistake), or when check (if not nil) refuses its keys;
// a file that check refuses later, at a reload, revokes every key like a malformed one.
func Open(path string, reg prometheus.Registerer, log *slog.Logger, check func(*Set) error) (*Store, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &Store{path: path, log: log, check: check}
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
	if check != nil {
		if err := check(set); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	s.set.Store(set)
	s.last = b
	s.keys = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "codebank_api_keys", Help: "API keys in use (0 while every key is revoked)."},
		func() float64 { return float64(s.set.Load().Len()) })
	s.revokes = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "codebank_api_keys_revoked",
		Help: "1 while every API key is refused because the keys file is missing, unreadable, malformed or holds no key; 0 otherwise."},
		func() float64 {
			if s.Ready() != nil {
				return 1
			}
			return 0
		})
	s.errors = prometheus.NewCounter(prometheus.CounterOpts{Name: "codebank_api_keys_reload_errors_total",
		Help: "Times the API keys file could not be read or parsed, or held no key; every key is refused until it is fixed."})
	if reg != nil {
		reg.MustRegister(s.keys, s.revokes, s.errors)
	}
	log.Info("API keys loaded", "file", path, "keys", set.Len())
	return s, nil
}

// Set returns the keys in use (none while revoked).
func (s *Store) Set() *Set { return s.set.Load() }

// Authenticate authenticates key against the keys in use (Set.Authenticate): ErrUnknown for
// every key while they are revoked.
func (s *Store) Authenticate(key string) (Principal, error) { return s.set.Load().Authenticate(key) }

// Ready returns nil while the keys file is in use, and an error wrapping ErrRevoked, saying
// why, while every key is revoked.
func (s *Store) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revoked
}

// Reload reads the file again, and uses it if it changed. A file that cannot be read, does not
// parse or holds no key revokes every key, and Reload returns why.
func (s *Store) Reload() error {
	b, err := os.ReadFile(s.path)
	if err == nil && s.last != nil && bytes.Equal(b, s.last) {
		return nil
	}
	var set *Set
	if err == nil {
		set, err = Parse(bytes.NewReader(b))
	}
	if err == nil && set.Len() == 0 {
		err = fmt.Errorf("%s: no API keys", s.path)
	}
	if err == nil && s.check != nil {
		err = s.check(set)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.errors.Inc()
		s.set.Store(&Set{})
		s.last = nil
		if s.revoked == nil {
			s.log.Error("API keys file unusable: every key is revoked until it is fixed", "file", s.path, "err", err)
		}
		s.revoked = fmt.Errorf("%w: %v", ErrRevoked, err)
		return err
	}
	s.set.Store(set)
	s.last = b
	if s.revoked != nil {
		s.log.Warn("API keys file usable again: its keys are admitted", "file", s.path, "keys", set.Len())
	} else {
		s.log.Info("API keys reloaded", "file", s.path, "keys", set.Len())
	}
	s.revoked = nil
	return nil
}
