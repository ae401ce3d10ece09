package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

// Crash safety (issue 6): a swap killed with -9 inside any step, with load running through
// HAProxy, is repaired by `swap resume` (or by the next `swap deploy`): back to the old
// color when it died before the shift, forward to the new one after it. Afterwards exactly
// the live color's containers, Consul instances and HAProxy servers exist, the routes
// point at the live color, no journal or lock is left, nothing swap did not create is
// gone, and not one request failed.
//
// The default run covers a representative subset; SWAP_E2E_FULL=1 runs every fault point
// (docs/testing.md).

// crashPoint is one place a deploy is killed: SWAP_FAULT=<step>:<phase>.
type crashPoint struct {
	step    switcher.Step
	phase   string // before, after
	shifted bool   // the traffic had moved when it died: the repair goes forward
}

func (p crashPoint) fault() string { return string(p.step) + ":" + p.phase }

// allCrashPoints is every fault point a deploy passes. commit has no "after": the
// journal is gone by then and the swap is over.
var allCrashPoints = func() []crashPoint {
	var out []crashPoint
	shifted := false
	for _, st := range switcher.Steps {
		if st == switcher.StepLock || st == switcher.StepPlan {
			continue
		}
		out = append(out, crashPoint{st, "before", shifted})
		if st == switcher.StepShift {
			shifted = true
		}
		if st != switcher.StepCommit {
			out = append(out, crashPoint{st, "after", shifted})
		}
	}
	return out
}()

func crashPointOf(t *testing.T, fault string) crashPoint {
	for _, p := range allCrashPoints {
		if p.fault() == fault {
			return p
		}
	}
	t.Fatalf("no crash point %q", fault)
	return crashPoint{}
}

// crashCase is one crash and its repair.
type crashCase struct {
	point crashPoint
	// repair is "resume" (swap resume) or "deploy" (the next swap deploy repairs first).
	repair string
	// again, when set, kills the resume too at this point (a crash during the repair).
	again string
}

func (c crashCase) name() string {
	n := strings.ReplaceAll(c.point.fault(), ":", "_") + "_then_" + c.repair
	if c.again != "" {
		n += "_killed_again_at_" + strings.ReplaceAll(c.again, ":", "_") + "_then_resume"
	}
	return n
}

// crashGroups are the cases, in groups that share one stack (run one after another, the
// load running through all of them) while the groups run side by side.
func crashGroups(t *testing.T) [][]crashCase {
	if os.Getenv("SWAP_E2E_FULL") == "1" {
		var resume []crashCase
		for _, p := range allCrashPoints {
			resume = append(resume, crashCase{point: p, repair: "resume"})
		}
		// Four stacks: the 21 resume cases split in three, the deploy repairs and a crash
		// during the repair in the fourth.
		return [][]crashCase{
			resume[:7], resume[7:14], resume[14:],
			{
				{point: crashPointOf(t, "stage:after"), repair: "deploy"},
				{point: crashPointOf(t, "verify:after"), repair: "deploy"},
				{point: crashPointOf(t, "shift:after"), repair: "resume", again: "retire:before"},
			},
		}
	}
	return [][]crashCase{
		{
			{point: crashPointOf(t, "gate:after"), repair: "resume"},
			{point: crashPointOf(t, "shift:before"), repair: "resume"},
			{point: crashPointOf(t, "stage:after"), repair: "deploy"},
		},
		{
			{point: crashPointOf(t, "shift:after"), repair: "resume"},
			{point: crashPointOf(t, "drain:after"), repair: "resume"},
			{point: crashPointOf(t, "retire:before"), repair: "deploy"},
		},
	}
}

func TestE2E_ADeployKilledInAnyStepIsRepairedWithNoOrphanAndNoFailedRequest(t *testing.T) {
	t.Parallel() // alongside the other scenarios: most of a case is waiting on Docker
	for i, group := range crashGroups(t) {
		t.Run(fmt.Sprintf("stack%d", i+1), func(t *testing.T) {
			t.Parallel()
			// Container names (<app>-<color>-<i>) are per Docker host: the pid keeps two
			// runs of these tests on one machine apart.
			w := newCrashWorld(t, fmt.Sprintf("crash%d-%d", i+1, os.Getpid()))
			ran := 0
			for _, c := range group {
				ok := t.Run(c.name(), func(t *testing.T) { ran++; w.crashAndRepair(t, c) })
				if !ok {
					break // the world may be broken: the next cases would only repeat it
				}
			}
			if ran == 0 {
				w.load.finish()
				t.Skip("no case of this stack matches -run")
			}
			w.load.requireNoFailures(t)
		})
	}
}

