package analytics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/codebank/codebank/analytics"
	"github.com/codebank/codebank/codecs"
	"github.com/codebank/codebank/internal/testenv/banktest"
	"github.com/codebank/codebank/internal/testenv/kafkatest"
	"github.com/codebank/codebank/internal/testenv/tier"
	"github.com/codebank/codebank/internal/testenv/wait"
)

func month(s string) time.Time {
	m, err := time.Parse(analytics.MonthFormat, s)
	if err != nil {
		panic(err)
	}
	return m
}

// TestExpired: an index is deleted once its whole month is more than the retention behind.
func TestExpired(t *testing.T) {
	var all []analytics.MonthlyIndex
	for _, m := range []string{"2025.10", "2025.11", "2025.12", "2026.06", "2026.12"} {
		all = append(all, analytics.MonthlyIndex{Name: "x-" + m, Month: month(m)})
	}
	names := func(ix []analytics.MonthlyIndex) []string {
		var out []string
		for _, i := range ix {
			out = append(out, i.Name)
		}
		return out
	}
	for _, tc := range []struct {
		months int
		now    string
		want   []string
	}{
		{12, "2026-12-15T00:00:00Z", []string{"x-2025.10", "x-2025.11"}},
		{12, "2026-11-30T23:59:59Z", []string{"x-2025.10"}},
		{12, "2026-12-01T00:00:00Z", []string{"x-2025.10", "x-2025.11"}},
		{1, "2027-01-01T00:00:00Z", []string{"x-2025.10", "x-2025.11", "x-2025.12", "x-2026.06"}},
		{0, "2030-01-01T00:00:00Z", nil},
	} {
		now, _ := time.Parse(time.RFC3339, tc.now)
		if got := names(analytics.Indices{RetentionMonths: tc.months}.Expired(all, now)); !slices.Equal(got, tc.want) {
			t.Errorf("%d months on %s: expired %v, want %v", tc.months, tc.now, got, tc.want)
		}
	}
}

