package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

func TestHTTPChecker_JudgesEachKindOfAnswer(t *testing.T) {
	noLeaks(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			_, _ = w.Write([]byte(`{"status":"ready"}`))
		case "/unavailable":
			w.WriteHeader(http.StatusServiceUnavailable)
		case "/notfound":
			w.WriteHeader(http.StatusNotFound)
		case "/redirect":
			http.Redirect(w, r, "/ok", http.StatusFound)
		case "/host":
			if r.Host != "app.example" {
				w.WriteHeader(http.StatusMisdirectedRequest)
			}
		case "/head":
			if r.Method != http.MethodHead {
				w.WriteHeader(http.StatusMethodNotAllowed)
			}
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-release:
			}
		case "/reset":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
				_ = conn.Close()
			}
		case "/hangup":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = conn.Close() // FIN without an answer
			}
		}
	})
	tr := testTransport(t)

	tests := []struct {
		name       string
		cfg        HTTPConfig
		wantOK     bool
		wantReason Reason
		wantStatus int
		wantErrHas string
	}{
		{name: "a 200 is healthy", cfg: HTTPConfig{URL: a.url("/ok")}, wantOK: true, wantStatus: 200},
		{name: "a 503 is the wrong status", cfg: HTTPConfig{URL: a.url("/unavailable")},
			wantReason: ReasonStatus, wantStatus: 503, wantErrHas: "status 503, want 200-399"},
		{name: "a 404 passes when expected", cfg: HTTPConfig{URL: a.url("/notfound"), Expect: statuscode.List{{Min: 200, Max: 299}, {Min: 404, Max: 404}}},
			wantOK: true, wantStatus: 404},
		{name: "a redirect is not followed and counts as 3xx", cfg: HTTPConfig{URL: a.url("/redirect")}, wantOK: true, wantStatus: 302},
		{name: "a redirect fails when only 2xx is expected", cfg: HTTPConfig{URL: a.url("/redirect"), Expect: statuscode.List{{Min: 200, Max: 299}}},
			wantReason: ReasonStatus, wantStatus: 302},
		{name: "a body containing the substring is healthy", cfg: HTTPConfig{URL: a.url("/ok"), Body: `"ready"`}, wantOK: true, wantStatus: 200},
		{name: "a body without the substring fails", cfg: HTTPConfig{URL: a.url("/ok"), Body: "degraded"},
			wantReason: ReasonBody, wantStatus: 200, wantErrHas: `does not contain "degraded"`},
		{name: "the Host header is sent", cfg: HTTPConfig{URL: a.url("/host"), Host: "app.example"}, wantOK: true, wantStatus: 200},
		{name: "the method is sent", cfg: HTTPConfig{URL: a.url("/head"), Method: "head"}, wantOK: true, wantStatus: 200},
		{name: "no answer within the timeout is a timeout", cfg: HTTPConfig{URL: a.url("/slow"), Timeout: 20 * time.Millisecond},
			wantReason: ReasonTimeout, wantErrHas: "no answer within 20ms"},
		{name: "a reset connection is a reset", cfg: HTTPConfig{URL: a.url("/reset")}, wantReason: ReasonReset},
		{name: "a connection closed without an answer is a reset", cfg: HTTPConfig{URL: a.url("/hangup")}, wantReason: ReasonReset},
		{name: "a closed port is refused", cfg: HTTPConfig{URL: "http://" + closedAddr(t) + "/health"},
			wantReason: ReasonRefused, wantErrHas: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Transport = tr
			c, err := NewHTTPChecker(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background())
			if r.OK != tt.wantOK || r.Reason != tt.wantReason || r.Status != tt.wantStatus {
				t.Fatalf("got ok=%v reason=%s status=%d (%v), want ok=%v reason=%s status=%d",
					r.OK, r.Reason, r.Status, r.Err, tt.wantOK, tt.wantReason, tt.wantStatus)
			}
			if tt.wantOK != (r.Err == nil) {
				t.Errorf("ok=%v but err=%v", r.OK, r.Err)
			}
			if tt.wantErrHas != "" && !strings.Contains(r.Err.Error(), tt.wantErrHas) {
				t.Errorf("error %q does not say %q", r.Err, tt.wantErrHas)
			}
			if !r.OK && !strings.Contains(r.Err.Error(), tt.cfg.URL) {
				t.Errorf("error %q does not name the URL %s", r.Err, tt.cfg.URL)
			}
			if r.Start.IsZero() {
				t.Error("result has no start time")
			}
		})
	}
}

