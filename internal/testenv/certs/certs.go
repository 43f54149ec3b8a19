// Package certs makes the certificates of tests of TLS servers and clients: a CA, a
// self-signed certificate authority made for one test, and the server and client certificates
// it signs, each a Pair of PEM certificate and key.
//
// Keys are ECDSA P-256; certificates are valid from an hour ago to a day ahead. Every function
// fails the test it is given instead of returning an error.
package certs

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a self-signed certificate authority that signs the certificates of one test.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// Pair is a certificate and its private key, both PEM: the certificate as "CERTIFICATE", the
// key as PKCS#8 "PRIVATE KEY", the form Kafka's PEM keystore reads.
type Pair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewCA returns a new certificate authority with a key of its own.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := template(t, pkix.Name{CommonName: "Code Bank test CA", Organization: []string{"Code Bank tests"}})
	tmpl.IsCA = true
	tmpl.BasicConstraintsValid = true
	tmpl.MaxPathLenZero = true // it signs leaf certificates only
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("certs: create CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("certs: parse CA certificate: %v", err)
	}
	return &CA{cert: cert, certPEM: pemBlock("CERTIFICATE", der), key: key}
}

// CertPEM returns the CA's certificate, PEM.
func (ca *CA) CertPEM() []byte { return ca.certPEM }

// Pool returns a new pool holding the CA's certificate, for tls.Config's RootCAs or ClientCAs.
func (ca *CA) Pool() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	return pool
}

// WriteFile writes the CA's certificate to dir/ca.pem and returns that path.
func (ca *CA) WriteFile(t testing.TB, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, ca.certPEM, 0o644); err != nil {
		t.Fatalf("certs: write CA certificate: %v", err)
	}
	return path
}

// Server returns a server certificate for hosts, each a DNS name or an IP address; the first
// is also its common name.
func (ca *CA) Server(t testing.TB, hosts ...string) Pair {
	t.Helper()
	if len(hosts) == 0 {
		t.Fatalf("certs: a server certificate needs at least one host")
	}
	tmpl := template(t, pkix.Name{CommonName: hosts[0]})
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	return ca.sign(t, tmpl)
}

// Client returns a client certificate whose subject's common name is commonName.
func (ca *CA) Client(t testing.TB, commonName string) Pair {
	t.Helper()
	tmpl := template(t, pkix.Name{CommonName: commonName})
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	return ca.sign(t, tmpl)
}

// sign issues the leaf certificate tmpl for a new key.
func (ca *CA) sign(t testing.TB, tmpl *x509.Certificate) Pair {
	t.Helper()
	key := newKey(t)
	// ECDSA keys sign; they do not encipher keys, so DigitalSignature is the only usage.
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatalf("certs: create certificate of %s: %v", tmpl.Subject.CommonName, err)
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatalf("certs: encode key of %s: %v", tmpl.Subject.CommonName, err)
	}
	return Pair{CertPEM: pemBlock("CERTIFICATE", der), KeyPEM: pemBlock("PRIVATE KEY", pkcs8)}
}

// TLS returns the pair as a tls.Certificate, for tls.Config's Certificates.
func (p Pair) TLS(t testing.TB) tls.Certificate {
	t.Helper()
	c, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatalf("certs: load pair: %v", err)
	}
	return c
}

// WriteFiles writes the certificate to dir/name.pem and the key to dir/name-key.pem (readable
// by the owner only) and returns their paths.
func (p Pair) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+"-key.pem")
	if err := os.WriteFile(certFile, p.CertPEM, 0o644); err != nil {
		t.Fatalf("certs: write certificate: %v", err)
	}
	if err := os.WriteFile(keyFile, p.KeyPEM, 0o600); err != nil {
		t.Fatalf("certs: write key: %v", err)
	}
	return certFile, keyFile
}

func newKey(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("certs: generate key: %v", err)
	}
	return key
}

// template returns a certificate template for subject with a random serial number, valid from
// an hour ago (clocks differ a little) to a day ahead.
func template(t testing.TB, subject pkix.Name) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatalf("certs: serial number: %v", err)
	}
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
	}
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}
