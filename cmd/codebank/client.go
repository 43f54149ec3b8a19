package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/cli"
	"github.com/codebank/codebank/internal/money"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
)

// exitError is an error with its own exit status.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
func (e exitError) ExitCode() int { return e.code }

// exitRejected is the exit status of `codebank pay` when the bank rejects the payment.
const exitRejected = 2

// rpcError makes a gRPC error readable: "INVALID_ARGUMENT: ...".
func rpcError(err error) error {
	if st, ok := status.FromError(err); ok {
		return fmt.Errorf("%s: %s", strings.ToUpper(strings.ReplaceAll(codeName(st.Code().String()), " ", "_")), st.Message())
	}
	return err
}

func codeName(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// parseInterspersed parses flags that may come before or after positional arguments.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cli.Parse(fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func runCards(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "issue" && args[0] != "get") {
		fmt.Fprintln(stderr, "Usage: codebank cards issue --holder NAME --limit 1000.00\n       codebank cards get NUMBER")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return cli.ErrUsage
	}
	sub, args := args[0], args[1:]
	fs := cli.NewFlagSet("codebank "+map[string]string{"issue": "cards issue --holder NAME --limit 1000.00", "get": "cards get NUMBER"}[sub], stderr)
	addr := fs.String("addr", "localhost:50051", "Code Bank gRPC address")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the bank")
	holder := fs.String("holder", "", "holder name (issue)")
	limit := fs.String("limit", "", "credit limit in currency units, e.g. 1000.00 (issue)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	conn, err := cli.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cards := codebankv1.NewCardServiceClient(conn)

	if sub == "issue" {
		if len(pos) > 0 {
			return fmt.Errorf("%w: cards issue takes no arguments, got %q", cli.ErrUsage, pos)
		}
		cents, err := money.Parse(*limit)
		if err != nil {
			return fmt.Errorf("--limit %q: %v", *limit, err)
		}
		resp, err := cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: *holder, LimitCents: cents})
		if err != nil {
			return rpcError(err)
		}
		printCard(stdout, resp.GetCard())
		fmt.Fprintf(stdout, "CVV:        %s   (shown once; the bank does not keep it)\n", resp.GetCvv())
		return nil
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: cards get takes one card NUMBER", cli.ErrUsage)
	}
	resp, err := cards.GetCard(ctx, &codebankv1.GetCardRequest{Number: pos[0]})
	if err != nil {
		return rpcError(err)
	}
	printCard(stdout, resp.GetCard())
	return nil
}

func printCard(w io.Writer, c *codebankv1.Card) {
	fmt.Fprintf(w, "Card:       %s\n", card.Grouped(c.GetNumber()))
	fmt.Fprintf(w, "Holder:     %s\n", c.GetHolderName())
	fmt.Fprintf(w, "Expires:    %02d/%02d\n", c.GetExpiryMonth(), c.GetExpiryYear()%100)
	fmt.Fprintf(w, "Status:     %s\n", strings.TrimPrefix(c.GetStatus().String(), "CARD_STATUS_"))
	fmt.Fprintf(w, "Limit:      %s %s\n", c.GetCurrency(), money.Format(c.GetLimitCents()))
	fmt.Fprintf(w, "Used:       %s %s\n", c.GetCurrency(), money.Format(c.GetUsedCents()))
	fmt.Fprintf(w, "Available:  %s %s\n", c.GetCurrency(), money.Format(c.GetAvailableCents()))
}

// parseExpiry reads MM/YY or MM/YYYY.
func parseExpiry(s string) (month, year int32, err error) {
	m, y, ok := strings.Cut(s, "/")
	mi, err1 := strconv.Atoi(m)
	yi, err2 := strconv.Atoi(y)
	if !ok || err1 != nil || err2 != nil || mi < 1 || mi > 12 || (len(y) != 2 && len(y) != 4) {
		return 0, 0, fmt.Errorf("--exp %q: want MM/YY, e.g. 11/30", s)
	}
	return int32(mi), int32(yi), nil
}

