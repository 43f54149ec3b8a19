// Package money converts amounts between integer minor units (cents), which is how Code Bank
// keeps every amount, and the decimal forms people and the original bank's API use.
package money

import (
	"errors"
	"math"
	"strconv"
	"strings"
)

// MaxCents is the largest amount the bank accepts anywhere: one billion currency units.
const MaxCents int64 = 100_000_000_000

// Errors returned by FromFloat and Parse.
var (
	ErrNotFinite   = errors.New("amount must be a finite number")
	ErrNotPositive = errors.New("amount must be greater than zero")
	ErrTooLarge    = errors.New("amount is too large")
	ErrSyntax      = errors.New("amount must look like 12.34")
)

// FromFloat turns an amount in currency units (the original API's double) into cents, rounding
// half away from zero, so 12.345 is 1235 and 0.1+0.2 is 30. It rejects NaN, infinities,
// amounts that round to zero or below, and amounts above MaxCents.
func FromFloat(units float64) (int64, error) {
	if math.IsNaN(units) || math.IsInf(units, 0) {
		return 0, ErrNotFinite
	}
	if units > float64(MaxCents)/100 {
		return 0, ErrTooLarge
	}
	cents := int64(math.Round(units * 100))
	if cents <= 0 {
		return 0, ErrNotPositive
	}
	if cents > MaxCents {
		return 0, ErrTooLarge
	}
	return cents, nil
}

// Parse reads a positive decimal amount with at most two decimals ("12", "12.3", "12.34")
// into cents.
func Parse(s string) (int64, error) {
	s = strings.TrimSpace(s)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && (frac == "" || len(frac) > 2)) || strings.Trim(whole+frac, "0123456789") != "" {
		return 0, ErrSyntax
	}
	if len(whole) > 12 {
		return 0, ErrTooLarge
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, ErrSyntax
	}
	f, _ := strconv.ParseInt(frac, 10, 64)
	cents := w*100 + f
	if cents <= 0 {
		return 0, ErrNotPositive
	}
	if cents > MaxCents {
		return 0, ErrTooLarge
	}
	return cents, nil
}

// Format writes cents as a decimal with two places: 1234 is "12.34", -5 is "-0.05".
func Format(cents int64) string {
	sign := ""
	u := uint64(cents)
	if cents < 0 {
		sign = "-"
		u = uint64(-cents)
	}
	frac := strconv.FormatUint(u%100, 10)
	if len(frac) == 1 {
		frac = "0" + frac
	}
	return sign + strconv.FormatUint(u/100, 10) + "." + frac
}
