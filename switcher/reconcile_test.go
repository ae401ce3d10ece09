package switcher

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// The fake balancer as Rotation: its Status "DRAIN"/"MAINT" is the admin state.

func (f *fakeBalancer) ServerAdmins(_ context.Context, backend string) ([]ServerAdmin, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []ServerAdmin
	for name, s := range f.servers[backend] {
		a := AdminReady
		switch s.Status {
		case "DRAIN":
			a = AdminDrain
		case "MAINT":
			a = AdminMaint
		}
		out = append(out, ServerAdmin{LB: "lb1", Name: name, Admin: a, Up: !f.down[name]})
	}
	return out, nil
}

func (f *fakeBalancer) SetAdmin(_ context.Context, backend string, servers []string, a Admin) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, name := range servers {
		s, ok := f.servers[backend][name]
		if !ok {
			return errors.New("no server " + backend + "/" + name)
		}
		s.Status = map[Admin]string{AdminReady: "", AdminDrain: "DRAIN", AdminMaint: "MAINT"}[a]
	}
	return nil
}

func (f *fakeBalancer) AddMissing(ctx context.Context, backend string, servers []Server) error {
	f.mu.Lock()
	var add []Server
	for _, srv := range servers {
		if _, ok := f.servers[backend][srv.Name]; !ok {
			add = append(add, srv)
		}
	}
	f.mu.Unlock()
	return f.AddServers(ctx, backend, add)
}

func (f *fakeBalancer) RouteEntries(_ context.Context, key string) (map[string]RouteEntries, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e := RouteEntries{Route: f.routes[key], Preview: f.preview[key]}
	if w := f.canary[key]; w > 0 {
		e.Canary = "web_green:" + strconv.Itoa(w)
	}
	return map[string]RouteEntries{"lb1": e}, nil
}

func (f *fakeLocker) LockHolder(_ context.Context, app string) (string, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held[app] {
		return "pid 1 on host", true, nil
	}
	return "", false, nil
}

func (h *harness) reconciler() *Reconciler {
	return &Reconciler{Config: h.s.Config, Registry: h.reg, Balancer: h.lb, Rotation: h.lb, Store: h.store,
		Locks: h.s.Locker.(*fakeLocker), Host: "h1"}
}

func (h *harness) pass(t *testing.T, r *Reconciler) PassResult {
	t.Helper()
	res, err := r.Pass(context.Background(), "web")
	if err != nil {
		t.Fatalf("pass: %v", err)
	}
	return res
}

func (h *harness) status(backend, server string) string {
	h.lb.mu.Lock()
	defer h.lb.mu.Unlock()
	if s, ok := h.lb.servers[backend][server]; ok {
		return s.Status
	}
	return "gone"
}

func twoReplicas(a *deployments.App) { a.Replicas = 2 }

func TestReconcilePass_TakesOutAFailingInstanceAndPutsItBackOnce(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	if res := h.pass(t, r); len(res.Applied) != 0 {
		t.Fatalf("a pass right after a deploy changed %v", res.Applied)
	}
	h.reg.mu.Lock()
	h.reg.failing["web-blue-0"] = true
	h.reg.mu.Unlock()
	if res := h.pass(t, r); len(res.Applied) != 1 || res.Applied[0].Kind != ActTakeOut {
		t.Fatalf("pass with web-blue-0 failing applied %v, want a take-out", res.Applied)
	}
	if got := h.status("web_blue", "web-blue-0"); got != "DRAIN" {
		t.Fatalf("web-blue-0 is %q after the take-out, want DRAIN", got)
	}
	if !h.store.has(RotationKey("web", "h1")) {
		t.Fatal("the take-out is not recorded")
	}
	if res := h.pass(t, r); len(res.Applied) != 0 {
		t.Fatalf("a repeated pass changed %v", res.Applied)
	}
	h.reg.mu.Lock()
	h.reg.failing["web-blue-0"] = false
	h.reg.mu.Unlock()
	if res := h.pass(t, r); len(res.Applied) != 1 || res.Applied[0].Kind != ActPutBack {
		t.Fatalf("pass with web-blue-0 passing again applied %v, want a put-back", res.Applied)
	}
	if got := h.status("web_blue", "web-blue-0"); got != "" {
		t.Fatalf("web-blue-0 is %q after the put-back, want ready", got)
	}
	if h.store.has(RotationKey("web", "h1")) {
		t.Fatal("the record is left after the put-back")
	}
	if res := h.pass(t, r); len(res.Applied) != 0 {
		t.Fatalf("a repeated pass changed %v", res.Applied)
	}
}

