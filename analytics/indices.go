package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/olivere/elastic/v7"
)

// MonthFormat is the layout of the month in a results index's name: codebank-payments-2026.12.
// The sink names the index by the result's own authorized_at (connect/opensearch-sink.json,
// index.date.format yyyy.MM), so that a result delivered again, whenever, lands in the index
// that holds it and overwrites its document.
const MonthFormat = "2006.01"

// Indices says how the results are kept: in one index a month, Alias-YYYY.MM, which the sink
// creates as the first result of the month arrives, all read through the alias Alias (the
// template adds each new index to it); whole old indices are deleted after RetentionMonths.
type Indices struct {
	// Alias is what readers search (the audit, codebank analytics, the dashboards) and the
	// prefix of the monthly indices; default DefaultIndex.
	Alias string
	// Replicas is each index's number of replicas: 1 on a cluster (a node lost loses no
	// result), 0 on one local node.
	Replicas int
	// RetentionMonths is how long an index is kept once its month is over; 0 keeps every
	// index.
	RetentionMonths int
}

func (ix Indices) alias() string {
	if ix.Alias == "" {
		return DefaultIndex
	}
	return ix.Alias
}

// IndexOf returns the index that holds a result authorized at at: ALIAS-YYYY.MM, in UTC.
func (ix Indices) IndexOf(at time.Time) string {
	return ix.alias() + "-" + at.UTC().Format(MonthFormat)
}

// Template returns the index template of the monthly indices, as PUT _index_template takes it.
func (ix Indices) Template() (map[string]any, error) {
	var t map[string]any
	if err := json.Unmarshal(templateJSON, &t); err != nil {
		return nil, err
	}
	t["index_patterns"] = []string{ix.alias() + "-*"}
	tmpl := t["template"].(map[string]any)
	tmpl["aliases"] = map[string]any{ix.alias(): map[string]any{}}
	tmpl["settings"].(map[string]any)["number_of_replicas"] = ix.Replicas
	return t, nil
}

// Lifecycle is what deletes old indices on a server: Elasticsearch's index lifecycle
// management, OpenSearch's index state management, or nothing (`codebank analytics prune`
// then does it).
type Lifecycle string

// The lifecycles of Ensure.
const (
	ILM  Lifecycle = "ILM"
	ISM  Lifecycle = "ISM"
	None Lifecycle = ""
)

// ErrAliasIsIndex is returned by Ensure when an index holds the name the alias needs: the
// results of a version that wrote one index (codebank-payments) before the monthly ones.
var ErrAliasIsIndex = errors.New("an index has the alias's name")

// Ensure installs the template (and, with a retention, the lifecycle policy that deletes old
// indices, where the server has ILM or ISM) and creates the current month's index, so that
// the alias exists before the first result arrives. It returns the lifecycle in charge of
// retention: None when the server has neither (or no retention is asked), so that old indices
// are left to Prune. Safe to run again.
func (ix Indices) Ensure(ctx context.Context, c *elastic.Client, now time.Time) (Lifecycle, error) {
	alias := ix.alias()
	if ix.Replicas < 0 || ix.RetentionMonths < 0 {
		return None, fmt.Errorf("indices %s: replicas %d and retention %d months must not be negative", alias, ix.Replicas, ix.RetentionMonths)
	}
	got, err := c.IndexGet(alias).Do(ctx)
	if err != nil && !elastic.IsNotFound(err) {
		return None, fmt.Errorf("read %s: %w", alias, err)
	}
	if _, ok := got[alias]; ok {
		return None, fmt.Errorf("%w: %s is an index, where the monthly indices %s-YYYY.MM need an alias: move its documents into them "+
			"(or delete it, and have Kafka Connect index the results topic again from its start) and run setup again (docs/operations.md, \"Search\")",
			ErrAliasIsIndex, alias, alias)
	}
	t, err := ix.Template()
	if err != nil {
		return None, err
	}
	lc := None
	if ix.RetentionMonths > 0 {
		if lc, err = lifecycleOf(ctx, c); err != nil {
			return None, err
		}
	}
	switch lc {
	case ILM:
		if err := ix.putILMPolicy(ctx, c); err != nil {
			return None, err
		}
		t["template"].(map[string]any)["settings"].(map[string]any)["index.lifecycle.name"] = alias
	case ISM:
		if err := ix.putISMPolicy(ctx, c); err != nil {
			return None, err
		}
	}
	if _, err := c.IndexPutIndexTemplate(alias).BodyJson(t).Do(ctx); err != nil {
		return None, fmt.Errorf("put index template %s: %w", alias, err)
	}
	if _, err := c.CreateIndex(ix.IndexOf(now)).Do(ctx); err != nil && !isAlreadyExists(err) {
		return None, fmt.Errorf("create index %s: %w", ix.IndexOf(now), err)
	}
	return lc, nil
}

func isAlreadyExists(err error) bool {
	var e *elastic.Error
	return errors.As(err, &e) && e.Details != nil && e.Details.Type == "resource_already_exists_exception"
}

// lifecycleOf asks the server which index lifecycle it has: ILM (Elasticsearch), ISM
// (OpenSearch's plugin), or none. A server that refuses to say (no privilege) is an error.
func lifecycleOf(ctx context.Context, c *elastic.Client) (Lifecycle, error) {
	for _, probe := range []struct {
		lc   Lifecycle
		path string
	}{{ILM, "/_ilm/status"}, {ISM, "/_plugins/_ism/policies"}} {
		_, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: probe.path})
		if err == nil {
			return probe.lc, nil
		}
		if !elastic.IsStatusCode(err, http.StatusBadRequest) && !elastic.IsNotFound(err) && !elastic.IsStatusCode(err, http.StatusMethodNotAllowed) {
			return None, fmt.Errorf("ask for %s (%s): %w", probe.lc, probe.path, err)
		}
	}
	return None, nil
}

