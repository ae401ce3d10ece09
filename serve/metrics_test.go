package serve

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swap-dev/swap/switcher"
)

// scrape GETs /metrics and parses the text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics = %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	return fams
}

// sample finds the sample of family whose labels are exactly labels (nil: not there).
func sample(fams map[string]*dto.MetricFamily, family string, labels map[string]string) *dto.Metric {
	f := fams[family]
	if f == nil {
		return nil
	}
	for _, m := range f.Metric {
		if len(m.Label) != len(labels) {
			continue
		}
		ok := true
		for _, l := range m.Label {
			if labels[l.GetName()] != l.GetValue() {
				ok = false
			}
		}
		if ok {
			return m
		}
	}
	return nil
}

func counter(t *testing.T, fams map[string]*dto.MetricFamily, family string, labels map[string]string) float64 {
	t.Helper()
	m := sample(fams, family, labels)
	if m == nil || m.Counter == nil {
		t.Fatalf("/metrics has no counter %s%v", family, labels)
	}
	return m.Counter.GetValue()
}

// HAProxy's commands are counted by verb and result, the reconcile loop's passes and
// failures by app, and its lag in a histogram; all in the text format Prometheus reads.
func TestMetrics_CountHAProxyCommandsAndReconcilePassesWithTheirLag(t *testing.T) {
	met := NewMetrics()
	s := New(&fakeOp{}, Options{Apps: []string{"web", "api"}, Token: token, Metrics: true, Meter: met, ExitCode: exitCode,
		Loop: &fakeLoop{}})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()

	// Before anything ran, each app's pass counters are there, at 0.
	fams := scrape(t, ts.URL)
	for _, app := range []string{"web", "api"} {
		if n := counter(t, fams, "swap_reconcile_pass_failures_total", map[string]string{"app": app}); n != 0 {
			t.Fatalf("failures of %s before any pass: %v", app, n)
		}
	}

	refused := errors.New("No such server.")
	met.HAProxyCommand("lb1", "set server", nil)
	met.HAProxyCommand("lb2", "set server", nil)
	met.HAProxyCommand("lb1", "set server", refused)
	met.HAProxyCommand("lb1", "add map", nil)
	met.ReconcilePass(switcher.PassReport{App: "web", Lag: 3 * time.Millisecond})
	met.ReconcilePass(switcher.PassReport{App: "web", Err: errors.New("consul: connection refused")})
	met.ReconcilePass(switcher.PassReport{App: "web", Lag: 40 * time.Millisecond})
	met.ReconcilePass(switcher.PassReport{App: "api"}) // a resync: no lag

	fams = scrape(t, ts.URL)
	for _, tc := range []struct {
		family string
		labels map[string]string
		want   float64
	}{
		{"swap_haproxy_commands_total", map[string]string{"verb": "set server", "result": "ok"}, 2},
		{"swap_haproxy_commands_total", map[string]string{"verb": "set server", "result": "error"}, 1},
		{"swap_haproxy_commands_total", map[string]string{"verb": "add map", "result": "ok"}, 1},
		{"swap_reconcile_passes_total", map[string]string{"app": "web"}, 3},
		{"swap_reconcile_passes_total", map[string]string{"app": "api"}, 1},
		{"swap_reconcile_pass_failures_total", map[string]string{"app": "web"}, 1},
		{"swap_reconcile_pass_failures_total", map[string]string{"app": "api"}, 0},
	} {
		if got := counter(t, fams, tc.family, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.family, tc.labels, got, tc.want)
		}
	}
	if m := sample(fams, "swap_haproxy_commands_total", map[string]string{"verb": "add map", "result": "error"}); m != nil {
		t.Errorf("a series for errors that never happened: %v", m)
	}
	h := sample(fams, "swap_reconcile_lag_seconds", map[string]string{})
	if h == nil || h.Histogram == nil {
		t.Fatal("/metrics has no swap_reconcile_lag_seconds histogram")
	}
	if h.Histogram.GetSampleCount() != 2 || h.Histogram.GetSampleSum() < 0.042 || h.Histogram.GetSampleSum() > 0.044 {
		t.Fatalf("lag: %d samples, sum %v; want the two passes that followed a change, 43ms", h.Histogram.GetSampleCount(), h.Histogram.GetSampleSum())
	}
	// The 3ms pass is under the 4ms bucket, the 40ms one is not.
	for _, b := range h.Histogram.Bucket {
		if b.GetUpperBound() == 0.004 && b.GetCumulativeCount() != 1 {
			t.Errorf("bucket le=0.004 holds %d, want 1", b.GetCumulativeCount())
		}
	}
}

// fakeLoop is a reconcile loop whose status the test sets.
type fakeLoop struct {
	mu     sync.Mutex
	status switcher.LoopStatus
}

func (f *fakeLoop) Status() switcher.LoopStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeLoop) set(apps ...switcher.AppLoopStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = switcher.LoopStatus{Apps: apps}
}

// /readyz is ready only when the dependencies answer and the reconcile loop's last
// pass of every app worked; otherwise 503 with the reason and the loop's state.
func TestAPI_ReadyzSaysNotReadyUntilTheReconcileLoopIsInSync(t *testing.T) {
	f, loop := &fakeOp{}, &fakeLoop{}
	s := New(f, Options{Apps: []string{"web"}, Token: token, ExitCode: exitCode, Loop: loop})
	ts := httptest.NewServer(s.Handler())
	defer ts.Close()
	web := switcher.AppLoopStatus{App: "web"}
	loop.set(web)
	if status, body, _ := call(t, ts, "GET", "/readyz", "", ""); status != 503 || !strings.Contains(fmt.Sprint(body["error"]), "web: no pass yet") {
		t.Fatalf("readyz before the loop's first pass = %d %v", status, body)
	}
	web.Passes, web.LastSuccess = 1, time.Now()
	loop.set(web)
	if status, body, _ := call(t, ts, "GET", "/readyz", "", ""); status != 200 || body["status"] != "ready" || body["reconcile"] == nil {
		t.Fatalf("readyz in sync = %d %v", status, body)
	}
	// Consul goes away: its ping fails and so do the loop's passes.
	f.pingErr = errors.New("consul: connection refused")
	web.Passes, web.Failures, web.LastError = 3, 2, "reconcile web: list its instances in Consul: connection refused"
	loop.set(web)
	status, body, _ := call(t, ts, "GET", "/readyz", "", "")
	if msg := fmt.Sprint(body["error"]); status != 503 || !strings.Contains(msg, "consul: connection refused") ||
		!strings.Contains(msg, "web: 2 failed passes in a row") {
		t.Fatalf("readyz during a Consul outage = %d %v", status, body)
	}
	// Consul is back but the loop has not run a pass yet (its backoff): still not ready.
	f.pingErr = nil
	if status, body, _ := call(t, ts, "GET", "/readyz", "", ""); status != 503 || !strings.Contains(fmt.Sprint(body["error"]), "the reconcile loop is not in sync") {
		t.Fatalf("readyz after the outage, before a pass = %d %v", status, body)
	}
	web.Passes, web.Failures, web.LastError = 4, 0, ""
	loop.set(web)
	if status, body, _ := call(t, ts, "GET", "/readyz", "", ""); status != 200 {
		t.Fatalf("readyz after a pass worked = %d %v", status, body)
	}
}
