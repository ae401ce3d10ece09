package stack

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadAnswer(t *testing.T) {
	long := strings.Repeat("x", 300)
	in := "HTTP/1.1 200 OK\r\nX-Color: green\r\nx-instance: abc123\r\nContent-Length: 7\r\n\r\n hello\n" +
		"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n" +
		"HTTP/1.0 204 No Content\r\n\r\n" +
		"HTTP/1.1 200 OK\r\nContent-Length: 300\r\n\r\n" + long +
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n96\r\n" + long[:150] + "\r\n96\r\n" + long[:150] + "\r\n0\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	a, err := readAnswer(r)
	if err != nil || a != (Answer{Status: 200, Color: "green", Instance: "abc123", BodyLen: 7, Body: "hello"}) {
		t.Fatalf("first = %+v, %v", a, err)
	}
	a, err = readAnswer(r)
	if err != nil || a != (Answer{Status: 503, Close: true, BodyLen: 5, Body: "abcde"}) {
		t.Fatalf("chunked = %+v, %v", a, err)
	}
	if a, err = readAnswer(r); err != nil || a.Status != 204 {
		t.Fatalf("204 = %+v, %v", a, err)
	}
	// A long body is read to its end, its first maxBody bytes kept.
	for _, kind := range []string{"Content-Length", "chunked"} {
		if a, err = readAnswer(r); err != nil || a.BodyLen != 300 || a.Body != long[:maxBody] {
			t.Fatalf("%s, 300 bytes = %d %d %q, %v", kind, a.Status, a.BodyLen, a.Body, err)
		}
	}
	if _, err := r.Peek(1); err == nil {
		t.Fatal("bytes left after the last answer")
	}
	for _, bad := range []string{
		"", "SSH-2.0\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + long,
	} {
		if a, err := readAnswer(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("readAnswer(%q) = %+v, want an error", bad, a)
		}
	}
}

func TestResult_OKAndFailure(t *testing.T) {
	for _, tc := range []struct {
		r    Result
		ok   bool
		why  string
		took time.Duration
	}{
		{Result{Answer: Answer{Status: 200, Body: "color=blue"}}, true, "", 0},
		{Result{Answer: Answer{Status: 503, Body: "<html>No server</html>"}}, false, "503 <html>No server</html>", 0},
		{Result{Err: "connection refused"}, false, "connection refused", 0},
		{Result{Answer: Answer{Status: 200}, Err: "unexpected EOF"}, false, "unexpected EOF", 0},
	} {
		if tc.r.OK() != tc.ok || tc.r.Failure() != tc.why {
			t.Errorf("%+v: OK %v Failure %q, want %v %q", tc.r, tc.r.OK(), tc.r.Failure(), tc.ok, tc.why)
		}
	}
}

func TestLoad_CountsRecordsAndRetriesAClosedIdleConnection(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("X-Color", "blue")
		w.Header().Set("X-Instance", r.Host)
		if i%5 == 0 {
			w.Header().Set("Connection", "close")
		}
		if i == 7 {
			http.Error(w, "nope", 500)
			return
		}
		fmt.Fprint(w, "ok\n")
	}))
	defer srv.Close()
	var heard atomic.Int64
	l := &Load{Addr: srv.Listener.Addr().String(), Host: "app.test", KeepAlive: 2, Close: 1, Record: true,
		OnResult: func(Result) { heard.Add(1) }}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	for n.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	srv.CloseClientConnections() // idle keep-alive connections die: the next requests are retried
	for n.Load() < 100 {
		time.Sleep(time.Millisecond)
	}
	res := l.Stop()
	ok, failed := l.Counts()
	if int(ok+failed) != len(res) || int(heard.Load()) != len(res) || failed < 1 {
		t.Fatalf("ok %d failed %d, %d recorded, %d heard", ok, failed, len(res), heard.Load())
	}
	if l.Workers() != 3 || l.Started().IsZero() || l.Stopped().Before(l.Started()) {
		t.Fatalf("workers %d, started %v, stopped %v", l.Workers(), l.Started(), l.Stopped())
	}
	sawNope := false
	for i, r := range res {
		if i > 0 && r.Sent.Before(res[i-1].Sent) {
			t.Fatal("results not ordered by Sent")
		}
		if r.OK() && (r.Color != "blue" || r.Instance != "app.test" || r.Body != "ok" || r.Recv.Before(r.Sent)) {
			t.Fatalf("result %+v", r)
		}
		sawNope = sawNope || r.Failure() == "500 nope"
	}
	if !sawNope {
		t.Error("the 500 is not among the failures with its body")
	}
	if again := l.Stop(); len(again) != 0 {
		t.Fatalf("a second Stop returned %d results", len(again))
	}
}

func TestLoad_StopsByItselfAfterMaxTime(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	l := &Load{Addr: srv.Listener.Addr().String(), Host: "x", KeepAlive: 1, Pause: time.Millisecond, MaxTime: 100 * time.Millisecond}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond)
	ok1, _ := l.Counts()
	time.Sleep(100 * time.Millisecond)
	ok2, failed := l.Counts()
	if ok1 == 0 || ok2 != ok1 || failed != 0 {
		t.Fatalf("ok %d then %d, failed %d: want answers, then none after MaxTime", ok1, ok2, failed)
	}
	l.Stop()
}

func TestLoad_ConnectionRefusedIsAFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	l := &Load{Addr: addr, Host: "x", Close: 1, Pause: 10 * time.Millisecond, Record: true}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	res := l.Stop()
	if len(res) == 0 || res[0].OK() || res[0].Err == "" || res[0].Failure() != res[0].Err {
		t.Fatalf("results %+v", res)
	}
}

func TestLoad_TargetsOnlyLoopbackAndTheTestsNamespaces(t *testing.T) {
	for _, addr := range []string{"10.0.0.1:80", "192.0.2.1:80", "example.com:80", "localhost:80", "0.0.0.0:80", "nonsense"} {
		l := &Load{Addr: addr, Host: "web.demo", KeepAlive: 1}
		if err := l.Start(); err == nil {
			l.Stop()
			t.Errorf("a load on %s started", addr)
		}
	}
	// An address of a namespace the tests made is a target only when the caller says so.
	ns := &Load{Addr: "10.215.7.2:80", Host: "web.demo", Close: 1, Namespaces: []string{"10.215.9.2"}}
	if err := ns.Start(); err == nil {
		ns.Stop()
		t.Error("a load on another namespace's address started")
	}
	if err := (&Load{Addr: "127.0.0.1:80", Host: "x"}).Start(); err == nil {
		t.Error("a load without workers started")
	}
	// A server that answers: Stop waits for the request in flight, which a listener
	// that never answers would hold for the read timeout (30 s).
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	ok := &Load{Addr: srv.Listener.Addr().String(), Host: "x", KeepAlive: 1, Namespaces: []string{"10.215.9.2"}}
	if err := ok.Start(); err != nil {
		t.Fatalf("loopback with namespaces listed: %v", err)
	}
	ok.Stop()
	// A listed namespace address passes the check (the test does not dial it: only a
	// namespace a test made has it).
	if err := checkTarget("10.215.9.2:80", []string{"10.215.9.2"}); err != nil {
		t.Fatalf("a listed namespace address: %v", err)
	}
}
