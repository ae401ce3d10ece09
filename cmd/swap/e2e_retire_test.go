package main

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// scale_down_delay keeps the drained old color up as an instant rollback target: the
// swap that drained it waits without the lock, so `swap rollback` flips back to the
// very same containers, under load, with no failed request.
func TestE2E_RollbackDuringScaleDownDelayFlipsBackToTheRunningOldColor(t *testing.T) {
	t.Parallel()
	app := e2eApp("delay")
	host := app + ".test"
	// The delay must outlast the checks below on a busy machine (15 s did not, once).
	s := newStack(t, appConfig(app, oneReplica+"    scale_down_delay: 45s\n"))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	blue := s.containerIDs("swap.app="+app, "swap.color=blue")

	l := s.startLoad(host, "/", 4)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	b.waitEvent(switcher.StepRetire, switcher.EventStart, "waiting until", 2*time.Minute)
	s.waitAnswer(host, "color=green version=v2")
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, "retiring at") {
		t.Errorf("status does not show blue retiring:\n%s", st)
	}
	if got := s.containerIDs("swap.app="+app, "swap.color=blue"); !slices.Equal(got, blue) {
		t.Fatalf("blue's containers %v during scale_down_delay, want %v", got, blue)
	}

	// The rollback retires green after a short delay of its own.
	r := s.swap([]string{"SWAP_APPS_" + envKey(app) + "_SCALE_DOWN_DELAY=1s"}, "rollback", app, "--output", "json")
	if r.code != 0 {
		t.Fatalf("rollback during scale_down_delay: %s", r)
	}
	evs := events(r.stdout)
	if _, ok := findEvent(evs, switcher.StepStart, switcher.EventInfo, "keeping 1 running instance(s) of blue"); !ok {
		t.Errorf("the rollback did not reuse blue's running instance:\n%s", r.stdout)
	}
	if last := evs[len(evs)-1]; last.Result == nil || !last.Result.Retired || last.Result.Retiring != "green" {
		t.Errorf("rollback result %+v: want green retired", last.Result)
	}
	s.waitAnswer(host, "color=blue version=v1")

	// The deploy that kept blue up leaves it: the rollback took it back.
	d := b.mustSucceed(2 * time.Minute)
	if !strings.Contains(d.stdout, "blue was not retired: another swap took it back") {
		t.Errorf("the deploy's end does not say blue was kept:\n%s", d.stdout)
	}
	l.requireNoFailures(t)
	if l.byColor["blue"] == 0 || l.byColor["green"] == 0 {
		t.Errorf("answers by color %v: want blue, then green, then blue", l.byColor)
	}
	if got := s.containerIDs("swap.app="+app, "swap.color=blue"); !slices.Equal(got, blue) {
		t.Errorf("blue's containers %v at the end, want the original %v", got, blue)
	}
	if got := s.containers("swap.app="+app, "swap.color=green"); len(got) != 0 {
		t.Errorf("green containers left: %v", got)
	}
	if got := s.haproxyServers(app + "_green"); len(got) != 0 {
		t.Errorf("green servers left in HAProxy: %v", got)
	}
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("route %q, want %s_blue", got, app)
	}
}
