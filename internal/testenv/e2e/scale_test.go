package e2e_test

import (
	"context"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/codebank/codebank/internal/audit"
	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/processors"
	codebankv1 "github.com/codebank/codebank/proto/codebank/v1"
	"github.com/codebank/codebank/web/store"
)

// TestScaleUnderLoad runs the bank as processes under a steady load of careful clients, through
// two ingress replicas that share the one replies partition, and scales the authorizer (with
// hot standby) from 1 to 3 instances and back to 1, then adds one and kills the first with
// SIGKILL, for good; then the statements from 1 to 2 instances and back to the new one. Every call gets its final answer, each its own; the books balance; the
// replicas dead-letter none of each other's replies; and the longest wait of each phase is the
// pause its rebalance cost; and every approval is on its card's statement.
func TestScaleUnderLoad(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	broker, err := localkafka.Start(ctx, localkafka.Options{DataDir: t.TempDir(), Port: banktest.FreePort(), ControllerPort: banktest.FreePort()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { broker.Stop() })
	prefix := kafkatest.Name(t) + "-"
	common := []string{"--brokers", broker.Addr(), "--topic-prefix", prefix, "--partitions", "6", "--reply-partitions", "1"}
	if out, err := exec.Command(binary, append([]string{"setup"}, common...)...).CombinedOutput(); err != nil {
		t.Fatalf("codebank setup: %v\n%s", err, out)
	}
	authorizer := func(name string) *role {
		ops := addr()
		return startRole(t, name, "http://"+ops+"/readyz",
			append([]string{"authorizer", "--storage-dir", t.TempDir(), "--ops-addr", ops, "--hot-standby"}, common...)...)
	}
	a1 := authorizer("authorizer-1")
	statements := func(name string) (*role, string) {
		httpAddr, grpcAddr, ops := addr(), addr(), addr()
		return startRole(t, name, "http://"+ops+"/readyz",
			append([]string{"statements", "--storage-dir", t.TempDir(), "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--ops-addr", ops, "--reply-partition", "0"}, common...)...), grpcAddr
	}
	stmts, _ := statements("statements-1")
	var conns []*grpc.ClientConn
	var ingresses []*role
	for _, name := range []string{"ingress-1", "ingress-2"} {
		grpcAddr, httpAddr, ops := addr(), addr(), addr()
		ingresses = append(ingresses, startRole(t, name, "http://"+ops+"/readyz",
			append([]string{"ingress", "--grpc-addr", grpcAddr, "--http-addr", httpAddr, "--ops-addr", ops, "--reply-partition", "0", "--request-timeout", "3s"}, common...)...))
		conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conns = append(conns, conn)
	}
	for _, r := range append([]*role{a1, stmts}, ingresses...) {
		r.waitReady(t, time.Minute)
	}
	cardsClient := codebankv1.NewCardServiceClient(conns[0])
	var cards []*codebankv1.IssueCardResponse
	for _, h := range []string{"Maria Silva", "Joao Souza", "Ana Costa", "Rita Lee", "Gal Costa", "Tim Maia"} {
		cards = append(cards, issue(t, cardsClient, h, 1_000_000_000))
	}

	p := newPayer("1 authorizer")
	stopLoad := p.start(ctx, t, 6, 0, conns, cards)
	p.decide(t, 300)

	p.setPhase("1 -> 3 authorizers")
	a2, a3 := authorizer("authorizer-2"), authorizer("authorizer-3")
	start := time.Now()
	a2.waitReady(t, time.Minute)
	a3.waitReady(t, time.Minute)
	t.Logf("two authorizers added, ready (each with every partition's table) after %v", time.Since(start).Round(time.Millisecond))
	p.decide(t, 300)

	p.setPhase("3 -> 1 authorizers")
	a2.stop(t)
	a3.stop(t)
	p.decide(t, 300)

	p.setPhase("kill -9 with a standby")
	a4 := authorizer("authorizer-4")
	a4.waitReady(t, time.Minute)
	p.decide(t, 100)
	a1.mu.Lock()
	a1.stopped = true // for good: its partitions go to the standby
	cmd, exited := a1.cmd, a1.exited
	a1.mu.Unlock()
	cmd.Process.Signal(syscall.SIGKILL)
	<-exited
	p.decide(t, 300)

	// The statements move too: a second instance joins, then the first goes.
	p.setPhase("statements 1 -> 2 -> 1")
	stmts2, stmtGRPC := statements("statements-2")
	stmts2.waitReady(t, time.Minute)
	p.decide(t, 200)
	stmts.stop(t)
	p.decide(t, 200)
	stopLoad()
	for _, phase := range []string{"1 authorizer", "1 -> 3 authorizers", "3 -> 1 authorizers", "kill -9 with a standby", "statements 1 -> 2 -> 1"} {
		t.Logf("longest wait for a final answer, %s: %v", phase, p.longest[phase].Round(time.Millisecond))
	}

	kc := kafkaconf.Config{Brokers: []string{broker.Addr()}, ClientID: "test"}
	topo := processors.Topology{Prefix: prefix, Partitions: 6, ReplyPartitions: 1}
	rep := balanced(t, audit.Config{Kafka: kc, Topo: topo, Consumers: store.Topology{Prefix: prefix}.Consumers()})
	t.Logf("audit: %d payments, %d approved, %d replays; %d calls, %d retries", rep.Payments, rep.Approved, rep.Replays, p.calls, p.retries)
	// Every approval is on its statement, as the instance left serves it.
	stmtConn, err := grpc.NewClient(stmtGRPC, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithPerRPCCredentials(banktest.Callers))
	if err != nil {
		t.Fatal(err)
	}
	defer stmtConn.Close()
	stmtClient := codebankv1.NewStatementServiceClient(stmtConn)
	for _, c := range cards {
		n := c.GetCard().GetNumber()
		if got := used(t, cardsClient, c); got != p.cents[n] {
			t.Errorf("card %s: used %d, the clients were told of approvals for %d", card.Mask(n), got, p.cents[n])
		}
		onStatement := statementLines(t, stmtClient, c.GetCard().GetCardId())
		for _, tx := range p.approved[n] {
			if !onStatement[tx] {
				t.Errorf("card %s: approved payment %s is not on the statement", card.Mask(n), tx)
			}
		}
	}
	// Two replicas on one replies partition: each takes its own replies and leaves the other's.
	client, err := sarama.NewClient(kc.Brokers, kc.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	dlq := topo.DeadLetters(processors.ConsumerIngress, topo.Replies()).Name
	if msgs := readAll(t, client, dlq); len(msgs) > 0 {
		var why []string
		for _, m := range msgs {
			for _, h := range m.Headers {
				if strings.HasSuffix(string(h.Key), "error") {
					why = append(why, string(h.Value))
				}
			}
		}
		t.Errorf("%d replies dead-lettered by the ingress replicas: %v", len(msgs), why)
	}
}
