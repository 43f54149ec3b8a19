package card

import (
	"testing"
	"time"
)

func TestValidateNumber(t *testing.T) {
	tests := []struct {
		number string
		want   error
	}{
		{"4111111111111111", nil},
		{"5454545454545454", nil},
		{"4111111111111112", ErrNumberLuhn},
		{"411111111111111", ErrNumberLength},
		{"41111111111111111", ErrNumberLength},
		{"4111a11111111111", ErrNumberDigits},
		{"", ErrNumberLength},
	}
	for _, tt := range tests {
		if got := ValidateNumber(tt.number); got != tt.want {
			t.Errorf("ValidateNumber(%q) = %v, want %v", tt.number, got, tt.want)
		}
	}
}

func TestNewNumber(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		n, err := NewNumber(DefaultBIN)
		if err != nil {
			t.Fatal(err)
		}
		if err := ValidateNumber(n); err != nil {
			t.Fatalf("NewNumber() = %q: %v", n, err)
		}
		if n[:6] != DefaultBIN {
			t.Fatalf("NewNumber() = %q, want prefix %s", n, DefaultBIN)
		}
		seen[n] = true
	}
	if len(seen) < 990 {
		t.Errorf("NewNumber gave only %d distinct numbers in 1000", len(seen))
	}
	if _, err := NewNumber("12a"); err == nil {
		t.Error("NewNumber(\"12a\") succeeded, want error")
	}
}

func TestMask(t *testing.T) {
	tests := map[string]string{
		"4111111111111111": "411111******1111",
		"12345":            "*2345",
		"123":              "***",
	}
	for in, want := range tests {
		if got := Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	if _, err := NewKeys("short"); err == nil {
		t.Fatal("NewKeys accepted a short secret")
	}
	k, err := NewKeys("0123456789abcdef0123")
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewKeys("another secret of the bank")
	exp := Expiry{Month: 11, Year: 2031}
	cvv := k.CVV("4111111111111111", exp)
	if len(cvv) != 3 {
		t.Fatalf("CVV = %q, want 3 digits", cvv)
	}
	if !k.VerifyCVV("4111111111111111", exp, cvv) {
		t.Error("VerifyCVV rejected the CVV it derived")
	}
	if k.VerifyCVV("4111111111111111", Expiry{Month: 12, Year: 2031}, cvv) && k.CVV("4111111111111111", Expiry{Month: 12, Year: 2031}) != cvv {
		t.Error("VerifyCVV accepted a CVV for another expiry")
	}
	if k.Token("4111111111111111") != k.Token("4111111111111111") {
		t.Error("Token is not stable")
	}
	if k.Token("4111111111111111") == other.Token("4111111111111111") {
		t.Error("Token does not depend on the secret")
	}
	if k.Token("4111111111111111") == k.Token("5454545454545454") {
		t.Error("two numbers share a token")
	}
}

func TestExpiry(t *testing.T) {
	e := Expiry{Month: 11, Year: 2026}
	tests := []struct {
		at   time.Time
		want bool
	}{
		{time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC), false},
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), true},
		{time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC), false},
		{time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC), true},
	}
	for _, tt := range tests {
		if got := e.Expired(tt.at); got != tt.want {
			t.Errorf("%v.Expired(%v) = %v, want %v", e, tt.at, got, tt.want)
		}
	}
	if NormalizeYear(26) != 2026 || NormalizeYear(2031) != 2031 {
		t.Error("NormalizeYear")
	}
	if e.String() != "11/26" {
		t.Errorf("String() = %q", e.String())
	}
}

func TestNormalizeHolder(t *testing.T) {
	if NormalizeHolder("  maria  da Silva ") != NormalizeHolder("MARIA DA SILVA") {
		t.Error("NormalizeHolder does not fold case and spaces")
	}
}
