package switcher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

type harness struct {
	s      *Switcher
	rt     *fakeRuntime
	reg    *fakeRegistry
	lb     *fakeBalancer
	store  *fakeStore
	hooks  *fakeHooks
	mu     sync.Mutex
	events []Event
}

func newHarness(t *testing.T, edit func(*deployments.App)) *harness {
	t.Helper()
	cfg := &deployments.Config{
		HAProxy: deployments.HAProxyConfig{Dir: t.TempDir(),
			Instances: []deployments.HAProxyInstance{{Name: "lb1", Socket: "/nonexistent"}},
			Frontend:  deployments.Listener{Name: "www", Bind: "127.0.0.1:8080"}},
		Apps: map[string]*deployments.App{"web": {Image: "web:v1", Port: 8080, Route: "web.example.com",
			HealthCheck: deployments.HealthCheck{Path: "/healthz", Interval: 20 * time.Millisecond, Timeout: 15 * time.Millisecond}}},
	}
	cfg.SetDefaults()
	app := cfg.Apps["web"]
	app.MinHealthyTime = 20 * time.Millisecond
	app.DeployTimeout = 3 * time.Second
	app.DrainTimeout = time.Second
	if edit != nil {
		edit(app)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	h := &harness{rt: newFakeRuntime(t), reg: newFakeRegistry(), lb: newFakeBalancer(), store: newFakeStore(), hooks: &fakeHooks{fail: map[string]bool{}}}
	h.s = &Switcher{Config: cfg, Runtime: h.rt, Registry: h.reg, Balancer: h.lb, Store: h.store,
		Locker: &fakeLocker{}, Hooks: h.hooks, ProbeInterval: 10 * time.Millisecond,
		OnEvent: func(e Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() }}
	return h
}

func (h *harness) state(t *testing.T) State {
	t.Helper()
	st, err := h.s.kv().state(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	return st.State
}

// doneSteps lists the steps that ended with a done event, in order.
func (h *harness) doneSteps() []Step {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Step
	for _, e := range h.events {
		if e.Kind == EventDone {
			out = append(out, e.Step)
		}
	}
	return out
}

func (h *harness) deploy(t *testing.T, image string) *Result {
	t.Helper()
	res, err := h.s.Deploy(context.Background(), "web", image, Options{})
	if err != nil {
		t.Fatalf("deploy %s: %v", image, err)
	}
	return res
}

func TestDeploy_FirstDeployGoesLiveOnBlueThroughEveryStep(t *testing.T) {
	h := newHarness(t, nil)
	res := h.deploy(t, "web:v1")
	if res.Outcome != OutcomeDone {
		t.Fatalf("outcome %q", res.Outcome)
	}
	want := []Step{StepLock, StepPlan, StepStart, StepRegister, StepStage, StepGate, StepPreview,
		StepShift, StepVerify, StepDrain, StepRetire, StepCleanup, StepCommit}
	if got := h.doneSteps(); !slices.Equal(got, want) {
		t.Fatalf("steps done %v, want %v", got, want)
	}
	st := h.state(t)
	if st.Live != deployments.Blue || st.Colors[deployments.Blue].Image != "web:v1" {
		t.Fatalf("state after first deploy: %+v", st)
	}
	if got := h.lb.route("web.example.com"); got != "web_blue" {
		t.Fatalf("route = %q, want web_blue", got)
	}
	if h.store.has(JournalKey("web")) {
		t.Fatal("journal left behind after a finished swap")
	}
}

func TestDeploy_NewImageMovesToGreenAndRetiresBlue(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deploy(t, "web:v2")
	st := h.state(t)
	if st.Live != deployments.Green || st.Colors[deployments.Green].Image != "web:v2" {
		t.Fatalf("state: %+v", st)
	}
	if _, ok := st.Colors[deployments.Blue]; ok {
		t.Fatalf("blue still recorded after retire: %+v", st.Colors)
	}
	if len(st.Previous) != 1 || st.Previous[0].Ref != "web:v1" || st.Previous[0].ID == "" {
		t.Fatalf("previous images %v, want [web:v1]", st.Previous)
	}
	if n := h.rt.colors(); n[deployments.Blue] != 0 || n[deployments.Green] != 1 {
		t.Fatalf("containers by color %v", n)
	}
	if h.lb.serverCount("web_blue") != 0 || h.reg.count() != 1 {
		t.Fatalf("blue left in HAProxy (%d) or Consul (%d entries)", h.lb.serverCount("web_blue"), h.reg.count())
	}
	if got := h.lb.route("web.example.com"); got != "web_green" {
		t.Fatalf("route = %q", got)
	}
	if len(st.History) != 2 || st.History[1].Result != OutcomeDone {
		t.Fatalf("history %+v", st.History)
	}
}

func TestDeploy_GreenNeverHealthyIsRolledBackAndNamesTheInstance(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = 500 * time.Millisecond })
	h.deploy(t, "web:v1")
	h.rt.healthy = func(c deployments.Color) bool { return c != deployments.Green }
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepGate || !se.RolledBack || !errors.Is(err, ErrNotHealthy) {
		t.Fatalf("err = %v, want a rolled back gate failure", err)
	}
	for _, want := range []string{"web-green-0 probe", "503"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not name %q", err, want)
		}
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 {
		t.Fatalf("containers by color after rollback %v", n)
	}
	if h.lb.serverCount("web_green") != 0 || h.reg.count() != 1 || h.lb.route("web.example.com") != "web_blue" {
		t.Fatal("green left behind or blue no longer routed")
	}
	st := h.state(t)
	if st.Live != deployments.Blue || st.History[len(st.History)-1].Result != OutcomeRolledBack {
		t.Fatalf("state after rollback %+v", st)
	}
}