func TestReconcilePass_NeverPutsBackAServerItDidNotTakeOut(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	if err := h.lb.Drain(context.Background(), "web_blue", []string{"web-blue-0"}); err != nil {
		t.Fatal(err)
	}
	if res := h.pass(t, h.reconciler()); len(res.Applied) != 0 {
		t.Fatalf("pass applied %v to a server drained by someone else", res.Applied)
	}
	if got := h.status("web_blue", "web-blue-0"); got != "DRAIN" {
		t.Fatalf("web-blue-0 is %q, want still DRAIN", got)
	}
}

func TestReconcilePass_LeavesAnAppAloneWhileASwapHoldsItsLock(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	h.lb.routes["web.example.com"] = "web_green"
	u := h.s.Locker.(*fakeLocker).tryLock("web")
	res := h.pass(t, h.reconciler())
	if res.Skipped == "" || len(res.Applied) != 0 || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("pass under a swap's lock: %+v, route %s", res, h.lb.route("web.example.com"))
	}
	if err := u.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if res := h.pass(t, h.reconciler()); len(res.Applied) != 1 || h.lb.route("web.example.com") != "web_blue" {
		t.Fatalf("pass after the lock: %+v, route %s", res, h.lb.route("web.example.com"))
	}
}

func TestReconcilePass_RoutesFollowTheLiveColorInKV(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deploy(t, "web:v2") // green live
	h.lb.routes["web.example.com"] = "web_blue"
	h.lb.preview["web.example.com"] = "web_blue"
	h.lb.canary["web.example.com"] = 20
	res := h.pass(t, h.reconciler())
	if len(res.Applied) != 3 {
		t.Fatalf("pass applied %v, want route, preview and canary", res.Applied)
	}
	if got := h.lb.route("web.example.com"); got != "web_green" {
		t.Fatalf("route %s, want web_green", got)
	}
	if h.lb.preview["web.example.com"] != "" || h.lb.canary["web.example.com"] != 0 {
		t.Fatalf("preview %q canary %d left", h.lb.preview["web.example.com"], h.lb.canary["web.example.com"])
	}
	if res := h.pass(t, h.reconciler()); len(res.Applied) != 0 {
		t.Fatalf("a repeated pass changed %v", res.Applied)
	}
}

func TestReconcilePass_HoldsAnAppWithAnInterruptedSwap(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	j := &storedJournal{Journal: Journal{Plan: Plan{App: "web", Deploy: "d2", From: deployments.Blue, To: deployments.Green}, Step: StepShift, Status: JournalRunning}}
	if err := h.s.kv().saveJournal(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	h.lb.routes["web.example.com"] = "web_green"
	res := h.pass(t, h.reconciler())
	if res.Skipped == "" || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("pass with an interrupted swap: %+v, route %s", res, h.lb.route("web.example.com"))
	}
}

func TestReconcilePass_ReportsAChangeThatFailed(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	r.Rotation = failingRotation{h.lb}
	h.reg.mu.Lock()
	h.reg.failing["web-blue-0"] = true
	h.reg.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if _, err := r.Pass(ctx, "web"); !errors.Is(err, ErrNotInLine) {
		t.Fatalf("pass with a failing HAProxy: %v, want ErrNotInLine", err)
	}
	if !h.store.has(RotationKey("web", "h1")) {
		t.Fatal("a take-out that may have happened is not recorded")
	}
}

type failingRotation struct{ *fakeBalancer }

func (failingRotation) SetAdmin(context.Context, string, []string, Admin) error {
	return errors.New("haproxy lb1: connection refused")
}

// Consul passes the instance again while the pass that took it out runs: Settle's next
// pass puts it back, so a one-shot hook never leaves the in-between state behind.
func TestReconcileSettle_PutsBackAnInstanceConsulPassedAgainDuringThePass(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	h.reg.mu.Lock()
	h.reg.failing["web-blue-0"] = true
	h.reg.mu.Unlock()
	r.Rotation = flipOnSet{fakeBalancer: h.lb, reg: h.reg}
	res, err := r.Settle(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 2 || res.Applied[0].Kind != ActTakeOut || res.Applied[1].Kind != ActPutBack {
		t.Fatalf("settle applied %v, want a take-out then a put-back", res.Applied)
	}
	if got := h.status("web_blue", "web-blue-0"); got != "" {
		t.Fatalf("web-blue-0 is %q, want ready", got)
	}
}

// flipOnSet makes every failing instance pass again as soon as a server is drained.
type flipOnSet struct {
	*fakeBalancer
	reg *fakeRegistry
}

func (f flipOnSet) SetAdmin(ctx context.Context, backend string, servers []string, a Admin) error {
	err := f.fakeBalancer.SetAdmin(ctx, backend, servers, a)
	f.reg.mu.Lock()
	clear(f.reg.failing)
	f.reg.mu.Unlock()
	return err
}

// chanFeed reports a change whenever the test sends on it.
type chanFeed chan struct{}

func (c chanFeed) WatchApp(ctx context.Context, _ string, changed func(), _ func(error)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c:
			changed()
		}
	}
}

