package stack

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// maxBody is how much of an answer's body a Result keeps: enough for the demo app's
// "color=blue version=v1" and HAProxy's error pages, small enough to record thousands.
const maxBody = 256

// defaultMaxTime bounds a load whose MaxTime is 0.
const defaultMaxTime = 10 * time.Minute

// Answer is what one HTTP/1.1 response said, as far as the load cares.
type Answer struct {
	Status   int
	Color    string // X-Color (demoapp)
	Instance string // X-Instance (demoapp: its hostname, the container's short ID)
	Close    bool   // the server asked to close the connection
	BodyLen  int
	Body     string // the body's first maxBody bytes, trimmed of white space
}

// readAnswer reads one HTTP/1.1 response from r: status line, headers, and a body of
// Content-Length bytes or in chunked encoding (a response with neither, which would
// need the connection closed to end, is an error: the demo app and HAProxy, its error
// answers included, never send one). The body's first maxBody bytes are kept, the rest
// dropped.
func readAnswer(r *bufio.Reader) (a Answer, err error) {
	line, err := readLine(r)
	if err != nil {
		return a, err
	}
	// "HTTP/1.1 200 OK"
	if !bytes.HasPrefix(line, []byte("HTTP/1.")) || len(line) < 12 || line[8] != ' ' {
		return a, fmt.Errorf("not an HTTP/1.x status line: %q", line)
	}
	if a.Status, err = strconv.Atoi(string(line[9:12])); err != nil {
		return a, fmt.Errorf("status line %q: %w", line, err)
	}
	length, chunked := -1, false
	for {
		line, err := readLine(r)
		if err != nil {
			return a, err
		}
		if len(line) == 0 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return a, fmt.Errorf("header line without a colon: %q", line)
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return a, fmt.Errorf("Content-Length %q", v)
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			a.Close = bytes.EqualFold(v, []byte("close"))
		case bytes.EqualFold(k, []byte("X-Color")):
			a.Color = string(v)
		case bytes.EqualFold(k, []byte("X-Instance")):
			a.Instance = string(v)
		}
	}
	var body []byte
	// keep reads n bytes of the body, keeping what fits in maxBody.
	keep := func(n int) error {
		if room := min(n, maxBody-len(body)); room > 0 {
			start := len(body)
			body = append(body, make([]byte, room)...)
			if _, err := io.ReadFull(r, body[start:]); err != nil {
				return err
			}
			n -= room
		}
		_, err := r.Discard(n)
		return err
	}
	defer func() { a.Body = string(bytes.TrimSpace(body)) }()
	switch {
	case chunked:
		for {
			line, err := readLine(r)
			if err != nil {
				return a, err
			}
			size, _, _ := bytes.Cut(line, []byte(";"))
			n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 32)
			if err != nil || n < 0 {
				return a, fmt.Errorf("chunk size %q", line)
			}
			if n == 0 {
				for { // trailers up to the empty line
					if line, err = readLine(r); err != nil || len(line) == 0 {
						return a, err
					}
				}
			}
			if err := keep(int(n)); err != nil {
				return a, err
			}
			a.BodyLen += int(n)
			if line, err = readLine(r); err != nil || len(line) != 0 {
				return a, fmt.Errorf("chunk not ended by CRLF: %q %v", line, err)
			}
		}
	case length >= 0:
		a.BodyLen = length
		return a, keep(length)
	case a.Status == 204 || a.Status == 304 || a.Status/100 == 1:
		return a, nil
	}
	return a, errors.New("response without Content-Length or chunked encoding")
}

// readLine reads a line without its CRLF (or LF). The slice is valid until the next read.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return bytes.TrimRight(line, "\r\n"), nil
}

// Result is one request of a Load.
type Result struct {
	Sent, Recv time.Time
	Answer
	Err     string // transport error, or "" (a non-200 status is in Status)
	Retried bool   // sent again on a new connection after the reused one was closed
}

// OK reports whether the request got a 200.
func (r Result) OK() bool { return r.Err == "" && r.Status == 200 }

// Failure says why the request is not OK: the transport error, or the status and the
// body; "" when it is.
func (r Result) Failure() string {
	switch {
	case r.Err != "":
		return r.Err
	case r.Status != 200:
		return fmt.Sprintf("%d %s", r.Status, r.Body)
	}
	return ""
}

// Load sends GET requests to an HTTP server of this machine (HAProxy's frontend, an
// app) in closed loops: KeepAlive workers each on one persistent connection, Close
// workers a new connection per request (Connection: close). It speaks HTTP/1.1 on the
// raw connection, so the benchmarks measure the server rather than a client library,
// and says exactly what happened to each request. Like a browser or Go's net/http, a
// request whose reused connection turns out closed before any byte of the answer (the
// server closed it while idle) is sent again once on a new connection, and marked
// Retried: it counts by that second answer, as it would for net/http's callers.
//
// It only ever targets loopback, or an address in Namespaces.
type Load struct {
	Addr      string // host:port; the host an IP address: loopback, or one of Namespaces
	Host      string // the Host header
	Path      string // default "/"
	KeepAlive int
	Close     int
	Pause     time.Duration // between a worker's requests, failed or not (0: none)
	// MaxTime bounds the load: it stops by itself that long after Start (0: 10
	// minutes), so a caller that never reaches Stop does not load the machine on.
	MaxTime time.Duration
	// Namespaces are the only addresses besides loopback that Addr may have: those of
	// network namespaces the caller's own tests created on this machine (an HAProxy
	// in testenv.LBHost's namespace, at its Addr). Nothing else is ever a target.
	Namespaces []string
	// Record keeps every Result for Stop; without it only the counts are kept.
	Record bool
	// OnResult, when set, hears every result as it comes (from the workers'
	// goroutines: it must be safe for concurrent use, and it delays its worker).
	OnResult func(Result)

	cancel           context.CancelFunc
	wg               sync.WaitGroup
	mu               sync.Mutex
	results          []Result
	ok, bad          atomic.Int64
	stopOnce         sync.Once
	started, stopped time.Time
}