func TestDeploy_HAProxyViewMustAgreeBeforeTheShift(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = 400 * time.Millisecond })
	h.deploy(t, "web:v1")
	h.lb.down["web-green-0"] = true
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	if err == nil || !strings.Contains(err.Error(), "web-green-0 haproxy") {
		t.Fatalf("err = %v, want the HAProxy view of web-green-0 named", err)
	}
	if h.lb.route("web.example.com") != "web_blue" {
		t.Fatal("traffic moved to a color HAProxy does not see healthy")
	}
}

func TestDeploy_ConsulViewMustAgreeBeforeTheShift(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = 400 * time.Millisecond })
	h.deploy(t, "web:v1")
	h.reg.failing["web-green-0"] = true
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	if err == nil || !strings.Contains(err.Error(), "web-green-0 consul") {
		t.Fatalf("err = %v, want the Consul view of web-green-0 named", err)
	}
}

func TestVerify_A5xxSpikeFlipsBackToBlue(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Verify = deployments.Verify{Window: 2 * time.Second, Max5xxRate: 0.05}
	})
	h.deploy(t, "web:v1")
	h.s.OnEvent = func(e Event) {
		if e.Step == StepVerify && e.Kind == EventStart {
			h.lb.spikeAfter("web_green", 100, 50)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepVerify || !se.RolledBack || !errors.Is(err, ErrTooMany5xx) {
		t.Fatalf("err = %v, want a rolled back verify failure", err)
	}
	if got := h.lb.routeLog; !slices.Equal(got, []string{"web_blue", "web_green", "web_blue"}) {
		t.Fatalf("route changes %v", got)
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 {
		t.Fatalf("containers %v", n)
	}
	if st := h.state(t); st.Live != deployments.Blue {
		t.Fatalf("live = %s", st.Live)
	}
}

func TestPreview_WaitsForPromoteAndAbortRollsBack(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { f := false; a.AutoPromote = &f })
	h.s.Config.HAProxy.Preview = deployments.Listener{Name: "www_preview", Bind: "127.0.0.1:8081"}
	h.deploy(t, "web:v1") // waits too: nothing is live yet
	if _, err := h.s.Promote(context.Background(), "web", Options{}); err != nil {
		t.Fatalf("promote: %v", err)
	}
	res := h.deploy(t, "web:v2")
	if res.Outcome != OutcomeWaiting || h.lb.preview["web.example.com"] != "web_green" || h.lb.route("web.example.com") != "web_blue" {
		t.Fatalf("outcome %q, preview %v, route %q", res.Outcome, h.lb.preview, h.lb.route("web.example.com"))
	}
	if _, err := h.s.Deploy(context.Background(), "web", "web:v3", Options{}); !errors.Is(err, ErrPreviewPending) {
		t.Fatalf("a second deploy while one waits: %v, want ErrPreviewPending", err)
	}
	if _, err := h.s.Abort(context.Background(), "web", Options{}); err != nil {
		t.Fatalf("abort: %v", err)
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 || h.lb.preview["web.example.com"] != "" {
		t.Fatalf("after abort: containers %v, preview %v", n, h.lb.preview)
	}
	res = h.deploy(t, "web:v2")
	if _, err := h.s.Promote(context.Background(), "web", Options{}); err != nil || res.Outcome != OutcomeWaiting {
		t.Fatalf("promote: %v (deploy outcome %q)", err, res.Outcome)
	}
	if st := h.state(t); st.Live != deployments.Green {
		t.Fatalf("live after promote = %s", st.Live)
	}
}

func TestCanary_StepsWeightsThenShiftsAndA5xxSpikeRollsBack(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Canary = []deployments.CanaryStep{{Weight: 10, Bake: 50 * time.Millisecond}, {Weight: 50, Bake: 50 * time.Millisecond}}
		a.Verify = deployments.Verify{Window: 50 * time.Millisecond, Max5xxRate: 0.05}
	})
	h.deploy(t, "web:v1")
	if h.lb.canary["web.example.com"] != 0 {
		t.Fatal("a first deploy left a canary weight")
	}
	var weights []int
	h.s.OnEvent = func(e Event) {
		if e.Step == StepShift && e.Kind == EventInfo && strings.HasPrefix(e.Message, "canary") {
			h.lb.mu.Lock()
			weights = append(weights, h.lb.canary["web.example.com"])
			h.lb.mu.Unlock()
		}
	}
	h.deploy(t, "web:v2")
	if !slices.Equal(weights, []int{10, 50}) || h.lb.canary["web.example.com"] != 0 || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("canary weights %v, final weight %d, route %q", weights, h.lb.canary["web.example.com"], h.lb.route("web.example.com"))
	}

	h.s.OnEvent = func(e Event) {
		if e.Step == StepShift && e.Kind == EventInfo && strings.HasPrefix(e.Message, "canary 1/") {
			h.lb.spikeAfter("web_blue", 100, 40)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v3", Options{})
	if !errors.Is(err, ErrTooMany5xx) || h.lb.route("web.example.com") != "web_green" || h.lb.canary["web.example.com"] != 0 {
		t.Fatalf("err %v, route %q, canary %d", err, h.lb.route("web.example.com"), h.lb.canary["web.example.com"])
	}
}

func TestPreDeployHookFailureAbortsBeforeAnythingStarts(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Hooks.PreDeploy = "exit 1" })
	h.hooks.fail["pre_deploy"] = true
	_, err := h.s.Deploy(context.Background(), "web", "web:v1", Options{})
	if err == nil || !strings.Contains(err.Error(), "pre_deploy") {
		t.Fatalf("err = %v", err)
	}
	if n := h.rt.colors(); len(n) != 0 || h.lb.route("web.example.com") != "" {
		t.Fatalf("something started or routed: %v", n)
	}
}

