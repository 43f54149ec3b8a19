package authorizer

import (
	"encoding/binary"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// An account remembers its latest outcomes packed in Account.outcomes, oldest first, each in
// entrySize bytes, big-endian, as small as they go: a busy card's account is decoded, encoded
// and written to the changelog for every payment, and its outcomes are most of it.
//
//	0  transaction id digest (Fingerprint.ID, 128 bits)
//	16 parameters digest (Fingerprint.Params, 32 bits)
//	20 status (high 4 bits) and reason (low 4 bits)
//	21 amount in cents (40 bits: up to 1.1e12, above money.MaxCents)
//	26 available cents after the decision (40 bits; never negative: the account's contract)
//	31 decision time, 39 request time (µs since the epoch, 64 bits each)
const entrySize = 47

// Fingerprint identifies a payment request within its card, for idempotency: ID stands for the
// merchant and its transaction id (the same id from two merchants is two payments), Params for
// the parameters a retry must repeat (store, description, channel; the amount is compared as it
// is). Both are keyed digests under the bank's tokenization key (card.Keys.Digest), so nobody
// can choose two ids, or two stores, that collide.
type Fingerprint struct {
	ID     [16]byte
	Params uint32
}

// FingerprintOf returns the fingerprint of a payment request.
func FingerprintOf(keys card.Keys, r *eventsv1.PaymentRequested) Fingerprint {
	params := keys.Digest("payment-params", r.GetStore(), r.GetDescription(), codecs.ChannelName(r.GetChannel()))
	return Fingerprint{ID: keys.Digest("payment-id", r.GetMerchantId(), r.GetTransactionId()), Params: binary.BigEndian.Uint32(params[:4])}
}

// remembered is one remembered outcome.
type remembered struct {
	fp                Fingerprint
	status            eventsv1.PaymentStatus
	reason            eventsv1.RejectReason
	amountCents       int64
	availableCents    int64
	decidedAtUnixUs   int64
	requestedAtUnixUs int64
}

func (r remembered) outcome(txID string) *eventsv1.Outcome {
	return &eventsv1.Outcome{TransactionId: txID, Status: r.status, Reason: r.reason, AmountCents: r.amountCents,
		AvailableCents: r.availableCents, DecidedAtUnixUs: r.decidedAtUnixUs, RequestedAtUnixUs: r.requestedAtUnixUs}
}

// rememberedOutcomes returns the account's remembered outcomes, oldest first.
func rememberedOutcomes(a *eventsv1.Account) []remembered {
	b := a.GetOutcomes()
	out := make([]remembered, 0, len(b)/entrySize)
	for i := 0; i+entrySize <= len(b); i += entrySize {
		out = append(out, entryAt(b, i))
	}
	return out
}

func entryAt(b []byte, i int) remembered {
	e := b[i : i+entrySize]
	decided := int64(binary.BigEndian.Uint64(e[31:]))
	return remembered{
		fp:     Fingerprint{ID: [16]byte(e[:16]), Params: binary.BigEndian.Uint32(e[16:])},
		status: eventsv1.PaymentStatus(e[20] >> 4), reason: eventsv1.RejectReason(e[20] & 0x0f),
		amountCents: int64(uint40(e[21:])), availableCents: int64(uint40(e[26:])),
		decidedAtUnixUs: decided, requestedAtUnixUs: int64(binary.BigEndian.Uint64(e[39:])),
	}
}

// maxUint40 is the largest value of a 40-bit field.
const maxUint40 = 1<<40 - 1

func uint40(b []byte) uint64 {
	return uint64(b[0])<<32 | uint64(b[1])<<24 | uint64(b[2])<<16 | uint64(b[3])<<8 | uint64(b[4])
}

// putUint40 writes v, clamped to 0..maxUint40, in 5 bytes.
func putUint40(b []byte, v int64) {
	u := uint64(min(max(v, 0), maxUint40))
	b[0], b[1], b[2], b[3], b[4] = byte(u>>32), byte(u>>24), byte(u>>16), byte(u>>8), byte(u)
}

// findOutcome returns the outcome remembered for a transaction id digest, newest first.
func findOutcome(a *eventsv1.Account, id [16]byte) (remembered, bool) {
	b := a.GetOutcomes()
	for i := len(b) - entrySize; i >= 0; i -= entrySize {
		if [16]byte(b[i:i+16]) == id {
			return entryAt(b, i), true
		}
	}
	return remembered{}, false
}

// appendOutcome adds an outcome and drops the oldest beyond keep entries or decided before
// oldest (µs); the newest is always kept. The kept entries are copied once, by the append: an
// account decoded from its table holds exactly its bytes, so there is no room to shift them in.
func appendOutcome(b []byte, out *eventsv1.Outcome, fp Fingerprint, keep int, oldest int64) []byte {
	var e [entrySize]byte
	copy(e[:16], fp.ID[:])
	binary.BigEndian.PutUint32(e[16:], fp.Params)
	e[20] = byte(out.GetStatus())<<4 | byte(out.GetReason())&0x0f
	putUint40(e[21:], out.GetAmountCents())
	putUint40(e[26:], out.GetAvailableCents())
	binary.BigEndian.PutUint64(e[31:], uint64(out.GetDecidedAtUnixUs()))
	binary.BigEndian.PutUint64(e[39:], uint64(out.GetRequestedAtUnixUs()))
	existing := len(b) / entrySize
	drop := max(existing+1-keep, 0)
	for drop < existing && int64(binary.BigEndian.Uint64(b[drop*entrySize+31:])) < oldest {
		drop++
	}
	return append(b[drop*entrySize:existing*entrySize], e[:]...)
}
