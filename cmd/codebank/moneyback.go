package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"

	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/money"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// moneyBack is what reverse, refund and pay-bill are given: the one argument that names what
// is paid back, the amount, and the operation's id (generated when empty: a retry with it never
// gives back twice).
type moneyBack struct {
	arg   string
	cents int64
	id    string
}

// moneyBackCommand is a command that gives money back: it parses its arguments, reaches the
// bank and calls do.
type moneyBackCommand struct {
	// name is the command's; synopsis follows it in the help; argWhat is what its one argument
	// names; amountUsage and idUsage are the help of --amount and --id.
	name, synopsis, argWhat, amountUsage, idUsage string
	do                                            func(ctx context.Context, conn *grpc.ClientConn, m moneyBack, stdout io.Writer) error
}

func (c moneyBackCommand) run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank "+c.name+" "+c.synopsis, stdout, stderr)
	var cl client
	cl.flags(fs, c.name)
	amount := fs.String("amount", "", c.amountUsage)
	id := fs.String("id", "", c.idUsage)
	cli.Scope(fs, c.name, "amount", "id")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: %s takes one %s", cli.ErrUsage, c.name, c.argWhat)
	}
	m := moneyBack{arg: pos[0], id: *id}
	if m.cents, err = parseAmount("--amount", *amount); err != nil {
		return err
	}
	if m.id == "" {
		m.id = uuid.NewString()
	}
	conn, ctx, done, err := cl.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	return c.do(ctx, conn, m, stdout)
}

// runCredit is `codebank reverse` and `codebank refund`: the merchant gives back part or all of
// a payment, named by the payment id `codebank pay` printed.
func runCredit(kind string) func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return moneyBackCommand{name: kind, synopsis: "PAYMENT_ID --amount 12.34 [--id ID]", argWhat: "PAYMENT_ID (as codebank pay prints it)",
		amountUsage: "amount to give back, in currency units, e.g. 12.34",
		idUsage:     "the " + kind + "'s id (idempotency key): the same id again never gives back twice; generated when empty",
		do: func(ctx context.Context, conn *grpc.ClientConn, m moneyBack, stdout io.Writer) error {
			payments := codebankv1.NewPaymentServiceClient(conn)
			var (
				tx          string
				given, left int64
				at          int64
				duplicate   bool
				label, verb string
			)
			if kind == "reverse" {
				label, verb = "Reversal:", "REVERSED"
				r, err := payments.Reverse(ctx, &codebankv1.ReverseRequest{PaymentId: m.arg, ReversalId: m.id, AmountCents: m.cents})
				if err != nil {
					return retryHint(rpcError(err), kind, m.id)
				}
				tx, given, left, at, duplicate = r.GetTransactionId(), r.GetAmountCents(), r.GetLeftCents(), r.GetReversedAtUnixMs(), r.GetDuplicate()
			} else {
				label, verb = "Refund:", "REFUNDED"
				r, err := payments.Refund(ctx, &codebankv1.RefundRequest{PaymentId: m.arg, RefundId: m.id, AmountCents: m.cents})
				if err != nil {
					return retryHint(rpcError(err), kind, m.id)
				}
				tx, given, left, at, duplicate = r.GetTransactionId(), r.GetAmountCents(), r.GetLeftCents(), r.GetRefundedAtUnixMs(), r.GetDuplicate()
			}
			fmt.Fprintf(stdout, "%s  %s of transaction %s\n", verb, money.Format(given), tx)
			fmt.Fprintf(stdout, "%-11s %s\n", label, m.id)
			fmt.Fprintf(stdout, "Left:       %s to reverse or refund\n", money.Format(left))
			fmt.Fprintf(stdout, "At:         %s\n", time.UnixMilli(at).UTC().Format("2006-01-02 15:04:05 UTC"))
			if duplicate {
				fmt.Fprintln(stdout, "(already carried out earlier: this is the original outcome)")
			}
			return nil
		}}.run
}

// retryHint adds to an error the id to retry with, when it was generated: a retry with it never
// gives back twice.
func retryHint(err error, kind, id string) error {
	return fmt.Errorf("%w\n(to try again safely: codebank %s ... --id %s)", err, kind, id)
}

// runPayBill is `codebank pay-bill`: an operator records the cardholder's payment of the bill.
var runPayBill = moneyBackCommand{name: "pay-bill", synopsis: "CARD_ID|NUMBER --amount 12.34 [--id ID]", argWhat: "CARD_ID or card NUMBER",
	amountUsage: "amount paid, in currency units, e.g. 12.34",
	idUsage:     "the bill payment's id (idempotency key): the same id again never records it twice; generated when empty",
	do:          payBill}.run

// payBill pays the bill of the card m names.
func payBill(ctx context.Context, conn *grpc.ClientConn, m moneyBack, stdout io.Writer) error {
	cards := codebankv1.NewCardServiceClient(conn)
	cardID, err := cardIDOf(ctx, cards, m.arg)
	if err != nil {
		return err
	}
	r, err := cards.PayBill(ctx, &codebankv1.PayBillRequest{CardId: cardID, BillPaymentId: m.id, AmountCents: m.cents})
	if err != nil {
		return retryHint(rpcError(err), "pay-bill", m.id)
	}
	fmt.Fprintf(stdout, "PAID  %s %s\n", r.GetCard().GetCurrency(), money.Format(r.GetAmountCents()))
	fmt.Fprintf(stdout, "Payment:    %s\n", m.id)
	if r.GetDuplicate() {
		fmt.Fprintln(stdout, "(already recorded earlier: this is the original outcome)")
	}
	printCard(stdout, r.GetCard())
	return nil
}