// Start checks the target and starts the workers; they run until Stop or MaxTime.
func (l *Load) Start() error {
	if err := checkTarget(l.Addr, l.Namespaces); err != nil {
		return err
	}
	if l.KeepAlive < 0 || l.Close < 0 || l.KeepAlive+l.Close == 0 {
		return fmt.Errorf("load: %d keep-alive and %d close workers: want at least one", l.KeepAlive, l.Close)
	}
	if l.Path == "" {
		l.Path = "/"
	}
	if l.MaxTime <= 0 {
		l.MaxTime = defaultMaxTime
	}
	l.started = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), l.MaxTime)
	l.cancel = cancel
	for i := range l.KeepAlive + l.Close {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.worker(ctx, i >= l.KeepAlive) }()
	}
	return nil
}

// checkTarget refuses an addr whose host is not an IP address of loopback or one of
// namespaces.
func checkTarget(addr string, namespaces []string) error {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() && !slices.Contains(namespaces, ip.String()) {
		return fmt.Errorf("load: %s is neither a loopback address nor one of the test namespaces' %v; the load only targets this machine", addr, namespaces)
	}
	return nil
}

func (l *Load) request(close bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: swap-load\r\n", l.Path, l.Host)
	if close {
		b.WriteString("Connection: close\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func (l *Load) worker(ctx context.Context, close bool) {
	req := l.request(close)
	var conn net.Conn
	var br *bufio.Reader
	var batch []Result
	flush := func() {
		if len(batch) > 0 {
			l.mu.Lock()
			l.results = append(l.results, batch...)
			l.mu.Unlock()
			batch = batch[:0]
		}
	}
	defer func() {
		if conn != nil {
			conn.Close()
		}
		flush()
	}()
	dialer := net.Dialer{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		r := Result{Sent: time.Now()}
		for attempt := 0; ; attempt++ {
			reused := conn != nil
			if conn == nil {
				c, err := dialer.DialContext(ctx, "tcp", l.Addr)
				if err != nil {
					if ctx.Err() != nil {
						return // stopped while dialling: not a result
					}
					r.Err = err.Error()
					break
				}
				conn, br = c, bufio.NewReaderSize(c, 4096)
			}
			// A request in flight when the load stops still gets its answer.
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, err := conn.Write(req)
			if err == nil {
				_, err = br.Peek(1)
			}
			if err != nil && reused && attempt == 0 {
				// Closed while idle, before any byte of the answer: send it again.
				conn.Close()
				conn = nil
				r.Retried = true
				continue
			}
			var a Answer
			if err == nil {
				a, err = readAnswer(br)
			}
			r.Answer = a
			if err != nil {
				r.Err = err.Error()
			}
			if err != nil || a.Close || close {
				conn.Close()
				conn = nil
			}
			break
		}
		r.Recv = time.Now()
		if r.OK() {
			l.ok.Add(1)
		} else {
			l.bad.Add(1)
		}
		if l.OnResult != nil {
			l.OnResult(r)
		}
		if l.Record {
			if batch = append(batch, r); len(batch) >= 256 {
				flush()
			}
		}
		if l.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(l.Pause):
			}
		}
	}
}

// Counts is the number of 200 answers and of the other results so far.
func (l *Load) Counts() (ok, failed int64) { return l.ok.Load(), l.bad.Load() }

// Stop ends the workers (each finishes the request it is in) and returns the recorded
// results, ordered by the time they were sent. A later Stop returns nothing.
func (l *Load) Stop() []Result {
	l.stopOnce.Do(func() {
		if l.cancel != nil {
			l.cancel()
		}
		l.wg.Wait()
		l.stopped = time.Now()
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.results
	l.results = nil
	slices.SortFunc(out, func(a, b Result) int { return a.Sent.Compare(b.Sent) })
	return out
}

// Started is when Start started the workers.
func (l *Load) Started() time.Time { return l.started }

// Stopped is when the first Stop returned (zero before).
func (l *Load) Stopped() time.Time { return l.stopped }

// Workers is the number of workers.
func (l *Load) Workers() int { return l.KeepAlive + l.Close }

// Split divides workers as the tests and the demo load HAProxy: half on keep-alive
// connections (the odd one too), half with a new connection per request.
func Split(workers int) (keepAlive, close int) { return (workers + 1) / 2, workers / 2 }