// TestEnsureIndices: setup makes the current month's index, with the template's mapping and
// replicas, behind the alias; on this server (no ISM plugin) it says that nothing deletes old
// indices; it refuses an index that holds the alias's name, and running it again is harmless.
func TestEnsureIndices(t *testing.T) {
	tier.Servers(t, "OpenSearch")
	ctx := context.Background()
	c, err := analytics.NewClient(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	ix := analytics.Indices{Alias: analytics.DefaultIndex + "-" + strings.ToLower(kafkatest.Name(t)), Replicas: 0, RetentionMonths: 12}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	for range 2 {
		lc, err := ix.Ensure(ctx, c, now)
		if err != nil {
			t.Fatal(err)
		}
		if lc != analytics.None {
			t.Errorf("lifecycle %q on a server without ILM or ISM", lc)
		}
	}
	got, err := c.IndexGet(ix.Alias).Do(ctx)
	if err != nil {
		t.Fatalf("the alias %s: %v", ix.Alias, err)
	}
	idx, ok := got[ix.Alias+"-2026.12"]
	if len(got) != 1 || !ok {
		t.Fatalf("the alias %s reads %v, want only %s-2026.12", ix.Alias, got, ix.Alias)
	}
	if r := idx.Settings["index"].(map[string]any)["number_of_replicas"]; r != "0" {
		t.Errorf("replicas %v, want 0", r)
	}
	if props := idx.Mappings["properties"].(map[string]any); props["authorized_at"] == nil || props["amount_cents"] == nil {
		t.Errorf("mapping %v lacks the template's fields", idx.Mappings)
	}

	// An index of the alias's name (the results of a version before the monthly indices).
	old := analytics.Indices{Alias: ix.Alias + "-old"}
	if _, err := c.CreateIndex(old.Alias).Do(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Ensure(ctx, c, now); !errors.Is(err, analytics.ErrAliasIsIndex) || !strings.Contains(err.Error(), old.Alias) {
		t.Errorf("setup over an index of the alias's name: %v, want ErrAliasIsIndex naming it", err)
	}
}

// TestPrune: `codebank analytics prune` deletes whole indices past the retention, and no other,
// on the real server; the alias then reads the ones left.
func TestPrune(t *testing.T) {
	tier.Servers(t, "OpenSearch")
	ctx := context.Background()
	c, err := analytics.NewClient(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	ix := analytics.Indices{Alias: analytics.DefaultIndex + "-" + strings.ToLower(kafkatest.Name(t)), RetentionMonths: 2}
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	if _, err := ix.Ensure(ctx, c, now); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"2026.08", "2026.09", "2026.10", "2026.11"} {
		if _, err := c.Index().Index(ix.Alias + "-" + m).Id(m).BodyJson(map[string]string{"authorized_at": strings.ReplaceAll(m, ".", "-") + "-15T00:00:00Z"}).Refresh("true").Do(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Another alias sharing the prefix is none of prune's business.
	other := ix.Alias + "-other-2020.01"
	if _, err := c.CreateIndex(other).Do(ctx); err != nil {
		t.Fatal(err)
	}
	dry, err := ix.Prune(ctx, c, now, true)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := ix.Prune(ctx, c, now, false)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ix.Alias + "-2026.08", ix.Alias + "-2026.09"}
	if fmt.Sprint(dry) != fmt.Sprint(gone) || len(gone) != 2 || gone[0].Name != want[0] || gone[1].Name != want[1] {
		t.Errorf("pruned %v (dry run %v), want %v", gone, dry, want)
	}
	left, err := ix.List(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 3 || left[0].Name != ix.Alias+"-2026.10" {
		t.Errorf("left %v, want 2026.10 to 2026.12", left)
	}
	if n, err := c.Count(ix.Alias).Do(ctx); err != nil || n != 2 {
		t.Errorf("the alias counts %d documents (%v), want the 2 of 2026.10 and 2026.11", n, err)
	}
	if ok, err := c.IndexExists(other).Do(ctx); err != nil || !ok {
		t.Errorf("%s was deleted (%v)", other, err)
	}
}

// TestRedeliveryAcrossMonthBoundary: a result decided in the last microsecond of a month, and
// one in the first of the next, are indexed into their months' indices, whenever they are
// delivered; delivered again (the same record produced twice, and Connect reading the whole
// topic again), each overwrites its document in the same index: the alias counts two.
func TestRedeliveryAcrossMonthBoundary(t *testing.T) {
	tier.Servers(t, "a Kafka broker, OpenSearch and Kafka Connect")
	name := kafkatest.Name(t)
	d := banktest.NewDeployment(t, servers.Broker, name, 3, 1)
	ix := analytics.Indices{Alias: analytics.DefaultIndex + "-" + strings.ToLower(name)}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := analytics.Setup(ctx, d.Topo, analytics.Sink{SearchURL: servers.SearchURL, ConnectURL: servers.ConnectURL, Index: ix.Alias}); err != nil {
		t.Fatal(err)
	}
	c, err := analytics.NewClient(servers.SearchURL)
	if err != nil {
		t.Fatal(err)
	}
	producer, err := sarama.NewSyncProducer([]string{servers.Broker}, d.Kafka.Sarama())
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	results := []codecs.Result{
		{TransactionID: "last-of-january", AuthorizedAt: "2025-01-31T23:59:59.999999Z"},
		{TransactionID: "first-of-february", AuthorizedAt: "2025-02-01T00:00:00.000000Z"},
	}
	produce := func() {
		for _, r := range results {
			r.CardToken, r.Merchant, r.Status, r.AmountCents, r.Amount, r.Currency = "tok", "code-store", codecs.StatusApproved, 100, "1.00", "BRL"
			r.PaymentKey, r.RequestedAt = codecs.PaymentKey(r.CardToken, r.Merchant, r.TransactionID), r.AuthorizedAt
			v, err := codecs.ResultCodec{}.Encode(&r)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: d.Topo.Results().Name, Key: sarama.StringEncoder(r.CardToken), Value: sarama.ByteEncoder(v)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// where returns the index of each document by transaction id, and their versions.
	where := func() (map[string]string, map[string]int64, error) {
		c.Refresh(ix.Alias).Do(ctx)
		res, err := c.Search(ix.Alias).Size(10).Version(true).Do(ctx)
		if err != nil {
			return nil, nil, err
		}
		at, versions := map[string]string{}, map[string]int64{}
		for _, h := range res.Hits.Hits {
			id := strings.TrimPrefix(h.Id, "tok:code-store:")
			at[id] = h.Index
			if h.Version != nil {
				versions[id] += *h.Version
			}
		}
		return at, versions, nil
	}
	want := map[string]string{"last-of-january": ix.Alias + "-2025.01", "first-of-february": ix.Alias + "-2025.02"}
	check := func(what string, minVersion int64) {
		t.Helper()
		wait.For(t, time.Minute, what, func() error {
			at, versions, err := where()
			if err != nil {
				return err
			}
			if fmt.Sprint(at) != fmt.Sprint(want) {
				return fmt.Errorf("documents in %v, want %v", at, want)
			}
			for id, v := range versions {
				if v < minVersion {
					return fmt.Errorf("%s at version %d", id, v)
				}
			}
			return nil
		})
	}
	produce()
	check("each result in its month's index", 1)
	produce() // the same results again: a redelivery by the authorizer
	check("each result written again in the same index", 2)

	// Connect forgets its offsets and reads the topic again from its start.
	connector := analytics.ConnectorName(d.Topo)
	connectREST(t, "PUT", "/connectors/"+connector+"/stop")
	waitState(t, connector, "STOPPED")
	connectREST(t, "DELETE", "/connectors/"+connector+"/offsets")
	connectREST(t, "PUT", "/connectors/"+connector+"/resume")
	check("each result written again, twice more, in the same index", 4)
	if n, err := c.Count(ix.Alias).Do(ctx); err != nil || n != 2 {
		t.Errorf("the alias counts %d documents (%v), want 2", n, err)
	}
	for _, index := range []string{ix.Alias + "-2025.01", ix.Alias + "-2025.02"} {
		if n, err := c.Count(index).Do(ctx); err != nil || n != 1 {
			t.Errorf("%s holds %d documents (%v), want 1", index, n, err)
		}
	}
}
