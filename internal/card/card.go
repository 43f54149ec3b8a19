// Package card holds what the bank knows about card numbers: generation of Luhn-valid numbers,
// validation, masking for display, a non-reversible token that stands for the number in every
// record and in the public API, and CVVs derived from rotating card keys instead of stored.
//
// Its main types are Keys, which derives tokens and CVVs, and Expiry.
package card

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// NumberLength is the length of every card number the bank issues and accepts.
const NumberLength = 16

// DefaultBIN is the issuer prefix of cards issued by Code Bank.
const DefaultBIN = "545454"

// Errors returned by ValidateNumber.
var (
	ErrNumberLength = errors.New("card number must have 16 digits")
	ErrNumberDigits = errors.New("card number must contain digits only")
	ErrNumberLuhn   = errors.New("card number fails the Luhn check")
)

// ValidateNumber reports whether number is a well-formed 16-digit, Luhn-valid card number.
func ValidateNumber(number string) error {
	if len(number) != NumberLength {
		return ErrNumberLength
	}
	for i := 0; i < len(number); i++ {
		if number[i] < '0' || number[i] > '9' {
			return ErrNumberDigits
		}
	}
	if luhnSum(number)%10 != 0 {
		return ErrNumberLuhn
	}
	return nil
}

// NormalizeNumber removes the spaces and dashes people type between groups of digits.
func NormalizeNumber(s string) string {
	if !strings.ContainsAny(s, " -") {
		return s
	}
	return strings.NewReplacer(" ", "", "-", "").Replace(s)
}

// luhnSum returns the Luhn sum of a string of digits, the last one being the check digit.
func luhnSum(digits string) int {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum
}

// NewNumber returns a random Luhn-valid 16-digit number starting with bin.
func NewNumber(bin string) (string, error) {
	if len(bin) >= NumberLength || strings.Trim(bin, "0123456789") != "" {
		return "", fmt.Errorf("invalid BIN %q", bin)
	}
	body := make([]byte, NumberLength-1)
	copy(body, bin)
	var rnd [NumberLength]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("read random: %w", err)
	}
	for i := len(bin); i < len(body); i++ {
		body[i] = '0' + rnd[i]%10
	}
	// The check digit makes the Luhn sum of the whole number a multiple of 10.
	sum := luhnSum(string(body) + "0")
	check := (10 - sum%10) % 10
	return string(body) + string(rune('0'+check)), nil
}

// Mask hides the middle digits of a card number: 545454******1234. Anything that is not a
// 16-digit string is masked whole but for its last four characters.
func Mask(number string) string {
	if len(number) == NumberLength {
		return number[:6] + "******" + number[12:]
	}
	if len(number) <= 4 {
		return strings.Repeat("*", len(number))
	}
	return strings.Repeat("*", len(number)-4) + number[len(number)-4:]
}

// Redact masks, in free text (a description, a store or holder name, an error message), every
// run of 13 to 19 digits that passes the Luhn check, written whole or in groups separated by up
// to three spaces or dashes ("4111 1111 1111 1111", "4111-1111-1111-1111"): anything that could
// be a card number; and every unbroken run of more than 19 digits, which could hide one. A masked
// run keeps at most its first 6 and last 4 digits, as Mask, and its separators; the rest of s is
// left as it is, byte for byte.
func Redact(s string) string {
	digits := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			digits++
		}
	}
	if digits < 13 {
		return s
	}
	var b []byte // nil until something is masked
	for {
		cur := s
		if b != nil {
			cur = string(b)
		}
		mask := cardRuns(cur)
		if len(mask) == 0 {
			break
		}
		if b == nil {
			b = []byte(s)
		}
		for _, i := range mask {
			b[i] = '*'
		}
		// Again, on what is left visible: digits kept at the edge of one run may make another
		// with their neighbours.
	}
	if b == nil {
		return s
	}
	return string(b)
}

