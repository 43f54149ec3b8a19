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

// Redact masks, in free text such as an error message, every run of 13 to 19 digits that
// passes the Luhn check (anything that could be a card number) and every longer run of digits
// (which could hide one), as Mask would, and leaves the rest of s as it is.
func Redact(s string) string {
	var b []byte // nil until something is masked
	start := -1
	for i := 0; i <= len(s); i++ {
		if i < len(s) && s[i] >= '0' && s[i] <= '9' {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			if run := s[start:i]; len(run) > 19 || len(run) >= 13 && luhnSum(run)%10 == 0 {
				if b == nil {
					b = append(make([]byte, 0, len(s)), s[:start]...)
				}
				b = append(b, maskRun(run)...)
			} else if b != nil {
				b = append(b, run...)
			}
			start = -1
		}
		if i < len(s) && b != nil {
			b = append(b, s[i])
		}
	}
	if b == nil {
		return s
	}
	return string(b)
}

// maskRun masks a run of digits keeping at most its first 6 and last 4, and always hiding at
// least half of it.
func maskRun(run string) string {
	if len(run) == NumberLength {
		return Mask(run)
	}
	head, tail := min(6, len(run)/4), min(4, len(run)/4)
	return run[:head] + strings.Repeat("*", len(run)-head-tail) + run[len(run)-tail:]
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
