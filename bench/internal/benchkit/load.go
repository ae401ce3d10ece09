package benchkit

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

// Answer is what one HTTP/1.1 response said, as far as the benchmarks care.
type Answer struct {
	Status   int
	Color    string // X-Color (demoapp)
	Instance string // X-Instance (demoapp: its hostname, the container's short ID)
	Close    bool   // the server asked to close the connection
	BodyLen  int
}

// ReadAnswer reads one HTTP/1.1 response from r: status line, headers, and a body of
// Content-Length bytes or in chunked encoding (a response with neither, which would
// need the connection closed to end, is an error: the benchmarks' servers never send
// one). The body is read and dropped.
func ReadAnswer(r *bufio.Reader) (Answer, error) {
	var a Answer
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
			if _, err := r.Discard(int(n)); err != nil {
				return a, err
			}
			a.BodyLen += int(n)
			if line, err = readLine(r); err != nil || len(line) != 0 {
				return a, fmt.Errorf("chunk not ended by CRLF: %q %v", line, err)
			}
		}
	case length >= 0:
		_, err := r.Discard(length)
		a.BodyLen = length
		return a, err
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

// Load sends GET requests to a loopback HTTP server in closed loops: KeepAlive workers
// each on one persistent connection, Close workers a new connection per request. Like
// a browser or Go's net/http, a request whose reused connection turns out closed before
// any byte of the answer (the server closed it while idle) is sent again once on a new
// connection, and marked Retried.
type Load struct {
	Addr      string // host:port, a loopback address
	Host      string // the Host header
	Path      string // default "/"
	KeepAlive int
	Close     int
	Pause     time.Duration // between a worker's requests (0: none)
	// Record keeps every Result (Results); without it only the counts are kept.
	Record bool
	// OnResult, when set, hears every result as it comes (from the workers'
	// goroutines: it must be safe for concurrent use and quick).
	OnResult func(Result)

	cancel  context.CancelFunc
	wg      sync.WaitGroup
	mu      sync.Mutex
	results []Result
	ok, bad atomic.Int64
}

// Start starts the workers; they run until Stop.
func (l *Load) Start() error {
	h, _, err := net.SplitHostPort(l.Addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(h); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("load: %s is not a loopback address; the benchmarks only load this machine", l.Addr)
	}
	if l.Path == "" {
		l.Path = "/"
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	for i := range l.KeepAlive + l.Close {
		l.wg.Add(1)
		go func() { defer l.wg.Done(); l.worker(ctx, i >= l.KeepAlive) }()
	}
	return nil
}

func (l *Load) request(close bool) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: swap-bench\r\n", l.Path, l.Host)
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
			_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
			_, err := conn.Write(req)
			var a Answer
			if err == nil {
				if _, err = br.Peek(1); err == nil {
					a, err = ReadAnswer(br)
				} else if reused && attempt == 0 {
					// Closed while idle, before any byte: send it again.
					conn.Close()
					conn = nil
					r.Retried = true
					continue
				}
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
// results, ordered by the time they were sent.
func (l *Load) Stop() []Result {
	if l.cancel != nil {
		l.cancel()
	}
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.results
	l.results = nil
	slices.SortFunc(out, func(a, b Result) int { return a.Sent.Compare(b.Sent) })
	return out
}
