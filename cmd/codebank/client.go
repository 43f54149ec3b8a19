package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/grpcgateway"
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

// client is what the client commands share: where the bank is, how long to wait, and the
// credentials to call it with.
type client struct {
	addr, ca, cert, key, credentials string
	timeout                          time.Duration
	plaintext                        bool
}

// flags registers the client flags of command: the bank's address and the credentials file
// are read from the variables every client command shares (CODEBANK_ADDR), the timeout and the
// TLS files from the command's own (CODEBANK_PAY_TIMEOUT, CODEBANK_PAY_TLS_CERT: a role's
// CODEBANK_TLS_CERT is its server certificate, and probe's timeout is another).
func (c *client) flags(fs *flag.FlagSet, command string) {
	fs.StringVar(&c.addr, "addr", "localhost:50051", "Code Bank gRPC address")
	fs.DurationVar(&c.timeout, "timeout", 10*time.Second, "how long to wait for the bank")
	fs.StringVar(&c.ca, "tls-ca", "", "CA certificates (PEM) to reach the bank over TLS (empty: plaintext, to a loopback --addr only unless --plaintext)")
	fs.StringVar(&c.cert, "tls-cert", "", "client certificate (PEM) for mutual TLS; with --tls-key")
	fs.StringVar(&c.key, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.BoolVar(&c.plaintext, "plaintext", false, "without --tls-ca, send API keys and card data in plaintext to an --addr that is not loopback (only inside a network that encrypts or isolates the hop: a service mesh, a private network)")
	fs.StringVar(&c.credentials, "credentials", defaultCredentials, "file of CODEBANK_MERCHANT_KEY=... and CODEBANK_ADMIN_KEY=... lines, read when the variables are not set (make run writes it)")
	cli.Scope(fs, command, "timeout", "tls-ca", "tls-cert", "tls-key")
}

// defaultCredentials is where make run keeps the development keys.
const defaultCredentials = ".data/credentials.env"

// dial connects with the API keys of the environment, or of the credentials file: each call
// carries the key of the role that may make it.
func (c *client) dial() (*grpc.ClientConn, error) {
	tlsConfig, err := cli.ClientTLS(c.ca, c.cert, c.key)
	if err != nil {
		return nil, err
	}
	keys, err := callerKeys(c.credentials)
	if err != nil {
		return nil, err
	}
	keys.Insecure = tlsConfig == nil
	conn, err := cli.Dial(c.addr, tlsConfig, keys, c.plaintext)
	if errors.Is(err, cli.ErrPlaintext) {
		return nil, fmt.Errorf("%w; give the bank's CA (--tls-ca), or --plaintext inside a network that encrypts or isolates the hop", err)
	}
	return conn, err
}

// connect dials the bank (dial) and returns the connection with ctx bounded by the timeout, and
// the function that releases both.
func (c *client) connect(ctx context.Context) (*grpc.ClientConn, context.Context, func(), error) {
	conn, err := c.dial()
	if err != nil {
		return nil, ctx, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	return conn, ctx, func() { cancel(); conn.Close() }, nil
}

// parseAmount reads an amount in currency units (money.Parse) given to the flag name.
func parseAmount(name, v string) (int64, error) {
	cents, err := money.Parse(v)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %v", name, v, err)
	}
	return cents, nil
}

// callerKeys returns the keys of CODEBANK_MERCHANT_KEY and CODEBANK_ADMIN_KEY, each read from
// file when the environment does not set it.
func callerKeys(file string) (grpcgateway.CallerKeys, error) {
	vals := map[string]string{}
	if b, err := os.ReadFile(file); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
				vals[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
		}
	} else if file != defaultCredentials {
		return grpcgateway.CallerKeys{}, fmt.Errorf("--credentials: %w", err)
	}
	get := func(name string) string {
		if v, ok := os.LookupEnv(name); ok {
			return v
		}
		return vals[name]
	}
	return grpcgateway.CallerKeys{Merchant: get("CODEBANK_MERCHANT_KEY"), Admin: get("CODEBANK_ADMIN_KEY")}, nil
}

