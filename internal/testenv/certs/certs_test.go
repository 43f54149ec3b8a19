package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// handshake runs a TLS handshake between server and client over a loopback TCP connection
// and returns each side's error and the server's view of the connection. (Not net.Pipe: it
// does not buffer, so a side that refuses the other's certificate blocks sending its alert
// while the other is still writing its own flight.) After its handshake the client reads one
// byte the server writes, so that a client certificate the server refuses after the client has
// finished (TLS 1.3) fails the client too.
func handshake(t *testing.T, server, client *tls.Config) (serverErr, clientErr error, state tls.ConnectionState) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.Now().Add(10 * time.Second)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc, err := l.Accept()
		if err != nil {
			serverErr = err
			return
		}
		defer sc.Close()
		sc.SetDeadline(deadline)
		s := tls.Server(sc, server)
		if serverErr = s.Handshake(); serverErr == nil {
			state = s.ConnectionState()
			_, serverErr = s.Write([]byte{1})
		}
	}()
	cc, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc.SetDeadline(deadline)
	c := tls.Client(cc, client)
	if clientErr = c.Handshake(); clientErr == nil {
		_, clientErr = c.Read(make([]byte, 1))
	}
	cc.Close()
	<-done
	return serverErr, clientErr, state
}

func TestHandshake(t *testing.T) {
	ca := NewCA(t)
	server := ca.Server(t, "localhost", "127.0.0.1")
	for _, name := range []string{"localhost", "127.0.0.1"} {
		serverErr, clientErr, _ := handshake(t,
			&tls.Config{Certificates: []tls.Certificate{server.TLS(t)}},
			&tls.Config{RootCAs: ca.Pool(), ServerName: name})
		if serverErr != nil || clientErr != nil {
			t.Errorf("server name %s: server error %v, client error %v", name, serverErr, clientErr)
		}
	}
	_, clientErr, _ := handshake(t,
		&tls.Config{Certificates: []tls.Certificate{server.TLS(t)}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "kafka.example.com"})
	var hostErr x509.HostnameError
	if !errors.As(clientErr, &hostErr) {
		t.Errorf("server name the certificate lacks: client error %v, want a hostname error", clientErr)
	}
}

func TestMutualTLS(t *testing.T) {
	ca := NewCA(t)
	server := &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "localhost").TLS(t)},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
	}
	client := &tls.Config{
		Certificates: []tls.Certificate{ca.Client(t, "authorizer").TLS(t)},
		RootCAs:      ca.Pool(),
		ServerName:   "localhost",
	}
	serverErr, clientErr, state := handshake(t, server, client)
	if serverErr != nil || clientErr != nil {
		t.Fatalf("server error %v, client error %v", serverErr, clientErr)
	}
	if len(state.PeerCertificates) == 0 || state.PeerCertificates[0].Subject.CommonName != "authorizer" {
		t.Errorf("server sees client certificates %v, want CN=authorizer", state.PeerCertificates)
	}

	// No client certificate.
	noCert := client.Clone()
	noCert.Certificates = nil
	if serverErr, clientErr, _ := handshake(t, server, noCert); serverErr == nil || clientErr == nil {
		t.Errorf("client without a certificate: server error %v, client error %v, want both", serverErr, clientErr)
	}
	// A server certificate is no client certificate.
	asClient := client.Clone()
	asClient.Certificates = []tls.Certificate{ca.Server(t, "localhost").TLS(t)}
	if serverErr, _, _ := handshake(t, server, asClient); serverErr == nil {
		t.Error("server accepted a server certificate from a client")
	}
}

func TestOtherCARefused(t *testing.T) {
	ca, other := NewCA(t), NewCA(t)

	// A server certificate of another CA.
	_, clientErr, _ := handshake(t,
		&tls.Config{Certificates: []tls.Certificate{other.Server(t, "localhost").TLS(t)}},
		&tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"})
	var unknown x509.UnknownAuthorityError
	if !errors.As(clientErr, &unknown) {
		t.Errorf("server certificate of another CA: client error %v, want unknown authority", clientErr)
	}

	// A client certificate of another CA.
	serverErr, _, _ := handshake(t,
		&tls.Config{
			Certificates: []tls.Certificate{ca.Server(t, "localhost").TLS(t)},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool(),
		},
		&tls.Config{
			Certificates: []tls.Certificate{other.Client(t, "intruder").TLS(t)},
			RootCAs:      ca.Pool(),
			ServerName:   "localhost",
		})
	if !errors.As(serverErr, &unknown) {
		t.Errorf("client certificate of another CA: server error %v, want unknown authority", serverErr)
	}
}

func TestWriteFiles(t *testing.T) {
	ca := NewCA(t)
	dir := t.TempDir()
	caFile := ca.WriteFile(t, dir)
	certFile, keyFile := ca.Server(t, "localhost").WriteFiles(t, dir, "broker")

	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	if pool := x509.NewCertPool(); !pool.AppendCertsFromPEM(pem) {
		t.Errorf("%s holds no PEM certificate", caFile)
	}
	pair, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "localhost"}); err != nil {
		t.Errorf("written certificate does not verify: %v", err)
	}
	key, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(key), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("key file is not PKCS#8 PEM:\n%.40s", key)
	}
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v (err %v), want 0600", fi.Mode().Perm(), err)
	}
	c, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if now := time.Now(); !c.NotBefore.Before(now.Add(-50*time.Minute)) || !c.NotAfter.After(now.Add(23*time.Hour)) {
		t.Errorf("certificate valid from %s to %s, want an hour ago to a day ahead", c.NotBefore, c.NotAfter)
	}
}
