package statements

import (
	"encoding/hex"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/codebank/codebank/codecs"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// A line's key is "card token|approved at|payment", e.g.
//
//	gzNcUY7KgaoXOFX_qNg2gQ|1764547200123456|9f86d081884c7d65
//
// with the time the bank approved the payment in µs since the epoch, sixteen digits (up to the
// year 2286), and 64 bits of an FNV-1a digest of the payment key in hex. Keys sort as the lines
// should be shown: by card, then by time. Card tokens are base64url, whose characters all sort
// below '|', so no other card's keys fall within a card's range.
const (
	timeDigits = 16
	digestLen  = 16
	sep        = "|"
)

// LineKey returns the key of the statement line of the payment with paymentKey
// (codecs.PaymentKey) on the card of token, approved at at.
func LineKey(token string, at time.Time, paymentKey string) string {
	h := fnv.New64a()
	h.Write([]byte(paymentKey))
	var b strings.Builder
	b.Grow(len(token) + 2 + timeDigits + digestLen)
	b.WriteString(token)
	b.WriteString(sep)
	b.WriteString(timeKey(at))
	b.WriteString(sep)
	b.WriteString(hex.EncodeToString(h.Sum(nil)))
	return b.String()
}

// timeKey is the fixed-width time part of a line key.
func timeKey(at time.Time) string {
	return fmt.Sprintf("%0*d", timeDigits, max(at.UnixMicro(), 0))
}

// CardRange returns the range of the keys of a card's lines, as [start, limit).
func CardRange(token string) (start, limit string) {
	return token + sep, token + string(rune(sep[0]+1))
}

// MonthRange returns the range of the keys of a card's lines approved in month ("YYYY-MM",
// UTC), as [start, limit); an error for a month that is not one.
func MonthRange(token, month string) (start, limit string, err error) {
	from, err := time.Parse(MonthLayout, month)
	if err != nil || from.Format(MonthLayout) != month {
		return "", "", fmt.Errorf("month %q is not YYYY-MM", month)
	}
	return token + sep + timeKey(from), token + sep + timeKey(from.AddDate(0, 1, 0)), nil
}

// ParseLineKey returns the card token and approval time a line key names, and an error for a
// key that is not a line key (codecs.ErrContract).
func ParseLineKey(key string) (token string, at time.Time, err error) {
	parts := strings.Split(key, sep)
	if len(parts) != 3 || parts[0] == "" || len(parts[1]) != timeDigits || len(parts[2]) != digestLen {
		return "", time.Time{}, fmt.Errorf("statement line key: %w: want card token|%d-digit time|%d-character digest", codecs.ErrContract, timeDigits, digestLen)
	}
	us, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || us < 0 {
		return "", time.Time{}, fmt.Errorf("statement line key: %w: time is not a number of µs", codecs.ErrContract)
	}
	if _, err := hex.DecodeString(parts[2]); err != nil {
		return "", time.Time{}, fmt.Errorf("statement line key: %w: digest is not hexadecimal", codecs.ErrContract)
	}
	return parts[0], time.UnixMicro(us).UTC(), nil
}

// MonthOf returns the month ("YYYY-MM", UTC) of a line key's time.
func MonthOf(at time.Time) string { return at.UTC().Format(MonthLayout) }

// Summaries adds up lines into one summary a month, oldest first: each line with its approval
// time, in key order.
type Summaries struct {
	months []*eventsv1.MonthTotal
}

// Add counts one line approved at at, by its kind: a purchase adds to the month's total, a
// reversal, refund or bill payment to its own sum.
func (s *Summaries) Add(at time.Time, line *eventsv1.StatementLine) {
	month := MonthOf(at)
	if n := len(s.months); n == 0 || s.months[n-1].GetMonth() != month {
		s.months = append(s.months, &eventsv1.MonthTotal{Month: month})
	}
	m := s.months[len(s.months)-1]
	m.Count++
	amount := line.GetAmountCents()
	switch line.GetKind() {
	case eventsv1.OperationKind_OPERATION_KIND_REVERSAL:
		m.ReversedCents += amount
	case eventsv1.OperationKind_OPERATION_KIND_REFUND:
		m.RefundedCents += amount
	case eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT:
		m.PaidCents += amount
		if at.UTC().Day() <= DueDay {
			m.PaidByTenthCents += amount
		}
	default: // a purchase, or a line written before kinds
		m.TotalCents += amount
		m.Purchases++
	}
}

// Months returns the months with lines, oldest first.
func (s *Summaries) Months() []*eventsv1.MonthTotal { return s.months }

// Count returns the number of lines, every month.
func (s *Summaries) Count() int64 {
	var n int64
	for _, m := range s.months {
		n += m.GetCount()
	}
	return n
}