// flakyRegistry fails its first n reads.
type flakyRegistry struct {
	*fakeRegistry
	mu sync.Mutex
	n  int
}

func (f *flakyRegistry) Instances(ctx context.Context, app string) ([]RegisteredInstance, error) {
	f.mu.Lock()
	fail := f.n > 0
	f.n--
	f.mu.Unlock()
	if fail {
		return nil, errors.New("consul: connection refused")
	}
	return f.fakeRegistry.Instances(ctx, app)
}

func TestReconcilerRun_FollowsChangesRetriesFailuresAndStopsWithItsContext(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	r.Registry = &flakyRegistry{fakeRegistry: h.reg, n: 2} // the first passes fail: Consul is down
	h.lb.routes["web.example.com"] = "web_green"
	feed := make(chanFeed)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, feed, time.Hour) }()
	waitFor(t, "the route to follow KV after Consul came back", func() bool { return h.lb.route("web.example.com") == "web_blue" })

	h.reg.mu.Lock()
	h.reg.failing["web-blue-1"] = true
	h.reg.mu.Unlock()
	feed <- struct{}{}
	waitFor(t, "web-blue-1 to be taken out", func() bool { return h.status("web_blue", "web-blue-1") == "DRAIN" })

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// outageRegistry fails every read while down is set: Consul is away.
type outageRegistry struct {
	*fakeRegistry
	down atomic.Bool
}

func (o *outageRegistry) Instances(ctx context.Context, app string) ([]RegisteredInstance, error) {
	if o.down.Load() {
		return nil, errors.New("consul: connection refused")
	}
	return o.fakeRegistry.Instances(ctx, app)
}

// outageLoop runs the loop of a deployed harness on feed, with a registry that fails
// while its down flag is set, until the test ends. Every pass is sent on reports; the
// first has run and followed no change.
func outageLoop(t *testing.T, feed ChangeFeed) (*harness, *Reconciler, *outageRegistry, chan PassReport) {
	t.Helper()
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	reg := &outageRegistry{fakeRegistry: h.reg}
	r.Registry = reg
	reports := make(chan PassReport, 100)
	r.OnPass = func(p PassReport) { reports <- p }
	if err := r.Status().InSync(); !errors.Is(err, ErrLoopNotInSync) || !strings.Contains(err.Error(), "web: no pass yet") {
		t.Fatalf("before any pass: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx, feed, time.Hour) }()
	t.Cleanup(func() { cancel(); <-done })
	if p := <-reports; p.Err != nil || p.Lag != 0 {
		t.Fatalf("the first pass: %+v (it follows no change: no lag)", p)
	}
	return h, r, reg, reports
}

// The loop's Status says whether every app's last pass worked: not in sync while Consul
// is away, with the error, and in sync again once a pass works; OnPass hears each pass,
// with the lag from the change seen to HAProxy in line.
func TestReconcilerRun_StatusFollowsOutagesAndPassesReportTheirLag(t *testing.T) {
	feed := make(chanFeed)
	h, r, reg, reports := outageLoop(t, feed)
	if err := r.Status().InSync(); err != nil {
		t.Fatalf("after a pass that worked: %v", err)
	}

	// A change is seen, but Consul is away: the pass fails, the status says so.
	reg.down.Store(true)
	h.reg.mu.Lock()
	h.reg.failing["web-blue-1"] = true
	h.reg.mu.Unlock()
	feed <- struct{}{}
	if p := <-reports; p.Err == nil || p.Lag != 0 {
		t.Fatalf("a pass while Consul is away: %+v", p)
	}
	err := r.Status().InSync()
	if !errors.Is(err, ErrLoopNotInSync) || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("while Consul is away: %v", err)
	}
	st := r.Status().Apps[0]
	if st.Failures < 1 || st.LastSuccess.IsZero() || st.Passes < 2 {
		t.Fatalf("status while Consul is away: %+v", st)
	}

	// Consul is back: the backoff's pass brings HAProxy in line, with the lag since
	// the change was seen.
	reg.down.Store(false)
	var p PassReport
	for p = range reports {
		if p.Err == nil {
			break
		}
	}
	if p.Lag <= 0 || len(p.Result.Applied) == 0 {
		t.Fatalf("the pass after the outage: %+v, want the take-out with its lag", p)
	}
	if h.status("web_blue", "web-blue-1") != "DRAIN" {
		t.Fatal("web-blue-1 was not taken out")
	}
	if err := r.Status().InSync(); err != nil {
		t.Fatalf("after Consul came back: %v", err)
	}
}

// failFeed reports a failed query whenever the test sends on it, and no change.
type failFeed chan error

func (f failFeed) WatchApp(ctx context.Context, _ string, _ func(), failed func(error)) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-f:
			failed(err)
		}
	}
}

