package main

import (
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

func TestE2E_ATwoStepCanaryMixesBothColorsThenMovesAllTrafficWithoutAFailedRequest(t *testing.T) {
	t.Parallel()
	app := e2eApp("canary")
	host := app + ".test"
	s := newStack(t, appConfig(app, `    canary:
      - {weight: 20, bake: 2s}
      - {weight: 60, bake: 2s}
    verify: {window: 1s, max_5xx_rate: 0.05}
`))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	const blue, green = "color=blue version=v1", "color=green version=v2"
	for i, step := range []struct {
		event, canary string
	}{{"canary 1/2: 20%", app + "_green:20"}, {"canary 2/2: 60%", app + "_green:60"}} {
		b.waitEvent(switcher.StepShift, switcher.EventInfo, step.event, 2*time.Minute)
		// An answer counts for this step when canary.map held the step's weight both
		// before and after it: both colors must answer while the split is on.
		seen := map[string]int{}
		for n := 0; seen[blue] == 0 || seen[green] == 0; n++ {
			if got := s.mapValue("canary.map", host); got != step.canary || n == 500 {
				t.Fatalf("canary step %d: canary.map has %q (want %q) after %d answers %v: the step ended before both colors answered",
					i+1, got, step.canary, n, seen)
			}
			code, body, err := getFrom(s.frontend, host, "/")
			if err != nil || code != 200 {
				t.Fatalf("canary step %d: GET / = %d %q %v", i+1, code, body, err)
			}
			if got := s.mapValue("canary.map", host); got == step.canary {
				seen[body]++
			}
		}
		if len(seen) != 2 {
			t.Fatalf("canary step %d: answers %v, want blue v1 and green v2 alone", i+1, seen)
		}
		t.Logf("canary step %d: %v", i+1, seen)
	}
	r := b.mustSucceed(2 * time.Minute)
	evs := events(r.stdout)
	if len(evs) == 0 || evs[len(evs)-1].Result == nil || evs[len(evs)-1].Result.Outcome != switcher.OutcomeDone {
		t.Fatalf("the deploy did not end done:\n%s", r)
	}
	if _, ok := findEvent(evs, switcher.StepVerify, switcher.EventDone, ""); !ok {
		t.Fatalf("no verify step ran:\n%s", r)
	}

	// All traffic on green: the canary entry is gone and every answer is green's.
	if got := s.mapValue("canary.map", host); got != "" {
		t.Fatalf("canary.map still has %s -> %s after the swap", host, got)
	}
	if got := s.route(host); got != app+"_green" {
		t.Fatalf("routes.map has %s -> %q, want %s_green", host, got, app)
	}
	for n := 0; n < 50; n++ {
		code, body, err := getFrom(s.frontend, host, "/")
		if err != nil || code != 200 || body != green {
			t.Fatalf("after the canary, GET / = %d %q %v; want every answer from green v2", code, body, err)
		}
	}
	l.requireNoFailures(t)
	if names := s.containers("swap.app="+app, "swap.color=blue"); len(names) != 0 {
		t.Fatalf("blue containers left after the swap: %v", names)
	}
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, app+": live green") {
		t.Fatalf("status does not show green live:\n%s", st)
	}
}
