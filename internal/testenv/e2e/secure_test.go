package e2e_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/devenv/localconnect"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/certs"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	paymentpb "github.com/codebank/codebank/proto/payment"
	"github.com/codebank/codebank/web/store"
)

// TestSecureDeployment runs the bank as its separate processes (authorizer, statements, ingress,
// pages) on a broker that they reach over SASL_SSL with SCRAM, with TLS on the API (mutual TLS:
// clients present certificates) and on the pages, the analytics sink beside them. It pays with
// issued cards through every interface: gRPC, REST, the original contract, the store's checkout,
// and proves a card on the statement page; and it plants the issued numbers, whole, grouped and
// dashed, in every free-text field a caller fills (holder names, stores, descriptions, by every
// interface; a card issued to a name that is a number) and in a transaction id. Then it looks
// for the issued card numbers everywhere the bank keeps or shows data: every record of every
// topic, every byte of the processes' storage, the search index, the logs of every process
// (Kafka Connect's too) and their metrics; and finds none. The same scans, given a number
// planted on purpose in each place, find it.
func TestSecureDeployment(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ca := certs.NewCA(t)
	caFile := ca.WriteFile(t, dir)
	serverCert, serverKey := ca.Server(t, "127.0.0.1", "localhost").WriteFiles(t, dir, "server")
	webCert, webKey := ca.Client(t, "codebank-web").WriteFiles(t, dir, "web")
	client := ca.Client(t, "checkout")
	const user, password = "codebank", "a SCRAM password of the test"
	pwFile := filepath.Join(dir, "kafka-password")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// The broker: SASL_SSL for the bank, PLAINTEXT for Kafka Connect and the test's own reads.
	brokerCert := ca.Server(t, "127.0.0.1")
	broker, err := localkafka.Start(ctx, localkafka.Options{SASLSSL: &localkafka.SASLSSLListener{CertPEM: brokerCert.CertPEM, KeyPEM: brokerCert.KeyPEM,
		Users: map[string]string{user: password}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Stop() })
	worker, err := localconnect.Start(ctx, localconnect.Options{Brokers: broker.Addr(), GroupID: "e2e-secure-connect"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { worker.Stop() })

	name := kafkatest.Name(t)
	prefix, index := name+"-", analytics.DefaultIndex+"-"+strings.ToLower(name)
	common := []string{"--brokers", broker.SASLSSLAddr(), "--topic-prefix", prefix, "--partitions", "2", "--reply-partitions", "2",
		"--kafka-ca", caFile, "--kafka-sasl", "SCRAM-SHA-512", "--kafka-user", user, "--kafka-password-file", pwFile}
	tlsArgs := []string{"--tls-cert", serverCert, "--tls-key", serverKey}
	setup := exec.CommandContext(ctx, binary, append([]string{"setup", "--search-url", servers.SearchURL, "--connect-url", worker.URL(), "--index", index}, common...)...)
	if out, err := setup.CombinedOutput(); err != nil {
		t.Fatalf("codebank setup over SASL_SSL: %v\n%s", err, out)
	}
	storage := map[string]string{"authorizer": t.TempDir(), "statements": t.TempDir(), "web": t.TempDir()}
	authOps, stmtGRPC, stmtHTTP, stmtOps, inGRPC, inHTTP, inOps, webHTTP, webOps := addr(), addr(), addr(), addr(), addr(), addr(), addr(), addr(), addr()
	roles := []*role{
		startRole(t, "authorizer", "http://"+authOps+"/readyz", append([]string{"authorizer", "--storage-dir", storage["authorizer"], "--ops-addr", authOps}, common...)...),
		startRole(t, "statements", "http://"+stmtOps+"/readyz", append(append([]string{"statements", "--storage-dir", storage["statements"], "--grpc-addr", stmtGRPC,
			"--http-addr", stmtHTTP, "--ops-addr", stmtOps, "--reply-partition", "1", "--tls-client-ca", caFile}, tlsArgs...), common...)...),
		startRole(t, "ingress", "http://"+inOps+"/readyz", append(append([]string{"ingress", "--grpc-addr", inGRPC, "--http-addr", inHTTP, "--ops-addr", inOps,
			"--reply-partition", "0", "--legacy-merchant", banktest.Merchant, "--tls-client-ca", caFile}, tlsArgs...), common...)...),
		startRole(t, "web", "http://"+webOps+"/readyz", append(append([]string{"web", "--storage-dir", storage["web"], "--http-addr", webHTTP, "--ops-addr", webOps,
			"--bank-addr", inGRPC, "--statements-addr", stmtGRPC, "--bank-ca", caFile, "--bank-cert", webCert, "--bank-key", webKey}, tlsArgs...), common...)...),
	}
	for _, r := range roles {
		r.waitReady(t, 2*time.Minute)
	}

	// Mutual TLS on the API: no plaintext, no client without a certificate of the bank's CA.
	clientTLS := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{client.TLS(t)}, MinVersion: tls.VersionTLS12}
	conn, err := grpc.NewClient(inGRPC, grpc.WithTransportCredentials(credentials.NewTLS(clientTLS)), grpc.WithPerRPCCredentials(callers()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cards, payments := codebankv1.NewCardServiceClient(conn), codebankv1.NewPaymentServiceClient(conn)
	var issued []*codebankv1.IssueCardResponse
	for _, h := range []string{"Maria Silva", "Joao Souza", "Ana Costa"} {
		issued = append(issued, issue(t, cards, h, 1_000_000))
	}
	stranger := certs.NewCA(t).Client(t, "stranger")
	for what, creds := range map[string]credentials.TransportCredentials{
		"plaintext":                   insecure.NewCredentials(),
		"TLS without a certificate":   credentials.NewTLS(&tls.Config{RootCAs: ca.Pool()}),
		"a certificate of another CA": credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{stranger.TLS(t)}}),
	} {
		c, err := grpc.NewClient(inGRPC, grpc.WithTransportCredentials(creds))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := codebankv1.NewCardServiceClient(c).GetCard(ctxT(t), &codebankv1.GetCardRequest{CardId: issued[0].GetCard().GetCardId()}); err == nil {
			t.Errorf("a client with %s reached the API", what)
		}
		c.Close()
	}

	// Pay through every interface. gRPC:
	if r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "grpc-1", Card: details(issued[0]), AmountCents: 1_000,
		Store: "Centro", Description: "gRPC"}); err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("gRPC payment = %v, %v", r, err)
	}
	wrong := details(issued[0])
	wrong.Cvv = fmt.Sprintf("%03d", (atoi(wrong.Cvv)+1)%1000)
	if r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "grpc-2", Card: wrong, AmountCents: 1_000, Description: "gRPC"}); err != nil ||
		r.GetReason() != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
		t.Fatalf("gRPC payment with a wrong CVV = %v, %v", r, err)
	}
	// REST, over mutual TLS:
	https := &http.Client{Transport: &http.Transport{TLSClientConfig: clientTLS}, Timeout: 30 * time.Second}
	d := details(issued[1])
	body := fmt.Sprintf(`{"transaction_id":"rest-1","card":{"number":%q,"holder_name":%q,"expiry_month":%d,"expiry_year":%d,"cvv":%q},"amount_cents":2000,"description":"REST"}`,
		d.GetNumber(), d.GetHolderName(), d.GetExpiryMonth(), d.GetExpiryYear(), d.GetCvv())
	req, _ := http.NewRequest(http.MethodPost, "https://"+inHTTP+"/v1/payments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+banktest.MerchantKey)
	resp, err := https.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "PAYMENT_STATUS_APPROVED") {
		t.Fatalf("REST payment over TLS = %d %s", resp.StatusCode, raw)
	}
	// The original contract, served without a key to the merchant the flag names:
	c2 := issued[2].GetCard()
	if _, err := paymentpb.NewPaymentServiceClient(conn).Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{
		Name: c2.GetHolderName(), Number: c2.GetNumber(), ExpirationMonth: c2.GetExpiryMonth(), ExpirationYear: c2.GetExpiryYear(), Cvv: int32(atoi(issued[2].GetCvv()))},
		Amount: 30, Store: "Code Store", Description: "legacy"}); err != nil {
		t.Fatalf("legacy payment = %v", err)
	}
	// The store's checkout, over TLS:
	pages := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	product := getBody(t, pages, "https://"+webHTTP+"/products/stoneware-mug")
	orderID := regexp.MustCompile(`name="order_id" value="([^"]+)"`).FindStringSubmatch(product)
	if orderID == nil {
		t.Fatal("the product page has no order form")
	}
	c0 := issued[0].GetCard()
	expiry := fmt.Sprintf("%02d/%02d", c0.GetExpiryMonth(), c0.GetExpiryYear()%100)
	resp, err = pages.PostForm("https://"+webHTTP+"/checkout", url.Values{"order_id": {orderID[1]}, "product": {"stoneware-mug"}, "quantity": {"1"},
		"holder": {c0.GetHolderName()}, "number": {c0.GetNumber()}, "expiry": {expiry}, "cvv": {issued[0].GetCvv()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("checkout = %d, want a redirect to the order", resp.StatusCode)
	}
	if order := getBody(t, pages, "https://"+webHTTP+resp.Header.Get("Location")); !strings.Contains(order, "Approved") {
		t.Fatalf("the order after the checkout is not approved")
	}
	// The statement page, proving the card:
	resp, err = pages.PostForm("https://"+webHTTP+"/statement", url.Values{"number": {c0.GetNumber()}, "expiry": {expiry}, "cvv": {issued[0].GetCvv()},
		"month": {time.Now().UTC().Format("2006-01")}})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "Code Store (Centro)") {
		t.Fatalf("the statement page = %d, want the gRPC payment on it", resp.StatusCode)
	}

	// Card numbers in every free-text field: masked before anything keeps them. A transaction id
	// holding the card's own number is refused.
	n0, n1, n2 := issued[0].GetCard().GetNumber(), issued[1].GetCard().GetNumber(), issued[2].GetCard().GetNumber()
	dashed := func(n string) string { return strings.ReplaceAll(card.Grouped(n), " ", "-") }
	issue(t, cards, "Titular "+card.Grouped(n1), 1_000)
	if r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "free-text-1", Card: details(issued[0]), AmountCents: 100,
		Store: "Loja " + dashed(n1), Description: "pago com " + card.Grouped(n0)}); err != nil || r.GetStatus() != codebankv1.PaymentStatus_PAYMENT_STATUS_APPROVED {
		t.Fatalf("a payment with card numbers in its store and description = %v, %v; want approved", r, err)
	}
	withNumber := details(issued[0])
	withNumber.HolderName = withNumber.GetHolderName() + " " + n0
	if r, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: "free-text-2", Card: withNumber, AmountCents: 100, Description: n2}); err != nil ||
		r.GetReason() != codebankv1.RejectReason_REJECT_REASON_DO_NOT_HONOR {
		t.Fatalf("a payment with a card number in its holder name = %v, %v; want DO_NOT_HONOR", r, err)
	}
	for _, txID := range []string{n0, "pedido-" + dashed(n0)} {
		if _, err := payments.Authorize(ctxT(t), &codebankv1.AuthorizeRequest{TransactionId: txID, Card: details(issued[0]), AmountCents: 100, Description: "x"}); status.Code(err) != codes.InvalidArgument {
			t.Fatalf("a transaction id holding the card's number = %v, want INVALID_ARGUMENT", err)
		}
	}
	body = fmt.Sprintf(`{"transaction_id":"rest-2","card":{"number":%q,"holder_name":%q,"expiry_month":%d,"expiry_year":%d,"cvv":%q},"amount_cents":200,"store":%q,"description":%q}`,
		d.GetNumber(), d.GetHolderName(), d.GetExpiryMonth(), d.GetExpiryYear(), d.GetCvv(), n2, "REST "+dashed(n1))
	req, _ = http.NewRequest(http.MethodPost, "https://"+inHTTP+"/v1/payments", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+banktest.MerchantKey)
	if resp, err = https.Do(req); err != nil {
		t.Fatal(err)
	}
	raw, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(raw), "PAYMENT_STATUS_APPROVED") {
		t.Fatalf("REST payment with card numbers in its store and description = %d %s", resp.StatusCode, raw)
	}
	if _, err := paymentpb.NewPaymentServiceClient(conn).Payment(ctxT(t), &paymentpb.PaymentRequest{CreditCard: &paymentpb.PaymentRequest_CreditCard{
		Name: c2.GetHolderName() + " " + card.Grouped(n2), Number: c2.GetNumber(), ExpirationMonth: c2.GetExpiryMonth(), ExpirationYear: c2.GetExpiryYear(),
		Cvv: int32(atoi(issued[2].GetCvv()))}, Amount: 3, Store: "Loja " + n0, Description: "legacy " + dashed(n2)}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("legacy payment with card numbers in every text = %v, want rejected for the holder", err)
	}
	product = getBody(t, pages, "https://"+webHTTP+"/products/stoneware-mug")
	if orderID = regexp.MustCompile(`name="order_id" value="([^"]+)"`).FindStringSubmatch(product); orderID == nil {
		t.Fatal("the product page has no order form")
	}
	resp, err = pages.PostForm("https://"+webHTTP+"/checkout", url.Values{"order_id": {orderID[1]}, "product": {"stoneware-mug"}, "quantity": {"1"},
		"holder": {card.Grouped(c0.GetNumber())}, "number": {c0.GetNumber()}, "expiry": {expiry}, "cvv": {issued[0].GetCvv()}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("checkout with the card number as the holder's name = %d, want a redirect to the order", resp.StatusCode)
	}

	// The books balance and the index holds every result, read as the bank reads them: over
	// SASL_SSL.
	secure := kafkaconf.Config{Brokers: []string{broker.SASLSSLAddr()}, ClientID: "test", TLS: &kafkaconf.TLS{CAFile: caFile},
		SASLMechanism: "SCRAM-SHA-512", SASLUser: user, SASLPassword: password}
	search, err := analytics.NewClient(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	topo := processors.Topology{Prefix: prefix, Partitions: 2, ReplyPartitions: 2}
	rep := balanced(t, audit.Config{Kafka: secure, Topo: topo, Search: search, Index: index, Consumers: store.Topology{Prefix: prefix}.Consumers()})
	if rep.Payments != 10 || rep.Documents != 10 {
		t.Errorf("audit: %d payments, %d documents; want the 10 made", rep.Payments, rep.Documents)
	}

	// No issued card number anywhere.
	var numbers []string
	for _, c := range issued {
		numbers = append(numbers, c.GetCard().GetNumber())
	}
	s := newScanner(numbers...)
	plain := kafkaconf.Config{Brokers: []string{broker.Addr()}, ClientID: "test"}
	var logs, metrics []string
	for _, r := range roles {
		logs = append(logs, r.logFile)
	}
	logs = append(logs, filepath.Join(worker.DataDir(), "worker.log"))
	for _, a := range []string{authOps, stmtOps, inOps, webOps} {
		metrics = append(metrics, "http://"+a+"/metrics")
	}
	places := map[string][]string{
		"topics":  s.topics(t, plain),
		"storage": s.files(t, storage["authorizer"], storage["statements"], storage["web"]),
		"index":   s.index(t, search, index),
		"logs":    s.files(t, logs...),
		"metrics": s.metrics(t, metrics...),
	}
	for place, found := range places {
		if len(found) > 0 {
			t.Errorf("an issued card number is in the %s: %v", place, found)
		}
	}

	// The same scans find a number planted in each place.
	planted := issued[0].GetCard().GetNumber()
	producer, err := sarama.NewSyncProducer(plain.Brokers, func() *sarama.Config { c := plain.Sarama(); c.Producer.Return.Successes = true; return c }())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: prefix + "planted", Value: sarama.StringEncoder(`{"note":"` + planted + `"}`)}); err != nil {
		t.Fatal(err)
	}
	producer.Close()
	if found := s.topics(t, plain); len(found) != 1 || found[0] != prefix+"planted" {
		t.Errorf("the topics scan found the planted number in %v, want %splanted", found, prefix)
	}
	copied := filepath.Join(t.TempDir(), "authorizer")
	if err := os.CopyFS(copied, os.DirFS(storage["authorizer"])); err != nil {
		t.Fatal(err)
	}
	plantInLevelDB(t, copied, planted)
	if found := s.files(t, copied); len(found) == 0 {
		t.Error("the storage scan did not find the number planted in a copy of the authorizer's storage")
	}
	if _, err := search.Index().Index(index).Id("planted").BodyJson(map[string]string{"note": planted}).Refresh("true").Do(ctx); err != nil {
		t.Fatal(err)
	}
	if found := s.index(t, search, index); len(found) != 1 || !strings.HasSuffix(found[0], "/planted") {
		t.Errorf("the index scan found the planted number in %v", found)
	}
	logCopy := filepath.Join(t.TempDir(), "ingress.log")
	b, _ := os.ReadFile(roles[2].logFile)
	os.WriteFile(logCopy, append(b, []byte("level=WARN msg=x card="+planted+"\n")...), 0o600)
	if found := s.files(t, logCopy); len(found) != 1 {
		t.Error("the logs scan did not find the number planted in a copy of the ingress's log")
	}
	reg := prometheus.NewRegistry()
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "planted", Help: "x"}, []string{"card"})
	g.WithLabelValues(card.Grouped(planted)).Set(1)
	reg.MustRegister(g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	if found := s.metrics(t, srv.URL); len(found) != 1 {
		t.Error("the metrics scan did not find a grouped number planted in a label")
	}
	if !t.Failed() {
		t.Logf("scanned every topic, %d storage directories, index %s, %d logs and %d metrics endpoints: no card number; each planted one found",
			len(storage), index, len(logs), len(metrics))
	}
}

// plantInLevelDB writes a value holding number into the first LevelDB database under dir.
func plantInLevelDB(t *testing.T, dir, number string) {
	t.Helper()
	var db string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == "CURRENT" && db == "" {
			db = filepath.Dir(path)
		}
		return err
	})
	if db == "" {
		t.Fatalf("no LevelDB database under %s", dir)
	}
	os.Remove(filepath.Join(db, "LOCK"))
	ldb, err := leveldb.OpenFile(db, &opt.Options{Compression: opt.NoCompression})
	if err != nil {
		t.Fatal(err)
	}
	if err := ldb.Put([]byte("planted"), []byte("a value with "+number), nil); err != nil {
		t.Fatal(err)
	}
	ldb.Close()
}

func getBody(t *testing.T, c *http.Client, u string) string {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %d", u, resp.StatusCode)
	}
	return string(b)
}

// callers sends each call with the test key of the role that may make it, over TLS.
func callers() credentials.PerRPCCredentials {
	c := banktest.Callers
	c.Insecure = false
	return c
}

// atoi reads a CVV such as "090".
func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