func TestHooksSeeTheSwapInTheirEnvironment(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Hooks.PreDeploy, a.Hooks.PostShift, a.Hooks.PostDeploy = "true", "true", "true"
	})
	h.deploy(t, "web:v1")
	if !slices.Equal(h.hooks.ran, []string{"pre_deploy", "post_shift", "post_deploy"}) {
		t.Fatalf("hooks ran %v", h.hooks.ran)
	}
	r := &run{plan: Plan{App: "web", To: deployments.Blue, Image: "web:v1", Deploy: "d1"}}
	want := []string{"SWAP_APP=web", "SWAP_COLOR=blue", "SWAP_IMAGE=web:v1", "SWAP_DEPLOY=d1"}
	if !slices.Equal(r.hookEnv(), want) {
		t.Fatalf("hook env %v", r.hookEnv())
	}
}

// crashAt makes the switcher panic at a step, as a kill -9 would stop it there.
type crash struct{}

func crashAt(step Step, phase string) func(Step, string) {
	return func(s Step, p string) {
		if s == step && p == phase {
			panic(crash{})
		}
	}
}

func (h *harness) deployCrashing(t *testing.T, image string, step Step, phase string) {
	t.Helper()
	h.s.Fault = crashAt(step, phase)
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(crash); !ok {
					panic(r)
				}
			}
		}()
		_, _ = h.s.Deploy(context.Background(), "web", image, Options{})
		t.Fatalf("no crash at %s/%s", step, phase)
	}()
	h.s.Fault = nil
	h.s.Locker = &fakeLocker{} // the crashed process's lock died with it
}

