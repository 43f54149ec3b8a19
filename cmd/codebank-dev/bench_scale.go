package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/codebank/codebank/internal/devenv/loadgen"
	"github.com/codebank/codebank/internal/generations"
)

// benchScale fills the authorizer's table with n accounts and measures, on a running
// authorizer, the pause of `codebank partitions grow` to twice the partitions (from the
// authorizer's readiness falling to its return); then, with two authorizers, the memory each
// uses and the time the survivor takes to own and decide every partition after a kill -9 of
// the other, without and with hot standby.
func benchScale(ctx context.Context, stdout io.Writer, self string, n, partitions int) error {
	tb, err := startTableBench(ctx, stdout, "codebank-scale-", self, n, partitions)
	if err != nil {
		return err
	}
	defer tb.stop()
	dir, broker, kc, topo, self, creds := tb.dir, tb.broker, tb.kc, tb.topo, tb.self, tb.creds
	authorizer := func(name string, standby bool) (*child, string, error) {
		ops := freeAddr()
		c, err := startChild(self, filepath.Join(dir, name+".log"), creds.Env, "authorizer", "--brokers", broker.Addr(),
			"--partitions", strconv.Itoa(partitions), "--storage-dir", filepath.Join(dir, name), "--ops-addr", ops, "--log-level", "warn",
			"--hot-standby="+strconv.FormatBool(standby))
		if err != nil {
			return nil, "", err
		}
		return c, ops, c.waitReady(ctx, "http://"+ops+"/readyz", 10*time.Minute)
	}

	// The grow: readiness polled every 10ms while it runs.
	a, ops, err := authorizer("grow", false)
	if err != nil {
		return err
	}
	state, err := generations.Read(ctx, kc, topo)
	if err != nil {
		return err
	}
	plan, err := generations.Grow(topo, state, 2*partitions)
	if err != nil {
		return err
	}
	down := make(chan time.Duration, 1)
	go func() {
		var fell time.Time
		for {
			ready := get("http://"+ops+"/readyz") == nil
			switch {
			case !ready && fell.IsZero():
				fell = time.Now()
			case ready && !fell.IsZero():
				down <- time.Since(fell)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	rep, err := generations.Move(ctx, kc, topo, plan, nil, io.Discard)
	if err != nil {
		return err
	}
	var paused time.Duration
	select {
	case paused = <-down:
	case <-time.After(10 * time.Minute):
		return fmt.Errorf("the authorizer was not ready again 10 minutes after the grow")
	}
	a.stop()
	fmt.Fprintf(stdout, "\n| grow %d -> %d partitions, %d accounts | stopped | copied (%d records) | authorizer not deciding |\n|---|---:|---:|---:|\n",
		partitions, 2*partitions, n, rep.Records)
	fmt.Fprintf(stdout, "| codebank partitions grow | %.2f s | %.2f s | %.2f s |\n", rep.Stopped.Seconds(), rep.Copied.Seconds(), paused.Seconds())

	// Failover, on the new generation.
	live := plan.To.Live(topo)
	group := string(live.AuthorizerGroup())
	fmt.Fprintf(stdout, "\n| two authorizers, %d accounts, %d partitions | RSS each when ready | survivor owns and decides every partition after a kill -9 |\n|---|---:|---:|\n",
		n, live.AuthorizerPartitions)
	for _, standby := range []bool{false, true} {
		name := map[bool]string{false: "without hot standby", true: "with hot standby"}[standby]
		first, _, err := authorizer(name+"-1", standby)
		if err != nil {
			return err
		}
		second, ops2, err := authorizer(name+"-2", standby)
		if err != nil {
			return err
		}
		// Until both share the partitions.
		for deadline := time.Now().Add(2 * time.Minute); scrapeGauge(ops2, "codebank_group_partitions_assigned", group) >= float64(live.AuthorizerPartitions); {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: the second authorizer never got a share of the partitions", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second)
		rss1, _ := loadgen.RSS(first.cmd.Process.Pid)
		rss2, _ := loadgen.RSS(second.cmd.Process.Pid)
		killed := time.Now()
		first.cmd.Process.Signal(syscall.SIGKILL)
		<-first.exited
		for deadline := time.Now().Add(10 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if scrapeGauge(ops2, "codebank_group_partitions_assigned", group) == float64(live.AuthorizerPartitions) &&
				scrapeGauge(ops2, "codebank_table_recovered", group) == 1 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: the survivor did not take every partition in 10 minutes", name)
			}
		}
		took := time.Since(killed)
		second.stop()
		fmt.Fprintf(stdout, "| %s | %.0f MB, %.0f MB | %.2f s |\n", name, float64(rss1)/(1<<20), float64(rss2)/(1<<20), took.Seconds())
	}
	return nil
}

// get returns nil when url answers 200.
func get(url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// scrapeGauge returns the value of the gauge name of group on the /metrics of ops (-1 when it
// cannot be read).
func scrapeGauge(ops, name, group string) float64 {
	resp, err := http.Get("http://" + ops + "/metrics")
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	prefix := name + `{group="` + group + `"}`
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
