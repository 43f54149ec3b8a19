package money

import (
	"math"
	"strings"
	"testing"
)

// FuzzFromFloat: an accepted amount is within half a cent of the double, within the bank's
// bounds, and formats to a decimal that parses back to it.
func FuzzFromFloat(f *testing.F) {
	for _, v := range []float64{12.5, 0.1 + 0.2, 12.345, 0.005, 0.0049999, -0, 1e9, 1e9 + 0.004, 1e9 + 0.005, math.SmallestNonzeroFloat64, math.MaxFloat64} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, units float64) {
		c, err := FromFloat(units)
		if err != nil {
			if c != 0 {
				t.Fatalf("FromFloat(%v) = %d with error %v", units, c, err)
			}
			return
		}
		if c < 1 || c > MaxCents {
			t.Fatalf("FromFloat(%v) = %d, outside 1..%d", units, c, MaxCents)
		}
		if d := math.Abs(float64(c) - units*100); d > 0.5+1e-6*math.Max(1, units*100) {
			t.Fatalf("FromFloat(%v) = %d, %v cents off", units, c, d)
		}
		back, err := Parse(Format(c))
		if err != nil || back != c {
			t.Fatalf("Parse(Format(%d)) = %d, %v", c, back, err)
		}
	})
}

// FuzzParse: an accepted amount is within the bank's bounds and formats back to the same
// value; a refused one says why.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"12", "12.3", "12.34", "0.01", "0.00", "1000000000", "1000000000.01", "12.345", " 7.5 ", "-1", "1e3", ".5", "5.", "٣"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := Parse(s)
		if err != nil {
			if c != 0 || err.Error() == "" {
				t.Fatalf("Parse(%q) = %d, %v", s, c, err)
			}
			return
		}
		if c < 1 || c > MaxCents {
			t.Fatalf("Parse(%q) = %d, outside 1..%d", s, c, MaxCents)
		}
		f := Format(c)
		if back, err := Parse(f); err != nil || back != c {
			t.Fatalf("Parse(Format(Parse(%q))) = %d, %v; want %d", s, back, err, c)
		}
		// The input and the canonical form name the same number of cents.
		whole, frac, _ := strings.Cut(strings.TrimSpace(s), ".")
		fw, ff, _ := strings.Cut(f, ".")
		for len(frac) < 2 {
			frac += "0"
		}
		if strings.TrimLeft(whole, "0") != strings.TrimLeft(fw, "0") || frac != ff {
			t.Fatalf("Parse(%q) = %d, formatted %s", s, c, f)
		}
	})
}
