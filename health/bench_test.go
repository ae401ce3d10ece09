package health

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"
)

// The cost of one probe against a local keep-alive server (whose own cost is
// included: it runs in the same process), with this package's Transport and,
// for comparison, with net/http's client as tuned for probing. ns/op is the
// wall time of one probe after another; cpu-ns/op the CPU the process spent
// per probe (from getrusage), which is what matters at scale.
//
//	go test -run '^$' -bench Probe -benchmem ./health
func BenchmarkProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()

	b.Run("HTTPChecker", func(b *testing.B) {
		tr := &Transport{}
		defer tr.CloseIdle()
		c, err := NewHTTPChecker(HTTPConfig{URL: srv.URL + "/health", Transport: tr})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if r := c.Check(ctx); !r.OK {
				b.Fatal(r)
			}
		}
	})

	b.Run("net/http", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			pctx, cancel := context.WithTimeout(ctx, DefaultTimeout)
			req, _ := http.NewRequestWithContext(pctx, http.MethodGet, srv.URL+"/health", nil)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
			_ = resp.Body.Close()
			cancel()
		}
	})

	b.Run("TCPChecker", func(b *testing.B) {
		c, err := NewTCPChecker(TCPConfig{Addr: srv.Listener.Addr().String()})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		b.ReportAllocs()
		defer reportCPU(b)()
		for b.Loop() {
			if r := c.Check(ctx); !r.OK {
				b.Fatal(r)
			}
		}
	})
}

// reportCPU reports the process's CPU time per op, from now until the
// returned func runs.
func reportCPU(b *testing.B) func() {
	start := cpuNow(b)
	return func() {
		b.ReportMetric(float64(cpuNow(b)-start)/float64(b.N), "cpu-ns/op")
	}
}

func cpuNow(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkTracker_Observe is the rise/fall bookkeeping per result.
func BenchmarkTracker_Observe(b *testing.B) {
	tr := NewTracker("t", 2, 3)
	okR, failR := ok(time.Now()), fail(time.Now(), ReasonStatus)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i%7 == 0 {
			tr.Observe(failR)
		} else {
			tr.Observe(okR)
		}
		i++
	}
}

// BenchmarkSchedulerHeap is one pop and one push in a heap of 5,000 targets.
func BenchmarkSchedulerHeap(b *testing.B) {
	var h entryHeap
	for i := range 5000 {
		h.push(&entry{due: time.Duration(i) * 200 * time.Microsecond})
	}
	b.ReportAllocs()
	for b.Loop() {
		e := h.pop()
		e.due += time.Second
		h.push(e)
	}
}