func runCards(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := map[string]string{
		"issue":   "cards issue --holder NAME --limit 1000.00",
		"get":     "cards get CARD_ID|NUMBER",
		"block":   "cards block CARD_ID|NUMBER",
		"unblock": "cards unblock CARD_ID|NUMBER",
	}
	if len(args) == 0 || usage[args[0]] == "" {
		help := len(args) > 0 && (args[0] == "-h" || args[0] == "--help")
		w := stderr
		if help {
			w = stdout
		}
		fmt.Fprintln(w, "Usage: codebank "+usage["issue"]+"\n       codebank "+usage["get"]+"\n       codebank "+usage["block"]+"\n       codebank "+usage["unblock"])
		if help {
			return nil
		}
		return cli.ErrUsage
	}
	sub, args := args[0], args[1:]
	fs := cli.NewFlagSet("codebank "+usage[sub], stdout, stderr)
	var cl client
	cl.flags(fs, "cards")
	holder := fs.String("holder", "", "holder name (issue)")
	limit := fs.String("limit", "", "credit limit in currency units, e.g. 1000.00 (issue)")
	cli.Scope(fs, "cards", "holder", "limit")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	conn, ctx, done, err := cl.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	cards := codebankv1.NewCardServiceClient(conn)

	if sub == "issue" {
		if len(pos) > 0 {
			return fmt.Errorf("%w: cards issue takes no arguments, got %q", cli.ErrUsage, pos)
		}
		if err := cli.Missing(fs, "holder", "limit"); err != nil {
			return err
		}
		cents, err := parseAmount("--limit", *limit)
		if err != nil {
			return err
		}
		resp, err := cards.IssueCard(ctx, &codebankv1.IssueCardRequest{HolderName: *holder, LimitCents: cents})
		if err != nil {
			return rpcError(err)
		}
		printCard(stdout, resp.GetCard())
		fmt.Fprintf(stdout, "CVV:        %s   (shown once: the bank keeps neither the number nor the CVV)\n", resp.GetCvv())
		return nil
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: cards %s takes one CARD_ID or card NUMBER", cli.ErrUsage, sub)
	}
	id, err := cardIDOf(ctx, cards, pos[0])
	if err != nil {
		return err
	}
	var c *codebankv1.Card
	switch sub {
	case "get":
		var resp *codebankv1.GetCardResponse
		resp, err = cards.GetCard(ctx, &codebankv1.GetCardRequest{CardId: id})
		c = resp.GetCard()
	case "block":
		var resp *codebankv1.BlockCardResponse
		resp, err = cards.BlockCard(ctx, &codebankv1.BlockCardRequest{CardId: id})
		c = resp.GetCard()
	case "unblock":
		var resp *codebankv1.UnblockCardResponse
		resp, err = cards.UnblockCard(ctx, &codebankv1.UnblockCardRequest{CardId: id})
		c = resp.GetCard()
	}
	if err != nil {
		return rpcError(err)
	}
	printCard(stdout, c)
	return nil
}

// cardIDOf returns the card id an argument names: a card id as it is, a card number looked up
// (the number travels in the request's body).
func cardIDOf(ctx context.Context, cards codebankv1.CardServiceClient, arg string) (string, error) {
	if card.ValidToken(arg) {
		return arg, nil
	}
	resp, err := cards.LookupCard(ctx, &codebankv1.LookupCardRequest{Number: arg})
	if err != nil {
		return "", rpcError(err)
	}
	return resp.GetCard().GetCardId(), nil
}

