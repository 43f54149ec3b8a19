// Package cli is what Code Bank's binaries share of a command line: subcommands chosen by the
// first argument (Program), and flags that can each be set by an environment variable as well
// (--reply-partition is CODEBANK_REPLY_PARTITION).
//
// Its main types are Program and Command.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// Errors of a command line.
var (
	// ErrUsage marks an error of the command line. Alone, it says that the usage was printed;
	// wrapped, its message says what is wrong, and Main prints it.
	ErrUsage = errors.New("usage")
	// ErrHelp is returned by Parse after printing help: the command exits 0 (HelpOK).
	ErrHelp = fmt.Errorf("%w: help", ErrUsage)
	// ErrPlaintext is returned by Dial for plaintext to an address that is not loopback, unless
	// its caller says the network is trusted.
	ErrPlaintext = errors.New("plaintext (no TLS) to an address that is not loopback: API keys and card data would cross the network in the clear")
)

// Command is one subcommand of a program.
type Command struct {
	// Summary is its line in the program's usage.
	Summary string
	// Run runs it with the arguments after its name.
	Run func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// Program is a binary of subcommands.
type Program struct {
	// Name is the binary's name, Title its first usage line.
	Name, Title string
	// Commands are its subcommands, by name.
	Commands map[string]Command
	// Version, when set, is the line `NAME --version` (or `NAME version`) prints.
	Version func() string
}

// Main runs the command named by os.Args[1] until it returns or SIGINT or SIGTERM ends its
// context, then exits: 0 when it succeeded, the status an error chooses (an error with an
// ExitCode method), or 1.
func (p Program) Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := p.Run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var printed printedError
	if err != ErrUsage && !errors.Is(err, ErrHelp) && !errors.As(err, &printed) {
		fmt.Fprintln(os.Stderr, p.Name+":", err)
	}
	var ec interface{ ExitCode() int }
	if errors.As(err, &ec) {
		os.Exit(ec.ExitCode())
	}
	os.Exit(1)
}

// Run runs the command args names.
func (p Program) Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		p.usage(stdout)
		if len(args) == 0 {
			return ErrUsage
		}
		return nil
	}
	if p.Version != nil && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		fmt.Fprintf(stdout, "%s %s\n", p.Name, p.Version())
		return nil
	}
	cmd, ok := p.Commands[args[0]]
	if !ok {
		p.usage(stderr)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return cmd.Run(ctx, args[1:], stdout, stderr)
}

func (p Program) usage(w io.Writer) {
	fmt.Fprintf(w, "%s\n\nUsage: %s COMMAND [flags]\n\nCommands:\n", p.Title, p.Name)
	for _, n := range slices.Sorted(maps.Keys(p.Commands)) {
		fmt.Fprintf(w, "  %-11s %s\n", n, p.Commands[n].Summary)
	}
	fmt.Fprintf(w, "\nRun '%s COMMAND --help' for a command's flags. Every flag can also be set\nwith an environment variable: --reply-partition is CODEBANK_REPLY_PARTITION.\n", p.Name)
}

// NewFlagSet returns the flag set of a command whose synopsis is given, e.g. "codebank pay
// --card NUMBER ...". Its help (-h, --help: Parse returns ErrHelp) lists the flags, each with
// its environment variable, on stdout; a bad command line is reported, with the same list, on
// stderr.
func NewFlagSet(synopsis string, stdout, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(strings.Fields(synopsis + " x")[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	m := &meta{scoped: map[string]string{}}
	fs.Var(m, "help", "")
	fs.Var(m, "h", "")
	m.usage = func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s\n\nFlags (each also read from the environment variable shown):\n", synopsis)
		fs.VisitAll(func(f *flag.Flag) {
			if f.Value == m {
				return
			}
			def := ""
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "false" {
				def = " (default " + f.DefValue + ")"
			}
			fmt.Fprintf(w, "  --%s  [%s]\n      %s%s\n", f.Name, m.env(f.Name), f.Usage, def)
		})
	}
	m.stdout = stdout
	fs.Usage = func() { m.usage(fs.Output()) }
	return fs
}

// meta is what NewFlagSet keeps about a flag set, as the Value of its help flags (-h, --help):
// where help goes, and the flags whose environment variables are their command's own.
type meta struct {
	stdout    io.Writer
	usage     func(io.Writer)
	requested bool
	scoped    map[string]string // flag name -> environment variable
}

func (m *meta) String() string   { return "" }
func (m *meta) IsBoolFlag() bool { return true }
func (m *meta) Set(v string) error {
	m.requested = v != "false"
	return nil
}

func (m *meta) env(name string) string {
	if v, ok := m.scoped[name]; ok {
		return v
	}
	return EnvName(name)
}

func metaOf(fs *flag.FlagSet) *meta {
	if f := fs.Lookup("help"); f != nil {
		if m, ok := f.Value.(*meta); ok {
			return m
		}
	}
	return nil
}

// Scope gives the named flags of fs the environment variables of their command: with command
// "pay", --timeout is CODEBANK_PAY_TIMEOUT instead of CODEBANK_TIMEOUT. Use it for a flag whose
// meaning is the command's own (pay's timeout is 10 s and probe's 2 s; a card number, a key's
// id), so that a variable set for one command never changes another.
func Scope(fs *flag.FlagSet, command string, flags ...string) {
	m := metaOf(fs)
	for _, name := range flags {
		if fs.Lookup(name) == nil {
			panic("cli.Scope: no flag --" + name)
		}
		m.scoped[name] = EnvName(command + "-" + name)
	}
}

// FlagEnv returns the environment variable of the flag name of fs: CODEBANK_ and its name in
// upper case (EnvName), or its command's own (Scope).
func FlagEnv(fs *flag.FlagSet, name string) string {
	if m := metaOf(fs); m != nil {
		return m.env(name)
	}
	return EnvName(name)
}

// EnvName is the environment variable of a flag shared by the commands: CODEBANK_ and its name
// in upper case, with underscores for dashes.
func EnvName(flagName string) string {
	return "CODEBANK_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// Parse parses args, then fills every flag not given on the command line from its environment
// variable (FlagEnv). It returns ErrHelp after printing help to the flag set's stdout, and an
// error wrapping ErrUsage for a bad command line.
func Parse(fs *flag.FlagSet, args []string) error {
	m := metaOf(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return printedError{fmt.Errorf("%w: %v", ErrUsage, err)} // the flag package printed it with the usage
	}
	if m != nil && m.requested {
		m.usage(m.stdout)
		return ErrHelp
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || err != nil || (m != nil && f.Value == m) {
			return
		}
		env := FlagEnv(fs, f.Name)
		if v, ok := os.LookupEnv(env); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %v", env, v, e)
			}
		}
	})
	return err
}

