package health

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// DefaultTimeout bounds a probe whose config sets no timeout.
const DefaultTimeout = 2 * time.Second

const (
	// maxBodyRead caps how much of a body is read to look for a substring.
	maxBodyRead = 64 << 10
	// maxDrain caps how much of an unread body is drained so the connection
	// can be reused; a longer body costs a new connection next time.
	maxDrain  = 4 << 10
	userAgent = "swap-health/1"
)

// DefaultExpect accepts 2xx and 3xx, as HAProxy's "option httpchk" does.
var DefaultExpect = statuscode.Default

// HTTPConfig describes an HTTP probe.
type HTTPConfig struct {
	// URL to request, e.g. http://127.0.0.1:32768/healthz.
	URL string
	// Method defaults to GET. The request has no body.
	Method string
	// Host overrides the Host header (virtual hosts); default from URL.
	Host string
	// Expect lists the accepted status codes; default DefaultExpect.
	// Redirects are not followed: a 3xx is a status like any other.
	Expect statuscode.List
	// Body, when set, must occur in the first 64 KiB of the response body.
	Body string
	// Timeout bounds the whole probe (connect, request, response, body);
	// default DefaultTimeout.
	Timeout time.Duration
	// Transport carries the request; default SharedTransport.
	Transport *Transport
}

// HTTPChecker is a Checker that sends one HTTP/1.1 request per probe.
type HTTPChecker struct {
	key        string // pool key: scheme://host:port
	addr       string // host:port to dial
	tls        bool
	serverName string
	request    []byte        // the request, ready to write
	req        *http.Request // for http.ReadResponse (method only)
	expect     statuscode.List
	body       []byte
	timeout    time.Duration
	tr         *Transport
	desc       string
}

