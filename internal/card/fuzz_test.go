package card

import (
	"regexp"
	"strings"
	"testing"
)

var digitRuns = regexp.MustCompile(`[0-9]+`)

// cardRun reports whether s holds a run of 13 to 19 digits that passes the Luhn check, whole
// or in groups separated by up to MaxSeparator spaces and dashes, or an unbroken run of more
// than 19: text that could carry a card number. It tries every stretch of s from the start of
// a group of digits to the end of one, as plainly as it can, to check Redact's quicker search.
func cardRun(s string) (string, bool) {
	for _, run := range digitRuns.FindAllString(s, -1) {
		if len(run) > 19 {
			return run, true
		}
	}
	starts, ends := []int{}, map[int]bool{}
	for i := range len(s) {
		if isDigit(s[i]) && (i == 0 || !isDigit(s[i-1])) {
			starts = append(starts, i)
		}
		if isDigit(s[i]) && (i == len(s)-1 || !isDigit(s[i+1])) {
			ends[i+1] = true
		}
	}
	for _, i := range starts {
		for j := i + 1; j <= len(s); j++ {
			w := s[i:j]
			if strings.Trim(w, "0123456789 -") != "" || separatorRuns.MatchString(w) {
				break
			}
			if !ends[j] {
				continue
			}
			digits := strings.NewReplacer(" ", "", "-", "").Replace(w)
			if len(digits) >= 13 && len(digits) <= 19 && luhnSum(digits)%10 == 0 {
				return w, true
			}
		}
	}
	return "", false
}

// separatorRuns matches more spaces and dashes in a row than Redact allows between groups.
var separatorRuns = regexp.MustCompile(`[ -]{4,}`)

// FuzzNumber: a number ValidateNumber accepts is 16 Luhn-valid digits, NewNumber's kind; and
// its mask shows at most the first 6 and the last 4 digits, at their places.
func FuzzNumber(f *testing.F) {
	for _, s := range []string{"4111111111111111", "5454 5406 8756 8555", "4111-1111-1111-1112", "411111111111111", "", "1234", "٤١١١١١١١١١١١١١١١"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeNumber(s)
		if strings.ContainsAny(n, " -") {
			t.Fatalf("NormalizeNumber(%q) = %q keeps separators", s, n)
		}
		if ValidateNumber(n) == nil && (len(n) != NumberLength || strings.Trim(n, "0123456789") != "" || luhnSum(n)%10 != 0) {
			t.Fatalf("ValidateNumber accepted %q", n)
		}
		m := Mask(n)
		if len(m) != len(n) {
			t.Fatalf("Mask(%q) = %q: another length", n, m)
		}
		shown := 0
		for i := range len(n) {
			if m[i] == '*' {
				continue
			}
			shown++
			if m[i] != n[i] {
				t.Fatalf("Mask(%q) = %q changes what it shows", n, m)
			}
			if len(n) == NumberLength && i >= 6 && i < NumberLength-4 || len(n) != NumberLength && i < len(n)-4 {
				t.Fatalf("Mask(%q) = %q shows position %d", n, m, i)
			}
		}
		if shown > 10 {
			t.Fatalf("Mask(%q) = %q shows %d characters", n, m, shown)
		}
	})
}

// FuzzRedact: nothing that could be a card number survives Redact, what is shown of a masked
// run is its first digits and its last at most, and text without such runs is left alone.
func FuzzRedact(f *testing.F) {
	for _, s := range []string{"error decoding message for key 4111111111111111 from t/0", "offset 1764612345678901",
		"4111111111111111,5454545454545454", "a4111111111111111b", "no digits", "123456789012", "49927398716x1234567812345670",
		"Pedido 2026 4111 1111 1111 1111", "4111-1111-1111-1111", "3782 822463 10005", "1 2 3 4 5 6 7 8 9 10 11 12 13", "tel +55 11 98765-4321"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 400 {
			return // cardRun tries every stretch: quadratic
		}
		r := Redact(s)
		if len(r) != len(s) {
			t.Fatalf("Redact(%q) = %q: another length", s, r)
		}
		if run, ok := cardRun(r); ok {
			t.Fatalf("Redact(%q) = %q still holds %s", s, r, run)
		}
		if _, ok := cardRun(s); !ok && r != s {
			t.Fatalf("Redact(%q) = %q changed text without a card number", s, r)
		}
		for i := range len(s) {
			if r[i] != s[i] && r[i] != '*' {
				t.Fatalf("Redact(%q) = %q: position %d is neither kept nor masked", s, r, i)
			}
		}
	})
}
