package consul

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestWriteResolver_PointsTheMeshAtTheLiveColor(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 30*time.Second)

	if _, err := r.Resolver(ctx, "web"); !errors.Is(err, ErrNoResolver) {
		t.Fatalf("Resolver before any write = %v, want ErrNoResolver", err)
	}
	for _, live := range []deployments.Color{deployments.Blue, deployments.Green, deployments.Green} {
		if err := r.WriteResolver(ctx, "web", live); err != nil {
			t.Fatal(err)
		}
		got, err := r.Resolver(ctx, "web")
		if err != nil || got != live {
			t.Fatalf("Resolver = %q, %v; want %s", got, err, live)
		}
	}

	e, _, err := agent.Client.ConfigEntries().Get(api.ServiceResolver, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	res := e.(*api.ServiceResolverConfigEntry)
	if len(res.Subsets) != 2 || res.Meta["managed-by"] != "swap" || res.Meta["installation"] != "swap" {
		t.Fatalf("entry = %+v", res)
	}
	for _, c := range deployments.Colors {
		s := res.Subsets[string(c)]
		if s.Filter != `Service.Meta.color == "`+string(c)+`"` || !s.OnlyPassing {
			t.Errorf("subset %s = %+v", c, s)
		}
	}

	// The subset filters select by the meta swap registers: Consul evaluates the same
	// expression over the registered instances.
	for _, inst := range []deployments.Instance{instance("web", deployments.Blue, 0, 18090), instance("web", deployments.Green, 0, 18091), instance("web", deployments.Green, 1, 18092)} {
		if err := r.registerService(ctx, registration{Instance: inst, TTL: time.Minute, TTLOnly: true}); err != nil {
			t.Fatal(err)
		}
	}
	for c, want := range map[deployments.Color][]string{
		deployments.Blue:  {"web-blue-0"},
		deployments.Green: {"web-green-0", "web-green-1"},
	} {
		entries, _, err := agent.Client.Health().Service("web", "", false, &api.QueryOptions{Filter: res.Subsets[string(c)].Filter})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.Service.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, want) {
			t.Errorf("subset %s selects %q, want %q", c, ids, want)
		}
	}

	// The discovery chain compiles with the live color as the default target.
	chain, _, err := agent.Client.DiscoveryChain().Get("web", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := chain.Chain.Nodes[chain.Chain.StartNode]
	if start == nil || start.Resolver == nil || start.Resolver.Target != "green.web.default.default.dc1" {
		t.Errorf("the chain starts at %+v (targets %v), want the green subset", start, keys(chain.Chain.Targets))
	}
	before := res.ModifyIndex
	if err := r.WriteResolver(ctx, "web", deployments.Green); err != nil {
		t.Fatal(err)
	}
	if e, _, _ := agent.Client.ConfigEntries().Get(api.ServiceResolver, "web", nil); e.GetModifyIndex() != before {
		t.Error("writing the same resolver again wrote it")
	}

	if err := r.WriteResolver(ctx, "web", "red"); err == nil {
		t.Error("WriteResolver accepted color red")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// meshRoute is the agent's discovery chain of service, by subset.
func meshRoute(t *testing.T, agent *testenv.ConsulAgent, service string) (string, string) {
	t.Helper()
	route, protocol, err := agent.MeshRoute(service)
	if err != nil {
		t.Fatal(err)
	}
	return route, protocol
}

func TestWriteSplit_SplitsTheMeshWithProtocolHTTPAndEndsTheSplit(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 30*time.Second)
	if err := r.WriteResolver(ctx, "web", deployments.Blue); err != nil {
		t.Fatal(err)
	}
	if route, protocol := meshRoute(t, agent, "web"); route != "blue" || protocol != "tcp" {
		t.Fatalf("chain %q, protocol %q; want blue, tcp", route, protocol)
	}
	// Why swap sees to the protocol: the agent refuses a splitter for a tcp service.
	_, _, err := agent.Client.ConfigEntries().Set(&api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "web",
		Splits: []api.ServiceSplit{{Weight: 30, ServiceSubset: "green"}, {Weight: 70, ServiceSubset: "blue"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "does not permit advanced routing or splitting behavior") {
		t.Fatalf("a splitter for a tcp service: %v, want Consul's refusal", err)
	}

	for _, w := range []int{30, 30, 60} {
		if err := r.WriteSplit(ctx, "web", deployments.Green, w); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("green %d, blue %d", w, 100-w)
		if route, protocol := meshRoute(t, agent, "web"); route != want || protocol != "http" {
			t.Fatalf("chain %q, protocol %q; want %s, http", route, protocol, want)
		}
		if sp, err := r.Split(ctx, "web"); err != nil || sp != (MeshSplit{To: deployments.Green, Weight: w}) {
			t.Fatalf("Split = %+v, %v", sp, err)
		}
	}
	e, _, err := agent.Client.ConfigEntries().Get(api.ServiceDefaults, "web", nil)
	if err != nil {
		t.Fatal(err)
	}
	if sd := e.(*api.ServiceConfigEntry); sd.Protocol != "http" || sd.Meta["managed-by"] != "swap" {
		t.Fatalf("service-defaults %+v, want protocol http, managed by swap", sd)
	}
	for range 2 {
		if err := r.WriteSplit(ctx, "web", deployments.Green, 0); err != nil {
			t.Fatal(err)
		}
	}
	if route, _ := meshRoute(t, agent, "web"); route != "blue" {
		t.Fatalf("chain %q after the split ended, want blue", route)
	}
	if sp, err := r.Split(ctx, "web"); err != nil || sp != (MeshSplit{}) {
		t.Fatalf("Split = %+v, %v; want none", sp, err)
	}
}

func TestWriteSplit_UsesTheProtocolOfProxyDefaultsAndRefusesAServiceDefaultsOfSomeoneElse(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 30*time.Second)
	for _, app := range []string{"web", "api"} {
		if err := r.WriteResolver(ctx, app, deployments.Blue); err != nil {
			t.Fatal(err)
		}
	}
	// An operator's service-defaults with protocol tcp is left alone, and said so.
	if _, _, err := agent.Client.ConfigEntries().Set(&api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: "api", Protocol: "tcp"}, nil); err != nil {
		t.Fatal(err)
	}
	err := r.WriteSplit(ctx, "api", deployments.Green, 10)
	if err == nil {
		t.Fatal("WriteSplit changed or ignored an operator's service-defaults")
	}
	mustContain(t, err.Error(), `app api's mesh protocol is "tcp"`, `set Protocol = "http" in it`, "remove apps.api.canary", "consul.mesh: false")
	if route, protocol := meshRoute(t, agent, "api"); route != "blue" || protocol != "tcp" {
		t.Fatalf("api: chain %q, protocol %q after the refusal", route, protocol)
	}

	// proxy-defaults with protocol http is enough: no service-defaults of swap's.
	if _, _, err := agent.Client.ConfigEntries().Set(&api.ProxyConfigEntry{Kind: api.ProxyDefaults, Name: api.ProxyConfigGlobal,
		Config: map[string]any{"protocol": "http"}}, nil); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteSplit(ctx, "web", deployments.Green, 10); err != nil {
		t.Fatal(err)
	}
	if _, _, err := agent.Client.ConfigEntries().Get(api.ServiceDefaults, "web", nil); !isNotFound(err) {
		t.Fatalf("service-defaults of web: %v, want none", err)
	}
	if route, _ := meshRoute(t, agent, "web"); route != "green 10, blue 90" {
		t.Fatalf("web: chain %q", route)
	}
}

func TestMeshEntries_SwapLeavesTheEntriesOfOthersAlone(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 30*time.Second)
	theirs := &api.ServiceResolverConfigEntry{Kind: api.ServiceResolver, Name: "web", ConnectTimeout: 3 * time.Second}
	if _, _, err := agent.Client.ConfigEntries().Set(theirs, nil); err != nil {
		t.Fatal(err)
	}
	err := r.WriteResolver(ctx, "web", deployments.Green)
	if !errors.Is(err, ErrEntryNotOurs) {
		t.Fatalf("WriteResolver over an operator's resolver: %v, want ErrEntryNotOurs", err)
	}
	mustContain(t, err.Error(), "no meta managed-by=swap", "consul config delete -kind service-resolver -name web")
	if e, _, _ := agent.Client.ConfigEntries().Get(api.ServiceResolver, "web", nil); e.(*api.ServiceResolverConfigEntry).DefaultSubset != "" {
		t.Fatal("the operator's resolver was changed")
	}

	// Another installation's splitter is not swap's to read as its own, nor to delete.
	staging, err := New(deployments.ConsulConfig{Address: agent.Addr, KVPrefix: "staging"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := staging.WriteResolver(ctx, "api", deployments.Blue); err != nil {
		t.Fatal(err)
	}
	if err := staging.WriteSplit(ctx, "api", deployments.Green, 20); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Split(ctx, "api"); !errors.Is(err, ErrEntryNotOurs) || !strings.Contains(err.Error(), `installation "staging"`) {
		t.Fatalf("Split of staging's splitter: %v, want ErrEntryNotOurs naming staging", err)
	}
	if err := r.WriteSplit(ctx, "api", deployments.Green, 0); !errors.Is(err, ErrEntryNotOurs) {
		t.Fatalf("deleting staging's splitter: %v, want ErrEntryNotOurs", err)
	}
	if sp, err := staging.Split(ctx, "api"); err != nil || sp.Weight != 20 {
		t.Fatalf("staging's split = %+v, %v", sp, err)
	}

	// A non-default installation's subsets select its own instances only.
	e, _, err := agent.Client.ConfigEntries().Get(api.ServiceResolver, "api", nil)
	if err != nil {
		t.Fatal(err)
	}
	if f := e.(*api.ServiceResolverConfigEntry).Subsets["blue"].Filter; f != `Service.Meta.color == "blue" and Service.Meta.installation == "staging"` {
		t.Fatalf("staging's blue filter = %s", f)
	}
}