func TestResume_RollsBackBeforeTheShiftAndForwardAfterIt(t *testing.T) {
	for _, tc := range []struct {
		step    Step
		phase   string
		forward bool
	}{
		{StepStart, "after", false},
		{StepRegister, "after", false},
		{StepStage, "after", false},
		{StepGate, "before", false},
		{StepGate, "after", false},
		{StepShift, "before", false},
		{StepShift, "after", true},
		{StepVerify, "before", true},
		{StepDrain, "before", true},
		{StepDrain, "after", true},
		{StepRetire, "after", true},
		{StepCleanup, "after", true},
	} {
		t.Run(string(tc.step)+"_"+tc.phase, func(t *testing.T) {
			h := newHarness(t, nil)
			h.deploy(t, "web:v1")
			h.deployCrashing(t, "web:v2", tc.step, tc.phase)
			res, err := h.s.Resume(context.Background(), "web", Options{})
			if err != nil {
				t.Fatalf("resume: %v", err)
			}
			live, gone := deployments.Blue, deployments.Green
			if tc.forward {
				live, gone = deployments.Green, deployments.Blue
			}
			wantOutcome := map[bool]string{true: OutcomeDone, false: OutcomeRolledBack}[tc.forward]
			if res.Outcome != wantOutcome {
				t.Fatalf("resume outcome %q, want %q", res.Outcome, wantOutcome)
			}
			if st := h.state(t); st.Live != live {
				t.Fatalf("live %s, want %s", st.Live, live)
			}
			if n := h.rt.colors(); n[gone] != 0 || n[live] != 1 {
				t.Fatalf("containers %v", n)
			}
			if h.lb.serverCount(deployments.BackendName("web", gone)) != 0 || h.reg.count() != 1 {
				t.Fatal("orphan HAProxy server or Consul entry")
			}
			if h.lb.route("web.example.com") != deployments.BackendName("web", live) {
				t.Fatalf("route %q", h.lb.route("web.example.com"))
			}
			if h.store.has(JournalKey("web")) {
				t.Fatal("journal left after resume")
			}
		})
	}
}

func TestNextSwapRepairsAnInterruptedOneFirst(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deployCrashing(t, "web:v2", StepGate, "before")
	res := h.deploy(t, "web:v3")
	if res.Outcome != OutcomeDone || h.state(t).Colors[deployments.Green].Image != "web:v3" {
		t.Fatalf("outcome %q state %+v", res.Outcome, h.state(t))
	}
}

func TestRemoveColorRefusesTheRoutedColor(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	r := &run{s: h.s, app: h.s.Config.Apps["web"], plan: Plan{App: "web", Route: "web.example.com"}}
	err := r.removeColor(context.Background(), deployments.Blue, StepRetire)
	if !errors.Is(err, ErrLiveColor) || h.rt.colors()[deployments.Blue] != 1 {
		t.Fatalf("removeColor(live) = %v; blue containers %d", err, h.rt.colors()[deployments.Blue])
	}
}

func TestSwitchToTheLiveColorDoesNothingAndBusyLockFails(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	res, err := h.s.Switch(context.Background(), "web", deployments.Blue, Options{})
	if err != nil || res.Outcome != OutcomeNothing {
		t.Fatalf("switch to live: %v, %+v", err, res)
	}
	unlock, _ := h.s.Locker.Lock(context.Background(), "web", 0)
	defer unlock.Unlock(context.Background())
	if _, err := h.s.Switch(context.Background(), "web", deployments.Green, Options{}); !errors.Is(err, errFakeBusy) {
		t.Fatalf("switch with the lock held: %v", err)
	}
}

func TestRollbackRedeploysThePreviousImage(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.s.Rollback(context.Background(), "web", Options{}); !errors.Is(err, ErrNoPrevious) {
		t.Fatalf("rollback before any deploy: %v", err)
	}
	h.deploy(t, "web:v1")
	h.deploy(t, "web:v2")
	res, err := h.s.Rollback(context.Background(), "web", Options{})
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("rollback: %v", err)
	}
	st := h.state(t)
	if st.Live != deployments.Blue || st.Colors[deployments.Blue].Image != "web:v1" || st.Previous[0].Ref != "web:v2" {
		t.Fatalf("state after rollback %+v", st)
	}
}

func TestDryRunPlansWithoutChangingAnything(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	res, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{DryRun: true})
	if err != nil || res.Outcome != OutcomeDryRun {
		t.Fatalf("dry run: %v %+v", err, res)
	}
	for _, want := range []string{"blue (web:v1)", "green running web:v2", "shift: route \"web.example.com\" to web_green"} {
		if !strings.Contains(res.Message, want) {
			t.Fatalf("plan does not say %q:\n%s", want, res.Message)
		}
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 {
		t.Fatal("dry run started containers")
	}
}

