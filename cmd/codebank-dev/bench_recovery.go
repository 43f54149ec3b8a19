package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"

	"github.com/codebank/codebank/internal/card"
	"github.com/codebank/codebank/internal/devenv/loadgen"
	"github.com/codebank/codebank/internal/devenv/localkafka"
	"github.com/codebank/codebank/internal/kafkaconf"
	"github.com/codebank/codebank/processors"
	eventsv1 "github.com/codebank/codebank/proto/codebank/events/v1"
)

// benchRecovery fills the authorizer's table with n accounts, then measures how long a fresh
// authorizer takes to recover it, and a restarted one (local storage intact) to be ready, with
// the memory each uses.
func benchRecovery(ctx context.Context, stdout io.Writer, self string, n, partitions int, gomaxprocs string) error {
	tb, err := startTableBench(ctx, stdout, "codebank-recovery-", self, n, partitions)
	if err != nil {
		return err
	}
	defer tb.stop()
	dir, broker, self := tb.dir, tb.broker, tb.self

	storage := filepath.Join(dir, "authorizer")
	env := tb.creds.Env
	if gomaxprocs != "" {
		env = append(env, "GOMAXPROCS="+gomaxprocs)
	}
	run := func(what string) error {
		ops := freeAddr()
		begin := time.Now()
		c, err := startChild(self, filepath.Join(dir, what+".log"), env, "authorizer", "--brokers", broker.Addr(),
			"--partitions", strconv.Itoa(partitions), "--storage-dir", storage, "--ops-addr", ops, "--log-level", "warn", "--pprof")
		if err != nil {
			return err
		}
		defer c.stop()
		if dir := os.Getenv("CODEBANK_BENCH_PROFILE"); dir != "" {
			go func() {
				time.Sleep(time.Second)
				fetchProfile(ops, filepath.Join(dir, "recovery.pprof"), 3*time.Second)
			}()
		}
		ps := &loadgen.ProcStat{Name: what, PID: c.cmd.Process.Pid}
		ps.Start()
		stopSampling := make(chan struct{})
		go func() {
			for {
				select {
				case <-stopSampling:
					return
				case <-time.After(100 * time.Millisecond):
					ps.Sample()
				}
			}
		}()
		if err := c.waitReady(ctx, "http://"+ops+"/readyz", 10*time.Minute); err != nil {
			return err
		}
		took := time.Since(begin)
		time.Sleep(2 * time.Second) // settle, then read the steady memory
		close(stopSampling)
		ps.Stop()
		rss, _ := loadgen.RSS(c.cmd.Process.Pid)
		fmt.Fprintf(stdout, "| %s | %.2f s | %.0f records/s | %.0f MB | %.0f MB |\n", what, took.Seconds(), float64(n)/took.Seconds(),
			float64(ps.MaxRSS())/(1<<20), float64(rss)/(1<<20))
		return nil
	}
	fmt.Fprintf(stdout, "\n| authorizer start (%d accounts, %d partitions) | ready after | rate | max RSS | RSS when ready |\n|---|---:|---:|---:|---:|\n", n, partitions)
	if err := run("fresh storage (recovery from the changelog)"); err != nil {
		return err
	}
	return run("restart, local storage intact")
}

// warmCoordinator waits until the broker can coordinate group, creating the group-offsets topic
// if it does not exist yet.
func warmCoordinator(kc kafkaconf.Config, group string) error {
	sc := kc.Sarama()
	sc.Metadata.Retry.Max = 100
	client, err := sarama.NewClient(kc.Brokers, sc)
	if err != nil {
		return err
	}
	defer client.Close()
	_, err = client.Coordinator(group)
	return err
}

// tableBench is a broker of its own, set up with the bank's topics and an authorizer table of
// n accounts, for the benchmarks of table recovery and scaling.
type tableBench struct {
	dir    string
	broker *localkafka.Broker
	kc     kafkaconf.Config
	topo   processors.Topology
	self   string // the codebank binary
	creds  devCredentials
}

