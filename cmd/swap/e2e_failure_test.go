package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// The deploys that must not reach the users: a new color that never gets healthy, and
// one that answers 5xx once it has the traffic.

func TestE2E_ANeverHealthyColorFailsTheDeployByItsDeadlineAndLeavesNoTrace(t *testing.T) {
	t.Parallel()
	app := e2eApp("sick")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))
	sick := s.docker.DemoImageEnv(t, "sick", map[string]string{"HEALTH_FAIL": "1"})
	r := s.mustSwap("deploy", app, "--image", s.v1, "--output", "json")
	s.waitAnswer(host, "color=blue version=v1")
	blue := s.consulInstances(app)

	// A short deploy_timeout (SWAP_* variables override the file), but one that leaves
	// the gate time to probe: it counts from the swap's start, and on a busy host Docker
	// alone can take seconds to start the containers.
	timeout := 6 * time.Second
	if evs := events(r.stdout); len(evs) > 0 && evs[len(evs)-1].Result != nil {
		var before time.Duration
		for _, st := range evs[len(evs)-1].Result.Steps {
			if st.Step == switcher.StepStart || st.Step == switcher.StepRegister || st.Step == switcher.StepStage {
				before += st.Duration
			}
		}
		timeout = max(timeout, (3*before + 2*time.Second).Round(time.Second))
	}
	t.Logf("deploy_timeout %s", timeout)

	l := s.startLoad(host, "/", 2)
	b := s.swapBackground([]string{"SWAP_APPS_" + envKey(app) + "_DEPLOY_TIMEOUT=" + timeout.String()}, "deploy", app, "--image", sick)
	r = b.wait(timeout + time.Minute) // deploy_timeout, and slack for the rollback
	if r.code != 1 {
		t.Fatalf("a deploy of a never-healthy image: want exit 1, got %s", r)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{app + "-green-0 probe", "/healthz", "503", "deploy_timeout " + timeout.String(), "rolled back"} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	// Blue served every request, and only blue.
	l.requireNoFailures(t)
	if len(l.byColor) != 1 || l.byColor["blue"] == 0 {
		t.Fatalf("answers by color %v: want blue alone", l.byColor)
	}

	// Nothing of green is left: no container, no Consul entry, no HAProxy server.
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers left: %v", names)
	}
	if ids := s.consulInstances(app); !sameSet(ids, blue) {
		t.Errorf("Consul has %v, want blue's %v alone", ids, blue)
	}
	if srv := s.haproxyServers(app + "_green"); len(srv) != 0 {
		t.Errorf("HAProxy backend %s_green still has %v", app, srv)
	}
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("routes.map has %s -> %q, want %s_blue", host, got, app)
	}
	st := s.mustSwap("status", app)
	if !strings.Contains(st.stdout, app+": live blue") || strings.Contains(st.stdout, "in flight") {
		t.Errorf("status after the failed deploy:\n%s", st.stdout)
	}
	if h := s.mustSwap("history", app).stdout; !strings.Contains(h, "rolled back") {
		t.Errorf("history does not record the rolled back deploy:\n%s", h)
	}
	s.waitAnswer(host, "color=blue version=v1")
}

func TestE2E_A5xxSpikeAfterTheShiftRollsBackToTheOldColor(t *testing.T) {
	t.Parallel()
	app := e2eApp("spike")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    verify: {window: 5s, max_5xx_rate: 0.05}\n"))
	bad := s.docker.DemoImageEnv(t, "spiky", map[string]string{"ERROR_PCT": "50"})
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	r := s.swap(nil, "deploy", app, "--image", bad)
	if r.code != 1 {
		t.Fatalf("a deploy of an image answering 50%% 500s: want exit 1, got %s", r)
	}
	for _, want := range []string{"at verify", "5xx", app + "_green", "rolled back"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	s.waitAnswer(host, "color=blue version=v1")
	fails := l.finish()
	t.Logf("load: %d requests, by color %v, %d failed", l.total.Load(), l.byColor, len(fails))
	// The only failures are the 500s green answered itself before the rollback.
	if len(fails) == 0 {
		t.Fatal("the load saw none of green's 500s: did the traffic ever reach green?")
	}
	for _, f := range fails {
		if !strings.HasPrefix(f, `500 "color=green version=spiky injected error"`) {
			t.Fatalf("a failure that is not green's own 500: %s (of %d failures)", f, len(fails))
		}
	}
	if l.byColor["blue"] == 0 || l.byColor["green"] == 0 {
		t.Fatalf("answers by color %v: want both (blue before and after, green between)", l.byColor)
	}

	// Blue serves after; green is gone.
	for n := 0; n < 20; n++ {
		code, body, err := getFrom(s.frontend, host, "/")
		if err != nil || code != 200 || body != "color=blue version=v1" {
			t.Fatalf("after the rollback GET / = %d %q %v, want blue v1", code, body, err)
		}
	}
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("routes.map has %s -> %q, want %s_blue", host, got, app)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers left: %v", names)
	}
	if srv := s.haproxyServers(app + "_green"); len(srv) != 0 {
		t.Errorf("HAProxy backend %s_green still has %v", app, srv)
	}
	if h := s.mustSwap("history", app).stdout; !strings.Contains(h, "rolled back") {
		t.Errorf("history does not record the rollback:\n%s", h)
	}
}

// sameSet reports whether a and b hold the same strings.
func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// envKey is app as it appears in a SWAP_APPS_<APP>_... variable.
func envKey(app string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(app))
}
