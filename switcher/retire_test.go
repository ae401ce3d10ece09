package switcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

// deployAsync starts a deploy and returns a channel with its outcome.
func (h *harness) deployAsync(ctx context.Context, image string) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		res, err := h.s.Deploy(ctx, "web", image, Options{})
		ch <- outcome{res, err}
	}()
	return ch
}

type outcome struct {
	res *Result
	err error
}

// waitRetiring waits until the state records c as retiring.
func (h *harness) waitRetiring(t *testing.T, c deployments.Color) ColorState {
	t.Helper()
	var cs ColorState
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("%s recorded as retiring", c), func() error {
		st := h.state(t)
		if got, ok := st.Colors[c]; ok && got.Retiring() {
			cs = got
			return nil
		}
		return fmt.Errorf("state %+v", st)
	})
	return cs
}

// waitEvent waits until an event of that step and kind was emitted.
func (h *harness) waitEvent(t *testing.T, step Step, kind EventKind) {
	t.Helper()
	h.waitEventMsg(t, step, kind, "")
}

// waitEventMsg waits until an event of that step and kind whose message contains msg
// was emitted.
func (h *harness) waitEventMsg(t *testing.T, step Step, kind EventKind, msg string) {
	t.Helper()
	testenv.WaitFor(t, 5*time.Second, fmt.Sprintf("a %s %s event %q", step, kind, msg), func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		for _, e := range h.events {
			if e.Step == step && e.Kind == kind && strings.Contains(e.Message, msg) {
				return nil
			}
		}
		return errors.New("none yet")
	})
}

func (h *harness) containerIDs(t *testing.T, c deployments.Color) string {
	t.Helper()
	insts, err := h.rt.List(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, in := range insts {
		if in.Color == c {
			ids = append(ids, in.ContainerID)
		}
	}
	return strings.Join(ids, ",")
}

func TestScaleDownDelay_KeepsTheOldColorUpWithoutTheLockThenRetiresIt(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.ScaleDownDelay = 2 * time.Second })
	h.deploy(t, "web:v1")
	done := h.deployAsync(context.Background(), "web:v2")

	cs := h.waitRetiring(t, deployments.Blue)
	st := h.state(t)
	if st.Live != deployments.Green || cs.Image != "web:v1" || cs.RetiredBy == "" || cs.RetireAt.IsZero() {
		t.Fatalf("state while blue retires: %+v", st)
	}
	if n := h.rt.colors(); n[deployments.Blue] != 1 {
		t.Fatalf("blue's container is gone before scale_down_delay: %v", n)
	}
	// The lock is free while the swap waits (it announces the wait after releasing it;
	// the state records blue as retiring earlier, at commit, under the lock).
	h.waitEventMsg(t, StepRetire, EventStart, "waiting until")
	if u := h.s.Locker.(*fakeLocker).tryLock("web"); u == nil {
		t.Fatal("the lock is held during scale_down_delay")
	} else {
		u.Unlock(context.Background())
	}

	o := <-done
	if o.err != nil || o.res.Outcome != OutcomeDone || o.res.Retiring != deployments.Blue || !o.res.Retired {
		t.Fatalf("deploy = %+v, %v; want done with blue retired", o.res, o.err)
	}
	st = h.state(t)
	if _, ok := st.Colors[deployments.Blue]; ok || h.rt.colors()[deployments.Blue] != 0 || h.lb.serverCount("web_blue") != 0 {
		t.Fatalf("blue not retired after the delay: state %+v, containers %v", st.Colors, h.rt.colors())
	}
	if st.Live != deployments.Green || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("live %s, route %s", st.Live, h.lb.route("web.example.com"))
	}
}

