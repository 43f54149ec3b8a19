package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/codebank/codebank/internal/apikey"
	"github.com/codebank/codebank/internal/cli"
)

// runKeys makes a new API key: it prints the key, to hand to its holder, and its line of the
// keys file, which keeps only the key's hash.
func runKeys(_ context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "new" {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			fmt.Fprintln(stdout, "Usage: codebank keys new --id ID --role merchant|admin|pages [--merchant ID --name NAME]")
			return nil
		}
		fmt.Fprintln(stderr, "Usage: codebank keys new --id ID --role merchant|admin|pages [--merchant ID --name NAME]")
		return cli.ErrUsage
	}
	fs := cli.NewFlagSet("codebank keys new --id ID --role merchant|admin|pages [--merchant ID --name NAME]", stdout, stderr)
	id := fs.String("id", "", "the key's id: lower-case letters, digits and dashes (e.g. store-2026-12)")
	role := fs.String("role", "", "merchant, admin or pages")
	merchant := fs.String("merchant", "", "the merchant's id (merchant keys)")
	name := fs.String("name", "", "the merchant's name, as customers see it (merchant keys)")
	cli.Scope(fs, "keys", "id", "role", "merchant", "name")
	if err := cli.Parse(fs, args[1:]); err != nil {
		return cli.HelpOK(err)
	}
	if err := cli.Missing(fs, "id", "role"); err != nil {
		return err
	}
	p := apikey.Principal{KeyID: *id, Role: apikey.Role(*role), Merchant: *merchant, MerchantName: *name}
	key, err := apikey.New(p.KeyID)
	if err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	line := apikey.Line(p, key)
	if _, err := apikey.Parse(strings.NewReader(line)); err != nil {
		return fmt.Errorf("%w: %v", cli.ErrUsage, err)
	}
	fmt.Fprintf(stdout, "key:  %s\n      give it to its holder, who sends it as authorization: Bearer <key>; it is not shown again\nline: %s\n      add it to the keys file (--api-keys-file); delete the line to revoke the key\n", key, line)
	return nil
}
