package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/switcher"
)

// meshRoute is where the app's discovery chain (GET /v1/discovery-chain/<app>) sends
// mesh clients now, by subset, and the chain's protocol.
func (s *stack) meshRoute(app string) (string, string) {
	s.t.Helper()
	route, protocol, err := s.consul.MeshRoute(app)
	if err != nil {
		s.t.Fatalf("discovery chain of %s: %v", app, err)
	}
	return route, protocol
}

// statusMesh is the mesh of `swap status <app> --output json`.
func (s *stack) statusMesh(app string) *switcher.MeshTarget {
	s.t.Helper()
	r := s.mustSwap("status", app, "--output", "json")
	var st []switcher.AppStatus
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 {
		s.t.Fatalf("status --output json: %v\n%s", err, r)
	}
	return st[0].Mesh
}

func TestE2E_TheMeshDiscoveryChainFollowsEverySwapItsCanaryAndARollback(t *testing.T) {
	t.Parallel()
	app := e2eApp("mesh")
	host := app + ".test"
	s := newStackWith(t, appConfig(app, oneReplica+`    canary:
      - {weight: 30, bake: 5s}
`), stackOptions{mesh: true})
	const blue = "color=blue version=v1"
	// The dev agent runs Connect: its CA has a root, as a mesh's would.
	if roots, _, err := s.consul.Client.Connect().CARoots(nil); err != nil || len(roots.Roots) == 0 {
		t.Fatalf("the dev agent has no Connect CA (%v): is Connect on?", err)
	}

	// First deploy: the chain resolves to the blue subset. Without a canary step (a
	// first deploy has none) swap leaves the protocol alone.
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, blue)
	if route, protocol := s.meshRoute(app); route != "blue" || protocol != "tcp" {
		t.Fatalf("after the first deploy the chain goes to %q (protocol %s), want blue (tcp)", route, protocol)
	}

	// The canary step splits the mesh with HAProxy's weight: Consul needs protocol http
	// for that, which swap gives the app with a service-defaults entry of its own.
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	b.waitEvent(switcher.StepShift, switcher.EventInfo, "canary 1/1: 30%", 2*time.Minute)
	if route, protocol := s.meshRoute(app); route != "green 30, blue 70" || protocol != "http" {
		t.Fatalf("during the canary the chain goes to %q (protocol %s), want green 30, blue 70 (http)", route, protocol)
	}
	if got := s.mapValue("canary.map", host); got != app+"_green:30" {
		t.Fatalf("during the canary canary.map has %q, want %s_green:30", got, app)
	}
	if m := s.statusMesh(app); m == nil || m.Live != "blue" || m.Canary != "green" || m.Weight != 30 {
		t.Fatalf("status during the canary shows the mesh %+v, want blue, 30%% to green", m)
	}
	e, _, err := s.consul.Client.ConfigEntries().Get(api.ServiceDefaults, app, nil)
	if err != nil {
		t.Fatalf("service-defaults of %s: %v", app, err)
	}
	if sd := e.(*api.ServiceConfigEntry); sd.Protocol != "http" || sd.Meta["managed-by"] != "swap" || sd.Meta["installation"] != s.installation {
		t.Fatalf("service-defaults %+v, want protocol http managed by swap (%s)", sd, s.installation)
	}
	b.mustSucceed(2 * time.Minute)
	if route, _ := s.meshRoute(app); route != "green" || s.route(host) != app+"_green" {
		t.Fatalf("after the swap the chain goes to %q and HAProxy to %q, want green on both", route, s.route(host))
	}
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, "mesh -> green\n") {
		t.Fatalf("status does not show the mesh on green:\n%s", st)
	}
	if _, _, err := s.consul.Client.ConfigEntries().Get(api.ServiceSplitter, app, nil); err == nil {
		t.Fatal("the service-splitter is still there after the canary")
	}

	// A rollback moves both back.
	s.mustSwap("rollback", app)
	s.waitAnswer(host, blue)
	if route, _ := s.meshRoute(app); route != "blue" || s.route(host) != app+"_blue" {
		t.Fatalf("after the rollback the chain goes to %q and HAProxy to %q, want blue on both", route, s.route(host))
	}
	if m := s.statusMesh(app); m == nil || *m != (switcher.MeshTarget{Live: "blue"}) {
		t.Fatalf("status after the rollback shows the mesh %+v, want blue", m)
	}

	// A resolver that went stale (restored from a snapshot, changed by hand) follows the
	// live color in KV again after one reconcile pass.
	e, _, err = s.consul.Client.ConfigEntries().Get(api.ServiceResolver, app, nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := e.(*api.ServiceResolverConfigEntry)
	stale.DefaultSubset = "green"
	if _, _, err := s.consul.Client.ConfigEntries().Set(stale, nil); err != nil {
		t.Fatal(err)
	}
	if route, _ := s.meshRoute(app); route != "green" {
		t.Fatalf("the stale resolver goes to %q", route)
	}
	r := s.mustSwap("hook", app, "--output", "json")
	var passes []switcher.PassResult
	if err := json.Unmarshal([]byte(r.stdout), &passes); err != nil || len(passes) != 1 || len(passes[0].Applied) != 1 ||
		passes[0].Applied[0].Kind != switcher.ActMesh || passes[0].Applied[0].Color != "blue" {
		t.Fatalf("swap hook applied %+v (%v), want the mesh routed to blue:\n%s", passes, err, r)
	}
	if route, _ := s.meshRoute(app); route != "blue" {
		t.Fatalf("after a reconcile pass the chain goes to %q, want blue (live in KV)", route)
	}
}
