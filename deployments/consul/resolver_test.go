package consul

import (
	"errors"
	"slices"
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
	if len(res.Subsets) != 2 || res.Meta["managed-by"] != "swap" {
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
		if err := r.RegisterService(ctx, Registration{Instance: inst, TTL: time.Minute, TTLOnly: true}); err != nil {
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
