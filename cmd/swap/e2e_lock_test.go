package main

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

func TestE2E_TwoSwapsOfOneAppAtOnceOneRunsTheOtherIsRefusedOrWaits(t *testing.T) {
	t.Parallel()
	app := e2eApp("lock")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+holdHooks(app, "pre_deploy")))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	// The first swap takes the lock and is held in its pre_deploy hook.
	h := s.newHold(app)
	first := s.swapBackground(nil, app, "green", "--output", "json")
	h.waitHeld(first)

	// A second one at once is refused (exit 3) and names the holder.
	second := s.swap(nil, app, "green")
	if second.code != 3 {
		t.Fatalf("a second swap while the first holds the lock: want exit 3, got %s", second)
	}
	hostname, _ := os.Hostname()
	for _, want := range []string{fmt.Sprintf("pid %d", first.pid()), fmt.Sprintf("host %q", hostname), app + " green", "--wait"} {
		if !strings.Contains(second.stderr, want) {
			t.Errorf("the refusal does not say %q:\n%s", want, second)
		}
	}

	// A third one with --wait waits for the lock, then finds nothing to do.
	third := s.swapBackground(nil, app, "green", "--wait", "2m", "--output", "json")
	third.waitEvent(switcher.StepLock, switcher.EventStart, "", 30*time.Second)
	if third.exited() {
		t.Fatalf("swap --wait ended while the lock was held:\n%s", third.res)
	}
	if _, ok := findEvent(events(third.out.String()), switcher.StepLock, switcher.EventDone, ""); ok {
		t.Fatal("swap --wait took the lock while the first swap held it")
	}
	h.release()
	r1 := first.mustSucceed(2 * time.Minute)
	r3 := third.mustSucceed(2 * time.Minute)

	ev1, ev3 := events(r1.stdout), events(r3.stdout)
	done1, ok1 := findEvent(ev1, switcher.StepCommit, switcher.EventDone, "")
	lock3, ok3 := findEvent(ev3, switcher.StepLock, switcher.EventDone, "")
	if !ok1 || !ok3 {
		t.Fatalf("missing events: first committed %v, third locked %v\n%s\n%s", ok1, ok3, r1, r3)
	}
	if lock3.Time.Before(done1.Time) {
		t.Fatalf("the waiting swap took the lock at %s, before the first committed at %s", lock3.Time, done1.Time)
	}
	if last := ev3[len(ev3)-1]; last.Result == nil || last.Result.Outcome != switcher.OutcomeNothing {
		t.Fatalf("the waiting swap: want %q, got:\n%s", switcher.OutcomeNothing, r3)
	}

	s.waitAnswer(host, "color=green version=v1")
	l.requireNoFailures(t)
	if hist := s.mustSwap("history", app).stdout; strings.Count(hist, " done ") != 2 {
		t.Fatalf("history: want the first deploy and one switch done:\n%s", hist)
	}
}