func TestCleanupKeepsRetainImagesAndWhatContainersUse(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Retain = 1 })
	for _, img := range []string{"web:v1", "web:v2", "web:v3", "web:v4"} {
		h.deploy(t, img)
	}
	// previous: v3 (kept by retain 1), v2 and v1 removed; v4 is live.
	if !slices.Equal(h.rt.removed, []string{"web:v1", "web:v2"}) {
		t.Fatalf("removed %v", h.rt.removed)
	}
}

func TestImageVersion(t *testing.T) {
	for ref, want := range map[string]string{
		"web:v2": "v2", "registry:5000/web": "latest", "registry:5000/web:1.2": "1.2", "web@sha256:abc": "sha256:abc",
	} {
		if got := imageVersion(ref); got != want {
			t.Errorf("imageVersion(%q) = %q, want %q", ref, got, want)
		}
	}
}

func TestUnlockBreaksAHeldLockAndNamesItsHolder(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := h.s.Locker.Lock(context.Background(), "web", 0); err != nil {
		t.Fatal(err)
	}
	res, err := h.s.Unlock(context.Background(), "web")
	if err != nil || !strings.Contains(res.Message, "pid 1 on host") {
		t.Fatalf("unlock: %v, %+v", err, res)
	}
	if _, err := h.s.Locker.Lock(context.Background(), "web", 0); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	res, err = h.s.Unlock(context.Background(), "web")
	if err != nil || res.Message != "web was not locked" && !strings.Contains(res.Message, "released") {
		t.Fatalf("second unlock: %v, %+v", err, res)
	}
}

func TestHealthTargetsProbeEveryRunningInstance(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Replicas = 2 })
	h.deploy(t, "web:v1")
	targets, err := h.s.HealthTargets(context.Background())
	if err != nil || len(targets) != 2 {
		t.Fatalf("targets %v, %v", targets, err)
	}
	for _, tg := range targets {
		if r := tg.Checker.Check(context.Background()); !r.OK {
			t.Fatalf("%s: probe of a healthy instance failed: %v", tg.ID, r.Err)
		}
	}
	if _, err := h.s.HealthTargets(context.Background(), "nope"); !errors.Is(err, deployments.ErrUnknownApp) {
		t.Fatalf("unknown app: %v", err)
	}
}

func TestDeploy_AGateLeftNoTimeBySlowStepsSaysToRaiseDeployTimeout(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = 300 * time.Millisecond })
	h.deploy(t, "web:v1")
	// Start, register and stage use up deploy_timeout (a slow Docker), on healthy instances.
	h.s.Fault = func(step Step, phase string) {
		if step == StepStage && phase == "after" {
			time.Sleep(300 * time.Millisecond)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepGate || !se.RolledBack {
		t.Fatalf("err = %v, want a rolled back gate failure", err)
	}
	for _, want := range []string{"the gate had only 0s of deploy_timeout 300ms left", "raise deploy_timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("error %q does not say %q", err, want)
		}
	}
	if h.lb.route("web.example.com") != "web_blue" {
		t.Fatal("blue no longer routed")
	}
}

func TestDeploy_AGateWithTimeLeftBlamesTheInstanceNotTheDeadline(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = 500 * time.Millisecond })
	h.deploy(t, "web:v1")
	h.rt.healthy = func(c deployments.Color) bool { return c != deployments.Green }
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	if err == nil || strings.Contains(err.Error(), "raise deploy_timeout") || !strings.Contains(err.Error(), "503") {
		t.Fatalf("err = %v, want the failing check named and no deadline hint", err)
	}
}

