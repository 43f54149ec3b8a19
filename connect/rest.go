package connect

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Connector and task states reported by the Connect REST API.
const (
	StateRunning    = "RUNNING"
	StateFailed     = "FAILED"
	StatePaused     = "PAUSED"
	StateUnassigned = "UNASSIGNED"
)

// defaultPutTimeout bounds PutConnector when ctx has no deadline.
const defaultPutTimeout = 2 * time.Minute

// ErrNotFound is returned by ConnectorStatus for an unknown connector.
var ErrNotFound = errors.New("connect: no such connector")

// State is the state of a connector or of one of its tasks.
type State struct {
	State    string `json:"state"`
	WorkerID string `json:"worker_id"`
	// Trace is the stack trace of a FAILED connector or task.
	Trace string `json:"trace,omitempty"`
}

// TaskState is the state of one task.
type TaskState struct {
	ID int `json:"id"`
	State
}

// Status is the answer of GET /connectors/NAME/status.
type Status struct {
	Name      string      `json:"name"`
	Connector State       `json:"connector"`
	Tasks     []TaskState `json:"tasks"`
	Type      string      `json:"type"`
}

// Running reports whether the connector and all its tasks (at least one)
// are RUNNING.
func (s Status) Running() bool {
	if s.Connector.State != StateRunning || len(s.Tasks) == 0 {
		return false
	}
	for _, t := range s.Tasks {
		if t.State.State != StateRunning {
			return false
		}
	}
	return true
}

// failure describes a FAILED connector or task, "" if none failed.
func (s Status) failure() string {
	if s.Connector.State == StateFailed {
		return "connector FAILED: " + firstLines(s.Connector.Trace, 8)
	}
	for _, t := range s.Tasks {
		if t.State.State == StateFailed {
			return fmt.Sprintf("task %d FAILED: %s", t.ID, firstLines(t.Trace, 8))
		}
	}
	return ""
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

// PutConnector creates the connector name with config on the Connect
// cluster whose REST API is at restURL, or updates its configuration (PUT
// /connectors/NAME/config) unless it already runs with that configuration,
// then waits until the worker reports that
// configuration and the connector and all its tasks are RUNNING. It fails
// at once if the configuration is invalid or the connector or a task FAILED,
// with the worker's reason. Requests answered 409 (a rebalance is under way)
// or 5xx are retried. Without a deadline in ctx it gives up after two
// minutes.
func PutConnector(ctx context.Context, restURL, name string, config map[string]string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPutTimeout)
		defer cancel()
	}
	body, err := json.Marshal(config)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	path := "/connectors/" + url.PathEscape(name)
	// A running connector that already has this configuration is left alone: a PUT would
	// restart it (its status going UNASSIGNED for a moment) for nothing.
	if st, err := ConnectorStatus(ctx, restURL, name); err == nil && st.Running() {
		if current, err := connectorConfig(ctx, restURL, name); err == nil && configIncludes(current, config) {
			return nil
		}
	}
	for {
		status, answer, err := do(ctx, http.MethodPut, restURL+path+"/config", body)
		if err == nil && (status == http.StatusOK || status == http.StatusCreated) {
			break
		}
		if err == nil && status != http.StatusConflict && status < 500 {
			return fmt.Errorf("connect: PUT %s%s/config: %d %s", restURL, path, status, restError(answer))
		}
		if err == nil {
			err = fmt.Errorf("%d %s", status, restError(answer))
		}
		if werr := sleep(ctx, 250*time.Millisecond); werr != nil {
			return fmt.Errorf("connect: PUT %s%s/config: %w (last answer: %v)", restURL, path, werr, err)
		}
	}

	var last string
	for {
		st, err := ConnectorStatus(ctx, restURL, name)
		switch {
		case err == nil:
			if f := st.failure(); f != "" {
				return fmt.Errorf("connect: connector %s: %s", name, f)
			}
			if st.Running() {
				current, err := connectorConfig(ctx, restURL, name)
				if err == nil && configIncludes(current, config) {
					return nil
				}
				last = fmt.Sprintf("running, configuration not applied yet (%v)", err)
			} else {
				last = fmt.Sprintf("connector %s, %d tasks", st.Connector.State, len(st.Tasks))
			}
		case errors.Is(err, ErrNotFound):
			last = "not created yet"
		default:
			last = err.Error()
		}
		if werr := sleep(ctx, 200*time.Millisecond); werr != nil {
			return fmt.Errorf("connect: connector %s not running: %w (last status: %s)", name, werr, last)
		}
	}
}

