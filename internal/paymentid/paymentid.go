// Package paymentid makes the payment_id that Authorize answers with, and reads it back when a
// merchant reverses or refunds the payment.
//
// A payment id must name a payment without the card's number or CVV (a merchant keeps it, and
// must keep neither), be enough for the ingress to send a later operation to the card's
// partition, be impossible to guess or alter, and tell nothing that links two payments of one
// card (or of two merchants). So it is the payment sealed, not a reference to it: the card's
// token, the transaction id, the amount, when it was decided and whether it was approved,
// encrypted and authenticated with AES-256-GCM under a key of the bank's (card.Keys.Derive),
// a random nonce each time, and the merchant's id as associated data. Whoever holds it reads
// nothing; a changed byte, another key, or another merchant, and it does not open (ErrUnknown).
// The same payment answered twice (a retry) gets two ids that both open to it.
//
// The layout, base64url without padding: a version byte (1), the 12-byte nonce, and the sealed
// token (16 bytes), flags (1 byte, bit 0: approved), amount and decision time (µs) as uvarints,
// and the transaction id; about 110 to 175 characters.
package paymentid

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/codebank/codebank/internal/card"
)

// Payment is what a payment id says.
type Payment struct {
	// CardToken is the card's token (card.Keys.Token): the key of its records.
	CardToken string
	// TransactionID is the payment's transaction id.
	TransactionID string
	// AmountCents is the amount decided.
	AmountCents int64
	// DecidedAtUnixUs is when the authorizer decided it.
	DecidedAtUnixUs int64
	// Approved says whether it was approved.
	Approved bool
}

// ErrUnknown is returned by Open for every id that is not a payment of the merchant's: not an
// id at all, altered, sealed under another key, or another merchant's. Which one is not said.
var ErrUnknown = errors.New("no such payment")

// MaxLen is the longest payment id Seal makes, in characters (a transaction id of 64).
const MaxLen = 180

const version = 1

// maxTransactionID is the longest transaction id (codecs.MaxTransactionIDLen).
const maxTransactionID = 64

// Sealer seals and opens payment ids. It is safe for concurrent use.
type Sealer struct{ aead cipher.AEAD }

// New returns a Sealer under a 256-bit key.
func New(key [32]byte) (*Sealer, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// ForKeys returns the Sealer of the bank's keys: every ingress with the same tokenization key
// opens the ids of the others.
func ForKeys(keys card.Keys) (*Sealer, error) {
	return New(keys.Derive("payment-id"))
}

// Seal returns the payment id of p, a payment of merchant.
func (s *Sealer) Seal(merchant string, p Payment) (string, error) {
	token, err := base64.RawURLEncoding.Strict().DecodeString(p.CardToken)
	if err != nil || len(token) != 16 || !card.ValidToken(p.CardToken) {
		return "", fmt.Errorf("payment id: card token is not a token")
	}
	if p.AmountCents < 0 || p.DecidedAtUnixUs < 0 || len(p.TransactionID) > maxTransactionID {
		return "", fmt.Errorf("payment id: negative amount or time, or a transaction id over %d bytes", maxTransactionID)
	}
	plain := make([]byte, 0, 16+1+2*binary.MaxVarintLen64+len(p.TransactionID))
	plain = append(plain, token...)
	var flags byte
	if p.Approved {
		flags |= 1
	}
	plain = append(plain, flags)
	plain = binary.AppendUvarint(plain, uint64(p.AmountCents))
	plain = binary.AppendUvarint(plain, uint64(p.DecidedAtUnixUs))
	plain = append(plain, p.TransactionID...)

	out := make([]byte, 1+s.aead.NonceSize(), 1+s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	out[0] = version
	if _, err := rand.Read(out[1:]); err != nil {
		return "", fmt.Errorf("payment id: %w", err)
	}
	out = s.aead.Seal(out, out[1:], plain, additional(merchant))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// Open returns the payment that id names for merchant, or ErrUnknown.
func (s *Sealer) Open(merchant, id string) (Payment, error) {
	if len(id) > MaxLen+8 || strings.ContainsAny(id, "\r\n") { // base64 skips new lines
		return Payment{}, ErrUnknown
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(id)
	n := s.aead.NonceSize()
	if err != nil || len(raw) < 1+n+s.aead.Overhead() || raw[0] != version {
		return Payment{}, ErrUnknown
	}
	plain, err := s.aead.Open(nil, raw[1:1+n], raw[1+n:], additional(merchant))
	if err != nil || len(plain) < 17 {
		return Payment{}, ErrUnknown
	}
	p := Payment{CardToken: base64.RawURLEncoding.EncodeToString(plain[:16]), Approved: plain[16]&1 == 1}
	rest := plain[17:]
	amount, l := binary.Uvarint(rest)
	if l <= 0 {
		return Payment{}, ErrUnknown
	}
	rest = rest[l:]
	decided, l := binary.Uvarint(rest)
	if l <= 0 || amount > 1<<62 || decided > 1<<62 {
		return Payment{}, ErrUnknown
	}
	p.AmountCents, p.DecidedAtUnixUs, p.TransactionID = int64(amount), int64(decided), string(rest[l:])
	return p, nil
}

// additional is the associated data: the version and the merchant, so that an id opens only
// for the merchant it was given to.
func additional(merchant string) []byte {
	return append([]byte{version}, merchant...)
}
