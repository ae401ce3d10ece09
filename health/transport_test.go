package health

import (
	"bufio"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// rawServer answers each request on a loopback listener with the bytes
// answer returns, closing the connection after it when close is set. It
// counts connections.
type rawServer struct {
	l     net.Listener
	conns atomic.Int64
	wg    sync.WaitGroup
}

func newRawServer(t *testing.T, answer func(req *http.Request) (resp string, close bool)) *rawServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{l: l}
	var mu sync.Mutex
	var open []net.Conn
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.conns.Add(1)
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					resp, closeAfter := answer(req)
					if _, err := io.WriteString(c, resp); err != nil || closeAfter {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		mu.Lock()
		for _, c := range open {
			_ = c.Close()
		}
		mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *rawServer) url(path string) string { return "http://" + s.l.Addr().String() + path }

func TestTransport_HandlesEachWayOfEndingAResponse(t *testing.T) {
	noLeaks(t)
	const ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	tests := []struct {
		name       string
		answer     string
		close      bool
		method     string
		body       string
		wantReason Reason
		wantStatus int
		wantReuse  bool // three probes share one connection
	}{
		{name: "content-length keeps the connection", answer: ok, wantStatus: 200, wantReuse: true},
		{name: "chunked keeps the connection",
			answer: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", body: "ok", wantStatus: 200, wantReuse: true},
		{name: "connection: close is honoured", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", close: true, wantStatus: 200},
		{name: "a body ended by closing is read to the end", answer: "HTTP/1.0 200 OK\r\n\r\nall good", close: true, body: "good", wantStatus: 200},
		{name: "interim 100 Continue is skipped", answer: "HTTP/1.1 100 Continue\r\n\r\n" + ok, wantStatus: 200, wantReuse: true},
		{name: "a HEAD answer has no body", method: "HEAD", answer: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", wantStatus: 200, wantReuse: true},
		{name: "a long body is not drained to reuse the connection",
			answer: "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("x", 100000), wantStatus: 200},
		{name: "a wrong status with a body keeps the connection",
			answer: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nbusy", wantReason: ReasonStatus, wantStatus: 503, wantReuse: true},
		{name: "garbage is an error", answer: "SMTP ready\r\n\r\n", close: true, wantReason: ReasonError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newRawServer(t, func(*http.Request) (string, bool) { return tt.answer, tt.close })
			c, err := NewHTTPChecker(HTTPConfig{URL: srv.url("/health"), Method: tt.method, Body: tt.body, Transport: testTransport(t)})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				r := c.Check(context.Background())
				if r.Reason != tt.wantReason || r.Status != tt.wantStatus || r.OK != (tt.wantReason == ReasonOK) {
					t.Fatalf("got %s status %d (%v), want %s status %d", r.Reason, r.Status, r.Err, tt.wantReason, tt.wantStatus)
				}
			}
			wantConns := int64(3)
			if tt.wantReuse {
				wantConns = 1
			}
			if got := srv.conns.Load(); got != wantConns {
				t.Errorf("3 probes used %d connections, want %d", got, wantConns)
			}
		})
	}
}

func TestTransport_RetriesOnceWhenTheServerClosedAnIdleConnection(t *testing.T) {
	noLeaks(t)
	// Answers as if keeping the connection, then closes it anyway.
	srv := newRawServer(t, func(*http.Request) (string, bool) {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true
	})
	c, err := NewHTTPChecker(HTTPConfig{URL: srv.url("/"), Transport: testTransport(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		// Let the server's close arrive before the next probe, so the probe
		// meets a stale connection rather than racing the close.
		eventually(t, "the server to close", func() bool { return srv.conns.Load() == int64(i) })
		if r := c.Check(context.Background()); !r.OK {
			t.Fatalf("probe %d: %v; a stale connection should be replaced", i, r)
		}
	}
}

func TestTransport_ReusesOneConnectionPerTargetAndSpeaksTLS(t *testing.T) {
	noLeaks(t)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusting probe's handshake failure
	srv.StartTLS()
	t.Cleanup(srv.Close)
	tr := &Transport{TLSConfig: srv.Client().Transport.(*http.Transport).TLSClientConfig}
	t.Cleanup(tr.CloseIdle)
	c, err := NewHTTPChecker(HTTPConfig{URL: srv.URL + "/health", Transport: tr, Body: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if r := c.Check(context.Background()); !r.OK {
			t.Fatalf("https probe: %v", r)
		}
	}
	if got := conns.Load(); got != 1 {
		t.Errorf("10 probes used %d connections, want 1", got)
	}

	untrusting, err := NewHTTPChecker(HTTPConfig{URL: srv.URL + "/health", Transport: testTransport(t)})
	if err != nil {
		t.Fatal(err)
	}
	if r := untrusting.Check(context.Background()); r.OK || !strings.Contains(r.Err.Error(), "certificate") {
		t.Errorf("got %v, want a certificate error without the test CA", r)
	}
}

func TestTransport_IsSafeForConcurrentProbesAndCapsIdleConnections(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	tr := &Transport{MaxIdlePerAddr: 2}
	t.Cleanup(tr.CloseIdle)
	c, err := NewHTTPChecker(HTTPConfig{URL: a.url("/"), Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if r := c.Check(context.Background()); !r.OK {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of 160 concurrent probes failed", failed.Load())
	}
	tr.mu.Lock()
	idle := len(tr.idle[c.key])
	tr.mu.Unlock()
	if idle > 2 || idle == 0 {
		t.Errorf("%d idle connections kept, want 1 or 2", idle)
	}
}

func TestTransport_DropsConnectionsIdleTooLong(t *testing.T) {
	noLeaks(t)
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &Transport{IdleTimeout: time.Nanosecond}
	t.Cleanup(tr.CloseIdle)
	c, err := NewHTTPChecker(HTTPConfig{URL: srv.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if r := c.Check(context.Background()); !r.OK {
			t.Fatal(r)
		}
	}
	if got := conns.Load(); got != 3 {
		t.Errorf("3 probes used %d connections; an idle timeout of 1ns should leave none reusable", got)
	}
}

func TestNewHTTPChecker_RejectsBadConfigs(t *testing.T) {
	for _, cfg := range []HTTPConfig{
		{URL: "127.0.0.1:80/health"},
		{URL: "http:///health"},
		{URL: "http://user:pw@127.0.0.1/"},
		{URL: "http://127.0.0.1/", Method: "GET /x"},
		{URL: "http://127.0.0.1/", Host: "a\r\nX-Evil: 1"},
		{URL: "http://127.0.0.1/", Expect: statuscode.List{{Min: 500, Max: 200}}},
		{URL: "http://127.0.0.1/", Timeout: -time.Second},
	} {
		if _, err := NewHTTPChecker(cfg); err == nil {
			t.Errorf("%+v: accepted, want an error", cfg)
		}
	}
	c, err := NewHTTPChecker(HTTPConfig{URL: "https://example.test/x?y=1", Host: "vhost", Method: "options"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "OPTIONS /x?y=1 HTTP/1.1\r\nHost: vhost\r\n"; !strings.HasPrefix(string(c.request), want) || c.addr != "example.test:443" || !c.tls {
		t.Errorf("request %q to %s (tls %v), want it to start %q to example.test:443 over TLS", c.request, c.addr, c.tls, want)
	}
}

func TestTransport_ClosesConnectionsNoLongerUsed(t *testing.T) {
	noLeaks(t)
	closed := make(chan struct{}, 1)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			closed <- struct{}{}
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	tr := &Transport{IdleTimeout: time.Millisecond}
	t.Cleanup(tr.CloseIdle)
	c, err := NewHTTPChecker(HTTPConfig{URL: srv.URL, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	if r := c.Check(context.Background()); !r.OK {
		t.Fatal(r)
	}
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle connection was still open after 10s with a 1ms idle timeout")
	}
	eventually(t, "the pool to empty", func() bool { tr.mu.Lock(); defer tr.mu.Unlock(); return len(tr.idle) == 0 && tr.reaper == nil })
}

func TestTransport_ACancelledProbeDoesNotSpoilTheConnectionForOthers(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	tr := testTransport(t)
	c, err := NewHTTPChecker(HTTPConfig{URL: a.url("/"), Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if r := c.Check(ctx); !r.OK { // the pooled connection now watches ctx
		t.Fatal(r)
	}
	cancel() // cuts the idle connection's deadline short
	for range 3 {
		if r := c.Check(context.Background()); !r.OK {
			t.Fatalf("probe after another context ended: %v", r)
		}
	}
	if r := c.Check(ctx); r.Reason != ReasonCanceled {
		t.Fatalf("probe with the ended context: %v, want canceled", r)
	}
}
