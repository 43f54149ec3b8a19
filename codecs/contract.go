package codecs

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/money"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// The contract of a record is what its consumers may rely on beyond its decoding: required
// fields, ranges, a key that matches the value. The ingress checks a request against the same
// limits before it writes it; a consumer refuses (dead-letters) a record that breaks its
// contract instead of acting on it. No error of this file contains a card number.

// Limits of text fields, in characters.
const (
	MaxTransactionIDLen = 64
	MaxHolderLen        = 64
	MaxStoreLen         = 100
	MaxDescriptionLen   = 500
	// MaxCorrelationIDLen bounds the ids the ingress generates to correlate replies.
	MaxCorrelationIDLen = 64
)

// ErrContract is wrapped by the errors of the Check functions: the record breaks its topic's
// contract.
var ErrContract = errors.New("record breaks its contract")

// problems collects what is wrong with a record, field by field.
type problems []string

func (p *problems) add(field, format string, args ...any) {
	*p = append(*p, field+" "+fmt.Sprintf(format, args...))
}

func (p problems) err(record string) error {
	if len(p) == 0 {
		return nil
	}
	return fmt.Errorf("%s: %w: %s", record, ErrContract, strings.Join(p, "; "))
}

// CheckText reports what is wrong with a required text field of at most max characters:
// invalid UTF-8, blank, too long, or holding control characters.
func CheckText(s string, max int) error {
	switch n := utf8.RuneCountInString(s); {
	case !utf8.ValidString(s):
		return errors.New("must be valid UTF-8")
	case strings.TrimSpace(s) == "":
		return errors.New("is required")
	case n > max:
		return fmt.Errorf("must be at most %d characters, got %d", max, n)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return errors.New("must not contain control characters")
	}
	return nil
}

// CheckOptionalText reports what is wrong with an optional text field: as CheckText, but it
// may be empty.
func CheckOptionalText(s string, max int) error {
	if s == "" {
		return nil
	}
	return CheckText(s, max)
}

// MaxMerchantNameLen bounds a merchant's name, in bytes (apikey checks it too).
const MaxMerchantNameLen = 60

// checkMerchant checks a merchant id: 1-40 lower-case letters, digits and dashes.
func checkMerchant(id string) error {
	if id == "" {
		return errors.New("is required")
	}
	if len(id) > 40 || strings.Trim(id, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" || id[0] == '-' {
		return errors.New("must be 1-40 lower-case letters, digits and dashes")
	}
	return nil
}

// CheckTransactionID reports what is wrong with a transaction id: 1-64 characters of
// [A-Za-z0-9._:-].
func CheckTransactionID(id string) error {
	switch {
	case id == "":
		return errors.New("is required")
	case len(id) > MaxTransactionIDLen:
		return fmt.Errorf("must be at most %d characters", MaxTransactionIDLen)
	}
	for _, r := range id {
		if !(r == '-' || r == '_' || r == '.' || r == ':' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return errors.New("may contain only letters, digits and . _ : -")
		}
	}
	return nil
}

// CheckCents reports what is wrong with an amount: it must be 1 to money.MaxCents.
func CheckCents(c int64) error {
	switch {
	case c <= 0:
		return fmt.Errorf("must be greater than zero, got %d", c)
	case c > money.MaxCents:
		return fmt.Errorf("must be at most %d, got %d", money.MaxCents, c)
	}
	return nil
}

func (p *problems) check(field string, err error) {
	if err != nil {
		p.add(field, "%v", err)
	}
}

func (p *problems) cardKey(key string) {
	if !card.ValidToken(key) {
		p.add("key", "must be a card token") // the key itself is never quoted: it could be a card number
	}
}

// maskedNumber checks a masked card number: six digits, six stars, four digits.
func (p *problems) maskedNumber(field, m string) {
	if len(m) != card.NumberLength || strings.Trim(m[:6]+m[12:], "0123456789") != "" || m[6:12] != "******" {
		p.add(field, "must be a masked card number")
	}
}

// cardKeyIDs checks the ids of card keys a CVV matched.
func (p *problems) cardKeyIDs(field string, ids []string) {
	if len(ids) > 8 {
		p.add(field, "must name at most 8 keys")
	}
	for _, id := range ids {
		if id == "" || len(id) > 32 {
			p.add(field, "must hold card key ids of 1-32 characters")
			return
		}
	}
}

func (p *problems) expiry(month, year int32) {
	if month < 1 || month > 12 {
		p.add("expiry_month", "must be 1-12, got %d", month)
	}
	if year < 2000 || year > 2100 {
		p.add("expiry_year", "must be a four-digit year, got %d", year)
	}
}

func (p *problems) correlation(field, id string, required bool) {
	switch {
	case id == "" && required:
		p.add(field, "is required")
	case len(id) > MaxCorrelationIDLen:
		p.add(field, "must be at most %d characters", MaxCorrelationIDLen)
	}
}

