package grpcgateway

import (
	"fmt"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
)

// Lengths accepted for text fields, in characters: the records' contract (package codecs).
const (
	MaxHolderLen      = codecs.MaxHolderLen
	MaxStoreLen       = codecs.MaxStoreLen
	MaxDescriptionLen = codecs.MaxDescriptionLen
	MaxTxIDLen        = codecs.MaxTransactionIDLen
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
	if err := codecs.CheckText(s, maxLen); err != nil {
		v.add(field, "%v", err)
	}
}

func (v *violations) optionalText(field, s string, maxLen int) {
	if err := codecs.CheckOptionalText(s, maxLen); err != nil {
		v.add(field, "%v", err)
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
	if err := codecs.CheckCents(c); err != nil {
		v.add(field, "%v", err)
	}
}

func (v *violations) cvv(field, cvv string) {
	if len(cvv) != 3 || strings.Trim(cvv, "0123456789") != "" {
		v.add(field, "must be 3 digits")
	}
}

// notTheNumber refuses a transaction id that holds the request's card number, whole or with
// separators (- . : _) between its digits: the id is kept and shown everywhere (results,
// statements, the index) in full. Other numbers, an order number among them, are ids like any.
// The message never repeats the number.
func (v *violations) notTheNumber(field, id, number string) {
	if len(number) < 13 || id == "" {
		return
	}
	digits := strings.NewReplacer("-", "", ".", "", ":", "", "_", "").Replace(id)
	if strings.Contains(digits, number) {
		v.add(field, "must not contain the card's number: use an order or payment id of your own")
	}
}

// transactionID checks an optional transaction id (the bank generates one when it is empty).
func (v *violations) transactionID(field, id string) {
	if id == "" {
		return
	}
	if err := codecs.CheckTransactionID(id); err != nil {
		v.add(field, "%v", err)
	}
}
