package wire

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

func TestMesh_RouteSplitAndTargetOnARealAgent(t *testing.T) {
	agent := testenv.Consul(t)
	reg, err := consul.New(deployments.ConsulConfig{Address: agent.Addr}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	m := Mesh{R: reg}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	check := func(want switcher.MeshTarget, wantChain string) {
		t.Helper()
		got, err := m.Target(ctx, "web")
		if err != nil || got != want {
			t.Fatalf("Target = %+v, %v; want %+v", got, err, want)
		}
		if wantChain == "" {
			return
		}
		if route, _, err := agent.MeshRoute("web"); err != nil || route != wantChain {
			t.Fatalf("the discovery chain goes to %q (%v), want %q", route, err, wantChain)
		}
	}
	check(switcher.MeshTarget{}, "service") // nothing written yet: no route, no error
	if err := m.Route(ctx, "web", deployments.Blue); err != nil {
		t.Fatal(err)
	}
	check(switcher.MeshTarget{Live: deployments.Blue}, "blue")
	if err := m.Split(ctx, "web", deployments.Green, 25); err != nil {
		t.Fatal(err)
	}
	check(switcher.MeshTarget{Live: deployments.Blue, Canary: deployments.Green, Weight: 25}, "green 25, blue 75")
	// Route ends the split as it moves the default subset.
	if err := m.Route(ctx, "web", deployments.Green); err != nil {
		t.Fatal(err)
	}
	check(switcher.MeshTarget{Live: deployments.Green}, "green")

	// A splitter of someone else's decides instead of the resolver: Target says so,
	// and Route refuses to delete it.
	if _, _, err := agent.Client.ConfigEntries().Set(&api.ServiceSplitterConfigEntry{Kind: api.ServiceSplitter, Name: "web",
		Splits: []api.ServiceSplit{{Weight: 50, ServiceSubset: "green"}, {Weight: 50, ServiceSubset: "blue"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Target(ctx, "web"); !errors.Is(err, consul.ErrEntryNotOurs) {
		t.Fatalf("Target with an operator's splitter: %v, want ErrEntryNotOurs", err)
	}
	if err := m.Route(ctx, "web", deployments.Blue); !errors.Is(err, consul.ErrEntryNotOurs) {
		t.Fatalf("Route with an operator's splitter: %v, want ErrEntryNotOurs", err)
	}
	if live, err := reg.Resolver(ctx, "web"); err != nil || live != deployments.Green {
		t.Fatalf("the refused Route changed the resolver: %s, %v", live, err)
	}
}