// MaxSeparator is how many spaces and dashes Redact allows between two groups of digits of one
// number.
const MaxSeparator = 3

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// cardRuns returns the offsets in s of the digits Redact masks: those of every run of groups of
// digits (maximal runs of digits, separated by at most MaxSeparator spaces and dashes) that has
// 13 to 19 digits and passes the Luhn check, and of every group of more than 19, except the
// first and last digits Mask would show.
func cardRuns(s string) []int {
	type group struct{ start, end int }
	var groups []group
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isDigit(s[j]) {
			j++
		}
		groups = append(groups, group{i, j})
		i = j
	}
	separated := func(from, to int) bool {
		if to-from < 1 || to-from > MaxSeparator {
			return false
		}
		for k := from; k < to; k++ {
			if s[k] != ' ' && s[k] != '-' {
				return false
			}
		}
		return true
	}
	var mask []int
	// maskGroups masks the digits of groups gs as one run of n digits.
	maskGroups := func(gs []group, n int) {
		head, tail := min(6, n/4), min(4, n/4)
		if n == NumberLength {
			head, tail = 6, 4
		}
		k := 0
		for _, g := range gs {
			for i := g.start; i < g.end; i++ {
				if k >= head && k < n-tail {
					mask = append(mask, i)
				}
				k++
			}
		}
	}
	var digits [19]byte
	for i, g := range groups {
		if g.end-g.start > 19 {
			maskGroups(groups[i:i+1], g.end-g.start)
			continue
		}
		n := 0
		for j := i; j < len(groups); j++ {
			if j > i && !separated(groups[j-1].end, groups[j].start) {
				break
			}
			gj := groups[j]
			if n+gj.end-gj.start > 19 {
				break
			}
			n += copy(digits[n:], s[gj.start:gj.end])
			if n >= 13 && luhnSum(string(digits[:n]))%10 == 0 {
				maskGroups(groups[i:j+1], n)
			}
		}
	}
	return mask
}

// Grouped writes a card number in groups of four digits, as on the card: 5454 5406 8756 8555.
func Grouped(number string) string {
	var b strings.Builder
	for i := 0; i < len(number); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(number[i:min(i+4, len(number))])
	}
	return b.String()
}

// Last4 returns the last four digits of a card number.
func Last4(number string) string {
	if len(number) < 4 {
		return number
	}
	return number[len(number)-4:]
}

// Expiry is a card's month and four-digit year of expiry.
type Expiry struct {
	Month int
	Year  int
}

// NormalizeYear turns a two-digit year (26) into a four-digit one (2026); others are kept.
func NormalizeYear(y int) int {
	if y >= 0 && y < 100 {
		return 2000 + y
	}
	return y
}

// ExpiryAfter returns the expiry of a card issued at t that is valid for years years.
func ExpiryAfter(t time.Time, years int) Expiry {
	return Expiry{Month: int(t.Month()), Year: t.Year() + years}
}

// Expired reports whether a card with this expiry is no longer valid at t. A card is valid
// through the last day of its expiry month (UTC).
func (e Expiry) Expired(t time.Time) bool {
	t = t.UTC()
	y, m := t.Year(), int(t.Month())
	return y > e.Year || (y == e.Year && m > e.Month)
}

// String formats the expiry as MM/YY.
func (e Expiry) String() string {
	return fmt.Sprintf("%02d/%02d", e.Month, e.Year%100)
}

// NormalizeHolder folds a holder name for comparison: case, surrounding and repeated spaces
// do not matter.
func NormalizeHolder(name string) string {
	return strings.ToUpper(strings.Join(strings.Fields(name), " "))
}

// SameHolder reports whether two holder names are the same after NormalizeHolder, without
// building either normalized string (the authorizer compares one on every payment).
func SameHolder(a, b string) bool {
	for {
		a, b = strings.TrimLeftFunc(a, unicode.IsSpace), strings.TrimLeftFunc(b, unicode.IsSpace)
		if a == "" || b == "" {
			return a == b
		}
		// Compare one field of each, rune by rune, as strings.ToUpper would map them.
		for {
			ra, na := utf8.DecodeRuneInString(a)
			rb, nb := utf8.DecodeRuneInString(b)
			endA, endB := a == "" || unicode.IsSpace(ra), b == "" || unicode.IsSpace(rb)
			if endA || endB {
				if endA != endB {
					return false
				}
				break
			}
			if ra != rb && unicode.ToUpper(ra) != unicode.ToUpper(rb) {
				return false
			}
			a, b = a[na:], b[nb:]
		}
	}
}
