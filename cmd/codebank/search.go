package main

import (
	"flag"
	"fmt"
	"io"

	"github.com/olivere/elastic/v7"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/cli"
)

// searchFlags are how setup, audit and analytics reach the search server, and the alias they
// use: one set of flags and help, so that CODEBANK_SEARCH_URL and its kin mean the same to
// each.
type searchFlags struct {
	url, ca, user string
	password      *cli.Secret
	index         string
}

// register adds the flags to fs, --search-url defaulting to defaultURL.
func (s *searchFlags) register(fs *flag.FlagSet, defaultURL string) {
	fs.StringVar(&s.url, "search-url", defaultURL, "Elasticsearch or OpenSearch URL, http:// or https://")
	fs.StringVar(&s.ca, "search-ca", "", "CA certificates (PEM) the search server's certificate is verified against, such as ECK's ca.crt (default: the system's)")
	fs.StringVar(&s.user, "search-user", "", "user signing in to the search server (HTTP basic authentication; empty: none)")
	s.password = cli.SecretFlag(fs, "search-password", "password of --search-user")
	fs.StringVar(&s.index, "index", analytics.DefaultIndex, "alias the results are read through, and the prefix of their monthly indices (INDEX-YYYY.MM)")
}

// bookFlags returns the flag set of a command that reads or sets up the bank's books: the
// topics (the Kafka flags) and, with --search-url, the results indices (the search flags).
func bookFlags(synopsis string, stdout, stderr io.Writer) (*flag.FlagSet, *config, *searchFlags) {
	var c config
	var sf searchFlags
	fs := cli.NewFlagSet(synopsis, stdout, stderr)
	c.kafkaFlags(fs)
	sf.register(fs, "")
	return fs, &c, &sf
}

// search returns how to reach the server; a password without a user, or one that cannot be
// read, is an error.
func (s *searchFlags) search() (analytics.Search, error) {
	pw, err := s.password.Value()
	if err != nil {
		return analytics.Search{}, err
	}
	if pw != "" && s.user == "" {
		return analytics.Search{}, fmt.Errorf("%w: --search-password needs --search-user", cli.ErrUsage)
	}
	if s.user != "" && pw == "" {
		return analytics.Search{}, fmt.Errorf("%w: --search-user %s needs a password: set %s or %s", cli.ErrUsage, s.user, cli.EnvName("search-password"), cli.EnvName("search-password-file"))
	}
	return analytics.Search{URL: s.url, CAFile: s.ca, User: s.user, Password: pw}, nil
}

// client returns a client of the search server (search).
func (s *searchFlags) client() (*elastic.Client, error) {
	sr, err := s.search()
	if err != nil {
		return nil, err
	}
	return sr.Client()
}
