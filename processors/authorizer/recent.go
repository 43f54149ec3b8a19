package authorizer

import (
	"encoding/binary"
	"hash/fnv"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// An account remembers its latest outcomes packed in Account.recent, oldest first, each in
// entrySize bytes, big-endian:
//
//	0  transaction id hash (FNV-1a, 64 bits)
//	8  status (1 byte), 9 reason (1 byte)
//	10 amount in cents, 18 available cents after the decision, 26 decision time (µs)
//
// A hash stands for the transaction id: two ids of one card's latest 128 colliding is a
// 1-in-10^15 event.
const entrySize = 34

// TxHash is the hash that stands for a transaction id in an account's recent outcomes.
func TxHash(txID string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(txID))
	return h.Sum64()
}

// Recent is one remembered outcome.
type Recent struct {
	TxHash          uint64
	Status          codebankv1.PaymentStatus
	Reason          codebankv1.RejectReason
	AmountCents     int64
	AvailableCents  int64
	DecidedAtUnixUs int64
}

func (r Recent) outcome(txID string) *eventsv1.Outcome {
	return &eventsv1.Outcome{TransactionId: txID, Status: r.Status, Reason: r.Reason,
		AmountCents: r.AmountCents, AvailableCents: r.AvailableCents, DecidedAtUnixUs: r.DecidedAtUnixUs}
}

// RecentOutcomes returns the account's remembered outcomes, oldest first.
func RecentOutcomes(a *eventsv1.Account) []Recent {
	b := a.GetRecent()
	out := make([]Recent, 0, len(b)/entrySize)
	for i := 0; i+entrySize <= len(b); i += entrySize {
		out = append(out, entryAt(b, i))
	}
	return out
}

func entryAt(b []byte, i int) Recent {
	e := b[i : i+entrySize]
	return Recent{
		TxHash: binary.BigEndian.Uint64(e), Status: codebankv1.PaymentStatus(e[8]), Reason: codebankv1.RejectReason(e[9]),
		AmountCents: int64(binary.BigEndian.Uint64(e[10:])), AvailableCents: int64(binary.BigEndian.Uint64(e[18:])),
		DecidedAtUnixUs: int64(binary.BigEndian.Uint64(e[26:])),
	}
}

// findRecent returns the outcome remembered for txID, newest first.
func findRecent(a *eventsv1.Account, txID string) (Recent, bool) {
	b := a.GetRecent()
	if len(b) == 0 {
		return Recent{}, false
	}
	h := TxHash(txID)
	for i := len(b) - entrySize; i >= 0; i -= entrySize {
		if binary.BigEndian.Uint64(b[i:]) == h {
			return entryAt(b, i), true
		}
	}
	return Recent{}, false
}

// appendRecent adds an outcome and drops the oldest beyond keep entries or older than oldest
// (µs); the newest is always kept.
func appendRecent(b []byte, out *eventsv1.Outcome, keep int, oldest int64) []byte {
	var e [entrySize]byte
	binary.BigEndian.PutUint64(e[0:], TxHash(out.GetTransactionId()))
	e[8], e[9] = byte(out.GetStatus()), byte(out.GetReason())
	binary.BigEndian.PutUint64(e[10:], uint64(out.GetAmountCents()))
	binary.BigEndian.PutUint64(e[18:], uint64(out.GetAvailableCents()))
	binary.BigEndian.PutUint64(e[26:], uint64(out.GetDecidedAtUnixUs()))
	b = append(b, e[:]...)
	n := len(b) / entrySize
	drop := max(n-keep, 0)
	for drop < n-1 && int64(binary.BigEndian.Uint64(b[drop*entrySize+26:])) < oldest {
		drop++
	}
	if drop > 0 {
		b = b[:copy(b, b[drop*entrySize:])] // in place: the account owns its bytes
	}
	return b
}