// CheckPaymentRequested checks a payment request (key: card token) against its contract.
func CheckPaymentRequested(key string, r *eventsv1.PaymentRequested) error {
	var p problems
	p.cardKey(key)
	p.check("transaction_id", CheckTransactionID(r.GetTransactionId()))
	p.check("holder_name", CheckText(r.GetHolderName(), MaxHolderLen))
	p.expiry(r.GetExpiryMonth(), r.GetExpiryYear())
	p.check("amount_cents", CheckCents(r.GetAmountCents()))
	p.maskedNumber("masked_number", r.GetMaskedNumber())
	p.cardKeyIDs("cvv_key_ids", r.GetCvvKeyIds())
	p.check("merchant_id", checkMerchant(r.GetMerchantId()))
	p.check("merchant_name", CheckText(r.GetMerchantName(), MaxMerchantNameLen))
	p.check("store", CheckOptionalText(r.GetStore(), MaxStoreLen))
	p.check("description", CheckText(r.GetDescription(), MaxDescriptionLen))
	if r.GetRequestedAtUnixUs() <= 0 {
		p.add("requested_at_unix_us", "is required")
	}
	if _, ok := eventsv1.Channel_name[int32(r.GetChannel())]; !ok {
		p.add("channel", "unknown: %d", r.GetChannel())
	}
	p.correlation("correlation_id", r.GetCorrelationId(), r.GetReplyKey() != "")
	if len(r.GetReplyKey()) > MaxCorrelationIDLen {
		p.add("reply_key", "must be at most %d characters", MaxCorrelationIDLen)
	}
	return p.err("payment request")
}

// operation checks an operation: a reversal or refund names its merchant and purchase, a bill
// payment neither.
func (p *problems) operation(op *eventsv1.Operation) {
	p.check("operation.operation_id", CheckTransactionID(op.GetOperationId()))
	p.check("operation.amount_cents", CheckCents(op.GetAmountCents()))
	switch op.GetKind() {
	case eventsv1.OperationKind_OPERATION_KIND_REVERSAL, eventsv1.OperationKind_OPERATION_KIND_REFUND:
		p.check("operation.merchant_id", checkMerchant(op.GetMerchantId()))
		p.check("operation.merchant_name", CheckText(op.GetMerchantName(), MaxMerchantNameLen))
		p.check("operation.transaction_id", CheckTransactionID(op.GetTransactionId()))
		p.check("operation.purchase_amount_cents", CheckCents(op.GetPurchaseAmountCents()))
		if op.GetPurchaseDecidedAtUnixUs() <= 0 {
			p.add("operation.purchase_decided_at_unix_us", "is required")
		}
	case eventsv1.OperationKind_OPERATION_KIND_BILL_PAYMENT:
		if op.GetMerchantId() != "" || op.GetTransactionId() != "" || op.GetPurchaseAmountCents() != 0 {
			p.add("operation.merchant_id", "must be empty, with the purchase's fields, for a bill payment")
		}
	default:
		p.add("operation.kind", "must be a reversal, a refund or a bill payment")
	}
}

