package analytics

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/olivere/elastic/v7"
)

// Search says how to reach an Elasticsearch 7/8 or OpenSearch 2 server: over HTTPS, verifying
// its certificate against a CA of its own (ECK's, a test's), and signed in with a user and
// password (HTTP basic authentication).
type Search struct {
	// URL is the server's base URL, http:// or https://.
	URL string
	// CAFile holds the CA certificates (PEM) the server's certificate is verified against;
	// empty: the system's.
	CAFile string
	// User and Password sign in; an empty User: no authentication.
	User, Password string
}

// Client returns a client of the server. Sniffing is off: the node addresses a cluster
// publishes are often unreachable from clients (and carry no certificate name they match).
func (s Search) Client() (*elastic.Client, error) {
	if !strings.HasPrefix(s.URL, "http://") && !strings.HasPrefix(s.URL, "https://") {
		return nil, fmt.Errorf("search URL %q: want http:// or https://", s.URL)
	}
	if s.CAFile != "" && !strings.HasPrefix(s.URL, "https://") {
		return nil, fmt.Errorf("search URL %s: a CA (%s) needs an https:// URL", s.URL, s.CAFile)
	}
	opts := []elastic.ClientOptionFunc{elastic.SetURL(s.URL), elastic.SetSniff(false), elastic.SetHealthcheck(false)}
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("search CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("search CA %s holds no PEM certificate", s.CAFile)
		}
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, elastic.SetHttpClient(&http.Client{Transport: transport}))
	}
	if s.User != "" {
		opts = append(opts, elastic.SetBasicAuth(s.User, s.Password))
	}
	c, err := elastic.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("search client for %s: %w", s.URL, err)
	}
	return c, nil
}

// NewClient returns a client of the server at url, with the system's CAs and no
// authentication: Search{URL: url}.Client().
func NewClient(url string) (*elastic.Client, error) {
	return Search{URL: url}.Client()
}
