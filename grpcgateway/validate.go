package grpcgateway

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
)

// Lengths accepted for text fields, in characters.
const (
	MaxHolderLen      = 64
	MaxStoreLen       = 100
	MaxDescriptionLen = 500
	MaxTxIDLen        = 64
)

// violations collects what is wrong with a request, field by field.
type violations []*errdetails.BadRequest_FieldViolation

func (v *violations) add(field, format string, args ...any) {
	*v = append(*v, &errdetails.BadRequest_FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)})
}

// err returns nil, or an INVALID_ARGUMENT status naming every field at fault, in its message
// and as google.rpc.BadRequest details.
func (v violations) err() error {
	if len(v) == 0 {
		return nil
	}
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = f.Field + ": " + f.Description
	}
	st := status.New(codes.InvalidArgument, "invalid request: "+strings.Join(parts, "; "))
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: v}); err == nil {
		st = d
	}
	return st.Err()
}

func (v *violations) text(field, s string, maxLen int) {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		v.add(field, "must be valid UTF-8")
	case strings.TrimSpace(s) == "":
		v.add(field, "is required")
	case n > maxLen:
		v.add(field, "must be at most %d characters, got %d", maxLen, n)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		v.add(field, "must not contain control characters")
	}
}

func (v *violations) number(field, n string) {
	switch err := card.ValidateNumber(n); {
	case n == "":
		v.add(field, "is required")
	case err != nil:
		v.add(field, "%v", err)
	}
}

func (v *violations) expiry(monthField, yearField string, month, year int32) {
	if month < 1 || month > 12 {
		v.add(monthField, "must be 1-12, got %d", month)
	}
	if y := card.NormalizeYear(int(year)); y < 2000 || y > 2100 {
		v.add(yearField, "must be a year like 2030 or 30, got %d", year)
	}
}

func (v *violations) cents(field string, c int64) {
	switch {
	case c <= 0:
		v.add(field, "must be greater than zero, got %d", c)
	case c > money.MaxCents:
		v.add(field, "must be at most %d, got %d", money.MaxCents, c)
	}
}

func (v *violations) cvv(field, cvv string) {
	if len(cvv) != 3 || strings.Trim(cvv, "0123456789") != "" {
		v.add(field, "must be 3 digits")
	}
}

func (v *violations) transactionID(field, id string) {
	if id == "" {
		return
	}
	if len(id) > MaxTxIDLen {
		v.add(field, "must be at most %d characters", MaxTxIDLen)
		return
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r == ':' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			v.add(field, "may contain only letters, digits and . _ : -")
			return
		}
	}
}
