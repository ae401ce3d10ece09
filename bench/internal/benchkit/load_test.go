package benchkit

import (
	"bufio"
	"flag"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestReadAnswer(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nX-Color: green\r\nx-instance: abc123\r\nContent-Length: 5\r\n\r\nhello" +
		"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: 1\r\n\r\n" +
		"HTTP/1.0 204 No Content\r\n\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	a, err := ReadAnswer(r)
	if err != nil || a != (Answer{Status: 200, Color: "green", Instance: "abc123", BodyLen: 5}) {
		t.Fatalf("first = %+v, %v", a, err)
	}
	a, err = ReadAnswer(r)
	if err != nil || a != (Answer{Status: 503, Close: true, BodyLen: 5}) {
		t.Fatalf("chunked = %+v, %v", a, err)
	}
	if a, err = ReadAnswer(r); err != nil || a.Status != 204 {
		t.Fatalf("204 = %+v, %v", a, err)
	}
	for _, bad := range []string{
		"", "SSH-2.0\r\n\r\n", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\nbody until close",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
	} {
		if a, err := ReadAnswer(bufio.NewReader(strings.NewReader(bad))); err == nil {
			t.Errorf("ReadAnswer(%q) = %+v, want an error", bad, a)
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
		fmt.Fprint(w, "ok")
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
	for i, r := range res {
		if i > 0 && r.Sent.Before(res[i-1].Sent) {
			t.Fatal("results not ordered by Sent")
		}
		if r.OK() && (r.Color != "blue" || r.Instance != "app.test" || r.Recv.Before(r.Sent)) {
			t.Fatalf("result %+v", r)
		}
	}
	if err := (&Load{Addr: "192.0.2.1:80"}).Start(); err == nil {
		t.Fatal("a load on a non-loopback address started")
	}
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
	if len(res) == 0 || res[0].OK() || res[0].Err == "" {
		t.Fatalf("results %+v", res)
	}
}

func TestOptions(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := RegisterFlags(fs, "cutoverbench")
	dir := t.TempDir()
	if err := fs.Parse([]string{"-short", "-doc", filepath.Join(dir, "docs", "benchmarks.md"), "-img", filepath.Join(dir, "docs", "img")}); err != nil {
		t.Fatal(err)
	}
	if o.CommandLine() != "go run ./bench/cutoverbench -short" || Pick(o, 40, 8) != 8 {
		t.Fatalf("%q %d", o.CommandLine(), Pick(o, 40, 8))
	}
	path, link, ok := o.PlotPath("bench-cutover.png")
	if !ok || path != filepath.Join(dir, "docs", "img", "bench-cutover.png") || link != "img/bench-cutover.png" {
		t.Fatalf("PlotPath = %q %q %v", path, link, ok)
	}
	o.Img = ""
	if _, _, ok := o.PlotPath("x.png"); ok {
		t.Fatal("PlotPath without -img")
	}
}