// NewHTTPChecker validates cfg and returns its checker.
func NewHTTPChecker(cfg HTTPConfig) (*HTTPChecker, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("health: bad URL %q: %w", cfg.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("health: bad URL %q: want http://host:port/path or https://...", cfg.URL)
	}
	method := strings.ToUpper(cfg.Method)
	if method == "" {
		method = http.MethodGet
	}
	if !isToken(method) {
		return nil, fmt.Errorf("health: bad method %q for %s", cfg.Method, cfg.URL)
	}
	host := cfg.Host
	if host == "" {
		host = u.Host
	}
	if strings.ContainsFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return nil, fmt.Errorf("health: bad Host header %q for %s", host, cfg.URL)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	if err := checkHostPort(net.JoinHostPort(u.Hostname(), port)); err != nil {
		return nil, err
	}
	c := &HTTPChecker{
		addr:       net.JoinHostPort(u.Hostname(), port),
		tls:        u.Scheme == "https",
		serverName: u.Hostname(),
		req:        &http.Request{Method: method},
		expect:     cfg.Expect,
		body:       []byte(cfg.Body),
		timeout:    cfg.Timeout,
		tr:         cfg.Transport,
	}
	c.key = u.Scheme + "://" + c.addr
	if len(c.expect) == 0 {
		c.expect = DefaultExpect
	}
	for _, r := range c.expect {
		if !r.Valid() {
			return nil, fmt.Errorf("health: bad expected status range %v for %s", r, cfg.URL)
		}
	}
	if c.timeout < 0 {
		return nil, fmt.Errorf("health: negative timeout %s for %s", c.timeout, cfg.URL)
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.tr == nil {
		c.tr = SharedTransport
	}
	c.request = fmt.Appendf(nil, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: %s\r\nAccept: */*\r\n\r\n",
		method, u.RequestURI(), host, userAgent)
	if u.Path == "" {
		u.Path = "/"
	}
	c.desc = method + " " + u.String()
	return c, nil
}

func isToken(s string) bool {
	for _, r := range s {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return s != ""
}

// String is "METHOD URL".
func (c *HTTPChecker) String() string { return c.desc }

// Check sends one request and judges the answer.
func (c *HTTPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	deadline := start.Add(c.timeout)
	r, pc := c.roundTrip(ctx, start, deadline)
	r.Start, r.Duration = start, time.Since(start)
	if pc != nil {
		c.tr.put(pc, time.Now())
	}
	return r
}

// roundTrip makes the request and judges it; it returns the connection when
// it may be reused.
func (c *HTTPChecker) roundTrip(ctx context.Context, start, deadline time.Time) (Result, *pconn) {
	if err := ctx.Err(); err != nil {
		return c.failed(ctx, err), nil
	}
	pc := c.tr.get(c.key, start)
	for attempt := 0; ; attempt++ {
		reused := pc != nil
		if !reused {
			var err error
			if pc, err = c.tr.dial(ctx, c.key, c.addr, c.tls, c.serverName, deadline); err != nil {
				return c.failed(ctx, err), nil
			}
		}
		r, keep, retry := c.exchange(ctx, pc, deadline, reused && attempt == 0)
		if retry {
			pc.close()
			pc = nil
			continue
		}
		if !keep {
			pc.close()
			return r, nil
		}
		return r, pc
	}
}

// exchange sends the request on pc and reads the answer. keep: pc may be
// reused. retry: pc was stale (closed by the server while idle).
func (c *HTTPChecker) exchange(ctx context.Context, pc *pconn, deadline time.Time, mayRetry bool) (r Result, keep, retry bool) {
	if !pc.watch(ctx) {
		// ctx of an earlier probe on pc ended and may still be cutting pc
		// short: do not use pc.
		return Result{}, false, true
	}
	_ = pc.conn.SetDeadline(deadline)
	// Cancelled before the deadline was set (its cut may have been undone)
	// or at any time during the exchange: a quiet cancellation.
	defer func() {
		if err := ctx.Err(); err != nil {
			r, keep, retry = c.failed(ctx, err), false, false
		}
	}()
	if ctx.Err() != nil {
		return Result{}, false, false
	}

	_, err := pc.conn.Write(c.request)
	if err == nil {
		// Wait for the first byte apart, to tell a connection the server had
		// closed (nothing at all comes back) from a broken answer.
		_, err = pc.br.Peek(1)
	}
	if err != nil {
		if mayRetry && staleConn(err) && ctx.Err() == nil && time.Now().Before(deadline) {
			return Result{}, false, true
		}
		return c.failed(ctx, err), false, false
	}
	var resp *http.Response
	for {
		resp, err = http.ReadResponse(pc.br, c.req)
		// Skip interim 1xx answers (not 101, which switches protocols).
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil {
		return c.failed(ctx, err), false, false
	}
	// Reuse needs a complete, delimited body and no request to close.
	keep = !resp.Close && (resp.ContentLength >= 0 || len(resp.TransferEncoding) > 0)

	if !c.expect.Match(resp.StatusCode) {
		done, _ := discard(resp.Body, maxDrain)
		return Result{
			Reason: ReasonStatus, Status: resp.StatusCode,
			Err: fmt.Errorf("%s: status %d, want %s", c.desc, resp.StatusCode, c.expect),
		}, keep && done && pc.br.Buffered() == 0, false
	}
	if len(c.body) == 0 {
		done, err := discard(resp.Body, maxDrain)
		if err != nil {
			r := c.failed(ctx, err)
			r.Status = resp.StatusCode
			return r, false, false
		}
		return Result{OK: true, Status: resp.StatusCode}, keep && done && pc.br.Buffered() == 0, false
	}
	buf, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyRead))
	if err != nil {
		r := c.failed(ctx, err)
		r.Status = resp.StatusCode
		return r, false, false
	}
	done, _ := discard(resp.Body, 0)
	keep = keep && done && pc.br.Buffered() == 0
	if !bytes.Contains(buf, c.body) {
		return Result{
			Reason: ReasonBody, Status: resp.StatusCode,
			Err: fmt.Errorf("%s: status %d but the body does not contain %q", c.desc, resp.StatusCode, c.body),
		}, keep, false
	}
	return Result{OK: true, Status: resp.StatusCode}, keep, false
}

// discard reads and drops up to limit bytes of body; done reports that the
// body ended within them. A body is never closed: closing would drain it
// without bound; the connection is closed instead when the body is not done.
func discard(body io.Reader, limit int64) (done bool, err error) {
	n, err := io.Copy(io.Discard, io.LimitReader(body, limit+1))
	if err != nil {
		return false, err
	}
	return n <= limit, nil
}

func (c *HTTPChecker) failed(ctx context.Context, err error) Result {
	reason := classify(ctx, err)
	switch reason {
	case ReasonCanceled:
		err = fmt.Errorf("%s: probe cancelled: %w", c.desc, err)
	case ReasonTimeout:
		err = fmt.Errorf("%s: no answer within %s: %w", c.desc, c.timeout, err)
	default:
		err = fmt.Errorf("%s: %w", c.desc, err)
	}
	return Result{Reason: reason, Err: err}
}
