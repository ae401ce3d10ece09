package switcher

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/swap-dev/swap/deployments"
)

// moveContainer restarts a fake container on another port, as an engine that picks an
// ephemeral port on every start does, and returns its new address.
func (f *fakeRuntime) moveContainer(t *testing.T, id string) string {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[id]
	if !ok {
		t.Fatalf("no container %s", id)
	}
	c.srv.Close()
	c.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") }))
	t.Cleanup(c.srv.Close)
	host, port, _ := net.SplitHostPort(c.srv.Listener.Addr().String())
	c.inst.Host = host
	c.inst.Port, _ = strconv.Atoi(port)
	return c.inst.Addr()
}

func (h *harness) driftOf(t *testing.T, id string) string {
	t.Helper()
	st, err := h.s.Status(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range st.Instances {
		if in.ID == id {
			return in.Drift
		}
	}
	t.Fatalf("status has no instance %s", id)
	return ""
}

func (h *harness) requireFollows(t *testing.T, id, addr string) {
	t.Helper()
	stats, _ := h.lb.Servers(context.Background(), "web_blue")
	for _, st := range stats {
		if st.Name == id && st.Addr != addr {
			t.Fatalf("HAProxy sends %s to %s, want %s", id, st.Addr, addr)
		}
	}
	regs, _ := h.reg.Instances(context.Background(), "web")
	for _, r := range regs {
		if r.ID == id && r.Addr != addr {
			t.Fatalf("Consul has %s at %s, want %s", id, r.Addr, addr)
		}
	}
	if d := h.driftOf(t, id); d != "" {
		t.Fatalf("status still shows a drift: %s", d)
	}
}

func TestDrift_StatusShowsItAndResumeWithoutAJournalRepairsIt(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	if d := h.driftOf(t, "web-blue-0"); d != "" {
		t.Fatalf("drift right after a deploy: %s", d)
	}
	addr := h.rt.moveContainer(t, "web-blue-0")
	d := h.driftOf(t, "web-blue-0")
	if !strings.Contains(d, "the container publishes "+addr+" but haproxy lb1 sends it to ") || !strings.Contains(d, "consul has ") {
		t.Fatalf("drift = %q, want the new address and HAProxy's and Consul's old ones", d)
	}
	res, err := h.s.Resume(context.Background(), "web", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != OutcomeDone || !strings.Contains(res.Message, "1 instance(s)") {
		t.Fatalf("resume = %q %q, want done with one instance repaired", res.Outcome, res.Message)
	}
	h.requireFollows(t, "web-blue-0", addr)
	// Nothing left to repair: resume says so.
	if res, err := h.s.Resume(context.Background(), "web", Options{}); err != nil || res.Outcome != OutcomeNothing {
		t.Fatalf("second resume = %+v, %v; want nothing to do", res, err)
	}
}

func TestDrift_TheNextSwapRepairsItBeforeItsPlan(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Hooks.PreDeploy = "exit 1" })
	h.deploy(t, "web:v1")
	addr := h.rt.moveContainer(t, "web-blue-0")
	// The next swap fails at its first step, and blue stays live: repaired all the same.
	h.hooks.fail["pre_deploy"] = true
	if _, err := h.s.Deploy(context.Background(), "web", "web:v2", Options{}); err == nil {
		t.Fatal("the deploy with a failing pre_deploy hook succeeded")
	}
	h.requireFollows(t, "web-blue-0", addr)
	repaired, planned := -1, -1
	for i, e := range h.events {
		if e.Step == StepResume && strings.Contains(e.Message, "web-blue-0 moved to "+addr) && repaired < 0 {
			repaired = i
		}
		if e.Step == StepPlan && e.Kind == EventStart && i > repaired && repaired >= 0 && planned < 0 {
			planned = i
		}
	}
	if repaired < 0 || planned < 0 {
		t.Fatalf("no repair event before the plan of the next swap: %v", h.events)
	}
}
