package main

import (
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// With auto_promote: false a swap waits in preview: the preview frontend shows the new
// color while the users stay on the live one, until `swap promote` shifts them or `swap
// abort` removes it. Long requests in flight on the old color at the shift finish there.
func TestE2E_PreviewWaitsForPromoteOrAbortAndLongRequestsFinishOnTheOldColor(t *testing.T) {
	t.Parallel()
	app := e2eApp("pre")
	host := app + ".test"
	s := newStack(t, appConfig(app, "    auto_promote: false\n"))
	blue, green := app+"_blue", app+"_green"

	// The first deploy waits too: blue answers on the preview frontend alone.
	r := s.mustSwap("deploy", app, "--image", s.v1)
	if !strings.Contains(r.stdout, "waits in preview") {
		t.Fatalf("a deploy without auto_promote did not wait:\n%s", r)
	}
	s.requireAnswer(s.preview, host, 200, "color=blue version=v1")
	s.requireAnswer(s.frontend, host, 503, "")
	s.mustSwap("promote", app)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	r = s.mustSwap("deploy", app, "--image", s.v2)
	if !strings.Contains(r.stdout, "waits in preview") {
		t.Fatalf("the deploy did not wait in preview:\n%s", r)
	}
	s.requireAnswer(s.preview, host, 200, "color=green version=v2")
	s.requireAnswer(s.frontend, host, 200, "color=blue version=v1")
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, "in flight: deploy to green") || !strings.Contains(st, "waiting") {
		t.Fatalf("status does not show the swap waiting:\n%s", st)
	}
	if r := s.swap(nil, "deploy", app, "--image", s.v2); r.code != 3 || !strings.Contains(r.stderr, "swap promote "+app) {
		t.Fatalf("another deploy while one waits in preview: want exit 3 naming promote, got %s", r)
	}

	// Abort: green goes, blue never stopped serving.
	r = s.mustSwap("abort", app)
	if !strings.Contains(r.stdout, "rolled back") {
		t.Fatalf("abort did not roll back:\n%s", r)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Fatalf("green containers left after abort: %v", names)
	}
	if srv := s.haproxyServers(green); len(srv) != 0 {
		t.Fatalf("%s still has %v after abort", green, srv)
	}
	if got := s.mapValue("preview.map", host); got == green {
		t.Fatalf("the preview frontend still routes to %s after abort", green)
	}
	if got := s.route(host); got != blue {
		t.Fatalf("routes.map has %s -> %q after abort, want %s", host, got, blue)
	}

	// Again, and promote with long requests in flight on blue: they finish on blue.
	s.mustSwap("deploy", app, "--image", s.v2)
	s.requireAnswer(s.preview, host, 200, "color=green version=v2")
	var slow []<-chan answer
	for range 4 {
		slow = append(slow, s.startRequest(host, "/slow?ms=3000"))
	}
	sent := time.Now()
	r = s.mustSwap("promote", app, "--output", "json")
	shifted, ok := findEvent(events(r.stdout), switcher.StepShift, switcher.EventInfo, "now routes to "+green)
	if !ok {
		t.Fatalf("promote did not shift to green:\n%s", r)
	}
	t.Logf("the shift came %s after the long requests were sent", shifted.Time.Sub(sent).Round(time.Millisecond))
	for i, ch := range slow {
		var a answer
		select {
		case a = <-ch:
		case <-time.After(time.Minute):
			t.Fatalf("long request %d did not end", i)
		}
		if a.err != nil || a.code != 200 || a.color != "blue" || a.body != "color=blue version=v1" {
			t.Fatalf("long request %d in flight at the shift: %d %q (X-Color %q) %v; want 200 from blue v1", i, a.code, a.body, a.color, a.err)
		}
		if !a.at.After(shifted.Time) {
			t.Fatalf("long request %d ended at %s, before the shift at %s: it was not in flight at the shift", i, a.at, shifted.Time)
		}
	}
	s.waitAnswer(host, "color=green version=v2")
	l.requireNoFailures(t)
	if names := s.containers("swap.app="+app, "swap.color=blue"); len(names) != 0 {
		t.Fatalf("blue containers left after the promoted swap: %v", names)
	}
	if got := s.mapValue("preview.map", host); got != "" {
		t.Fatalf("the preview route is still %s after the promoted swap", got)
	}
}

// requireAnswer sends one request to the frontend at addr for host and fails the test
// unless it answers code with want in the body.
func (s *stack) requireAnswer(addr, host string, code int, want string) {
	s.t.Helper()
	got, body, err := getFrom(addr, host, "/")
	if err != nil || got != code || !strings.Contains(body, want) {
		s.t.Fatalf("GET http://%s/ for %s = %d %q %v, want %d with %q", addr, host, got, body, err, code, want)
	}
}
