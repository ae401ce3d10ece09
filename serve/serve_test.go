package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// fakeOp runs a scripted swap: it emits events through emit, as the switcher does on
// the swapping goroutine, and returns what result/err say.
type fakeOp struct {
	emit  func(switcher.Event)
	calls atomic.Int32
	// hold, when set, keeps the swap running until it is closed.
	hold    chan struct{}
	err     error // returned before the plan (a refusal)
	result  *switcher.Result
	failAt  switcher.Step // fails there, after its plan, when set
	pingErr error
	mu      sync.Mutex
	images  []string
}

var errBusy = errors.New("web is locked by swap deploy web on ci-1 (pid 42)")

func (f *fakeOp) run(ctx context.Context, app, op, image string) (*switcher.Result, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.images = append(f.images, image)
	f.mu.Unlock()
	f.emit(switcher.Event{App: app, Step: switcher.StepLock, Kind: switcher.EventDone, Message: "lock held"})
	if f.err != nil {
		f.emit(switcher.Event{App: app, Step: switcher.StepLock, Kind: switcher.EventFailed, Message: f.err.Error()})
		return nil, f.err
	}
	id := "20261201-080000-0000" + fmt.Sprint(f.calls.Load())
	f.emit(switcher.Event{App: app, Deploy: id, Step: switcher.StepPlan, Kind: switcher.EventDone, Message: op + " planned"})
	if f.hold != nil {
		select {
		case <-f.hold:
		case <-ctx.Done():
			f.emit(switcher.Event{App: app, Deploy: id, Step: switcher.StepGate, Kind: switcher.EventFailed, Message: "cancelled"})
			return &switcher.Result{Plan: switcher.Plan{App: app, Deploy: id}, Outcome: switcher.OutcomeRolledBack}, &switcher.Error{App: app, Step: switcher.StepGate, Err: ctx.Err(), RolledBack: true}
		}
	}
	if f.failAt != "" {
		f.emit(switcher.Event{App: app, Deploy: id, Step: f.failAt, Kind: switcher.EventFailed, Message: "not healthy"})
		return &switcher.Result{Plan: switcher.Plan{App: app, Deploy: id}, Outcome: switcher.OutcomeRolledBack},
			&switcher.Error{App: app, Step: f.failAt, Err: switcher.ErrNotHealthy, RolledBack: true}
	}
	f.emit(switcher.Event{App: app, Deploy: id, Step: switcher.StepShift, Kind: switcher.EventDone, Message: "shift done", Elapsed: 3 * time.Millisecond})
	f.emit(switcher.Event{App: app, Deploy: id, Step: switcher.StepCommit, Kind: switcher.EventDone, Message: "commit done"})
	if f.result != nil {
		return f.result, nil
	}
	return &switcher.Result{Plan: switcher.Plan{App: app, Deploy: id, Op: op}, Outcome: switcher.OutcomeDone}, nil
}

func (f *fakeOp) Deploy(ctx context.Context, app, image string, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "deploy", image)
}
func (f *fakeOp) Switch(ctx context.Context, app string, _ deployments.Color, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "switch", "")
}
func (f *fakeOp) Rollback(ctx context.Context, app string, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "rollback", "")
}
func (f *fakeOp) Promote(ctx context.Context, app string, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "promote", "")
}
func (f *fakeOp) Abort(ctx context.Context, app string, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "abort", "")
}
func (f *fakeOp) Resume(ctx context.Context, app string, _ switcher.Options) (*switcher.Result, error) {
	return f.run(ctx, app, "resume", "")
}
func (f *fakeOp) Status(_ context.Context, app string) (*switcher.AppStatus, error) {
	return &switcher.AppStatus{App: app, Live: deployments.Blue}, nil
}
func (f *fakeOp) History(context.Context, string) ([]switcher.Record, error) { return nil, nil }
func (f *fakeOp) Ping(context.Context) error                                 { return f.pingErr }

const token = "t0k3n-for-tests"

// exitCode is the CLI's mapping for the fakes' errors.
func exitCode(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errBusy):
		return 3
	case errors.Is(err, switcher.ErrBadInput):
		return 2
	}
	return 1
}

func newTestServer(t *testing.T, f *fakeOp) (*Server, *httptest.Server) {
	t.Helper()
	s := New(f, Options{Apps: []string{"web"}, Token: token, Metrics: true, ExitCode: exitCode})
	f.emit = s.Event
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		if f.hold != nil {
			select {
			case <-f.hold:
			default:
				close(f.hold)
			}
		}
		s.Drain(5 * time.Second)
		ts.Close()
	})
	return s, ts
}