// crashWorld is one stack with an app that is always in a settled state between cases:
// one live color running w.image, load running through HAProxy.
type crashWorld struct {
	*stack
	app, host string
	live      string // live color
	image     string // its image
	load      *load
	// unmanaged is a container that looks like the app's idle color but was not made by
	// swap (no swap.managed label): it must survive every repair.
	unmanaged string
	// external is a Consul instance of the app that swap did not register.
	external string
}

// crashAppYAML is the crash tests' app (name, name): like appConfig's, with a verify
// window (so verify is a real step to die in) and a check timeout that holds when the
// two cores are busy with several stacks: a check that times out marks a server down,
// and a backend with every server down fails requests.
const crashAppYAML = `
  %s:
    image: swap-e2e-unused:0
    replicas: 2
    port: 8080
    route: %s.test
    healthcheck:
      path: /healthz
      interval: 1s
      timeout: 1s
      rise: 2
      fall: 3
    min_healthy_time: 300ms
    deploy_timeout: 2m
    drain_timeout: 10s
    stop_timeout: 5s
    verify: {window: 1s, max_5xx_rate: 0.05}
`

func newCrashWorld(t *testing.T, app string) *crashWorld {
	s := newStack(t, fmt.Sprintf(crashAppYAML, app, app))
	w := &crashWorld{stack: s, app: app, host: app + ".test"}
	r := s.mustSwap("deploy", app, "--image", s.v1)
	if !strings.Contains(r.stdout, "blue live with "+s.v1) {
		t.Fatalf("first deploy did not report blue live:\n%s", r)
	}
	w.live, w.image = "blue", s.v1
	s.waitAnswer(w.host, "color=blue version=v1")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.unmanaged = app + "-data-" + s.docker.RunID
	_, err := s.docker.Client.ContainerCreate(ctx, &container.Config{
		Image:  s.v1,
		Labels: s.docker.Labels(map[string]string{"swap.app": app, "swap.color": "green"}),
	}, nil, nil, nil, w.unmanaged)
	if err != nil {
		t.Fatalf("create the unmanaged container: %v", err)
	}
	w.external = app + "-external"
	if err := s.consul.Client.Agent().ServiceRegister(&api.AgentServiceRegistration{
		ID: w.external, Name: app, Address: "127.0.0.1", Port: 9,
	}); err != nil {
		t.Fatalf("register the external instance: %v", err)
	}
	w.requireSettled(t, "blue", s.v1)
	w.load = s.startLoad(w.host, "/", 4)
	return w
}

func otherColor(c string) string {
	if c == "blue" {
		return "green"
	}
	return "blue"
}

func (w *crashWorld) otherImage() string {
	if w.image == w.v1 {
		return w.v2
	}
	return w.v1
}

// crashAndRepair kills a deploy at c's point, repairs it and checks the result.
func (w *crashWorld) crashAndRepair(t *testing.T, c crashCase) {
	failsBefore := w.failures()
	from, to, img := w.live, otherColor(w.live), w.otherImage()

	w.crash(t, c.point, "deploy", w.app, "--image", img)

	switch c.repair {
	case "resume":
		if c.again != "" {
			again := crashPointOf(t, c.again)
			w.crash(t, again, "resume", w.app, "--wait", "60s")
		}
		t0 := time.Now()
		r := w.swap(nil, "resume", w.app, "--wait", "60s")
		t.Logf("resume took %s", time.Since(t0).Round(time.Millisecond))
		if r.code != 0 {
			t.Fatalf("resume after the crash at %s: %s", c.point.fault(), r)
		}
		w.requireDeadLockReleased(t, r)
		if c.point.shifted {
			if !strings.Contains(r.stdout, fmt.Sprintf("done, %s live with %s", to, img)) {
				t.Fatalf("resume after the shift did not finish the deploy to %s:\n%s", to, r)
			}
			w.live, w.image = to, img
		} else if !strings.Contains(r.stdout, "rolled back") {
			t.Fatalf("resume before the shift did not roll back:\n%s", r)
		}
		st := w.requireSettled(t, w.live, w.image)
		want := switcher.OutcomeRolledBack
		if c.point.shifted {
			want = switcher.OutcomeDone
		}
		if n := len(st.History); n == 0 || st.History[n-1].Result != want {
			t.Fatalf("the crashed deploy's history record is not %q: %+v", want, st.History)
		}
	case "deploy":
		// The next deploy repairs the crashed one first, then deploys img: onto `to` after
		// a rollback, onto `from` after a forward repair (to being live by then).
		t0 := time.Now()
		r := w.swap(nil, "deploy", w.app, "--image", img, "--wait", "60s")
		t.Logf("repairing deploy took %s", time.Since(t0).Round(time.Millisecond))
		if r.code != 0 {
			t.Fatalf("deploy after the crash at %s: %s", c.point.fault(), r)
		}
		w.requireDeadLockReleased(t, r)
		if !strings.Contains(r.stdout, "is repaired first") {
			t.Fatalf("the deploy did not say it repaired the crashed swap first:\n%s", r)
		}
		want := to
		if c.point.shifted {
			want = from
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("done, %s live with %s", want, img)) {
			t.Fatalf("the deploy after the repair did not make %s live with %s:\n%s", want, img, r)
		}
		w.live, w.image = want, img
		w.requireSettled(t, w.live, w.image)
	default:
		t.Fatalf("unknown repair %q", c.repair)
	}
	if fails := w.failures()[len(failsBefore):]; len(fails) > 0 {
		t.Fatalf("%d requests failed during the crash at %s and its repair; first: %v", len(fails), c.point.fault(), fails[:min(5, len(fails))])
	}
}