func printCard(w io.Writer, c *codebankv1.Card) {
	if c.GetNumber() != "" {
		fmt.Fprintf(w, "Card:       %s\n", card.Grouped(c.GetNumber()))
	} else {
		fmt.Fprintf(w, "Card:       %s\n", c.GetMaskedNumber())
	}
	fmt.Fprintf(w, "Card id:    %s\n", c.GetCardId())
	fmt.Fprintf(w, "Holder:     %s\n", c.GetHolderName())
	fmt.Fprintf(w, "Expires:    %02d/%02d\n", c.GetExpiryMonth(), c.GetExpiryYear()%100)
	status := strings.TrimPrefix(c.GetStatus().String(), "CARD_STATUS_")
	if c.GetBlockReason() != codebankv1.BlockReason_BLOCK_REASON_UNSPECIFIED {
		status += " (" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(c.GetBlockReason().String(), "BLOCK_REASON_"), "_", " ")) + ")"
	}
	fmt.Fprintf(w, "Status:     %s\n", status)
	fmt.Fprintf(w, "Limit:      %s %s\n", c.GetCurrency(), money.Format(c.GetLimitCents()))
	if c.GetUsedCents() < 0 {
		fmt.Fprintf(w, "Used:       %s 0.00, and a credit balance of %s (spent before the limit)\n", c.GetCurrency(), money.Format(-c.GetUsedCents()))
	} else {
		fmt.Fprintf(w, "Used:       %s %s\n", c.GetCurrency(), money.Format(c.GetUsedCents()))
	}
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
	fs := cli.NewFlagSet("codebank pay --card NUMBER --holder NAME --exp MM/YY --cvv CVV --amount 12.34 [--store BRANCH]", stdout, stderr)
	var cl client
	cl.flags(fs, "pay")
	number := fs.String("card", "", "card number")
	holder := fs.String("holder", "", "holder name as on the card")
	exp := fs.String("exp", "", "expiry, MM/YY")
	cvv := fs.String("cvv", "", "3-digit CVV")
	amount := fs.String("amount", "", "amount in currency units, e.g. 12.34")
	store := fs.String("store", "", "a sub-name of the merchant's store, such as a branch (the merchant is the one the key names)")
	desc := fs.String("description", "", "what is bought (default: a purchase)")
	txID := fs.String("tx", "", "transaction id (idempotency key); generated when empty")
	cli.Scope(fs, "pay", "card", "holder", "exp", "cvv", "amount", "store", "description", "tx")
	if err := cli.Parse(fs, args); err != nil {
		return cli.HelpOK(err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", cli.ErrUsage, fs.Args())
	}
	if err := cli.Missing(fs, "card", "holder", "exp", "cvv", "amount"); err != nil {
		return err
	}
	month, year, err := parseExpiry(*exp)
	if err != nil {
		return err
	}
	cents, err := parseAmount("--amount", *amount)
	if err != nil {
		return err
	}
	if *desc == "" {
		*desc = "a purchase"
	}
	conn, ctx, done, err := cl.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	resp, err := codebankv1.NewPaymentServiceClient(conn).Authorize(ctx, &codebankv1.AuthorizeRequest{
		TransactionId: *txID,
		Card:          &codebankv1.CardDetails{Number: *number, HolderName: *holder, ExpiryMonth: month, ExpiryYear: year, Cvv: *cvv},
		AmountCents:   cents, Store: *store, Description: *desc,
	})
	if err != nil {
		return rpcError(err)
	}
	status := strings.TrimPrefix(resp.GetStatus().String(), "PAYMENT_STATUS_")
	fmt.Fprintf(stdout, "%s  %s on %s\n", status, money.Format(resp.GetAmountCents()), resp.GetMaskedNumber())
	if resp.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_REJECTED {
		fmt.Fprintf(stdout, "Reason:     %s\n", codecs.ReasonOf(codecs.ReasonName(resp.GetReason())).Label)
	}
	fmt.Fprintf(stdout, "Transaction: %s\n", resp.GetTransactionId())
	if resp.GetStatus() == codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		fmt.Fprintf(stdout, "Payment id:  %s\n", resp.GetPaymentId())
	}
	if resp.GetDuplicate() {
		fmt.Fprintln(stdout, "(already decided earlier: this is the original outcome)")
	}
	if resp.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		return exitError{code: exitRejected, msg: "payment rejected"}
	}
	return nil
}

