package statements

import (
	"time"

	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// The bill's rules.
const (
	// DueDay is the day of the next month (UTC) a month's closing balance is due.
	DueDay = 10
	// MinimumPercent is the share of the closing balance the minimum payment is, rounded up to
	// the cent, and MinimumCents its floor (50.00 in the card's currency): a balance below
	// MinimumCents is due whole.
	MinimumPercent = 15
	MinimumCents   = 5000
)

// BillStatus says where a month's bill stands.
type BillStatus int

// The statuses of a bill; the numbers are codebank.v1.BillStatus's.
const (
	// NothingDue: the closing balance is zero or a credit.
	NothingDue BillStatus = iota + 1
	// Open: not paid in full, and the due date has not passed (or the month has not ended).
	Open
	// Paid: bill payments from the month's end to its due date covered the closing balance.
	Paid
	// Overdue: the due date passed before the closing balance was paid.
	Overdue
)

// Bill is one month of a card's statement as a bill, in minor units. A balance below zero is a
// credit balance (refunds after the bill was paid).
type Bill struct {
	Month string
	// Opening is what was owed at the end of the previous month: its Closing.
	Opening int64
	// Purchases, Reversals, Refunds and Payments are the month's sums of each kind of line.
	Purchases, Reversals, Refunds, Payments int64
	// Closing is Opening + Purchases - Reversals - Refunds - Payments.
	Closing int64
	// Due is the day Closing is due: the 10th of the next month, UTC.
	Due time.Time
	// Minimum is the minimum payment of Closing (MinimumPayment).
	Minimum int64
	// PaidByDue is what bill payments from the month's end to Due paid.
	PaidByDue int64
	// Status is where the bill stands at the time Bills was asked.
	Status BillStatus
}

// DueDate returns the due date of month ("YYYY-MM"): the DueDay of the next month, UTC; the
// zero time for a month that is not one.
func DueDate(month string) time.Time {
	m, err := time.Parse(MonthLayout, month)
	if err != nil {
		return time.Time{}
	}
	return time.Date(m.Year(), m.Month()+1, DueDay, 0, 0, 0, 0, time.UTC)
}

// MinimumPayment returns the minimum payment of a closing balance: MinimumPercent of it,
// rounded up to the cent, at least MinimumCents, and never more than the balance; 0 when
// nothing is owed.
func MinimumPayment(closing int64) int64 {
	if closing <= 0 {
		return 0
	}
	share := (closing*MinimumPercent + 99) / 100
	return min(max(share, MinimumCents), closing)
}

// Bills returns the bill of every month of months (a card's, oldest first, as Summaries adds
// them up), each opening with the previous one's closing balance; a card's first month opens at
// zero. Statuses are as of now.
func Bills(months []*eventsv1.MonthTotal, now time.Time) []Bill {
	byMonth := make(map[string]*eventsv1.MonthTotal, len(months))
	for _, m := range months {
		byMonth[m.GetMonth()] = m
	}
	bills := make([]Bill, 0, len(months))
	var balance int64
	for _, m := range months {
		b := Bill{Month: m.GetMonth(), Opening: balance, Purchases: m.GetTotalCents(), Reversals: m.GetReversedCents(),
			Refunds: m.GetRefundedCents(), Payments: m.GetPaidCents(), Due: DueDate(m.GetMonth())}
		b.Closing = b.Opening + b.Purchases - b.Reversals - b.Refunds - b.Payments
		b.Minimum = MinimumPayment(b.Closing)
		if next := byMonth[b.Due.Format(MonthLayout)]; next != nil {
			b.PaidByDue = next.GetPaidByTenthCents()
		}
		switch {
		case b.Closing <= 0:
			b.Status = NothingDue
		case b.PaidByDue >= b.Closing:
			b.Status = Paid
		case now.Before(b.Due.AddDate(0, 0, 1)): // the whole due day
			b.Status = Open
		default:
			b.Status = Overdue
		}
		bills = append(bills, b)
		balance = b.Closing
	}
	return bills
}

// BillOf returns the bill of month among months (Bills); a month without lines is billed with
// the balance it inherits and nothing else.
func BillOf(months []*eventsv1.MonthTotal, month string, now time.Time) Bill {
	all := make([]*eventsv1.MonthTotal, 0, len(months)+1)
	at := -1
	for _, m := range months {
		if at < 0 && m.GetMonth() >= month {
			at = len(all)
			if m.GetMonth() != month {
				all = append(all, &eventsv1.MonthTotal{Month: month})
			}
		}
		all = append(all, m)
	}
	if at < 0 {
		at = len(all)
		all = append(all, &eventsv1.MonthTotal{Month: month})
	}
	return Bills(all, now)[at]
}