// CheckCardCommand checks a card command (key: card token) against its contract.
func CheckCardCommand(key string, c *eventsv1.CardCommand) error {
	var p problems
	p.cardKey(key)
	p.correlation("command_id", c.GetCommandId(), true)
	if len(c.GetReplyKey()) > MaxCorrelationIDLen {
		p.add("reply_key", "must be at most %d characters", MaxCorrelationIDLen)
	}
	switch cmd := c.GetCommand().(type) {
	case *eventsv1.CardCommand_Issue:
		p.check("issue.holder_name", CheckText(cmd.Issue.GetHolderName(), MaxHolderLen))
		p.check("issue.limit_cents", CheckCents(cmd.Issue.GetLimitCents()))
		if cur := cmd.Issue.GetCurrency(); len(cur) != 3 || strings.Trim(cur, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != "" {
			p.add("issue.currency", "must be an ISO 4217 code")
		}
		p.expiry(cmd.Issue.GetExpiryMonth(), cmd.Issue.GetExpiryYear())
		p.maskedNumber("issue.masked_number", cmd.Issue.GetMaskedNumber())
		if id := cmd.Issue.GetCardKeyId(); id == "" || len(id) > 32 {
			p.add("issue.card_key_id", "must be 1-32 characters")
		}
	case *eventsv1.CardCommand_Verify:
		p.expiry(cmd.Verify.GetExpiryMonth(), cmd.Verify.GetExpiryYear())
		p.cardKeyIDs("verify.cvv_key_ids", cmd.Verify.GetCvvKeyIds())
	case *eventsv1.CardCommand_Operation:
		p.operation(cmd.Operation)
	case *eventsv1.CardCommand_Get, *eventsv1.CardCommand_Block, *eventsv1.CardCommand_Unblock:
	default:
		p.add("command", "is required")
	}
	return p.err("card command")
}

// AccountCreditSize is the size of an entry of Account.credits
// (processors/authorizer/credits.go).
const AccountCreditSize = 25

// CheckAccount checks an authorizer table value: an account whose amounts make no sense is
// treated like one that does not decode, and fails its card closed.
func CheckAccount(a *eventsv1.Account) error {
	var p problems
	if err := CheckCents(a.GetLimitCents()); err != nil {
		p.add("limit_cents", "%v", err)
	}
	// Below zero is a credit balance: a refund after the bill was paid.
	if a.GetUsedCents() < -money.MaxCents || a.GetUsedCents() > a.GetLimitCents() {
		p.add("used_cents", "must be -%d to the limit", money.MaxCents)
	}
	if a.GetApprovals() < 0 || a.GetOperations() < 0 {
		p.add("approvals", "must not be negative, nor operations")
	}
	if len(a.GetCredits())%AccountCreditSize != 0 || a.GetCreditFloorUnixS() < 0 {
		p.add("credits", "must be whole entries of %d bytes, with a floor not below zero", AccountCreditSize)
	}
	if a.GetVerifyFailures() < 0 {
		p.add("verify_failures", "must not be negative")
	}
	return p.err("account")
}

// CheckReply checks a reply: it names its call and has a body.
func CheckReply(r *eventsv1.Reply) error {
	var p problems
	p.correlation("correlation_id", r.GetCorrelationId(), true)
	if r.GetBody() == nil {
		p.add("body", "is required")
	}
	return p.err("reply")
}

// maxAuthorizedUs is the latest approval time a result may carry, in µs since the epoch: a
// statement line's key holds it in sixteen digits (processors/statements).
const maxAuthorizedUs = 1e16 - 1

// CheckResult checks a results record (key: card token) against docs/results-topic.md.
func CheckResult(key string, r *Result) error {
	var p problems
	if r.CardToken == "" || key != r.CardToken {
		p.add("key", "must be the record's card_token")
	}
	kind := r.KindOf()
	switch kind {
	case KindPurchase:
		p.check("transaction_id", CheckTransactionID(r.TransactionID))
		p.check("merchant", checkMerchant(r.Merchant))
		if r.PaymentKey != PaymentKey(r.CardToken, r.Merchant, r.TransactionID) {
			p.add("payment_key", "must be card_token:merchant:transaction_id")
		}
		if r.OperationID != "" || r.PurchaseKey != "" {
			p.add("operation_id", "must be empty for a purchase")
		}
	case KindReversal, KindRefund:
		p.check("transaction_id", CheckTransactionID(r.TransactionID))
		p.check("merchant", checkMerchant(r.Merchant))
		p.check("operation_id", CheckTransactionID(r.OperationID))
		if r.PaymentKey != OperationKey(r.CardToken, r.Merchant, kind, r.OperationID) {
			p.add("payment_key", "must be card_token:merchant:kind/operation_id")
		}
		if r.PurchaseKey != PaymentKey(r.CardToken, r.Merchant, r.TransactionID) {
			p.add("purchase_key", "must be card_token:merchant:transaction_id")
		}
	case KindBillPayment:
		p.check("operation_id", CheckTransactionID(r.OperationID))
		if r.Merchant != "" || r.TransactionID != "" || r.PurchaseKey != "" {
			p.add("merchant", "must be empty, with transaction_id and purchase_key, for a bill payment")
		}
		if r.PaymentKey != OperationKey(r.CardToken, "", kind, r.OperationID) {
			p.add("payment_key", "must be card_token::bill_payment/operation_id")
		}
	default:
		p.add("kind", "must be %s, %s, %s or %s", KindPurchase, KindReversal, KindRefund, KindBillPayment)
	}
	switch r.Status {
	case StatusApproved:
		if r.Reason != "" {
			p.add("reason", "must be empty when approved")
		}
	case StatusRejected:
		if r.Reason == "" {
			p.add("reason", "is required when rejected")
		}
		if kind != KindPurchase {
			p.add("status", "must be %s for an operation: only operations carried out are published", StatusApproved)
		}
	default:
		p.add("status", "must be %s or %s", StatusApproved, StatusRejected)
	}
	p.check("amount_cents", CheckCents(r.AmountCents))
	if t, err := time.Parse(time.RFC3339Nano, r.AuthorizedAt); err != nil {
		p.add("authorized_at", "must be an RFC 3339 time")
	} else if us := t.UnixMicro(); us < 0 || us > maxAuthorizedUs {
		p.add("authorized_at", "must be between 1970 and 2286")
	}
	if r.Status == StatusApproved && kind == KindPurchase {
		p.check("store", CheckText(r.Store, MaxStoreLen))
		p.check("description", CheckText(r.Description, MaxDescriptionLen))
	}
	return p.err("result")
}
