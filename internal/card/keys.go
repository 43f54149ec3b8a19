package card

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"regexp"
	"strings"
	"sync"
)

// MinSecretBytes is the shortest secret NewKeys accepts: 32 bytes, as from
// `openssl rand -base64 32`.
const MinSecretBytes = 32

// Keys derives what the bank computes from a card number instead of storing it, under two
// secrets kept apart:
//
//   - the tokenization key: Token, the card's identifier and the key of every card-keyed topic
//     and table, and Digest, the keyed digests of idempotency. It never rotates in place:
//     changing it re-keys every topic.
//   - the card keys: CVV derivation. They rotate: each has an id, a card keeps the id of the key
//     it was issued under, and every configured key verifies (MatchCVV), so cards issued under
//     an older key keep working while new ones use the current key (the first).
//
// A role holds only the keys it needs: the authorizer the tokenization key alone. The zero
// value is not usable. Keys is safe for concurrent use; copies share their pools of keyed HMAC
// states.
type Keys struct {
	token *macPool
	cards []cardKey // cards[0] is current
}

// CardKey is a card key and its id.
type CardKey struct {
	// ID names the key on the cards issued under it: 1-32 letters, digits, '.', '_' or '-'.
	ID string
	// Secret is at least MinSecretBytes bytes.
	Secret []byte
}

type cardKey struct {
	id  string
	mac *macPool
}

var keyIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// NewKeys returns Keys for a tokenization key and card keys, the first of which is current.
// Every secret must be at least MinSecretBytes long, and key ids unique. Without card keys,
// the Keys derive no CVVs.
func NewKeys(tokenKey []byte, cardKeys ...CardKey) (Keys, error) {
	if len(tokenKey) < MinSecretBytes {
		return Keys{}, fmt.Errorf("tokenization key: %d bytes, must be at least %d", len(tokenKey), MinSecretBytes)
	}
	k := Keys{token: newMACPool(tokenKey)}
	seen := map[string]bool{}
	for _, c := range cardKeys {
		switch {
		case !keyIDRE.MatchString(c.ID):
			return Keys{}, fmt.Errorf("card key id %q: use 1-32 letters, digits, '.', '_' or '-'", c.ID)
		case seen[c.ID]:
			return Keys{}, fmt.Errorf("card key id %q given twice", c.ID)
		case len(c.Secret) < MinSecretBytes:
			return Keys{}, fmt.Errorf("card key %s: %d bytes, must be at least %d", c.ID, len(c.Secret), MinSecretBytes)
		case hmac.Equal(c.Secret, tokenKey):
			return Keys{}, fmt.Errorf("card key %s is the tokenization key: keep them apart", c.ID)
		}
		seen[c.ID] = true
		k.cards = append(k.cards, cardKey{id: c.ID, mac: newMACPool(c.Secret)})
	}
	return k, nil
}

// ParseCardKeys parses card keys written "id:secret", separated by commas or new lines, the
// current key first (CODEBANK_CARD_KEYS).
func ParseCardKeys(s string) ([]CardKey, error) {
	var keys []CardKey
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' || r == '\r' }) {
		f = strings.TrimSpace(f)
		if f == "" || strings.HasPrefix(f, "#") {
			continue
		}
		id, secret, ok := strings.Cut(f, ":")
		if !ok {
			return nil, errors.New(`card keys: write each as "id:secret"`)
		}
		keys = append(keys, CardKey{ID: strings.TrimSpace(id), Secret: []byte(strings.TrimSpace(secret))})
	}
	if len(keys) == 0 {
		return nil, errors.New("card keys: none given")
	}
	return keys, nil
}