// A failed Consul query the feed reports makes the loop run a pass at once — no change
// and no resync needed — so its status says it is not in sync; no lag is counted for it.
func TestReconcilerRun_AFailedWatchQueryLeadsToAPassThatSaysConsulIsAway(t *testing.T) {
	feed := make(failFeed)
	_, r, reg, reports := outageLoop(t, feed)
	reg.down.Store(true)
	feed <- errors.New("consul: connection refused")
	p := <-reports
	if p.Err == nil || p.Lag != 0 {
		t.Fatalf("the pass after a failed query: %+v", p)
	}
	if err := r.Status().InSync(); !errors.Is(err, ErrLoopNotInSync) {
		t.Fatalf("status after a failed query: %v", err)
	}
	reg.down.Store(false)
	if p := <-reports; p.Err != nil || p.Lag != 0 {
		t.Fatalf("the backoff's pass once Consul answers: %+v (no change was seen: no lag)", p)
	}
	if err := r.Status().InSync(); err != nil {
		t.Fatal(err)
	}
}

// snapshot copies the fake HAProxy's servers and routes: what its files hold.
func (f *fakeBalancer) snapshot() (map[string]map[string]*ServerStat, map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	servers := map[string]map[string]*ServerStat{}
	for be, m := range f.servers {
		servers[be] = map[string]*ServerStat{}
		for n, s := range m {
			c := *s
			servers[be][n] = &c
		}
	}
	return servers, maps.Clone(f.routes)
}

// restart starts the fake HAProxy again from the files of snapshot.
func (f *fakeBalancer) restart(servers map[string]map[string]*ServerStat, routes map[string]string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.servers, f.routes = servers, routes
}

func TestReconcilePass_AnHAProxyRestartedFromStaleFilesConvergesToTheLiveColor(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1") // blue live
	staleServers, staleRoutes := h.lb.snapshot()
	h.deploy(t, "web:v2") // green live, blue retired
	_, wantGreen := h.lb.snapshot()
	if wantGreen["web.example.com"] != "web_green" {
		t.Fatalf("route after the second deploy: %s", wantGreen["web.example.com"])
	}
	greenAddrs := map[string]string{}
	h.lb.mu.Lock()
	for n, s := range h.lb.servers["web_green"] {
		greenAddrs[n] = s.Addr
	}
	h.lb.mu.Unlock()

	h.lb.restart(staleServers, staleRoutes) // lists blue's servers, routes to blue
	res := h.pass(t, h.reconciler())
	var kinds []ActionKind
	for _, a := range res.Applied {
		kinds = append(kinds, a.Kind)
	}
	if want := []ActionKind{ActAdd, ActRoute, ActRemove}; !slices.Equal(kinds, want) {
		t.Fatalf("pass on the stale HAProxy applied %v, want %v", res.Applied, want)
	}
	if got := h.lb.route("web.example.com"); got != "web_green" {
		t.Fatalf("route %s after the pass, want web_green", got)
	}
	h.lb.mu.Lock()
	got := map[string]string{}
	for n, s := range h.lb.servers["web_green"] {
		got[n] = s.Addr
		if s.Backup {
			t.Errorf("%s was added as a backup server", n)
		}
	}
	blueLeft := len(h.lb.servers["web_blue"])
	h.lb.mu.Unlock()
	if !maps.Equal(got, greenAddrs) {
		t.Fatalf("web_green after the pass: %v, want the stage's %v", got, greenAddrs)
	}
	if blueLeft != 0 {
		t.Fatalf("%d of blue's servers are left, Consul no longer has them", blueLeft)
	}
	if res := h.pass(t, h.reconciler()); len(res.Applied) != 0 {
		t.Fatalf("a repeated pass changed %v", res.Applied)
	}
}

