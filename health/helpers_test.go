package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// noLeaks fails the test if goroutines started during it are still running
// after every other cleanup has run. Call it first in a test (cleanups run
// last-in first-out) and do not use it in parallel tests.
func noLeaks(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines leaked: %d running, %d before the test:\n%s", n, base, buf)
				return
			}
			time.Sleep(5 * time.Millisecond) // poll, bounded by the deadline above
		}
	})
}

// testTransport is a private transport whose connections are closed when the test ends.
func testTransport(t *testing.T) *Transport {
	t.Helper()
	tr := &Transport{}
	t.Cleanup(tr.CloseIdle)
	return tr
}

// app is a test HTTP target whose answers the test controls.
type app struct {
	srv    *httptest.Server
	status atomic.Int32 // answer status; 0 means 200
	hits   atomic.Int64
	// handle, if set, replaces the default answer.
	handle func(w http.ResponseWriter, r *http.Request)
}

func newApp(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) *app {
	t.Helper()
	a := &app{handle: handle}
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.hits.Add(1)
		if a.handle != nil {
			a.handle(w, r)
			return
		}
		code := int(a.status.Load())
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("status: " + http.StatusText(code)))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) url(path string) string { return a.srv.URL + path }

func (a *app) addr() string { return strings.TrimPrefix(a.srv.URL, "http://") }

// httpTarget is an HTTP target on a's /health with a private client.
func httpTarget(t *testing.T, id string, a *app, timeout time.Duration) Target {
	t.Helper()
	c, err := NewHTTPChecker(HTTPConfig{URL: a.url("/health"), Timeout: timeout, Transport: testTransport(t)})
	if err != nil {
		t.Fatal(err)
	}
	return Target{ID: id, Checker: c}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// runScheduler runs s until the test ends and checks that Run returns nil.
func runScheduler(t *testing.T, s *Scheduler) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run returned %v after cancellation, want nil", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// recorder collects transitions.
type recorder struct {
	mu  sync.Mutex
	got []Transition
	ch  chan Transition
}

func newRecorder() *recorder { return &recorder{ch: make(chan Transition, 1024)} }

func (r *recorder) listen(t Transition) {
	r.mu.Lock()
	r.got = append(r.got, t)
	r.mu.Unlock()
	r.ch <- t
}

func (r *recorder) all() []Transition {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Transition(nil), r.got...)
}

// next waits for the next transition; it fails the test after a generous
// deadline (a hang guard, not a speed assertion).
func (r *recorder) next(t *testing.T) Transition {
	t.Helper()
	select {
	case tr := <-r.ch:
		return tr
	case <-time.After(10 * time.Second):
		t.Fatalf("no transition after 10s; so far: %v", r.all())
		return Transition{}
	}
}

// eventually polls cond until it holds, failing after a generous deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond) // poll, bounded by the deadline above
	}
}

// script is a Checker that returns prepared results in order, then blocks
// until its context ends.
type script struct {
	mu      sync.Mutex
	results []Result
	calls   atomic.Int64
}

func (s *script) Check(ctx context.Context) Result {
	s.calls.Add(1)
	s.mu.Lock()
	if len(s.results) > 0 {
		r := s.results[0]
		s.results = s.results[1:]
		s.mu.Unlock()
		return r
	}
	s.mu.Unlock()
	<-ctx.Done()
	return Result{Reason: ReasonCanceled, Err: ctx.Err()}
}

func ok(at time.Time) Result { return Result{OK: true, Start: at} }

func fail(at time.Time, reason Reason) Result {
	return Result{Reason: reason, Err: &net.OpError{Op: "test", Err: errString(reason.String())}, Start: at}
}

type errString string

func (e errString) Error() string { return string(e) }
