package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

// The swaps that must never end in an outage: a new color that dies right after the
// shift, a route put back on the old color behind swap's back, a swap that loses its
// lock.

// killColor kills app's containers of color (as a crash or an OOM kill would) and says
// when.
func (s *stack) killColor(app, color string) time.Time {
	s.t.Helper()
	ids := s.containerIDs("swap.app="+app, "swap.color="+color)
	if len(ids) == 0 {
		s.t.Fatalf("no %s container of %s to kill", color, app)
	}
	at := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, id := range ids {
		if err := s.docker.Client.ContainerKill(ctx, id, "KILL"); err != nil {
			s.t.Fatalf("kill %s: %v", id, err)
		}
	}
	return at
}

func TestE2E_ANewColorThatDiesRightAfterTheShiftIsRolledBackNotCommitted(t *testing.T) {
	t.Parallel()
	app := e2eApp("dies")
	host := app + ".test"
	s := newStack(t, appConfig(app, "    verify: {window: 20s, max_5xx_rate: 0.05}\n"+holdHooks(app, "post_shift")))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	const workers = 4
	l := s.startLoad(host, "/", workers)
	hold := s.newHold(app)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	// post_shift runs once every HAProxy routes to green: green has the traffic.
	hold.waitHeld(b)
	if got := s.route(host); got != app+"_green" {
		t.Fatalf("routes.map has %s -> %q while post_shift runs, want %s_green", host, got, app)
	}
	s.waitAnswer(host, "color=green version=v2")
	killed := s.killColor(app, "green")
	// While swap still waits in its hook, HAProxy alone sends the traffic back to blue:
	// blue's servers are backups of green's backend until the drain.
	s.waitAnswer(host, "color=blue version=v1")
	recovered := time.Now()
	hold.release()

	r := b.wait(3 * time.Minute)
	if r.code != 1 {
		t.Fatalf("a deploy whose new color died after the shift: want exit 1, got %s", r)
	}
	for _, want := range []string{"at verify", "not healthy", "rolled back"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	evs := events(r.stdout)
	flip, ok := findEvent(evs, switcher.StepRollback, switcher.EventStart, "flipping")
	if !ok {
		t.Fatalf("no flip back reported:\n%s", r.stdout)
	}
	fails := l.finish()
	t.Logf("load: %d requests, by color %v, %d failed (first: %v), from %s to %s after the kill; blue answered the test again %s after it; swap flipped back %s after it",
		l.total.Load(), l.byColor, len(fails), fails[:min(len(fails), 3)], l.firstFail.Sub(killed).Round(time.Millisecond), l.lastFail.Sub(killed).Round(time.Millisecond),
		recovered.Sub(killed).Round(time.Millisecond), flip.Time.Sub(killed).Round(time.Millisecond))
	// Clients did not wait for swap: the failures (requests that met a dead green before
	// HAProxy's checks took it out) ended before swap flipped the route back, and no
	// request failed from then on. docs/haproxy.md gives the measured counts.
	if len(fails) > 0 && !l.lastFail.Before(flip.Time) {
		t.Fatalf("%d requests failed, the last %s after the kill, after swap flipped back (%s): HAProxy did not fall back to blue by itself\nHAProxy's servers at the first failure:%s",
			len(fails), l.lastFail.Sub(killed), flip.Time.Sub(killed), l.atFirst)
	}

	// Blue serves and stays; green is gone; the state says blue.
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("routes.map has %s -> %q, want %s_blue", host, got, app)
	}
	if n := len(s.containers("swap.app="+app, "swap.color=blue")); n != 2 {
		t.Errorf("%d blue containers, want the 2 that were live", n)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers left: %v", names)
	}
	if srv := s.haproxyServers(app + "_green"); len(srv) != 0 {
		t.Errorf("HAProxy backend %s_green still has %v", app, srv)
	}
	st := s.mustSwap("status", app)
	if !strings.Contains(st.stdout, app+": live blue") {
		t.Errorf("status after the rollback:\n%s", st.stdout)
	}
	s.waitAnswer(host, "color=blue version=v1")
}