// minAge is the age of an index at which its lifecycle policy deletes it: its month (31 days
// at most, from about its start, when the sink creates it) plus the retention, in days of 31
// so as never to delete early.
func (ix Indices) minAge() string {
	return strconv.Itoa((ix.RetentionMonths+1)*31) + "d"
}

// putILMPolicy creates or replaces the ILM policy named like the alias.
func (ix Indices) putILMPolicy(ctx context.Context, c *elastic.Client) error {
	body := map[string]any{"policy": map[string]any{
		"_meta": map[string]any{"description": "Code Bank's results: delete a monthly index " + strconv.Itoa(ix.RetentionMonths) + " months after its month"},
		"phases": map[string]any{
			"hot":    map[string]any{"actions": map[string]any{}},
			"delete": map[string]any{"min_age": ix.minAge(), "actions": map[string]any{"delete": map[string]any{}}},
		},
	}}
	if _, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodPut, Path: "/_ilm/policy/" + ix.alias(), Body: body}); err != nil {
		return fmt.Errorf("put ILM policy %s: %w", ix.alias(), err)
	}
	return nil
}

// putISMPolicy creates or updates the ISM policy named like the alias, which applies itself to
// every new monthly index (ism_template).
func (ix Indices) putISMPolicy(ctx context.Context, c *elastic.Client) error {
	body := map[string]any{"policy": map[string]any{
		"description":   "Code Bank's results: delete a monthly index " + strconv.Itoa(ix.RetentionMonths) + " months after its month",
		"default_state": "hot",
		"states": []any{
			map[string]any{"name": "hot", "actions": []any{}, "transitions": []any{
				map[string]any{"state_name": "delete", "conditions": map[string]any{"min_index_age": ix.minAge()}}}},
			map[string]any{"name": "delete", "actions": []any{map[string]any{"delete": map[string]any{}}}, "transitions": []any{}},
		},
		"ism_template": []any{map[string]any{"index_patterns": []string{ix.alias() + "-*"}, "priority": 100}},
	}}
	path := "/_plugins/_ism/policies/" + ix.alias()
	params := map[string][]string{}
	res, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodGet, Path: path})
	switch {
	case err == nil:
		var cur struct {
			SeqNo       int64 `json:"_seq_no"`
			PrimaryTerm int64 `json:"_primary_term"`
		}
		if err := json.Unmarshal(res.Body, &cur); err != nil {
			return fmt.Errorf("read ISM policy %s: %w", ix.alias(), err)
		}
		params["if_seq_no"] = []string{strconv.FormatInt(cur.SeqNo, 10)}
		params["if_primary_term"] = []string{strconv.FormatInt(cur.PrimaryTerm, 10)}
	case !elastic.IsNotFound(err):
		return fmt.Errorf("read ISM policy %s: %w", ix.alias(), err)
	}
	if _, err := c.PerformRequest(ctx, elastic.PerformRequestOptions{Method: http.MethodPut, Path: path, Params: params, Body: body}); err != nil {
		return fmt.Errorf("put ISM policy %s: %w", ix.alias(), err)
	}
	return nil
}

// MonthlyIndex is one index of the results and its month.
type MonthlyIndex struct {
	Name  string
	Month time.Time // its first instant, UTC
}

// List returns the monthly indices of the alias on the server, oldest first. Indices of
// other names (those of another alias that shares the prefix) are left out.
func (ix Indices) List(ctx context.Context, c *elastic.Client) ([]MonthlyIndex, error) {
	got, err := c.IndexGet(ix.alias() + "-*").Do(ctx)
	if err != nil {
		return nil, fmt.Errorf("list the indices %s-*: %w", ix.alias(), err)
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(ix.alias()) + `-(\d{4}\.\d{2})$`)
	var out []MonthlyIndex
	for name := range got {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		month, err := time.Parse(MonthFormat, m[1])
		if err != nil {
			continue
		}
		out = append(out, MonthlyIndex{Name: name, Month: month})
	}
	slices.SortFunc(out, func(a, b MonthlyIndex) int { return a.Month.Compare(b.Month) })
	return out, nil
}

// Expired returns the indices whose month ended more than RetentionMonths before now: with 12,
// on 2026-12-15 the indices up to 2025.11 (kept: 2025.12 to 2026.12). None when
// RetentionMonths is 0.
func (ix Indices) Expired(indices []MonthlyIndex, now time.Time) []MonthlyIndex {
	if ix.RetentionMonths <= 0 {
		return nil
	}
	var out []MonthlyIndex
	for _, i := range indices {
		if !i.Month.AddDate(0, 1+ix.RetentionMonths, 0).After(now) {
			out = append(out, i)
		}
	}
	return out
}

// Prune deletes the expired indices (Expired) and returns them; with dryRun it only returns
// them. It is what deletes old results on a server without ILM or ISM: run it once a month
// (`codebank analytics prune`, e.g. from a CronJob).
func (ix Indices) Prune(ctx context.Context, c *elastic.Client, now time.Time, dryRun bool) ([]MonthlyIndex, error) {
	all, err := ix.List(ctx, c)
	if err != nil {
		return nil, err
	}
	expired := ix.Expired(all, now)
	if dryRun || len(expired) == 0 {
		return expired, nil
	}
	names := make([]string, len(expired))
	for i, e := range expired {
		names[i] = e.Name
	}
	if _, err := c.DeleteIndex(names...).Do(ctx); err != nil {
		return nil, fmt.Errorf("delete %v: %w", names, err)
	}
	return expired, nil
}