// crash runs swap with SWAP_FAULT armed at p and requires that it died by SIGKILL there,
// leaving its journal at that step and its lock held by its dead process.
func (w *crashWorld) crash(t *testing.T, p crashPoint, args ...string) {
	t.Helper()
	t0 := time.Now()
	r := w.swap([]string{"SWAP_FAULT=" + p.fault()}, args...)
	t.Logf("swap %s killed at %s after %s", args[0], p.fault(), time.Since(t0).Round(time.Millisecond))
	if r.code != -9 {
		t.Fatalf("swap %s with SWAP_FAULT=%s did not die by SIGKILL: %s", strings.Join(args, " "), p.fault(), r)
	}
	j := w.journal(t)
	if j == nil {
		t.Fatalf("no journal after the crash at %s", p.fault())
	}
	if j.Step != p.step || j.Done != (p.phase == "after") {
		t.Fatalf("the journal says step %s done=%v, want %s done=%v", j.Step, j.Done, p.step, p.phase == "after")
	}
	if p.shifted && !j.Shifted {
		t.Fatalf("the journal of a crash at %s does not record the shift", p.fault())
	}
	if h := w.lockHolder(t); h == nil {
		t.Fatalf("the dead swap's lock is not held after the crash at %s", p.fault())
	}
}

// requireDeadLockReleased checks the repair took the dead swap's lock at once, by
// releasing it, rather than waiting for its session to expire.
func (w *crashWorld) requireDeadLockReleased(t *testing.T, r cliRun) {
	t.Helper()
	if !strings.Contains(r.stderr, "left by a dead swap") {
		t.Fatalf("the repair did not release the dead swap's lock:\n%s", r)
	}
}

// failures copies the load's failures so far.
func (w *crashWorld) failures() []string {
	w.load.mu.Lock()
	defer w.load.mu.Unlock()
	return slices.Clone(w.load.fails)
}

func (w *crashWorld) kvKey(rel string) string { return "swap-test-" + w.docker.RunID + "/" + rel }

// journal reads the app's journal straight from Consul (nil when there is none).
func (w *crashWorld) journal(t *testing.T) *switcher.Journal {
	t.Helper()
	p, _, err := w.consul.Client.KV().Get(w.kvKey(switcher.JournalKey(w.app)), nil)
	if err != nil {
		t.Fatalf("read the journal: %v", err)
	}
	if p == nil {
		return nil
	}
	var j switcher.Journal
	if err := json.Unmarshal(p.Value, &j); err != nil {
		t.Fatalf("journal %q: %v", p.Value, err)
	}
	return &j
}

// lockHolder reads the app's lock key straight from Consul: nil when nobody holds it.
func (w *crashWorld) lockHolder(t *testing.T) map[string]any {
	t.Helper()
	p, _, err := w.consul.Client.KV().Get(w.kvKey("locks/"+w.app), nil)
	if err != nil {
		t.Fatalf("read the lock: %v", err)
	}
	if p == nil || p.Session == "" {
		return nil
	}
	h := map[string]any{}
	_ = json.Unmarshal(p.Value, &h)
	return h
}

