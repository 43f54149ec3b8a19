package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"

	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/money"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// runCredit is `codebank reverse` and `codebank refund`: the merchant gives back part or all of
// a payment, named by the payment id `codebank pay` printed.
func runCredit(kind string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		fs := cli.NewFlagSet("codebank "+kind+" PAYMENT_ID --amount 12.34 [--id ID]", stdout, stderr)
		var cl client
		cl.flags(fs, kind)
		amount := fs.String("amount", "", "amount to give back, in currency units, e.g. 12.34")
		id := fs.String("id", "", "the "+kind+"'s id (idempotency key): the same id again never gives back twice; generated when empty")
		cli.Scope(fs, kind, "amount", "id")
		pos, err := parseInterspersed(fs, args)
		if err != nil {
			return cli.HelpOK(err)
		}
		if len(pos) != 1 {
			return fmt.Errorf("%w: %s takes one PAYMENT_ID (as codebank pay prints it)", cli.ErrUsage, kind)
		}
		cents, err := money.Parse(*amount)
		if err != nil {
			return fmt.Errorf("--amount %q: %v", *amount, err)
		}
		if *id == "" {
			*id = uuid.NewString()
		}
		conn, err := cl.dial()
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(ctx, cl.timeout)
		defer cancel()
		payments := codebankv1.NewPaymentServiceClient(conn)
		var (
			tx          string
			done, left  int64
			at          int64
			duplicate   bool
			label, verb string
		)
		if kind == "reverse" {
			label, verb = "Reversal:", "REVERSED"
			r, err := payments.Reverse(ctx, &codebankv1.ReverseRequest{PaymentId: pos[0], ReversalId: *id, AmountCents: cents})
			if err != nil {
				return retryHint(rpcError(err), kind, *id)
			}
			tx, done, left, at, duplicate = r.GetTransactionId(), r.GetAmountCents(), r.GetLeftCents(), r.GetReversedAtUnixMs(), r.GetDuplicate()
		} else {
			label, verb = "Refund:", "REFUNDED"
			r, err := payments.Refund(ctx, &codebankv1.RefundRequest{PaymentId: pos[0], RefundId: *id, AmountCents: cents})
			if err != nil {
				return retryHint(rpcError(err), kind, *id)
			}
			tx, done, left, at, duplicate = r.GetTransactionId(), r.GetAmountCents(), r.GetLeftCents(), r.GetRefundedAtUnixMs(), r.GetDuplicate()
		}
		fmt.Fprintf(stdout, "%s  %s of transaction %s\n", verb, money.Format(done), tx)
		fmt.Fprintf(stdout, "%-11s %s\n", label, *id)
		fmt.Fprintf(stdout, "Left:       %s to reverse or refund\n", money.Format(left))
		fmt.Fprintf(stdout, "At:         %s\n", time.UnixMilli(at).UTC().Format("2006-01-02 15:04:05 UTC"))
		if duplicate {
			fmt.Fprintln(stdout, "(already carried out earlier: this is the original outcome)")
		}
		return nil
	}
}

// retryHint adds to an error the id to retry with, when it was generated: a retry with it never
// gives back twice.
func retryHint(err error, kind, id string) error {
	return fmt.Errorf("%w\n(to try again safely: codebank %s ... --id %s)", err, kind, id)
}

// runPayBill is `codebank pay-bill`: an operator records the cardholder's payment of the bill.
func runPayBill(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank pay-bill CARD_ID|NUMBER --amount 12.34 [--id ID]", stdout, stderr)
	var cl client
	cl.flags(fs, "pay-bill")
	amount := fs.String("amount", "", "amount paid, in currency units, e.g. 12.34")
	id := fs.String("id", "", "the bill payment's id (idempotency key): the same id again never records it twice; generated when empty")
	cli.Scope(fs, "pay-bill", "amount", "id")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: pay-bill takes one CARD_ID or card NUMBER", cli.ErrUsage)
	}
	cents, err := money.Parse(*amount)
	if err != nil {
		return fmt.Errorf("--amount %q: %v", *amount, err)
	}
	if *id == "" {
		*id = uuid.NewString()
	}
	conn, err := cl.dial()
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	cards := codebankv1.NewCardServiceClient(conn)
	cardID, err := cardIDOf(ctx, cards, pos[0])
	if err != nil {
		return err
	}
	r, err := cards.PayBill(ctx, &codebankv1.PayBillRequest{CardId: cardID, BillPaymentId: *id, AmountCents: cents})
	if err != nil {
		return retryHint(rpcError(err), "pay-bill", *id)
	}
	fmt.Fprintf(stdout, "PAID  %s %s\n", r.GetCard().GetCurrency(), money.Format(r.GetAmountCents()))
	fmt.Fprintf(stdout, "Payment:    %s\n", *id)
	if r.GetDuplicate() {
		fmt.Fprintln(stdout, "(already recorded earlier: this is the original outcome)")
	}
	printCard(stdout, r.GetCard())
	return nil
}