func TestE2E_ARouteReloadedBackToTheOldColorIsRestoredBeforeTheDrain(t *testing.T) {
	t.Parallel()
	app := e2eApp("reroute")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+holdHooks(app, "post_shift")))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	hold := s.newHold(app)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	hold.waitHeld(b)
	s.waitAnswer(host, "color=green version=v2")
	// HAProxy is reloaded from a routes.map that says blue (files that lag behind the
	// runtime, or an operator's old copy): blue serves again.
	routes := filepath.Join(s.dir, "haproxy", "routes.map")
	if err := os.WriteFile(routes, []byte(host+" "+app+"_blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s.haproxy.Reload(t)
	s.waitAnswer(host, "color=blue version=v1")
	hold.release()

	r := b.mustSucceed(3 * time.Minute)
	evs := events(r.stdout)
	if _, ok := findEvent(evs, switcher.StepDrain, switcher.EventInfo, "restoring the planned route"); !ok {
		t.Errorf("the drain did not report restoring the route:\n%s", r.stdout)
	}
	// Green serves; blue, drained only once green had the traffic back, is gone; no
	// request failed on the way.
	l.requireNoFailures(t)
	if got := s.route(host); got != app+"_green" {
		t.Errorf("routes.map has %s -> %q, want %s_green", host, got, app)
	}
	if names := s.containers("swap.app="+app, "swap.color=blue"); len(names) != 0 {
		t.Errorf("blue containers left: %v", names)
	}
	s.waitAnswer(host, "color=green version=v2")
	b2, err := os.ReadFile(routes)
	if err != nil || !strings.Contains(string(b2), app+"_green") {
		t.Errorf("routes.map on disk = %q, %v; want the live route to green", b2, err)
	}
}

func TestE2E_ASwapThatLosesItsLockStopsAndRollsNothingBackWithoutIt(t *testing.T) {
	t.Parallel()
	app := e2eApp("lost")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))
	sick := s.docker.DemoImageEnv(t, "never-healthy", map[string]string{"HEALTH_FAIL": "1"})
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	// A deploy that sits in its gate (its image never gets healthy, deploy_timeout 2m).
	b := s.swapBackground(nil, "deploy", app, "--image", sick, "--output", "json")
	b.waitEvent(switcher.StepGate, switcher.EventStart, "", 2*time.Minute)
	green := s.containerIDs("swap.app="+app, "swap.color=green")
	if len(green) == 0 {
		t.Fatal("no green container while the gate runs")
	}
	// Its Consul session goes (an agent restart, a partition, a TTL expiry would do
	// the same).
	kv := s.consul.Client.KV()
	pair, _, err := kv.Get("swap-test-"+s.docker.RunID+"/"+consul.LockKey(app), nil)
	if err != nil || pair == nil || pair.Session == "" {
		t.Fatalf("the lock key of %s: %+v, %v", app, pair, err)
	}
	if _, err := s.consul.Client.Session().Destroy(pair.Session, nil); err != nil {
		t.Fatal(err)
	}

	r := b.wait(time.Minute)
	if r.code == 0 {
		t.Fatalf("a swap that lost its lock exited 0:\n%s", r)
	}
	out := r.stdout + r.stderr
	for _, want := range []string{"lost the app's lock", "swap resume " + app} {
		if !strings.Contains(out, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	for _, e := range events(r.stdout) {
		if e.Type == "event" && e.Step == switcher.StepRollback {
			t.Errorf("the swap rolled back without its lock: %s", e.Message)
		}
	}
	// Nothing was undone without the lock: green's container and the journal are there
	// for `swap resume`, which repairs under a new lock.
	if got := s.containerIDs("swap.app="+app, "swap.color=green"); !sameSet(got, green) {
		t.Errorf("green containers %v, want %v untouched", got, green)
	}
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, "in flight") {
		t.Errorf("status shows no interrupted swap:\n%s", st)
	}
	res := s.mustSwap("resume", app)
	if !strings.Contains(res.stdout+res.stderr, "rolled back") {
		t.Errorf("resume did not roll back:\n%s", res)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers left after resume: %v", names)
	}
	l.requireNoFailures(t)
	if len(l.byColor) != 1 || l.byColor["blue"] == 0 {
		t.Errorf("answers by color %v: want blue alone", l.byColor)
	}
	s.waitAnswer(host, "color=blue version=v1")
}