// Missing returns an error naming every flag of names that is empty after Parse, with its
// environment variable, at once: "missing --card (CODEBANK_PAY_CARD), --cvv (...)"; nil when
// all are set.
func Missing(fs *flag.FlagSet, names ...string) error {
	var missing []string
	for _, n := range names {
		f := fs.Lookup(n)
		if f == nil {
			panic("cli.Missing: no flag --" + n)
		}
		if f.Value.String() == "" {
			missing = append(missing, "--"+n+" ("+FlagEnv(fs, n)+")")
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%w: missing %s", ErrUsage, strings.Join(missing, ", "))
}

// printedError is an error already printed, with the usage, by the flag package.
type printedError struct{ error }

func (e printedError) Unwrap() error { return e.error }

// HelpOK turns the help request into a clean exit.
func HelpOK(err error) error {
	if errors.Is(err, ErrHelp) {
		return nil
	}
	return err
}

// Dial connects to a Code Bank gRPC address, with per-call credentials (API keys) when creds
// is set: over TLS when tlsConfig is set; else in plaintext, which it refuses (ErrPlaintext) to
// an address that is not loopback (Loopback) unless plaintextAnywhere says that the network
// between is trusted (a service mesh that encrypts the hop, a private network).
func Dial(addr string, tlsConfig *tls.Config, creds credentials.PerRPCCredentials, plaintextAnywhere bool) (*grpc.ClientConn, error) {
	if err := CheckPlaintext(addr, tlsConfig != nil, plaintextAnywhere); err != nil {
		return nil, err
	}
	transport := insecure.NewCredentials()
	if tlsConfig != nil {
		transport = credentials.NewTLS(tlsConfig)
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(transport)}
	if creds != nil {
		opts = append(opts, grpc.WithPerRPCCredentials(creds))
	}
	conn, err := grpc.NewClient(addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}

// ClientTLS returns the TLS configuration of a client that trusts the CA certificates in caFile
// and, for mutual TLS, presents certFile and keyFile; nil, for plaintext, when caFile is empty.
func ClientTLS(caFile, certFile, keyFile string) (*tls.Config, error) {
	if caFile == "" {
		if certFile != "" || keyFile != "" {
			return nil, fmt.Errorf("%w: a client certificate needs the CA that signed the server's", ErrUsage)
		}
		return nil, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// CheckPlaintext returns an error wrapping ErrPlaintext when Dial would refuse addr: without
// TLS, to an address that is not loopback, and not plaintextAnywhere.
func CheckPlaintext(addr string, withTLS, plaintextAnywhere bool) error {
	if withTLS || plaintextAnywhere || IsLoopback(addr) {
		return nil
	}
	return fmt.Errorf("connect to %s: %w", addr, ErrPlaintext)
}

// IsLoopback reports whether a gRPC target ("host:port", "dns:///host:port", "unix:path", ...)
// stays on this machine: a Unix socket, localhost, or a loopback IP address (127.0.0.0/8, ::1).
// Other names are not resolved: what they resolve to may change, and may be anywhere.
func IsLoopback(target string) bool {
	if strings.HasPrefix(target, "unix:") || strings.HasPrefix(target, "unix-abstract:") {
		return true
	}
	if _, rest, ok := strings.Cut(target, "://"); ok { // scheme://authority/endpoint
		_, target, _ = strings.Cut(rest, "/")
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.Unmap().IsLoopback()
}

// Loopback turns a listen address like "[::]:50051" or ":50051" into one a local client can
// dial: "localhost:50051".
func Loopback(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return "localhost" + addr[i:]
	}
	return addr
}
