package authorizer

import (
	"encoding/binary"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// An account remembers its latest outcomes packed in Account.outcomes, oldest first, each in
// entrySize bytes, big-endian:
//
//	0  transaction id digest (Fingerprint.ID, 128 bits)
//	16 parameters digest (Fingerprint.Params, 64 bits)
//	24 status (1 byte), 25 reason (1 byte)
//	26 amount in cents, 34 available cents after the decision,
//	42 decision time (µs), 50 request time (µs)
const entrySize = 58

// Fingerprint identifies a payment request within its card, for idempotency: ID stands for the
// transaction id, Params for the parameters a retry must repeat (store, description, channel;
// the amount is compared as it is). Both are keyed digests under the bank secret (card.Keys),
// so nobody can choose two ids, or two stores, that collide.
type Fingerprint struct {
	ID     [16]byte
	Params uint64
}

// FingerprintOf returns the fingerprint of a payment request.
func FingerprintOf(keys card.Keys, r *eventsv1.PaymentRequested) Fingerprint {
	params := keys.Digest("payment-params", r.GetStore(), r.GetDescription(), codecs.ChannelName(r.GetChannel()))
	return Fingerprint{ID: keys.Digest("payment-id", r.GetTransactionId()), Params: binary.BigEndian.Uint64(params[:8])}
}

// remembered is one remembered outcome.
type remembered struct {
	fp                Fingerprint
	status            codebankv1.PaymentStatus
	reason            codebankv1.RejectReason
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
	return remembered{
		fp:     Fingerprint{ID: [16]byte(e[:16]), Params: binary.BigEndian.Uint64(e[16:])},
		status: codebankv1.PaymentStatus(e[24]), reason: codebankv1.RejectReason(e[25]),
		amountCents: int64(binary.BigEndian.Uint64(e[26:])), availableCents: int64(binary.BigEndian.Uint64(e[34:])),
		decidedAtUnixUs: int64(binary.BigEndian.Uint64(e[42:])), requestedAtUnixUs: int64(binary.BigEndian.Uint64(e[50:])),
	}
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
// oldest (µs); the newest is always kept.
func appendOutcome(b []byte, out *eventsv1.Outcome, fp Fingerprint, keep int, oldest int64) []byte {
	var e [entrySize]byte
	copy(e[:16], fp.ID[:])
	binary.BigEndian.PutUint64(e[16:], fp.Params)
	e[24], e[25] = byte(out.GetStatus()), byte(out.GetReason())
	binary.BigEndian.PutUint64(e[26:], uint64(out.GetAmountCents()))
	binary.BigEndian.PutUint64(e[34:], uint64(out.GetAvailableCents()))
	binary.BigEndian.PutUint64(e[42:], uint64(out.GetDecidedAtUnixUs()))
	binary.BigEndian.PutUint64(e[50:], uint64(out.GetRequestedAtUnixUs()))
	b = append(b, e[:]...)
	n := len(b) / entrySize
	drop := max(n-keep, 0)
	for drop < n-1 && int64(binary.BigEndian.Uint64(b[drop*entrySize+42:])) < oldest {
		drop++
	}
	if drop > 0 {
		b = b[:copy(b, b[drop*entrySize:])] // in place: the account owns its bytes
	}
	return b
}
