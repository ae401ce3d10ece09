package switcher

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

func TestStage_TheLiveColorIsABackupOfTheNewBackendUntilTheDrain(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	var atDrain map[string]bool
	h.s.OnEvent = func(e Event) {
		if e.Step == StepDrain && e.Kind == EventStart {
			atDrain = h.lb.backend("web_green")
		}
	}
	h.deploy(t, "web:v2")
	want := map[string]bool{"web-green-0": false, "web-blue-0": true}
	if !equalMaps(atDrain, want) {
		t.Fatalf("web_green when the drain starts = %v, want %v (blue a backup)", atDrain, want)
	}
	if got := h.lb.backend("web_green"); !equalMaps(got, map[string]bool{"web-green-0": false}) {
		t.Fatalf("web_green after the swap = %v, want green alone", got)
	}
}

func equalMaps(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestVerify_ANewColorThatDiesFlipsBackToTheOldColor(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(h *harness)
	}{
		{"swap's probe fails", func(h *harness) { h.rt.setColorHealthy(deployments.Green, false) }},
		{"HAProxy takes it down", func(h *harness) { h.lb.setDown("web-green-0", true) }},
		{"Consul's check goes critical", func(h *harness) {
			h.reg.mu.Lock()
			h.reg.failing["web-green-0"] = true
			h.reg.mu.Unlock()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(a *deployments.App) {
				a.Verify = deployments.Verify{Window: 10 * time.Second, Max5xxRate: 0.05}
			})
			h.deploy(t, "web:v1")
			h.s.OnEvent = func(e Event) {
				if e.Step == StepVerify && e.Kind == EventStart {
					tc.kill(h)
				}
			}
			start := time.Now()
			_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
			var se *Error
			if !errors.As(err, &se) || se.Step != StepVerify || !se.RolledBack || !errors.Is(err, ErrNotHealthy) {
				t.Fatalf("err = %v, want a rolled back verify failure: not healthy", err)
			}
			if time.Since(start) > 9*time.Second {
				t.Fatalf("verify waited out its window (%s) instead of flipping back", time.Since(start))
			}
			if got := h.lb.routeLog; !slices.Equal(got, []string{"web_blue", "web_green", "web_blue"}) {
				t.Fatalf("route changes %v", got)
			}
			if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 {
				t.Fatalf("containers %v", n)
			}
			if st := h.state(t); st.Live != deployments.Blue || st.History[len(st.History)-1].Result != OutcomeRolledBack {
				t.Fatalf("state %+v", st)
			}
		})
	}
}

func TestRespDelta_CountsPerInstanceAndNeverWrapsOnAReload(t *testing.T) {
	row := func(lb string, total, errs uint64) BackendCounters {
		return BackendCounters{LB: lb, Responses: total, Errors5xx: errs}
	}
	for _, tc := range []struct {
		name              string
		reads             [][]BackendCounters
		wantTotal, wantEr uint64
	}{
		{"the first read is the baseline",
			[][]BackendCounters{{row("a", 100, 10)}}, 0, 0},
		{"growth on two instances adds up",
			[][]BackendCounters{{row("a", 100, 10), row("b", 50, 0)}, {row("a", 150, 11), row("b", 80, 2)}}, 80, 3},
		{"one instance reloaded counts from zero, the other goes on",
			[][]BackendCounters{{row("a", 1000, 0), row("b", 1000, 0)}, {row("a", 30, 1), row("b", 1040, 0)}}, 70, 1},
		{"a reload that lowers only the 5xx count is a reload too",
			[][]BackendCounters{{row("a", 10, 5)}, {row("a", 12, 0)}}, 12, 0},
		{"an instance first seen later counts all it has",
			[][]BackendCounters{{row("a", 10, 0)}, {row("a", 10, 0), row("b", 7, 7)}}, 7, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newRespDelta()
			var total, errs uint64
			for _, r := range tc.reads {
				total, errs = d.observe(r)
			}
			if total != tc.wantTotal || errs != tc.wantEr {
				t.Fatalf("observe = %d answers, %d 5xx; want %d, %d", total, errs, tc.wantTotal, tc.wantEr)
			}
		})
	}
}

func TestVerify_AReloadDuringVerifyIsNotA5xxSpike(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Verify = deployments.Verify{Window: 600 * time.Millisecond, Max5xxRate: 0.05}
	})
	h.deploy(t, "web:v1")
	// Green has answered a lot, with a few 5xx, before verify reads its baseline; then
	// HAProxy reloads: every counter starts over from zero.
	h.lb.mu.Lock()
	reads := 0
	h.lb.onServers = func(be string) {
		if be != "web_green" {
			return
		}
		reads++
		for _, s := range h.lb.servers["web_green"] {
			if reads == 1 {
				s.Responses, s.Errors5xx = 100000, 3
			} else if reads == 3 {
				s.Responses, s.Errors5xx = 50, 0
			}
		}
	}
	h.lb.mu.Unlock()
	res, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("deploy = %+v, %v; a reload in verify must not look like 5xx", res, err)
	}
}