func TestReconcilePass_AddsOnlyTheServersConsulPassesAndNeverUnderASwap(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	if err := h.lb.RemoveServers(context.Background(), "web_blue", []string{"web-blue-0", "web-blue-1"}); err != nil {
		t.Fatal(err)
	}
	u := h.s.Locker.(*fakeLocker).tryLock("web")
	if res := h.pass(t, h.reconciler()); res.Skipped == "" || h.lb.serverCount("web_blue") != 0 {
		t.Fatalf("pass under a swap's lock: %+v, %d servers in web_blue", res, h.lb.serverCount("web_blue"))
	}
	if err := u.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	h.reg.mu.Lock()
	h.reg.failing["web-blue-1"] = true
	h.reg.mu.Unlock()
	res := h.pass(t, h.reconciler())
	if len(res.Applied) != 1 || res.Applied[0].Kind != ActAdd || !slices.Equal(res.Applied[0].Servers, []string{"web-blue-0"}) {
		t.Fatalf("pass applied %v, want web-blue-0 added", res.Applied)
	}
	if len(res.Notes) != 1 || !strings.Contains(res.Notes[0], "web-blue-1") {
		t.Fatalf("notes %q, want one that says web-blue-1 waits until Consul passes it", res.Notes)
	}
	h.reg.mu.Lock()
	h.reg.failing["web-blue-1"] = false
	h.reg.mu.Unlock()
	if res := h.pass(t, h.reconciler()); len(res.Applied) != 1 || !slices.Equal(res.Applied[0].Servers, []string{"web-blue-1"}) {
		t.Fatalf("pass with web-blue-1 passing applied %v, want it added", res.Applied)
	}
}

func TestReconcilePass_TheRouteWaitsForTheServersItAdded(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	staleServers, staleRoutes := h.lb.snapshot()
	h.deploy(t, "web:v2")
	h.lb.restart(staleServers, staleRoutes)
	h.lb.mu.Lock()
	h.lb.down["web-green-0"], h.lb.down["web-green-1"] = true, true
	h.lb.mu.Unlock()
	_, err := h.reconciler().Pass(context.Background(), "web")
	if !errors.Is(err, ErrNotInLine) || !errors.Is(err, ErrNotHealthy) {
		t.Fatalf("pass with the added servers down: %v, want ErrNotInLine for the route", err)
	}
	if got := h.lb.route("web.example.com"); got != "web_blue" {
		t.Fatalf("route %s while web_green has no server up, want web_blue left", got)
	}
	h.lb.mu.Lock()
	h.lb.down["web-green-1"] = false
	h.lb.mu.Unlock()
	if res := h.pass(t, h.reconciler()); len(res.Applied) == 0 || res.Applied[0].Kind != ActRoute || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("pass with web-green-1 up: %v, route %s", res.Applied, h.lb.route("web.example.com"))
	}
}

// fakeFiles counts the writes of HAProxy's files; err fails them.
type fakeFiles struct {
	n   atomic.Int32
	err error
}

func (f *fakeFiles) WriteFiles(context.Context) error {
	f.n.Add(1)
	return f.err
}

func TestReconcilePass_WritesTheFilesAfterEveryPassThatRanEvenWithNothingToChange(t *testing.T) {
	h := newHarness(t, twoReplicas)
	h.deploy(t, "web:v1")
	files := &fakeFiles{}
	r := h.reconciler()
	r.Files = files
	// A swap run elsewhere changed this HAProxy at runtime only: the pass has nothing to
	// change, and writes the files.
	if res := h.pass(t, r); len(res.Applied) != 0 || files.n.Load() != 1 {
		t.Fatalf("pass applied %v and wrote the files %d times, want nothing and once", res.Applied, files.n.Load())
	}
	u := h.s.Locker.(*fakeLocker).tryLock("web")
	if res := h.pass(t, r); res.Skipped == "" || files.n.Load() != 1 {
		t.Fatalf("pass under a swap's lock: %+v, files written %d times, want left to the swap", res, files.n.Load())
	}
	if err := u.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	files.err = errors.New("disk full")
	if _, err := r.Pass(context.Background(), "web"); !errors.Is(err, ErrNotInLine) || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("pass whose files could not be written: %v, want ErrNotInLine with the cause", err)
	}
}
