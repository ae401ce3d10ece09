package switcher

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// meshHarness is a harness with the mesh on.
func meshHarness(t *testing.T, edit func(*deployments.App)) (*harness, *fakeMesh) {
	t.Helper()
	h := newHarness(t, edit)
	m := newFakeMesh()
	h.s.Mesh = m
	return h, m
}

// verified gives the app a verify window that a 5xx spike fails.
func verified(a *deployments.App) {
	a.Verify = deployments.Verify{Window: 2 * time.Second, Max5xxRate: 0.05}
}

// wantMesh fails unless the mesh sends all of web's traffic to c.
func wantMesh(t *testing.T, m *fakeMesh, c deployments.Color) {
	t.Helper()
	if got := m.target("web"); got != (MeshTarget{Live: c}) {
		t.Fatalf("mesh target %+v, want all to %s (changes %v)", got, c, m.changes())
	}
}

func TestMesh_FollowsEveryFlipSwitchAndRollback(t *testing.T) {
	h, m := meshHarness(t, nil)
	h.deploy(t, "web:v1")
	wantMesh(t, m, deployments.Blue)
	h.deploy(t, "web:v2")
	wantMesh(t, m, deployments.Green)
	if _, err := h.s.Rollback(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	wantMesh(t, m, deployments.Blue)
	if _, err := h.s.Switch(context.Background(), "web", deployments.Green, Options{}); err != nil {
		t.Fatal(err)
	}
	wantMesh(t, m, deployments.Green)
	if st := h.state(t); st.Live != deployments.Green || h.lb.route("web.example.com") != "web_green" {
		t.Fatalf("live %s, route %s", st.Live, h.lb.route("web.example.com"))
	}

	st, err := h.s.Status(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if st.Mesh == nil || *st.Mesh != (MeshTarget{Live: deployments.Green}) || st.Mesh.String() != "green" {
		t.Fatalf("status mesh %+v", st.Mesh)
	}
}

func TestMesh_AFailedMeshWriteAtTheShiftRoutesHAProxyBackAndFailsTheStep(t *testing.T) {
	h, m := meshHarness(t, nil)
	h.deploy(t, "web:v1")
	meshDown := errors.New("consul: 500 config entries unavailable")
	m.fail = func(op string, c deployments.Color, _ int) error {
		if op == "route" && c == deployments.Green {
			return meshDown
		}
		return nil
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepShift || !se.RolledBack || !errors.Is(err, meshDown) ||
		!strings.Contains(err.Error(), `the mesh could not follow HAProxy (they move together); "web.example.com" was routed back to web_blue`) {
		t.Fatalf("err = %v, want a rolled back shift naming the mesh", err)
	}
	if got := h.lb.routeLog; !slices.Equal(got, []string{"web_blue", "web_green", "web_blue"}) {
		t.Fatalf("HAProxy route changes %v, want back on web_blue", got)
	}
	wantMesh(t, m, deployments.Blue)
	if n := h.rt.colors(); n[deployments.Green] != 0 || n[deployments.Blue] != 1 {
		t.Fatalf("containers %v", n)
	}
	if st := h.state(t); st.Live != deployments.Blue || st.History[len(st.History)-1].Result != OutcomeRolledBack {
		t.Fatalf("state %+v", st)
	}
}

func TestMesh_AFirstDeployWritesTheMeshBeforeHAProxyAndStopsWhenItFails(t *testing.T) {
	h, m := meshHarness(t, nil)
	m.fail = func(string, deployments.Color, int) error { return errors.New("no config entries") }
	if _, err := h.s.Deploy(context.Background(), "web", "web:v1", Options{}); err == nil {
		t.Fatal("deploy succeeded with the mesh failing")
	}
	if got := h.lb.routeLog; len(got) != 0 {
		t.Fatalf("HAProxy was routed (%v) although the mesh failed first", got)
	}
	if n := h.rt.colors(); n[deployments.Blue] != 0 {
		t.Fatalf("containers %v left after the rollback", n)
	}
	m.fail = nil
	h.deploy(t, "web:v1")
	wantMesh(t, m, deployments.Blue)
}

func TestMesh_FlipBackOnVerifyMovesTheEdgeAndTheMeshBack(t *testing.T) {
	h, m := meshHarness(t, verified)
	h.deploy(t, "web:v1")
	h.s.OnEvent = func(e Event) {
		if e.Step == StepVerify && e.Kind == EventStart {
			wantMesh(t, m, deployments.Green) // the shift moved both
			h.lb.spikeAfter("web_green", 100, 50)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepVerify || !se.RolledBack {
		t.Fatalf("err = %v, want a rolled back verify failure", err)
	}
	if got := h.lb.routeLog; !slices.Equal(got, []string{"web_blue", "web_green", "web_blue"}) {
		t.Fatalf("HAProxy route changes %v", got)
	}
	wantMesh(t, m, deployments.Blue)
	if got := m.changes(); !slices.Equal(got[len(got)-2:], []string{"route green", "route blue"}) {
		t.Fatalf("mesh changes %v, want green then back to blue", got)
	}
}

func TestMesh_ARollbackThatCannotMoveTheMeshBackKeepsTheNewColor(t *testing.T) {
	h, m := meshHarness(t, verified)
	h.deploy(t, "web:v1")
	h.s.OnEvent = func(e Event) {
		if e.Step == StepVerify && e.Kind == EventStart {
			m.fail = func(op string, c deployments.Color, _ int) error {
				if c == deployments.Blue {
					return errors.New("consul is unreachable")
				}
				return nil
			}
			h.lb.spikeAfter("web_green", 100, 50)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{})
	if err == nil || !strings.Contains(err.Error(), "green's instances are kept while the mesh may still send them traffic") {
		t.Fatalf("err = %v", err)
	}
	if n := h.rt.colors(); n[deployments.Green] != 1 {
		t.Fatalf("containers %v: green was removed while the mesh sends it traffic", n)
	}
	// Once the mesh answers again, resume finishes the flip back.
	m.fail = nil
	h.s.OnEvent = nil
	if _, err := h.s.Resume(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	wantMesh(t, m, deployments.Blue)
	if n := h.rt.colors(); n[deployments.Green] != 0 || h.lb.route("web.example.com") != "web_blue" {
		t.Fatalf("after resume: containers %v, route %s", n, h.lb.route("web.example.com"))
	}
}

func TestMesh_CanaryWeightsReachTheEdgeAndTheMeshAndAFailedStepEndsBoth(t *testing.T) {
	h, m := meshHarness(t, func(a *deployments.App) {
		a.Canary = []deployments.CanaryStep{{Weight: 10, Bake: 50 * time.Millisecond}, {Weight: 50, Bake: 50 * time.Millisecond}}
	})
	h.deploy(t, "web:v1")
	type both struct {
		edge int
		mesh MeshTarget
	}
	var seen []both
	h.s.OnEvent = func(e Event) {
		if e.Step == StepShift && e.Kind == EventInfo && strings.HasPrefix(e.Message, "canary") {
			h.lb.mu.Lock()
			w := h.lb.canary["web.example.com"]
			h.lb.mu.Unlock()
			seen = append(seen, both{w, m.target("web")})
		}
	}
	h.deploy(t, "web:v2")
	want := []both{
		{10, MeshTarget{Live: deployments.Blue, Canary: deployments.Green, Weight: 10}},
		{50, MeshTarget{Live: deployments.Blue, Canary: deployments.Green, Weight: 50}},
	}
	if !slices.Equal(seen, want) {
		t.Fatalf("canary steps saw %+v, want %+v", seen, want)
	}
	wantMesh(t, m, deployments.Green)

	// A spike at the first step of the next canary ends the split and the edge weight.
	h.s.OnEvent = func(e Event) {
		if e.Step == StepShift && e.Kind == EventInfo && strings.HasPrefix(e.Message, "canary 1/") {
			h.lb.spikeAfter("web_blue", 100, 40)
		}
	}
	_, err := h.s.Deploy(context.Background(), "web", "web:v3", Options{})
	if !errors.Is(err, ErrTooMany5xx) || h.lb.canary["web.example.com"] != 0 {
		t.Fatalf("err %v, edge canary %d", err, h.lb.canary["web.example.com"])
	}
	wantMesh(t, m, deployments.Green)

	// A split Consul refuses fails the step before HAProxy's weight moves.
	m.fail = func(op string, _ deployments.Color, _ int) error {
		if op == "split" {
			return errors.New("protocol tcp does not permit splitting")
		}
		return nil
	}
	h.s.OnEvent = nil
	_, err = h.s.Deploy(context.Background(), "web", "web:v3", Options{})
	var se *Error
	if !errors.As(err, &se) || se.Step != StepShift || !se.RolledBack || h.lb.canary["web.example.com"] != 0 {
		t.Fatalf("err %v, edge canary %d", err, h.lb.canary["web.example.com"])
	}
	wantMesh(t, m, deployments.Green)
}

func TestMesh_AbortInPreviewLeavesTheMeshOnTheLiveColor(t *testing.T) {
	h, m := meshHarness(t, func(a *deployments.App) { f := false; a.AutoPromote = &f })
	h.s.Config.HAProxy.Preview = deployments.Listener{Name: "www_preview", Bind: "127.0.0.1:8081"}
	h.deploy(t, "web:v1")
	if _, err := h.s.Promote(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	wantMesh(t, m, deployments.Blue)
	h.deploy(t, "web:v2")
	wantMesh(t, m, deployments.Blue) // the preview is the edge's alone
	if _, err := h.s.Abort(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	wantMesh(t, m, deployments.Blue)
}

func TestMesh_TheDrainRestoresAMeshRouteChangedAfterTheShift(t *testing.T) {
	h, m := meshHarness(t, nil)
	h.deploy(t, "web:v1")
	h.s.OnEvent = func(e Event) {
		if e.Step == StepVerify && e.Kind == EventStart {
			m.mu.Lock()
			m.live["web"] = deployments.Blue // changed from outside
			m.mu.Unlock()
		}
	}
	h.deploy(t, "web:v2")
	wantMesh(t, m, deployments.Green)
}

func TestReconcilePass_RoutesTheMeshToTheLiveColorInKV(t *testing.T) {
	h, m := meshHarness(t, nil)
	h.deploy(t, "web:v1")
	r := h.reconciler()
	r.Mesh = m
	if res := h.pass(t, r); len(res.Applied) != 0 {
		t.Fatalf("a pass in line applied %v", res.Applied)
	}
	m.mu.Lock()
	m.live["web"] = deployments.Green
	m.split["web"] = MeshTarget{Canary: deployments.Green, Weight: 30}
	m.mu.Unlock()
	res := h.pass(t, r)
	if len(res.Applied) != 1 || res.Applied[0].Kind != ActMesh || res.Applied[0].Color != deployments.Blue {
		t.Fatalf("applied %v", res.Applied)
	}
	wantMesh(t, m, deployments.Blue)
	if res := h.pass(t, r); len(res.Applied) != 0 {
		t.Fatalf("a second pass applied %v", res.Applied)
	}
}