func TestScaleDownDelay_RollbackFlipsBackToTheStillRunningOldColor(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.ScaleDownDelay = 2 * time.Second })
	h.deploy(t, "web:v1")
	blueIDs := h.containerIDs(t, deployments.Blue)
	done := h.deployAsync(context.Background(), "web:v2")
	h.waitRetiring(t, deployments.Blue)
	h.waitEventMsg(t, StepRetire, EventStart, "waiting until") // the deploy released the lock

	res, err := h.s.Rollback(context.Background(), "web", Options{})
	if err != nil || res.Outcome != OutcomeDone {
		t.Fatalf("rollback during scale_down_delay: %+v, %v", res, err)
	}
	if !res.Plan.Reuse || res.Plan.To != deployments.Blue || res.Plan.Image != "web:v1" {
		t.Fatalf("rollback plan %+v, want blue's running web:v1 reused", res.Plan)
	}
	if got := h.containerIDs(t, deployments.Blue); got != blueIDs {
		t.Fatalf("blue's containers %s, want the same %s (flipped back, not redeployed)", got, blueIDs)
	}
	if got := h.lb.route("web.example.com"); got != "web_blue" {
		t.Fatalf("route = %q after rollback", got)
	}

	// The deploy that kept blue up leaves it alone: the rollback took it back.
	o := <-done
	if o.err != nil || o.res.Retired || !strings.Contains(o.res.Message, "not retired") {
		t.Fatalf("deploy after the rollback = %+v, %v; want blue not retired", o.res, o.err)
	}
	st := h.state(t)
	if st.Live != deployments.Blue || st.Colors[deployments.Blue].Retiring() || h.rt.colors()[deployments.Blue] != 1 {
		t.Fatalf("blue after all: state %+v, containers %v", st, h.rt.colors())
	}
	// And the rollback retired green after its own delay.
	if _, ok := st.Colors[deployments.Green]; ok || h.rt.colors()[deployments.Green] != 0 {
		t.Fatalf("green not retired: state %+v, containers %v", st.Colors, h.rt.colors())
	}
}

func TestScaleDownDelay_AnOverdueColorIsRetiredByTheNextOperation(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.ScaleDownDelay = time.Hour })
	h.deploy(t, "web:v1")
	ctx, cancel := context.WithCancel(context.Background())
	done := h.deployAsync(ctx, "web:v2")
	cs := h.waitRetiring(t, deployments.Blue)
	h.waitEventMsg(t, StepRetire, EventStart, "waiting until") // the deploy is past its steps, waiting
	// The swap that waits is gone (Ctrl-C; kill -9 leaves the same state).
	cancel()
	o := <-done
	if o.err != nil || o.res.Outcome != OutcomeDone || !strings.Contains(o.res.Message, "blue is still up") {
		t.Fatalf("cancelled wait = %+v, %v; want done, blue still up", o.res, o.err)
	}
	if h.rt.colors()[deployments.Blue] != 1 {
		t.Fatal("blue removed though its delay is not over")
	}

	// Before the delay ends a cleanup leaves blue alone; after, it retires it.
	if _, err := h.s.Cleanup(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	if !h.state(t).Colors[deployments.Blue].Retiring() || h.rt.colors()[deployments.Blue] != 1 {
		t.Fatal("cleanup retired blue before its scale_down_delay ended")
	}
	h.s.Now = func() time.Time { return cs.RetireAt.Add(time.Second) }
	if _, err := h.s.Cleanup(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.state(t).Colors[deployments.Blue]; ok || h.rt.colors()[deployments.Blue] != 0 || h.lb.serverCount("web_blue") != 0 {
		t.Fatalf("overdue blue not retired by cleanup: %+v %v", h.state(t).Colors, h.rt.colors())
	}
	if got := h.lb.route("web.example.com"); got != "web_green" {
		t.Fatalf("route = %q", got)
	}
}

// A HAProxy reloaded after the gate brings the new servers back DOWN until their rise
// checks pass: the shift waits for them a few intervals, and only then gives up.
func TestShift_WaitsBrieflyForServersAHAProxyReloadBroughtBackDown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		downFor time.Duration
		wantErr bool
	}{
		{"back up within a few check intervals", 300 * time.Millisecond, false},
		{"still down", time.Hour, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, nil)
			h.deploy(t, "web:v1")
			record := h.s.OnEvent
			h.s.OnEvent = func(e Event) {
				record(e)
				if e.Step == StepGate && e.Kind == EventDone {
					h.lb.setDown("web-green-0", true)
					time.AfterFunc(tc.downFor, func() { h.lb.setDown("web-green-0", false) })
				}
			}
			res, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "no healthy server in web_green (waited") || res.Outcome != OutcomeRolledBack {
					t.Fatalf("deploy = %+v, %v; want rolled back after waiting", res, err)
				}
				if got := h.lb.route("web.example.com"); got != "web_blue" {
					t.Fatalf("route = %q, want web_blue", got)
				}
				return
			}
			if err != nil || res.Outcome != OutcomeDone || h.lb.route("web.example.com") != "web_green" {
				t.Fatalf("deploy = %+v, %v; want done on green", res, err)
			}
		})
	}
}
