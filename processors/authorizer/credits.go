package authorizer

import (
	"encoding/binary"

	"github.com/codebank/codebank/codecs"
)

// An account remembers how much of each credited purchase was given back (reversed or
// refunded) packed in Account.credits, one entry a purchase, in the order of their first
// credit, each in creditSize bytes, big-endian:
//
//	0  purchase digest (Fingerprint.ID of the purchase: its merchant and transaction id)
//	16 when the purchase was approved, seconds since the epoch (32 bits)
//	20 credited so far, in cents (40 bits)
//
// Only purchases with a credit are here: the purchase's amount and time travel, sealed, in its
// payment id, and nothing is left of a purchase that is not here than its amount. So a card
// whose purchases are never reversed or refunded stores nothing more for every payment, and one
// that is stores 25 bytes for each purchase credited in the window.
const creditSize = codecs.AccountCreditSize

// creditEntry is one purchase's credits.
type creditEntry struct {
	id         [16]byte
	approvedAt int64 // seconds since the epoch
	credited   int64
}

func creditAt(b []byte, i int) creditEntry {
	e := b[i : i+creditSize]
	return creditEntry{id: [16]byte(e[:16]), approvedAt: int64(binary.BigEndian.Uint32(e[16:])), credited: int64(uint40(e[20:]))}
}

func putCredit(e []byte, c creditEntry) {
	copy(e[:16], c.id[:])
	binary.BigEndian.PutUint32(e[16:], uint32(min(max(c.approvedAt, 0), 1<<32-1)))
	putUint40(e[20:], c.credited)
}

// findCredit returns the index (in bytes) of a purchase's entry, or -1.
func findCredit(b []byte, id [16]byte) int {
	for i := 0; i+creditSize <= len(b); i += creditSize {
		if [16]byte(b[i:i+16]) == id {
			return i
		}
	}
	return -1
}

// credited returns how much of a purchase was given back, and whether its entry is kept.
func credited(b []byte, id [16]byte) (int64, bool) {
	if i := findCredit(b, id); i >= 0 {
		return creditAt(b, i).credited, true
	}
	return 0, false
}

// addCredit records amount more given back of a purchase (approved at approvedAt, seconds) and
// returns the new entries and floor. Entries of purchases approved before oldest (seconds) are
// dropped first; then, beyond keep entries, those of the oldest purchases, raising the floor to
// their time: a purchase approved at or before the floor without an entry may have lost its
// own, and is never credited again. The entries are rewritten into a new slice: an account
// decoded from its table holds exactly its bytes.
func addCredit(b []byte, floor int64, id [16]byte, approvedAt, amount int64, keep int, oldest int64) ([]byte, int64) {
	out := make([]byte, 0, len(b)+creditSize)
	found := false
	for i := 0; i+creditSize <= len(b); i += creditSize {
		c := creditAt(b, i)
		if c.id == id {
			c.credited += amount
			found = true
		} else if c.approvedAt < oldest {
			continue
		}
		out = append(out, make([]byte, creditSize)...)
		putCredit(out[len(out)-creditSize:], c)
	}
	if !found {
		out = append(out, make([]byte, creditSize)...)
		putCredit(out[len(out)-creditSize:], creditEntry{id: id, approvedAt: approvedAt, credited: amount})
	}
	for len(out)/creditSize > max(keep, 1) {
		// Drop the entry of the oldest purchase, never the one just credited.
		drop := -1
		for i := 0; i+creditSize <= len(out); i += creditSize {
			c := creditAt(out, i)
			if c.id != id && (drop < 0 || c.approvedAt < creditAt(out, drop).approvedAt) {
				drop = i
			}
		}
		floor = max(floor, creditAt(out, drop).approvedAt)
		out = append(out[:drop], out[drop+creditSize:]...)
	}
	return out, floor
}