func runPay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank pay --card NUMBER --holder NAME --exp MM/YY --cvv CVV --amount 12.34 --store NAME", stderr)
	addr := fs.String("addr", "localhost:50051", "Code Bank gRPC address")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the bank")
	number := fs.String("card", "", "card number")
	holder := fs.String("holder", "", "holder name as on the card")
	exp := fs.String("exp", "", "expiry, MM/YY")
	cvv := fs.String("cvv", "", "3-digit CVV")
	amount := fs.String("amount", "", "amount in currency units, e.g. 12.34")
	store := fs.String("store", "", "store name")
	desc := fs.String("description", "", "what is bought (default: a purchase at STORE)")
	txID := fs.String("tx", "", "transaction id (idempotency key); generated when empty")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	month, year, err := parseExpiry(*exp)
	if err != nil {
		return err
	}
	cents, err := money.Parse(*amount)
	if err != nil {
		return fmt.Errorf("--amount %q: %v", *amount, err)
	}
	if *desc == "" {
		*desc = "purchase at " + *store
	}
	conn, err := cli.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := codebankv1.NewPaymentServiceClient(conn).Authorize(ctx, &codebankv1.AuthorizeRequest{
		TransactionId: *txID,
		Card:          &codebankv1.CardDetails{Number: *number, HolderName: *holder, ExpiryMonth: month, ExpiryYear: year, Cvv: *cvv},
		AmountCents:   cents, Store: *store, Description: *desc,
	})
	if err != nil {
		return rpcError(err)
	}
	status := strings.TrimPrefix(resp.GetStatus().String(), "PAYMENT_STATUS_")
	fmt.Fprintf(stdout, "%s  %s at %s on %s\n", status, money.Format(resp.GetAmountCents()), *store, resp.GetMaskedNumber())
	if resp.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		fmt.Fprintf(stdout, "Reason:     %s\n", codecs.ReasonOf(codecs.ReasonName(resp.GetReason())).Label)
	}
	fmt.Fprintf(stdout, "Available:  %s\n", money.Format(resp.GetAvailableCents()))
	fmt.Fprintf(stdout, "Transaction: %s\n", resp.GetTransactionId())
	if resp.GetDuplicate() {
		fmt.Fprintln(stdout, "(already decided earlier: this is the original outcome)")
	}
	if resp.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		return exitError{code: exitRejected, msg: "payment rejected"}
	}
	return nil
}

func runStatement(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank statement NUMBER [--month 2026-11]", stderr)
	addr := fs.String("addr", "localhost:50051", "Code Bank gRPC address serving statements")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the bank")
	month := fs.String("month", "", "month, YYYY-MM (default: the current one)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: statement takes one card NUMBER", cli.ErrUsage)
	}
	conn, err := cli.Dial(*addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	client := codebankv1.NewStatementServiceClient(conn)
	req := &codebankv1.GetStatementRequest{Number: pos[0], Month: *month, PageSize: 1000}
	var first *codebankv1.GetStatementResponse
	var lines []*codebankv1.StatementLine
	for {
		resp, err := client.GetStatement(ctx, req)
		if err != nil {
			return rpcError(err)
		}
		if first == nil {
			first = resp
		}
		lines = append(lines, resp.GetLines()...)
		if resp.GetNextPageToken() == "" {
			break
		}
		req.PageToken = resp.GetNextPageToken()
	}
	cur := first.GetCurrency()
	fmt.Fprintf(stdout, "Statement %s   %s   %s\n\n", first.GetMonth(), first.GetMaskedNumber(), first.GetHolderName())
	if len(lines) == 0 {
		fmt.Fprintln(stdout, "  No purchases this month.")
	}
	for _, l := range lines {
		fmt.Fprintf(stdout, "  %s  %-24s %-30s %12s\n", time.UnixMilli(l.GetAuthorizedAtUnixMs()).UTC().Format("2006-01-02 15:04"),
			truncate(l.GetStore(), 24), truncate(l.GetDescription(), 30), money.Format(l.GetAmountCents()))
	}
	fmt.Fprintf(stdout, "\n  %d purchases, total %s %s\n", first.GetCount(), cur, money.Format(first.GetTotalCents()))
	fmt.Fprintf(stdout, "  Available credit: %s %s of %s\n", cur, money.Format(first.GetAvailableCents()), money.Format(first.GetLimitCents()))
	if !first.GetUpToDate() {
		fmt.Fprintln(stdout, "  (the latest purchases are still on their way; ask again in a moment)")
	}
	return nil
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