// startTableBench starts a broker in a new temporary directory named after prefix, builds
// codebank unless self names one, sets the bank up with partitions, fills its table, warms the
// authorizer group's coordinator and makes the roles' credentials.
func startTableBench(ctx context.Context, stdout io.Writer, prefix, self string, n, partitions int) (_ *tableBench, err error) {
	tb := &tableBench{topo: processors.Topology{Partitions: partitions}, self: self}
	if tb.dir, err = os.MkdirTemp("", prefix); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			tb.stop()
		}
	}()
	fmt.Fprintln(stdout, "Starting Kafka...")
	if tb.broker, err = localkafka.Start(ctx, localkafka.Options{DataDir: filepath.Join(tb.dir, "kafka"), HeapMB: 1024}); err != nil {
		return nil, err
	}
	tb.kc = kafkaconf.Config{Brokers: []string{tb.broker.Addr()}}
	if tb.self == "" {
		if tb.self, err = buildCodebank(ctx, tb.dir); err != nil {
			return nil, err
		}
	}
	if out, err := exec.CommandContext(ctx, tb.self, "setup", "--brokers", tb.broker.Addr(), "--partitions", strconv.Itoa(partitions)).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("codebank setup: %v: %s", err, out)
	}
	if err := fillTable(stdout, tb.kc, tb.topo, n); err != nil {
		return nil, err
	}
	// A fresh broker creates its group-offsets topic (50 partitions) when a group first looks
	// up its coordinator, which takes seconds. Every running cluster has that topic already,
	// so it is created here, before a benchmark's clock starts.
	if err := warmCoordinator(tb.kc, string(tb.topo.AuthorizerGroup())); err != nil {
		return nil, err
	}
	if tb.creds, err = loadDevCredentials(filepath.Join(tb.dir, "credentials")); err != nil {
		return nil, err
	}
	return tb, nil
}

func (tb *tableBench) stop() {
	if tb.broker != nil {
		tb.broker.Stop()
	}
	os.RemoveAll(tb.dir)
}

// fillTable writes n accounts, each with a few remembered outcomes, to the authorizer's table of
// topo, partitioned like goka.
func fillTable(stdout io.Writer, kc kafkaconf.Config, topo processors.Topology, n int) error {
	fmt.Fprintf(stdout, "Writing %d accounts to %s...\n", n, topo.AuthorizerTable().Name)
	start := time.Now()
	sc := kc.Sarama()
	sc.Producer.Partitioner = sarama.NewCustomHashPartitioner(goka.DefaultHasher())
	sc.Producer.Flush.Messages, sc.Producer.Flush.Frequency = 1000, 5*time.Millisecond
	sc.Producer.Return.Successes = false
	producer, err := sarama.NewAsyncProducer(kc.Brokers, sc)
	if err != nil {
		return err
	}
	go func() {
		for err := range producer.Errors() {
			fmt.Fprintln(stdout, "produce:", err)
		}
	}()
	now := time.Now()
	keys, err := card.NewKeys([]byte("the recovery bench's tokenization key, made up"))
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		number, _ := card.NewNumber(card.DefaultBIN)
		acct := &eventsv1.Account{HolderName: "Holder " + strconv.Itoa(i), LimitCents: 100_000, UsedCents: int64(i % 90_000), Currency: "BRL",
			ExpiryMonth: 11, ExpiryYear: 2031, Status: eventsv1.CardStatus_CARD_STATUS_ACTIVE, IssuedAtUnixUs: now.UnixMicro(),
			Outcomes: make([]byte, 3*47), MaskedNumber: card.Mask(number), CardKeyId: "dev1"}
		v, err := topo.AuthorizerTable().Codec.Encode(acct)
		if err != nil {
			return err
		}
		producer.Input() <- &sarama.ProducerMessage{Topic: topo.AuthorizerTable().Name, Key: sarama.StringEncoder(keys.Token(number)), Value: sarama.ByteEncoder(v)}
	}
	if err := producer.Close(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Wrote %d accounts in %v\n", n, time.Since(start).Round(time.Millisecond))
	return nil
}
