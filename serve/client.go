package serve

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/swap-dev/swap/switcher"
)

// Client talks to a `swap serve`: it starts operations and follows their events, so a
// pipeline needs no curl (`swap --server URL deploy web --image web:v2`).
type Client struct {
	base  string // http://host:port, or http://swap for a unix socket
	token string
	http  *http.Client
}

// NewClient returns a client of the daemon at server: http://host:port (https too), or
// unix:///path/swap.sock.
func NewClient(server, token string) (*Client, error) {
	c := &Client{token: token, http: &http.Client{}}
	if path, ok := strings.CutPrefix(server, "unix://"); ok {
		if path == "" {
			return nil, fmt.Errorf("--server %q: give the socket's path, like unix:///run/swap/swap.sock", server)
		}
		c.base = "http://swap"
		c.http.Transport = &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return c, nil
	}
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: use http://host:port or unix:///path/swap.sock", server)
	}
	c.base = strings.TrimSuffix(server, "/")
	return c, nil
}

// APIError is an answer other than 2xx.
type APIError struct {
	Status   int
	Message  string
	ExitCode int // the CLI's exit code for it
}

func (e *APIError) Error() string {
	return fmt.Sprintf("swap serve: %s (HTTP %d)", e.Message, e.Status)
}

// exitCodeOf maps an HTTP refusal to the CLI's exit code.
func exitCodeOf(status int, body map[string]any) int {
	if c, ok := body["exit_code"].(float64); ok {
		return int(c)
	}
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusUnauthorized:
		return 2
	case http.StatusConflict:
		return 3
	case http.StatusServiceUnavailable:
		return 4
	}
	return 1
}

func (c *Client) do(ctx context.Context, method, path string, body any, header http.Header) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &APIError{Status: 0, Message: fmt.Sprintf("cannot reach it: %v", err), ExitCode: 4}
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		var m map[string]any
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		msg := strings.TrimSpace(string(b))
		if json.Unmarshal(b, &m) == nil {
			if e, ok := m["error"].(string); ok {
				msg = e
			}
		}
		return nil, &APIError{Status: resp.StatusCode, Message: msg, ExitCode: exitCodeOf(resp.StatusCode, m)}
	}
	return resp, nil
}

// Start asks for op on app (body: {"image": ...}, {"color": ...} or nil); a non-empty
// idempotencyKey makes a retry return the same deploy.
func (c *Client) Start(ctx context.Context, app, op string, body any, idempotencyKey string) (*Accepted, error) {
	h := http.Header{}
	if idempotencyKey != "" {
		h.Set("Idempotency-Key", idempotencyKey)
	}
	if body == nil {
		body = map[string]any{}
	}
	resp, err := c.do(ctx, http.MethodPost, "/v1/apps/"+url.PathEscape(app)+"/"+op, body, h)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var a Accepted
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return nil, fmt.Errorf("swap serve answered %s with something that is not JSON: %w", op, err)
	}
	return &a, nil
}

// Follow reads a deploy's event stream, calling onEvent for each event, and returns
// its final view.
func (c *Client) Follow(ctx context.Context, id string, onEvent func(switcher.Event)) (*Final, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/deploys/"+url.PathEscape(id)+"/events", nil, http.Header{"Accept": {"text/event-stream"}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var event string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			data := []byte(strings.TrimPrefix(line, "data: "))
			switch event {
			case "event":
				var e switcher.Event
				if err := json.Unmarshal(data, &e); err == nil && onEvent != nil {
					onEvent(e)
				}
			case "result":
				var f Final
				if err := json.Unmarshal(data, &f); err != nil {
					return nil, fmt.Errorf("the result of deploy %s is not JSON: %w", id, err)
				}
				return &f, nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("the event stream of deploy %s broke: %w; `GET /v1/deploys/%s` tells how it ended", id, err, id)
	}
	return nil, fmt.Errorf("the event stream of deploy %s ended without its result (swap serve stopped?); `GET /v1/deploys/%s` tells how it ended", id, id)
}
