package switcher

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/swap-dev/swap/deployments"
)

// pingingBalancer is the fake balancer with a Ping that fails with err.
type pingingBalancer struct {
	*fakeBalancer
	err error
}

func (p pingingBalancer) Ping(context.Context) error { return p.err }

func TestPreflight_AnUnansweringHAProxyStopsEveryMutatingCommandBeforeAHookOrAJournal(t *testing.T) {
	down := errors.New("haproxy lb1: admin socket unreachable")
	ops := []struct {
		name string
		call func(s *Switcher) (*Result, error)
	}{
		{"deploy", func(s *Switcher) (*Result, error) { return s.Deploy(context.Background(), "web", "web:v2", Options{}) }},
		{"switch", func(s *Switcher) (*Result, error) {
			return s.Switch(context.Background(), "web", deployments.Green, Options{})
		}},
		{"rollback", func(s *Switcher) (*Result, error) { return s.Rollback(context.Background(), "web", Options{}) }},
		{"promote", func(s *Switcher) (*Result, error) { return s.Promote(context.Background(), "web", Options{}) }},
		{"abort", func(s *Switcher) (*Result, error) { return s.Abort(context.Background(), "web", Options{}) }},
		{"resume", func(s *Switcher) (*Result, error) { return s.Resume(context.Background(), "web", Options{}) }},
		{"cleanup", func(s *Switcher) (*Result, error) { return s.Cleanup(context.Background(), "web", Options{}) }},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			h := newHarness(t, func(a *deployments.App) { a.Hooks.PreDeploy = "true" })
			h.deploy(t, "web:v1")
			h.hooks.ran = nil
			h.s.Balancer = pingingBalancer{h.lb, down}
			_, err := op.call(h.s)
			if !errors.Is(err, down) || !strings.Contains(err.Error(), "HAProxy") || !strings.Contains(err.Error(), "nothing was changed") {
				t.Fatalf("%s with HAProxy down = %v, want the preflight error naming HAProxy", op.name, err)
			}
			if len(h.hooks.ran) != 0 {
				t.Fatalf("hooks ran: %v", h.hooks.ran)
			}
			if h.store.has(JournalKey("web")) {
				t.Fatal("a journal was written")
			}
			if n := h.rt.colors(); n[deployments.Green] != 0 {
				t.Fatalf("containers started: %v", n)
			}
		})
	}
}

func TestDryRun_PromoteAbortAndResumeSayWhatTheyWouldDoAndChangeNothing(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { f := false; a.AutoPromote = &f })
	h.s.Config.HAProxy.Preview = deployments.Listener{Name: "www_preview", Bind: "127.0.0.1:8081"}
	h.deploy(t, "web:v1")
	if _, err := h.s.Promote(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	h.deploy(t, "web:v2") // waits in preview on green
	before, _, _ := h.store.Get(context.Background(), JournalKey("web"))
	for _, tc := range []struct {
		name string
		call func(*Switcher, context.Context, string, Options) (*Result, error)
		want string
	}{
		{"promote", (*Switcher).Promote, `would promote web's swap to green`},
		{"abort", (*Switcher).Abort, `would abort web's swap to green`},
		{"resume", (*Switcher).Resume, `waits in preview`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := tc.call(h.s, context.Background(), "web", Options{DryRun: true})
			if err != nil || !strings.Contains(res.Message, tc.want) {
				t.Fatalf("%s --dry-run = %+v, %v; want a message with %q", tc.name, res, err, tc.want)
			}
			after, _, _ := h.store.Get(context.Background(), JournalKey("web"))
			if string(after) != string(before) {
				t.Fatalf("the journal changed:\n%s\n%s", before, after)
			}
			if n := h.rt.colors(); n[deployments.Green] == 0 || h.lb.route("web.example.com") != "web_blue" {
				t.Fatalf("after %s --dry-run: containers %v, route %q", tc.name, n, h.lb.route("web.example.com"))
			}
		})
	}
}