func TestResume_AFlipBackCutShortIsFinishedWithoutDrainingTheLiveColor(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Verify = deployments.Verify{Window: time.Second, Max5xxRate: 0.05}
	})
	h.deploy(t, "web:v1")
	h.deployCrashing(t, "web:v2", StepVerify, "before")
	// verify's flip-back moved the route back to blue, then the process died before the
	// journal said so: it still says shifted, at verify.
	if err := h.lb.Route(context.Background(), "web.example.com", "web_blue"); err != nil {
		t.Fatal(err)
	}
	res, err := h.s.Resume(context.Background(), "web", Options{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.Outcome != OutcomeRolledBack {
		t.Fatalf("resume outcome %q, want %q", res.Outcome, OutcomeRolledBack)
	}
	if got := h.lb.route("web.example.com"); got != "web_blue" {
		t.Fatalf("route %q, want web_blue", got)
	}
	stats, _ := h.lb.Servers(context.Background(), "web_blue")
	if len(stats) != 1 || stats[0].Status != "UP" {
		t.Fatalf("blue's servers %+v, want one UP (never drained)", stats)
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 || h.reg.count() != 1 {
		t.Fatalf("containers %v, Consul entries %d", n, h.reg.count())
	}
	if st := h.state(t); st.Live != deployments.Blue || h.store.has(JournalKey("web")) {
		t.Fatalf("live %s, journal left %v", st.Live, h.store.has(JournalKey("web")))
	}
}

func TestResume_ForwardRoutesToTheNewColorAgainBeforeDrainingWhenAnHAProxyLostTheShift(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deployCrashing(t, "web:v2", StepDrain, "before")
	// HAProxy restarted from a routes.map written before the shift.
	if err := h.lb.Route(context.Background(), "web.example.com", "web_blue"); err != nil {
		t.Fatal(err)
	}
	h.lb.onServers = func(backend string) {
		if backend == "web_blue" && h.lb.routes["web.example.com"] == "web_blue" {
			for _, s := range h.lb.servers[backend] {
				if s.Status == "DRAIN" {
					t.Errorf("blue's %s drained while the route points at blue", s.Name)
				}
			}
		}
	}
	res, err := h.s.Resume(context.Background(), "web", Options{})
	if err != nil {
		t.Fatalf("resume: %v", err)
	}
	if res.Outcome != OutcomeDone {
		t.Fatalf("resume outcome %q, want %q", res.Outcome, OutcomeDone)
	}
	if got := h.lb.route("web.example.com"); got != "web_green" {
		t.Fatalf("route %q, want web_green", got)
	}
	if n := h.rt.colors(); n[deployments.Blue] != 0 || n[deployments.Green] != 1 || h.reg.count() != 1 {
		t.Fatalf("containers %v, Consul entries %d", n, h.reg.count())
	}
	if st := h.state(t); st.Live != deployments.Green {
		t.Fatalf("live %s, want green", st.Live)
	}
}

// deleteCrashStore dies (panics with crash{}) when the journal is deleted: a crash
// between commit's state write and its journal delete.
type deleteCrashStore struct {
	*fakeStore
	armed bool
}

func (d *deleteCrashStore) Delete(ctx context.Context, key string, index uint64) error {
	if d.armed && key == JournalKey("web") {
		d.armed = false
		panic(crash{})
	}
	return d.fakeStore.Delete(ctx, key, index)
}

func TestResume_ACommitCutShortRecordsTheDeployOnce(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.s.Store = &deleteCrashStore{fakeStore: h.store, armed: true}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(crash); !ok {
					panic(r)
				}
			}
		}()
		_, _ = h.s.Deploy(context.Background(), "web", "web:v2", Options{})
		t.Fatal("no crash in commit")
	}()
	h.s.Locker = &fakeLocker{}
	if !h.store.has(JournalKey("web")) || h.state(t).Live != deployments.Green {
		t.Fatalf("the crash did not leave a written state and a journal")
	}
	if _, err := h.s.Resume(context.Background(), "web", Options{}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	st := h.state(t)
	if len(st.History) != 2 || st.History[0].Image != "web:v1" || st.History[1].Image != "web:v2" || st.History[1].Result != OutcomeDone {
		t.Fatalf("history %+v, want v1 done then v2 done, once each", st.History)
	}
	if h.store.has(JournalKey("web")) {
		t.Fatal("journal left after resume")
	}
}

func TestServerStatHealthyAcceptsEveryPassingCheckKind(t *testing.T) {
	for _, tc := range []struct {
		status, check string
		want          bool
	}{
		{"UP", "L7OK", true}, {"UP", "L4OK", true}, {"UP", "L6OK", true},
		{"DOWN", "L7OK", false}, {"UP", "L7STS", false}, {"UP", "", false}, {"DRAIN", "L7OK", false},
	} {
		if got := (ServerStat{Status: tc.status, CheckStatus: tc.check}).Healthy(); got != tc.want {
			t.Errorf("Healthy(%s, %s) = %v, want %v", tc.status, tc.check, got, tc.want)
		}
	}
}