func call(t *testing.T, ts *httptest.Server, method, path, tok, body string, header ...string) (int, map[string]any, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

func TestAPI_RefusesBadRequestsAndDoesNothing(t *testing.T) {
	f := &fakeOp{}
	_, ts := newTestServer(t, f)
	for _, tc := range []struct {
		name, method, path, tok, body string
		status                        int
		says                          string
	}{
		{"no token", "POST", "/v1/apps/web/deploy", "", `{"image":"web:v2"}`, 401, "bearer token"},
		{"a wrong token", "POST", "/v1/apps/web/deploy", "nope", `{"image":"web:v2"}`, 401, "bearer token"},
		{"a token that is a prefix of the right one", "POST", "/v1/apps/web/deploy", token[:5], `{"image":"web:v2"}`, 401, "bearer token"},
		{"reads need the token too", "GET", "/v1/apps", "", "", 401, "bearer token"},
		{"bad JSON", "POST", "/v1/apps/web/deploy", token, `{"image":`, 400, "not a JSON object"},
		{"an unknown field", "POST", "/v1/apps/web/deploy", token, `{"imag":"web:v2"}`, 400, "unknown field"},
		{"an unknown app", "POST", "/v1/apps/nope/deploy", token, `{"image":"web:v2"}`, 404, `unknown app "nope"`},
		{"an invalid image reference", "POST", "/v1/apps/web/deploy", token, `{"image":"Web:v2 ;rm"}`, 400, "image"},
		{"a switch without a color", "POST", "/v1/apps/web/switch", token, `{}`, 400, "color"},
		{"a color that is not one", "POST", "/v1/apps/web/switch", token, `{"color":"red"}`, 400, "color"},
		{"an image for a rollback", "POST", "/v1/apps/web/rollback", token, `{"image":"web:v2"}`, 400, "takes no image"},
		{"a bad wait", "POST", "/v1/apps/web/rollback", token, `{"wait":"soon"}`, 400, "wait"},
		{"an unknown deploy", "GET", "/v1/deploys/nope", token, "", 404, "no deploy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := call(t, ts, tc.method, tc.path, tc.tok, tc.body)
			if status != tc.status || !strings.Contains(fmt.Sprint(body["error"]), tc.says) {
				t.Fatalf("%s %s = %d %v, want %d saying %q", tc.method, tc.path, status, body, tc.status, tc.says)
			}
			if status == 401 && h.Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	if n := f.calls.Load(); n != 0 {
		t.Fatalf("a refused request ran %d operation(s)", n)
	}
}

func TestAPI_ADeployIsAcceptedFollowedToItsResultAndShown(t *testing.T) {
	f := &fakeOp{}
	_, ts := newTestServer(t, f)
	status, body, _ := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v2"}`)
	if status != http.StatusAccepted || body["deploy"] == "" || body["events_url"] == "" {
		t.Fatalf("POST deploy = %d %v", status, body)
	}
	id := body["deploy"].(string)
	c, err := NewClient(ts.URL, token)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	final, err := c.Follow(context.Background(), id, func(e switcher.Event) { steps = append(steps, string(e.Step)+" "+string(e.Kind)) })
	if err != nil {
		t.Fatal(err)
	}
	if final.State != StateFinished || final.Outcome != switcher.OutcomeDone || final.ExitCode == nil || *final.ExitCode != 0 {
		t.Fatalf("final = %+v", final)
	}
	// The stream replays everything from the start, the events before the swap was named
	// (the lock) included.
	if want := "lock done,plan done,shift done,commit done"; strings.Join(steps, ",") != want {
		t.Fatalf("events %v, want %s", steps, want)
	}
	status, view, _ := call(t, ts, "GET", "/v1/deploys/"+id, token, "")
	if status != 200 || view["outcome"] != "done" || view["op"] != "deploy" || view["app"] != "web" {
		t.Fatalf("GET deploy = %d %v", status, view)
	}
	if f.images[0] != "web:v2" {
		t.Fatalf("deployed %v", f.images)
	}
}

func TestAPI_AFailedSwapEndsWithItsExitCode(t *testing.T) {
	f := &fakeOp{failAt: switcher.StepVerify}
	_, ts := newTestServer(t, f)
	c, _ := NewClient(ts.URL, token)
	a, err := c.Start(context.Background(), "web", "deploy", map[string]string{"image": "web:v2"}, "")
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.Follow(context.Background(), a.Deploy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *final.ExitCode != 1 || !strings.Contains(final.Error, "not healthy") || final.Outcome != switcher.OutcomeRolledBack {
		t.Fatalf("final = %+v", final)
	}
}

func TestAPI_ABusyLockIs409WithTheHolder(t *testing.T) {
	f := &fakeOp{err: errBusy}
	_, ts := newTestServer(t, f)
	status, body, _ := call(t, ts, "POST", "/v1/apps/web/rollback", token, "")
	if status != http.StatusConflict || !strings.Contains(fmt.Sprint(body["error"]), "pid 42") || body["exit_code"] != float64(3) {
		t.Fatalf("POST rollback on a busy lock = %d %v", status, body)
	}
	c, _ := NewClient(ts.URL, token)
	_, err := c.Start(context.Background(), "web", "rollback", nil, "")
	var ae *APIError
	if !errors.As(err, &ae) || ae.ExitCode != 3 || ae.Status != 409 {
		t.Fatalf("client: %v", err)
	}
}

func TestAPI_AnIdempotencyKeyReturnsTheSameDeployWithoutRunningItAgain(t *testing.T) {
	f := &fakeOp{hold: make(chan struct{})}
	_, ts := newTestServer(t, f)
	_, first, _ := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v2"}`, "Idempotency-Key", "build-77")
	_, again, h := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v2"}`, "Idempotency-Key", "build-77")
	if first["deploy"] == nil || first["deploy"] != again["deploy"] || h.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %v, retry %v (%v)", first, again, h)
	}
	if n := f.calls.Load(); n != 1 {
		t.Fatalf("%d operations ran, want 1", n)
	}
	_, other, _ := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v3"}`, "Idempotency-Key", "build-78")
	if other["deploy"] == first["deploy"] {
		t.Fatal("another key got the same deploy")
	}
	close(f.hold)
}

func TestAPI_DrainLetsARunningSwapFinishThenRefusesNewOnes(t *testing.T) {
	f := &fakeOp{hold: make(chan struct{})}
	s, ts := newTestServer(t, f)
	_, body, _ := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v2"}`)
	id := body["deploy"].(string)
	drained := make(chan struct{})
	go func() { s.Drain(time.Minute); close(drained) }()
	for stopping := false; !stopping; {
		s.mu.Lock()
		stopping = s.stopping
		s.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	if status, _, _ := call(t, ts, "POST", "/v1/apps/web/rollback", token, ""); status != http.StatusServiceUnavailable {
		t.Fatalf("a new swap while stopping = %d, want 503", status)
	}
	select {
	case <-drained:
		t.Fatal("Drain returned while a swap ran")
	default:
	}
	close(f.hold)
	<-drained
	_, view, _ := call(t, ts, "GET", "/v1/deploys/"+id, token, "")
	if view["outcome"] != "done" {
		t.Fatalf("the swap did not finish: %v", view)
	}
}

func TestAPI_DrainCancelsWhatOutlivesItsTimeout(t *testing.T) {
	f := &fakeOp{hold: make(chan struct{})}
	s, ts := newTestServer(t, f)
	_, body, _ := call(t, ts, "POST", "/v1/apps/web/deploy", token, `{"image":"web:v2"}`)
	s.Drain(100 * time.Millisecond)
	_, view, _ := call(t, ts, "GET", "/v1/deploys/"+body["deploy"].(string), token, "")
	if view["outcome"] != switcher.OutcomeRolledBack || view["state"] != StateFinished {
		t.Fatalf("after Drain's timeout: %v", view)
	}
}

func TestAPI_HealthReadinessAndMetrics(t *testing.T) {
	f := &fakeOp{}
	_, ts := newTestServer(t, f)
	if status, _, _ := call(t, ts, "GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz = %d", status)
	}
	if status, _, _ := call(t, ts, "GET", "/readyz", "", ""); status != 200 {
		t.Fatalf("readyz = %d", status)
	}
	f.pingErr = errors.New("HAProxy: lb1: connection refused")
	if status, body, _ := call(t, ts, "GET", "/readyz", "", ""); status != 503 || !strings.Contains(fmt.Sprint(body["error"]), "lb1") {
		t.Fatalf("readyz with HAProxy down = %d %v", status, body)
	}
	c, _ := NewClient(ts.URL, token)
	a, _ := c.Start(context.Background(), "web", "deploy", map[string]string{"image": "web:v2"}, "")
	if _, err := c.Follow(context.Background(), a.Deploy, nil); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`swap_operations_total{app="web",op="deploy",outcome="done"} 1`, "swap_cutover_seconds_count 1",
		`swap_step_duration_seconds_count{result="done",step="shift"} 1`, "go_goroutines"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestNewClient_TakesHTTPAndUnixAddressesOnly(t *testing.T) {
	for _, ok := range []string{"http://127.0.0.1:7070", "https://swap.internal", "unix:///run/swap.sock"} {
		if _, err := NewClient(ok, ""); err != nil {
			t.Errorf("NewClient(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"127.0.0.1:7070", "unix://", "ftp://x", ""} {
		if _, err := NewClient(bad, ""); err == nil {
			t.Errorf("NewClient(%q) accepted it", bad)
		}
	}
}

func TestAPI_ADeployWaitingInPreviewSaysSo(t *testing.T) {
	f := &fakeOp{result: &switcher.Result{Outcome: switcher.OutcomeWaiting, Message: "green waits in preview"}}
	_, ts := newTestServer(t, f)
	c, _ := NewClient(ts.URL, token)
	a, err := c.Start(context.Background(), "web", "deploy", map[string]string{"image": "web:v2"}, "")
	if err != nil {
		t.Fatal(err)
	}
	final, err := c.Follow(context.Background(), a.Deploy, nil)
	if err != nil {
		t.Fatal(err)
	}
	if final.State != StateWaiting || final.Outcome != switcher.OutcomeWaiting || *final.ExitCode != 0 {
		t.Fatalf("final = %+v, want waiting for promote", final)
	}
}