func TestE2E_AShiftWhoseFilesCannotBeWrittenFlipsBackAndFails(t *testing.T) {
	t.Parallel()
	app := e2eApp("nowrite")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	// routes.map can no longer be replaced (a full disk, a read-only mount, a file
	// made immutable): a shift would be live at runtime but lost at the next reload.
	routes := filepath.Join(s.dir, "haproxy", "routes.map")
	if out, err := exec.Command("chattr", "+i", routes).CombinedOutput(); err != nil {
		testenv.Require(t, "chattr +i on the test's directory", fmt.Errorf("%v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", routes).Run() })

	l := s.startLoad(host, "/", 2)
	r := s.swap(nil, "deploy", app, "--image", s.v2)
	if r.code != 1 {
		t.Fatalf("a shift whose files cannot be written: want exit 1, got %s", r)
	}
	for _, want := range []string{"at shift", "files could not be written", "routed back to " + app + "_blue", "rolled back"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	l.requireNoFailures(t)
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("routes.map has %s -> %q at runtime, want %s_blue (what the files say)", host, got, app)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers left: %v", names)
	}
	// A reload serves what the runtime serves: blue.
	s.haproxy.Reload(t)
	s.waitAnswer(host, "color=blue version=v1")
}

func TestE2E_AResumedSwapFollowsItsPlanNotTheConfigChangedSince(t *testing.T) {
	t.Parallel()
	app := e2eApp("plan")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	// The deploy dies just before its retire; its plan says: retire blue at once.
	r := s.swap([]string{"SWAP_FAULT=retire:before"}, "deploy", app, "--image", s.v2, "--output", "json")
	if r.code != -9 {
		t.Fatalf("swap deploy with SWAP_FAULT=retire:before did not die by SIGKILL: %s", r)
	}
	// Meanwhile the config gained a scale_down_delay of an hour: the resume still
	// does what the plan said.
	b := s.swapBackground([]string{"SWAP_APPS_" + envKey(app) + "_SCALE_DOWN_DELAY=1h"}, "resume", app, "--output", "json")
	res := b.mustSucceed(2 * time.Minute)
	if strings.Contains(res.stdout, "scale_down_delay") {
		t.Errorf("the resume used the config's scale_down_delay, not the plan's:\n%s", res.stdout)
	}
	if names := s.containers("swap.app="+app, "swap.color=blue"); len(names) != 0 {
		t.Errorf("blue containers %v: not retired as the plan said", names)
	}
	s.waitAnswer(host, "color=green version=v2")
}

// setErrorRate makes app's containers of color answer pct% of their requests with 500.
func (s *stack) setErrorRate(app, color string, pct int) {
	s.t.Helper()
	cs := s.containerList("swap.app="+app, "swap.color="+color)
	if len(cs) == 0 {
		s.t.Fatalf("no %s container of %s", color, app)
	}
	for _, c := range cs {
		for _, p := range c.Ports {
			if p.PublicPort == 0 {
				continue
			}
			url := fmt.Sprintf("http://127.0.0.1:%d/error-rate?pct=%d", p.PublicPort, pct)
			resp, err := http.Post(url, "text/plain", nil)
			if err != nil {
				s.t.Fatalf("POST %s: %v", url, err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				s.t.Fatalf("POST %s: %s", url, resp.Status)
			}
		}
	}
}

func TestE2E_AReloadOfOneHAProxyDuringVerifyIsNotA5xxSpike(t *testing.T) {
	t.Parallel()
	app := e2eApp("counters")
	host := app + ".test"
	s := newStackWith(t, appConfig(app, oneReplica+"    verify: {window: 20s, max_5xx_rate: 0.5}\n"+holdHooks(app, "post_shift")),
		stackOptions{secondLB: true})
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	hold := s.newHold(app)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	hold.waitHeld(b)
	// Before verify takes its baseline, green answers a burst of 500s through both
	// HAProxies (the kernel spreads the connections over them).
	s.setErrorRate(app, "green", 100)
	for range 40 {
		if code, _, err := getFrom(s.frontend, host, "/"); err != nil || code != 500 {
			t.Fatalf("the burst: %d %v, want green's 500", code, err)
		}
	}
	s.setErrorRate(app, "green", 0)
	hold.release()
	b.waitEvent(switcher.StepVerify, switcher.EventStart, "", time.Minute)
	// Then it answers well, a few hundred requests, and lb1 is reloaded: its counters
	// start over from zero while lb2's go on. Summed over both, the answers did not go
	// down, but the 5xx did: a difference taken over the sum wraps around.
	l := s.startLoad(host, "/", 2)
	testenv.WaitFor(t, time.Minute, "200 answers", func() error {
		if n := l.total.Load(); n < 200 {
			return fmt.Errorf("%d so far", n)
		}
		return nil
	})
	s.haproxy.Reload(t)
	r := b.wait(3 * time.Minute)
	l.requireNoFailures(t)
	if r.code != 0 {
		t.Fatalf("a reload during verify was taken for a 5xx spike: %s", r)
	}
	s.waitAnswer(host, "color=green version=v2")
}