func TestLockLost_TheSwapStopsAndRollsNothingBackWithoutTheLock(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.DeployTimeout = time.Minute })
	h.deploy(t, "web:v1")
	h.rt.healthy = func(c deployments.Color) bool { return c != deployments.Green } // green sits in its gate
	locker := h.s.Locker.(*fakeLocker)
	h.s.OnEvent = func(e Event) {
		if e.Step == StepGate && e.Kind == EventStart {
			go locker.lose("web")
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || !errors.Is(err, ErrLockLost) || se.RolledBack {
		t.Fatalf("err = %v, want a lost lock, not rolled back", err)
	}
	// Nothing undone: green's container and the journal wait for `swap resume`.
	if n := h.rt.colors(); n[deployments.Green] != 1 || n[deployments.Blue] != 1 {
		t.Fatalf("containers %v: the swap undid its work without the lock", n)
	}
	if !h.store.has(JournalKey("web")) {
		t.Fatal("the journal was dropped without the lock")
	}
	if st := h.state(t); len(st.History) != 1 {
		t.Fatalf("history written without the lock: %+v", st.History)
	}
	h.s.OnEvent = nil
	res, err := h.s.Resume(context.Background(), "web", Options{})
	if err != nil || res.Outcome != OutcomeRolledBack {
		t.Fatalf("resume = %+v, %v", res, err)
	}
	if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 {
		t.Fatalf("containers after resume %v", n)
	}
}

func TestJournal_ADeleteLosesToAWriterThatCameAfter(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	k := h.s.kv()
	mine := &storedJournal{Journal: Journal{Plan: Plan{App: "web", Deploy: "1"}}}
	if err := k.saveJournal(ctx, mine); err != nil {
		t.Fatal(err)
	}
	// Another swap, holding the lock now, writes its own journal.
	theirs, _, err := k.journal(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	theirs.Plan.Deploy = "2"
	if err := k.saveJournal(ctx, theirs); err != nil {
		t.Fatal(err)
	}
	if err := k.dropJournal(ctx, mine); !errors.Is(err, ErrStale) {
		t.Fatalf("dropJournal of a journal rewritten since = %v, want ErrStale", err)
	}
	if j, ok, _ := k.journal(ctx, "web"); !ok || j.Plan.Deploy != "2" {
		t.Fatalf("the other swap's journal = %+v, %v; want it kept", j, ok)
	}
}

func TestResume_FollowsThePlanNotTheConfigChangedSince(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deployCrashing(t, "web:v2", StepRetire, "before")
	// The config changed after the plan: a scale_down_delay the plan did not have.
	h.s.Config.Apps["web"].ScaleDownDelay = time.Hour
	res, err := h.s.Resume(context.Background(), "web", Options{})
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("resume = %+v, %v", res, err)
	}
	if res.Retiring != "" {
		t.Fatalf("resume kept %s up for the new scale_down_delay; the plan said retire now", res.Retiring)
	}
	if n := h.rt.colors(); n[deployments.Blue] != 0 {
		t.Fatalf("containers %v: blue not retired as planned", n)
	}
}

func TestPlan_TheJournalKeepsTheSettingsButNoEnvironment(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) {
		a.Env = map[string]string{"DB_PASSWORD": "env-s3cret"}
		a.Hooks.Env = map[string]string{"SLACK_TOKEN": "hook-s3cret"}
		a.Hooks.Timeout = 42 * time.Second
		a.DrainTimeout = 7 * time.Second
	})
	var journal string
	h.s.OnEvent = func(e Event) {
		if e.Step == StepShift && e.Kind == EventStart {
			b, _, _ := h.store.Get(context.Background(), JournalKey("web"))
			journal = string(b)
		}
	}
	h.deploy(t, "web:v1")
	for _, secret := range []string{"env-s3cret", "hook-s3cret", "DB_PASSWORD", "SLACK_TOKEN"} {
		if strings.Contains(journal, secret) {
			t.Errorf("the journal holds %q:\n%s", secret, journal)
		}
	}
	var j Journal
	if err := json.Unmarshal([]byte(journal), &j); err != nil {
		t.Fatal(err)
	}
	if j.Plan.Spec == nil || j.Plan.Spec.Hooks.Timeout != 42*time.Second || j.Plan.Spec.DrainTimeout != 7*time.Second {
		t.Fatalf("the journaled plan lacks the app's settings: %+v", j.Plan.Spec)
	}
}