func TestHTTPChecker_CancelledProbeIsQuietNotAFailure(t *testing.T) {
	noLeaks(t)
	arrived := make(chan struct{}, 1)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-r.Context().Done()
	})
	c, err := NewHTTPChecker(HTTPConfig{URL: a.url("/"), Timeout: time.Minute, Transport: testTransport(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	r := c.Check(ctx)
	if r.Reason != ReasonCanceled || r.OK {
		t.Fatalf("got %s (%v), want canceled", r.Reason, r.Err)
	}
	if !errors.Is(r.Err, context.Canceled) {
		t.Errorf("err %v does not wrap context.Canceled", r.Err)
	}
	tr := NewTracker("x", 1, 1)
	if _, changed := tr.Observe(r); changed || tr.Status().Probes != 0 {
		t.Errorf("tracker counted a cancelled probe: %+v", tr.Status())
	}
}

func TestTCPChecker_ConnectsOrSaysWhy(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	tests := []struct {
		name       string
		addr       string
		wantReason Reason
	}{
		{"an open port is healthy", a.addr(), ReasonOK},
		{"a closed port is refused", closedAddr(t), ReasonRefused},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewTCPChecker(TCPConfig{Addr: tt.addr, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			r := c.Check(context.Background())
			if r.Reason != tt.wantReason || r.OK != (tt.wantReason == ReasonOK) {
				t.Fatalf("got ok=%v %s (%v), want %s", r.OK, r.Reason, r.Err, tt.wantReason)
			}
		})
	}
	t.Run("a cancelled context is a quiet cancellation", func(t *testing.T) {
		c, err := NewTCPChecker(TCPConfig{Addr: a.addr()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if r := c.Check(ctx); r.Reason != ReasonCanceled {
			t.Fatalf("got %s (%v), want canceled", r.Reason, r.Err)
		}
	})
}

func TestCheckFunc_ClassifiesErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want Reason
	}{
		{"nil is a success", nil, ReasonOK},
		{"a deadline is a timeout", context.DeadlineExceeded, ReasonTimeout},
		{"ECONNREFUSED is refused", &net.OpError{Op: "dial", Err: errRefused()}, ReasonRefused},
		{"anything else is an error", errors.New("backend said no"), ReasonError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := CheckFunc(func(context.Context) error { return tt.err }).Check(context.Background())
			if r.Reason != tt.want || r.OK != (tt.want == ReasonOK) || !errors.Is(r.Err, tt.err) {
				t.Fatalf("got ok=%v %s (%v), want %s", r.OK, r.Reason, r.Err, tt.want)
			}
		})
	}
}

func errRefused() error {
	// A real refusal, so the test does not depend on how errno values wrap.
	c, err := net.Dial("tcp", "127.0.0.1:1")
	if err == nil {
		_ = c.Close()
		return errors.New("port 1 accepted a connection")
	}
	return err
}

func TestCheckerFor_PicksTheProbeFromTheTarget(t *testing.T) {
	tests := []struct {
		name    string
		target  string
		cfg     HTTPConfig
		want    string // String() of the checker, or "" for an error
		wantErr bool
	}{
		{name: "an http URL is an HTTP probe", target: "http://127.0.0.1:8080/healthz", want: "GET http://127.0.0.1:8080/healthz"},
		{name: "a URL without a path asks for /", target: "http://127.0.0.1:8080", want: "GET http://127.0.0.1:8080/"},
		{name: "host:port is a TCP probe", target: "127.0.0.1:6379", want: "tcp 127.0.0.1:6379"},
		{name: "a body check needs a URL", target: "127.0.0.1:6379", cfg: HTTPConfig{Body: "ok"}, wantErr: true},
		{name: "another scheme is refused", target: "ftp://127.0.0.1/", wantErr: true},
		{name: "a bare host is refused", target: "localhost", wantErr: true},
		{name: "a port out of range is refused", target: "127.0.0.1:70000", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := CheckerFor(tt.target, tt.cfg)
			if tt.wantErr {
				if !errors.Is(err, ErrBadTarget) {
					t.Fatalf("got %v, %v; want an error wrapping ErrBadTarget", c, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.(interface{ String() string }).String(); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckRise_NeedsRiseSuccessesInARow(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	c, err := NewHTTPChecker(HTTPConfig{URL: a.url("/"), Transport: testTransport(t)})
	if err != nil {
		t.Fatal(err)
	}
	results, healthy := CheckRise(context.Background(), c, 3, time.Millisecond)
	if !healthy || len(results) != 3 {
		t.Fatalf("healthy=%v after %d probes, want healthy after 3", healthy, len(results))
	}

	a.status.Store(http.StatusInternalServerError)
	results, healthy = CheckRise(context.Background(), c, 3, time.Millisecond)
	if healthy || len(results) != 1 || results[0].Reason != ReasonStatus {
		t.Fatalf("healthy=%v after %v, want unhealthy after one failed probe", healthy, results)
	}
}