// requireSettled checks the invariants of a settled app, from every view: live is the
// live color running image; exactly its two containers run, registered and passing in
// Consul and UP in its HAProxy backend; the other color has nothing anywhere; the routes
// point at live and the preview at nothing else; no journal, no lock; the unmanaged
// container and the external Consul instance are untouched.
func (w *crashWorld) requireSettled(t *testing.T, live, image string) *switcher.AppStatus {
	t.Helper()
	idle := otherColor(live)
	liveBackend, idleBackend := w.app+"_"+live, w.app+"_"+idle
	want := []string{w.app + "-" + live + "-0", w.app + "-" + live + "-1"}

	// swap's own view.
	st, err := w.status()
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Live) != live {
		t.Fatalf("status says %q live, want %s", st.Live, live)
	}
	if st.InFlight != nil {
		t.Fatalf("status shows a swap in flight: %+v", st.InFlight)
	}
	if cs, ok := st.Colors[st.Live]; !ok || cs.Image != image || len(st.Colors) != 1 {
		t.Fatalf("status colors = %+v, want only %s with %s", st.Colors, live, image)
	}
	for lb, be := range st.Routes {
		if be != liveBackend {
			t.Fatalf("status: HAProxy %s routes to %q, want %s", lb, be, liveBackend)
		}
	}
	var ids []string
	for _, in := range st.Instances {
		ids = append(ids, in.ID)
		if string(in.Color) != live || in.Image != image || in.State != "running" || in.Consul == "not registered" {
			t.Fatalf("status instance %s: color %s image %s docker %s consul %s; want %s %s running registered",
				in.ID, in.Color, in.Image, in.State, in.Consul, live, image)
		}
		if len(in.HAProxy) != 1 || adminDown(in.HAProxy[0].Status) {
			t.Fatalf("status instance %s: HAProxy %+v, want one server in service (not in maintenance or drain)", in.ID, in.HAProxy)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("status instances %v, want %v", ids, want)
	}
	// Health comes from checks, which take their time (and may flap on a loaded machine):
	// a bounded wait until every live instance passes in Consul and is UP in HAProxy.
	healthy := func(st *switcher.AppStatus) error {
		for _, in := range st.Instances {
			if in.Consul != "passing" || len(in.HAProxy) != 1 || !in.HAProxy[0].Healthy() {
				return fmt.Errorf("%s: consul %s, HAProxy %+v", in.ID, in.Consul, in.HAProxy)
			}
		}
		return nil
	}
	if healthy(st) != nil {
		testenv.WaitFor(t, 30*time.Second, "the live instances pass in Consul and HAProxy", func() error {
			st, err := w.status()
			if err != nil {
				return err
			}
			return healthy(st)
		})
	}

	// HAProxy, through its admin socket.
	if got := w.route(w.host); got != liveBackend {
		t.Fatalf("routes.map: %s -> %q, want %s", w.host, got, liveBackend)
	}
	if got := w.mapValue("preview.map", w.host); got != "" && got != liveBackend {
		t.Fatalf("preview.map: %s -> %q, a backend with no servers", w.host, got)
	}
	if got := w.haproxyServers(liveBackend); !slices.Equal(sorted(got), want) {
		t.Fatalf("HAProxy %s has servers %v, want %v", liveBackend, got, want)
	}
	if got := w.haproxyServers(idleBackend); len(got) != 0 {
		t.Fatalf("HAProxy %s has orphan servers %v", idleBackend, got)
	}

	// Docker, by labels.
	var wantNames []string // the stack is an installation of its own: names carry it
	for _, id := range want {
		wantNames = append(wantNames, w.objectName(id))
	}
	if got := w.containers("swap.app="+w.app, "swap.managed=true"); !slices.Equal(sorted(got), wantNames) {
		t.Fatalf("swap's containers of %s: %v, want %v", w.app, got, wantNames)
	}

	// Consul's catalog.
	wantIDs := append(slices.Clone(wantNames), w.external)
	if got := w.consulInstances(w.app); !slices.Equal(sorted(got), sorted(wantIDs)) {
		t.Fatalf("Consul instances of %s: %v, want %v", w.app, got, wantIDs)
	}

	// Consul KV: no journal, no lock.
	if j := w.journal(t); j != nil {
		t.Fatalf("a journal is left: %+v", j)
	}
	if h := w.lockHolder(t); h != nil {
		t.Fatalf("the lock is still held by %v", h)
	}

	// What swap did not create is still there.
	if got := w.containers("swap.app=" + w.app); !slices.Contains(got, w.unmanaged) {
		t.Fatalf("the unmanaged container %s is gone (containers: %v)", w.unmanaged, got)
	}
	return st
}

// status is `swap status <app> --output json`.
func (w *crashWorld) status() (*switcher.AppStatus, error) {
	r := w.swap(nil, "status", w.app, "--output", "json")
	var sts []switcher.AppStatus
	if err := json.Unmarshal([]byte(r.stdout), &sts); r.code != 0 || err != nil || len(sts) != 1 {
		return nil, fmt.Errorf("status --output json: %v\n%s", err, r)
	}
	return &sts[0], nil
}

// adminDown reports whether an HAProxy server status says it was taken out of service
// (maintenance, drain), rather than being up or judged by its checks.
func adminDown(status string) bool {
	for _, p := range []string{"MAINT", "DRAIN", "NOLB"} {
		if strings.HasPrefix(status, p) {
			return true
		}
	}
	return false
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