func runStatement(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := cli.NewFlagSet("codebank statement CARD_ID|NUMBER [--month 2026-11]", stdout, stderr)
	var cl client
	cl.flags(fs, "statement")
	month := fs.String("month", "", "month, YYYY-MM (default: the current one)")
	cli.Scope(fs, "statement", "month")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return cli.HelpOK(err)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: statement takes one CARD_ID or card NUMBER", cli.ErrUsage)
	}
	conn, ctx, done, err := cl.connect(ctx)
	if err != nil {
		return err
	}
	defer done()
	id, err := cardIDOf(ctx, codebankv1.NewCardServiceClient(conn), pos[0])
	if err != nil {
		return err
	}
	client := codebankv1.NewStatementServiceClient(conn)
	req := &codebankv1.GetStatementRequest{CardId: id, Month: *month, PageSize: 1000}
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
	var purchases, operations int
	for _, l := range lines {
		desc, amount := l.GetDescription(), money.Format(l.GetAmountCents())
		if l.GetKind() == codebankv1.LineKind_LINE_KIND_PURCHASE {
			purchases++
		} else {
			operations++
		}
		switch l.GetKind() {
		case codebankv1.LineKind_LINE_KIND_REVERSAL:
			desc, amount = "Reversal of "+l.GetTransactionId(), "-"+amount
		case codebankv1.LineKind_LINE_KIND_REFUND:
			desc, amount = "Refund of "+l.GetTransactionId(), "-"+amount
		case codebankv1.LineKind_LINE_KIND_BILL_PAYMENT:
			desc, amount = "Bill payment "+l.GetOperationId(), "-"+amount
		}
		fmt.Fprintf(stdout, "  %s  %-24s %-30s %12s\n", time.UnixMilli(l.GetAuthorizedAtUnixMs()).UTC().Format("2006-01-02 15:04"),
			truncate(l.GetStore(), 24), truncate(desc, 30), amount)
	}
	b := first.GetBill()
	fmt.Fprintf(stdout, "\n  Opening balance     %s %12s\n", cur, money.Format(b.GetOpeningBalanceCents()))
	fmt.Fprintf(stdout, "  Purchases           %s %12s\n", cur, money.Format(b.GetPurchasesCents()))
	fmt.Fprintf(stdout, "  Reversals           %s %12s\n", cur, money.Format(-b.GetReversalsCents()))
	fmt.Fprintf(stdout, "  Refunds             %s %12s\n", cur, money.Format(-b.GetRefundsCents()))
	fmt.Fprintf(stdout, "  Bill payments       %s %12s\n", cur, money.Format(-b.GetPaymentsCents()))
	if closing := b.GetClosingBalanceCents(); closing < 0 {
		fmt.Fprintf(stdout, "  Credit balance      %s %12s\n", cur, money.Format(-closing))
	} else {
		fmt.Fprintf(stdout, "  Closing balance     %s %12s\n", cur, money.Format(closing))
	}
	fmt.Fprintf(stdout, "  Minimum payment     %s %12s   due %s (%s)\n", cur, money.Format(b.GetMinimumPaymentCents()), b.GetDueDate(),
		strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(b.GetStatus().String(), "BILL_STATUS_"), "_", " ")))
	fmt.Fprintf(stdout, "\n  %s, total %s %s", count(purchases, "purchase", "purchases"), cur, money.Format(first.GetTotalCents()))
	if operations > 0 {
		fmt.Fprintf(stdout, "; %s", count(operations, "reversal, refund or bill payment", "reversals, refunds and bill payments"))
	}
	fmt.Fprintln(stdout)
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

// count writes n with the noun in its number: "1 purchase", "2 purchases".
func count(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
