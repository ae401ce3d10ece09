package main

import (
	"slices"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// HAProxy reloaded and restarted in the middle of swaps: it comes back from the files
// swap persisted, so routing and servers are what was live.
func TestE2E_HAProxyReloadedOrRestartedMidSwapServesTheNewColor(t *testing.T) {
	t.Parallel()
	app := e2eApp("reload")
	host := app + ".test"
	s := newStack(t, appConfig(app, holdHooks(app, "post_shift")))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	blue, green := app+"_blue", app+"_green"
	greenServers := []string{app + "-green-0", app + "-green-1"}
	blueServers := []string{app + "-blue-0", app + "-blue-1"}

	// Reloads: one while the gate waits on the new servers swap added at runtime, one
	// after the shift; no request may fail across them.
	l := s.startLoad(host, "/", 2)
	h := s.newHold(app)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	b.waitEvent(switcher.StepStage, switcher.EventDone, "", time.Minute)
	s.haproxy.Reload(t)
	// Until the drain, blue's servers are backups of green's backend: the files keep
	// them, and keep them backups.
	greenAndBackups := append(slices.Clone(greenServers), blueServers...)
	if got := s.haproxyServers(green); !sameSet(got, greenAndBackups) {
		t.Fatalf("after a reload during the gate, %s has %v, want %v", green, got, greenAndBackups)
	}
	if got := s.backups(green); !sameSet(got, blueServers) {
		t.Fatalf("after a reload during the gate, %s's backup servers are %v, want %v", green, got, blueServers)
	}
	h.waitHeld(b)
	s.haproxy.Reload(t)
	if got := s.route(host); got != green {
		t.Fatalf("after a reload past the shift, %s routes to %q, want %s", host, got, green)
	}
	if got := s.haproxyServers(green); !sameSet(got, greenAndBackups) {
		t.Fatalf("after a reload past the shift, %s has %v, want %v", green, got, greenAndBackups)
	}
	h.release()
	b.mustSucceed(2 * time.Minute)
	s.waitAnswer(host, "color=green version=v2")
	if got := s.haproxyServers(blue); len(got) != 0 {
		t.Fatalf("%s still has %v after the swap", blue, got)
	}
	l.requireNoFailures(t)

	// A restart past the shift: HAProxy starts again from the files alone. The restart
	// itself drops the listener, so no load runs across it; a load runs up to it and from
	// right after it through the rest of the swap.
	l = s.startLoad(host, "/", 2)
	h = s.newHold(app)
	b = s.swapBackground(nil, app, "blue", "--output", "json")
	h.waitHeld(b)
	l.requireNoFailures(t)
	s.haproxy.Restart(t)
	l = s.startLoad(host, "/", 2)
	if got := s.route(host); got != blue {
		t.Fatalf("after a restart past the shift, %s routes to %q, want %s", host, got, blue)
	}
	if got := s.haproxyServers(blue); !sameSet(got, append(slices.Clone(blueServers), greenServers...)) {
		t.Fatalf("after a restart past the shift, %s has %v, want %v and green's as backups", blue, got, blueServers)
	}
	if got := s.backups(blue); !sameSet(got, greenServers) {
		t.Fatalf("after a restart past the shift, %s's backup servers are %v, want %v", blue, got, greenServers)
	}
	h.release()
	b.mustSucceed(2 * time.Minute)
	s.waitAnswer(host, "color=blue version=v2")
	if got := s.haproxyServers(green); len(got) != 0 {
		t.Fatalf("%s still has %v after the swap", green, got)
	}
	for n := 0; n < 20; n++ {
		if code, body, err := getFrom(s.frontend, host, "/"); err != nil || code != 200 || body != "color=blue version=v2" {
			t.Fatalf("after the swap GET / = %d %q %v, want blue v2", code, body, err)
		}
	}
	l.requireNoFailures(t)
	if !slices.Contains(s.containers("swap.app="+app, "swap.color=blue"), s.objectName(app+"-blue-0")) {
		t.Fatal("blue's containers are not running after the switch")
	}
}