// Token returns a stable, non-reversible identifier of a card number (22 URL-safe characters):
// the key of the card's records and the public API's card id.
func (k Keys) Token(number string) string {
	var sum [sha256.Size]byte
	k.token.mac(&sum, "card-token", number)
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// TokenLength is the length of every Token.
const TokenLength = 22

// ValidToken reports whether s has the form of a Token.
func ValidToken(s string) bool {
	if len(s) != TokenLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Digest returns a 128-bit keyed digest of parts under domain (HMAC-SHA256 under the
// tokenization key, truncated): collision-resistant, and not computable without the key, so
// nobody can choose inputs that collide. Domains keep the digests of different uses apart.
func (k Keys) Digest(domain string, parts ...string) [16]byte {
	var sum [sha256.Size]byte
	k.token.mac(&sum, domain, parts...)
	return [16]byte(sum[:16])
}

// Tokenizes reports whether the Keys hold a tokenization key (the zero value does not).
func (k Keys) Tokenizes() bool { return k.token != nil }

// Derive returns a 256-bit key for one use of the tokenization key's (HMAC-SHA256 under it of
// the use's name): another secret to hold, without another one to distribute. The ingress
// seals payment ids under Derive("payment-id").
func (k Keys) Derive(use string) [32]byte {
	var sum [sha256.Size]byte
	k.token.mac(&sum, "derive", use)
	return sum
}

// CardKeyID returns the id of the current card key, under which new cards are issued; empty
// when the Keys have none.
func (k Keys) CardKeyID() string {
	if len(k.cards) == 0 {
		return ""
	}
	return k.cards[0].id
}

// CVV returns the 3-digit verification value of a card under the card key keyID: an HMAC of
// its number and expiry, so the bank verifies a CVV by recomputing it and never stores it. It
// returns false when the Keys have no such key.
func (k Keys) CVV(keyID, number string, exp Expiry) (string, bool) {
	for _, c := range k.cards {
		if c.id == keyID {
			var cvv [3]byte
			c.cvv(&cvv, number, exp)
			return string(cvv[:]), true
		}
	}
	return "", false
}

// MatchCVV returns the ids of the card keys under which cvv is the card's CVV: the authorizer
// accepts the CVV when the card's own key is among them. Every key is tried, each compared in
// constant time.
func (k Keys) MatchCVV(number string, exp Expiry, cvv string) []string {
	var ids []string
	for _, c := range k.cards {
		var want [3]byte
		c.cvv(&want, number, exp)
		if len(cvv) == len(want) && subtle.ConstantTimeCompare(want[:], []byte(cvv)) == 1 {
			ids = append(ids, c.id)
		}
	}
	return ids
}

func (c cardKey) cvv(out *[3]byte, number string, exp Expiry) {
	// The expiry as MM/YYYY, the form the derivation has always used.
	var e [7]byte
	if exp.Month >= 0 && exp.Month <= 99 && exp.Year >= 0 && exp.Year <= 9999 {
		e = [7]byte{digit(exp.Month / 10), digit(exp.Month), '/',
			digit(exp.Year / 1000), digit(exp.Year / 100), digit(exp.Year / 10), digit(exp.Year)}
	} else {
		copy(e[:], fmt.Sprintf("%02d/%04d", exp.Month, exp.Year)) // never a valid card; kept total
	}
	var sum [sha256.Size]byte
	c.mac.mac(&sum, "cvv", number, string(e[:]))
	v := binary.BigEndian.Uint32(sum[:4]) % 1000
	*out = [3]byte{digit(int(v / 100)), digit(int(v / 10)), digit(int(v))}
}

// digit returns the ASCII digit of n's last decimal place.
func digit(n int) byte { return byte('0' + n%10) }

// macPool holds HMAC-SHA256 states keyed with one secret (a Reset one costs two block hashes
// fewer than hmac.New, and the ingress derives a token and a CVV on every payment), each with
// a buffer for the message.
type macPool struct{ pool sync.Pool }

type macState struct {
	h   hash.Hash
	msg []byte
	sum [sha256.Size]byte // Sum writes here: a caller's array would escape to the heap
}

func newMACPool(secret []byte) *macPool {
	key := append([]byte(nil), secret...)
	p := &macPool{}
	p.pool.New = func() any { return &macState{h: hmac.New(sha256.New, key), msg: make([]byte, 0, 256)} }
	return p
}

// mac returns HMAC-SHA256(secret, domain 0 part1 0 part2 ...) into out.
func (p *macPool) mac(out *[sha256.Size]byte, domain string, parts ...string) {
	m := p.pool.Get().(*macState)
	msg := append(m.msg[:0], domain...)
	for _, s := range parts {
		msg = append(msg, 0)
		msg = append(msg, s...)
	}
	m.h.Reset()
	m.h.Write(msg)
	*out = [sha256.Size]byte(m.h.Sum(m.sum[:0]))
	if cap(msg) <= 4096 { // keep the buffer unless an odd input grew it large
		m.msg = msg
	}
	p.pool.Put(m)
}
