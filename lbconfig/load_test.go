package lbconfig

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// A small HTTP load generator for the flip tests and benchmarks: raw connections and
// http.ReadResponse keep its own cost low, so HAProxy, not the client, is measured.

// loadResult is one request.
type loadResult struct {
	sent     time.Time // just before the request's first byte was written
	received time.Time // after the response was read
	color    string
	status   int
	body     string // the start of a failed response's body
	err      error
}

// loadWorker sends requests to addr with Host host until stop says so.
type loadWorker struct {
	addr, host string
	keepAlive  bool
	results    []loadResult
	colorsSeen map[string]bool // on this worker's keep-alive connections, in order
	conns      int
	// onResult, if set, is told of every response as it arrives.
	onResult func(loadResult)
}

// run sends requests until next returns false or ctx ends.
func (w *loadWorker) run(ctx context.Context, next func() bool) {
	var conn net.Conn
	var br *bufio.Reader
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	req := "GET / HTTP/1.1\r\nHost: " + w.host + "\r\n\r\n"
	if !w.keepAlive {
		req = "GET / HTTP/1.1\r\nHost: " + w.host + "\r\nConnection: close\r\n\r\n"
	}
	w.colorsSeen = map[string]bool{}
	for ctx.Err() == nil && next() {
		r := loadResult{}
		if conn == nil {
			c, err := net.DialTimeout("tcp", w.addr, 5*time.Second)
			if err != nil {
				r.err = err
				w.results = append(w.results, r)
				continue
			}
			conn, br = c, bufio.NewReader(c)
			w.conns++
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r.sent = time.Now()
		if _, err := io.WriteString(conn, req); err != nil {
			r.err = err
		} else if resp, err := http.ReadResponse(br, nil); err != nil {
			r.err = err
		} else {
			if resp.StatusCode != http.StatusOK {
				b := make([]byte, 80)
				n, _ := io.ReadFull(resp.Body, b)
				r.body = string(b[:n])
			}
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			r.received = time.Now()
			r.status, r.color, r.err = resp.StatusCode, resp.Header.Get("X-Color"), err
			if w.keepAlive && resp.Close {
				r.err = fmt.Errorf("HAProxy closed a keep-alive connection")
			}
		}
		if w.keepAlive && r.err == nil && w.conns == 1 {
			w.colorsSeen[r.color] = true
		}
		if w.onResult != nil {
			w.onResult(r)
		}
		w.results = append(w.results, r)
		if r.err != nil || !w.keepAlive {
			conn.Close()
			conn = nil
		}
	}
}

// load runs workers (keepAlive and close) against addr until n requests are sent or ctx
// ends; atHalf runs once, from the worker that sends request n/2.
type load struct {
	addr, host string
	keepAlive  int
	close      int
	n          int64
	atHalf     func()
	onResult   func(loadResult)
	workers    []*loadWorker
	sent       atomic.Int64
	halfOnce   sync.Once
	halfDone   chan struct{}
}

func (l *load) run(ctx context.Context) {
	l.halfDone = make(chan struct{})
	var wg sync.WaitGroup
	next := func() bool {
		i := l.sent.Add(1)
		if i == l.n/2 && l.atHalf != nil {
			l.halfOnce.Do(func() { l.atHalf(); close(l.halfDone) })
		}
		return i <= l.n
	}
	for i := 0; i < l.keepAlive+l.close; i++ {
		w := &loadWorker{addr: l.addr, host: l.host, keepAlive: i < l.keepAlive, onResult: l.onResult}
		l.workers = append(l.workers, w)
		wg.Add(1)
		go func() { defer wg.Done(); w.run(ctx, next) }()
	}
	wg.Wait()
}

func (l *load) results() []loadResult {
	var all []loadResult
	for _, w := range l.workers {
		all = append(all, w.results...)
	}
	return all
}
