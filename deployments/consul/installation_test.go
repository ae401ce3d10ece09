package consul

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestInstallations_OnOneAgentSeeAndRemoveOnlyTheirOwnServices(t *testing.T) {
	agent := testenv.Consul(t)
	def := registry(t, agent) // the default installation, kv_prefix swap
	team, err := New(deployments.ConsulConfig{Address: agent.Addr, KVPrefix: "team/swap"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, time.Minute)
	a := newApp(t)
	hc := deployments.HealthCheck{Path: "/healthz", Interval: time.Second}
	in := instance("web", deployments.Blue, 0, a.port())

	// Both deploy web-blue-0: two services of one name, with IDs that do not clash.
	if err := def.Register(ctx, in, hc, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := team.Register(ctx, in, hc, "v1"); err != nil {
		t.Fatal(err)
	}
	// A service registered before installations were told apart: no meta.
	legacy := &api.AgentServiceRegistration{ID: "web-green-0", Name: "web", Port: 1, Address: "127.0.0.1",
		Meta: map[string]string{MetaColor: "green"}}
	if err := agent.Client.Agent().ServiceRegister(legacy); err != nil {
		t.Fatal(err)
	}

	ids := func(r *Registry) (ids, instances []string) {
		t.Helper()
		insts, err := r.Instances(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		for _, si := range insts {
			ids, instances = append(ids, si.ID), append(instances, si.Instance)
		}
		return ids, instances
	}
	if got, inst := ids(def); !slices.Equal(got, []string{"web-blue-0", "web-green-0"}) || !slices.Equal(inst, got) {
		t.Fatalf("the default installation sees %v (instances %v), want its own and the legacy one", got, inst)
	}
	if got, inst := ids(team); !slices.Equal(got, []string{"team.swap.web-blue-0"}) || !slices.Equal(inst, []string{"web-blue-0"}) {
		t.Fatalf("installation team/swap sees %v (instances %v), want only its own", got, inst)
	}
	svc, _, err := agent.Client.Agent().Service("team.swap.web-blue-0", nil)
	if err != nil || svc.Meta[MetaInstallation] != "team/swap" || svc.Meta[MetaColor] != "blue" {
		t.Fatalf("team's service = %+v, %v; want meta installation team/swap", svc, err)
	}

	// Neither removes the other's, whatever ID it is handed.
	for _, tc := range []struct {
		r  *Registry
		id string
	}{{team, "web-blue-0"}, {team, "web-green-0"}, {def, "team.swap.web-blue-0"}} {
		if err := tc.r.Deregister(ctx, tc.id); !errors.Is(err, ErrNotOurs) {
			t.Fatalf("%s deregistering %s = %v, want ErrNotOurs", tc.r.Installation(), tc.id, err)
		}
	}
	if err := team.Deregister(ctx, team.ServiceID("web-blue-0")); err != nil {
		t.Fatal(err)
	}
	if got, _ := ids(def); !slices.Equal(got, []string{"web-blue-0", "web-green-0"}) {
		t.Fatalf("after team removed its own, the default installation sees %v", got)
	}
	if got, _ := ids(team); len(got) != 0 {
		t.Fatalf("team still sees %v", got)
	}
}
