package money

import (
	"math"
	"testing"
)

func TestFromFloat(t *testing.T) {
	tests := []struct {
		in      float64
		want    int64
		wantErr error
	}{
		{12.5, 1250, nil},
		{0.1 + 0.2, 30, nil},
		{12.345, 1235, nil},
		{0.01, 1, nil},
		{0.004, 0, ErrNotPositive},
		{0, 0, ErrNotPositive},
		{-1, 0, ErrNotPositive},
		{math.NaN(), 0, ErrNotFinite},
		{math.Inf(1), 0, ErrNotFinite},
		{math.Inf(-1), 0, ErrNotFinite},
		{1e9, 100_000_000_000, nil},
		{1e9 + 1, 0, ErrTooLarge},
		{1e300, 0, ErrTooLarge},
	}
	for _, tt := range tests {
		got, err := FromFloat(tt.in)
		if got != tt.want || err != tt.wantErr {
			t.Errorf("FromFloat(%v) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr error
	}{
		{"12.34", 1234, nil},
		{"12.3", 1230, nil},
		{"12", 1200, nil},
		{" 1000.00 ", 100000, nil},
		{"0.00", 0, ErrNotPositive},
		{"12.345", 0, ErrSyntax},
		{"12.", 0, ErrSyntax},
		{".5", 0, ErrSyntax},
		{"-1", 0, ErrSyntax},
		{"1e3", 0, ErrSyntax},
		{"abc", 0, ErrSyntax},
		{"", 0, ErrSyntax},
		{"9999999999999", 0, ErrTooLarge},
		{"1000000000.01", 0, ErrTooLarge},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if got != tt.want || err != tt.wantErr {
			t.Errorf("Parse(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestFormat(t *testing.T) {
	tests := map[int64]string{0: "0.00", 5: "0.05", 1234: "12.34", -5: "-0.05", 100000: "1000.00"}
	for in, want := range tests {
		if got := Format(in); got != want {
			t.Errorf("Format(%d) = %q, want %q", in, got, want)
		}
	}
}
