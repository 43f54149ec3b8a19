// Package apikey is how callers prove who they are: API keys, each naming a role (and, for a
// merchant, the merchant it speaks for), kept by the bank only as SHA-256 hashes.
//
// A key reads "cb_<key id>_<secret>", the secret being 32 random bytes in URL-safe base64: the
// id says which entry to check, so a failed check names the key without revealing it, and the
// hash is compared in constant time. The bank's list of keys is a text file, one key a line:
//
//	# key id   role      SHA-256 of the key (hex)                                          merchant    name
//	store-1    merchant  5b1c...e2                                                          code-store  Code Store
//	ops-1      admin     9f86...08
//
// Several keys may name one merchant or role, so a key is rotated by adding the new one,
// moving callers to it and deleting the old line; a Store reads the file again when it changes
// (a mounted Kubernetes Secret changes in place), and a deleted key stops working then.
package apikey

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
)

// Role is what a key may do; grpcgateway's access table says which methods each may call.
type Role string

// The roles.
const (
	// Merchant keys authorize payments for their merchant (checkouts, the store).
	Merchant Role = "merchant"
	// Admin keys are the bank's operators': issue, read, block and unblock cards, read
	// statements.
	Admin Role = "admin"
	// Pages keys are the bank's own pages': verify that a customer holds a card, then show its
	// statement.
	Pages Role = "pages"
)

// Roles are every role, in the order the docs list them.
var Roles = []Role{Merchant, Admin, Pages}

// Principal is who a key speaks for.
type Principal struct {
	// KeyID names the key in logs and metrics (never the key itself).
	KeyID string
	// Role is what the key may do.
	Role Role
	// Merchant and MerchantName are the merchant of a Merchant key: its id, recorded on every
	// payment and scoping its transaction ids, and the name its customers see.
	Merchant, MerchantName string
}

// Errors of Authenticate.
var (
	// ErrMissing is a call without a key.
	ErrMissing = errors.New("no API key: send the header authorization: Bearer <key>")
	// ErrUnknown is a key that is malformed, unknown or revoked.
	ErrUnknown = errors.New("unknown or revoked API key")
)

const (
	prefix      = "cb_"
	secretBytes = 32
)

var (
	idRE       = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)
	merchantRE = idRE
)

// ValidID reports whether s can be a key id or a merchant id: 1-40 lower-case letters, digits
// and dashes, starting with a letter or digit.
func ValidID(s string) bool { return idRE.MatchString(s) }

// New returns a new key with the given id.
func New(id string) (string, error) {
	if !ValidID(id) {
		return "", fmt.Errorf("key id %q: use 1-40 lower-case letters, digits and dashes", id)
	}
	secret := make([]byte, secretBytes)
	if _, err := rand.Read(secret); err != nil {
		return "", err
	}
	return prefix + id + "_" + base64.RawURLEncoding.EncodeToString(secret), nil
}

// Hash returns the SHA-256 of a key, in hex: what the keys file keeps.
func Hash(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// Line returns the keys file's line for key, which must name p.KeyID.
func Line(p Principal, key string) string {
	line := fmt.Sprintf("%s %s %s", p.KeyID, p.Role, Hash(key))
	if p.Role == Merchant {
		line += " " + p.Merchant + " " + p.MerchantName
	}
	return line
}

// KeyID returns the id a key names, or false for a string that is no key.
func KeyID(key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", false
	}
	id, secret, ok := strings.Cut(rest, "_")
	if !ok || !ValidID(id) || len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return "", false
	}
	return id, true
}

// Set is a parsed keys file. It is immutable.
type Set struct {
	byID map[string]entry
}

type entry struct {
	p    Principal
	hash [sha256.Size]byte
}

// Parse reads a keys file. Blank lines and lines starting with # are skipped. An error names
// the line.
func Parse(r io.Reader) (*Set, error) {
	s := &Set{byID: map[string]entry{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := parseLine(line)
		if err != nil {
			return nil, fmt.Errorf("keys file line %d: %w", n, err)
		}
		if _, dup := s.byID[e.p.KeyID]; dup {
			return nil, fmt.Errorf("keys file line %d: key id %q listed twice", n, e.p.KeyID)
		}
		s.byID[e.p.KeyID] = e
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("keys file: %w", err)
	}
	return s, nil
}

func parseLine(line string) (entry, error) {
	f := strings.Fields(line)
	if len(f) < 3 {
		return entry{}, errors.New(`want "<key id> <role> <sha256 hex> [<merchant id> <merchant name>]"`)
	}
	e := entry{p: Principal{KeyID: f[0], Role: Role(f[1])}}
	if !ValidID(e.p.KeyID) {
		return entry{}, fmt.Errorf("key id %q: use 1-40 lower-case letters, digits and dashes", e.p.KeyID)
	}
	sum, err := hex.DecodeString(f[2])
	if err != nil || len(sum) != sha256.Size {
		return entry{}, fmt.Errorf("key %s: %q is not a SHA-256 in hex (64 characters)", e.p.KeyID, f[2])
	}
	e.hash = [sha256.Size]byte(sum)
	switch e.p.Role {
	case Merchant:
		if len(f) < 5 || !merchantRE.MatchString(f[3]) {
			return entry{}, fmt.Errorf("merchant key %s: give the merchant's id (lower-case letters, digits, dashes) and name", e.p.KeyID)
		}
		e.p.Merchant, e.p.MerchantName = f[3], strings.Join(f[4:], " ")
		if len(e.p.MerchantName) > 60 {
			return entry{}, fmt.Errorf("merchant key %s: the name is over 60 bytes", e.p.KeyID)
		}
	case Admin, Pages:
		if len(f) > 3 {
			return entry{}, fmt.Errorf("%s key %s: only merchant keys name a merchant", e.p.Role, e.p.KeyID)
		}
	default:
		return entry{}, fmt.Errorf("key %s: role %q is not one of %v", e.p.KeyID, e.p.Role, Roles)
	}
	return e, nil
}

// Hashes returns the SHA-256 of each key of the set, by key id.
func (s *Set) Hashes() map[string][sha256.Size]byte {
	out := make(map[string][sha256.Size]byte, len(s.byID))
	for id, e := range s.byID {
		out[id] = e.hash
	}
	return out
}

// Len returns the number of keys.
func (s *Set) Len() int { return len(s.byID) }

// Authenticate returns who key speaks for: ErrMissing for an empty key, ErrUnknown for one
// that is not in the set.
func (s *Set) Authenticate(key string) (Principal, error) {
	if key == "" {
		return Principal{}, ErrMissing
	}
	id, ok := KeyID(key)
	if !ok {
		return Principal{}, ErrUnknown
	}
	e, ok := s.byID[id]
	sum := sha256.Sum256([]byte(key))
	if !ok || subtle.ConstantTimeCompare(sum[:], e.hash[:]) != 1 {
		return Principal{}, ErrUnknown
	}
	return e.p, nil
}

// MerchantName returns the name of a merchant some key of the set names.
func (s *Set) MerchantName(merchant string) (string, bool) {
	for _, e := range s.byID {
		if e.p.Role == Merchant && e.p.Merchant == merchant {
			return e.p.MerchantName, true
		}
	}
	return "", false
}