// configIncludes reports whether current has every entry of want.
func configIncludes(current, want map[string]string) bool {
	for k, v := range want {
		if cv, ok := current[k]; !ok || cv != v {
			return false
		}
	}
	return true
}

func connectorConfig(ctx context.Context, restURL, name string) (map[string]string, error) {
	status, body, err := do(ctx, http.MethodGet, restURL+"/connectors/"+url.PathEscape(name)+"/config", nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("GET config: %d %s", status, restError(body))
	}
	var config map[string]string
	if err := json.Unmarshal(body, &config); err != nil {
		return nil, err
	}
	return maps.Clone(config), nil
}

// ConnectorStatus returns the status of the connector name on the Connect
// cluster whose REST API is at restURL (GET /connectors/NAME/status), or
// ErrNotFound.
func ConnectorStatus(ctx context.Context, restURL, name string) (Status, error) {
	u := restURL + "/connectors/" + url.PathEscape(name) + "/status"
	status, body, err := do(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Status{}, fmt.Errorf("connect: GET %s: %w", u, err)
	}
	switch status {
	case http.StatusOK:
	case http.StatusNotFound:
		return Status{}, fmt.Errorf("%w: %s", ErrNotFound, name)
	default:
		return Status{}, fmt.Errorf("connect: GET %s: %d %s", u, status, restError(body))
	}
	var st Status
	if err := json.Unmarshal(body, &st); err != nil {
		return Status{}, fmt.Errorf("connect: GET %s: %w", u, err)
	}
	return st, nil
}

// DeleteConnector deletes the connector name (DELETE /connectors/NAME) and
// waits until the worker no longer reports it; a connector that does not
// exist is not an error. Without a deadline in ctx it gives up after two
// minutes.
func DeleteConnector(ctx context.Context, restURL, name string) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultPutTimeout)
		defer cancel()
	}
	u := restURL + "/connectors/" + url.PathEscape(name)
	for {
		status, body, err := do(ctx, http.MethodDelete, u, nil)
		if err == nil && (status == http.StatusNoContent || status == http.StatusOK || status == http.StatusNotFound) {
			break
		}
		if err == nil && status != http.StatusConflict && status < 500 {
			return fmt.Errorf("connect: DELETE %s: %d %s", u, status, restError(body))
		}
		if err == nil {
			err = fmt.Errorf("%d %s", status, restError(body))
		}
		if werr := sleep(ctx, 250*time.Millisecond); werr != nil {
			return fmt.Errorf("connect: DELETE %s: %w (last answer: %v)", u, werr, err)
		}
	}
	for {
		_, err := ConnectorStatus(ctx, restURL, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if werr := sleep(ctx, 100*time.Millisecond); werr != nil {
			return fmt.Errorf("connect: connector %s still there after DELETE: %w", name, werr)
		}
	}
}

var restClient = &http.Client{Timeout: 30 * time.Second}

// do sends one request and returns the status code and body.
func do(ctx context.Context, method, u string, body []byte) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := restClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, nil, err
	}
	return resp.StatusCode, data, nil
}

// restError returns the message of a Connect REST error answer, or the
// answer itself.
func restError(body []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(body, &e) == nil && e.Message != "" {
		return e.Message
	}
	return string(bytes.TrimSpace(body))
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
