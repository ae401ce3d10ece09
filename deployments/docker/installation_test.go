package docker

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
)

// listEngine is a fakeEngine that lists containers too.
type listEngine struct {
	*fakeEngine
	list []container.Summary
}

func (f listEngine) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return f.list, nil
}

func labelsOf(app string, c deployments.Color, installation string) map[string]string {
	l := managedLabels(app, c)
	if installation != "" {
		l[deployments.LabelInstallation] = installation
	}
	return l
}

func TestStop_TouchesOnlyContainersOfItsOwnInstallation(t *testing.T) {
	tests := []struct {
		name      string
		driver    string // the driver's installation
		container string // the container's label ("" for none: made before installations)
		stops     bool
	}{
		{"the default installation stops its own", deployments.DefaultInstallation, deployments.DefaultInstallation, true},
		{"the default installation owns containers without the label", deployments.DefaultInstallation, "", true},
		{"the default installation leaves another's alone", deployments.DefaultInstallation, "team", false},
		{"another installation stops its own", "team", "team", true},
		{"another installation leaves unlabelled containers to the default one", "team", "", false},
		{"another installation leaves the default one's alone", "team", deployments.DefaultInstallation, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeEngine{inspect: map[string]container.InspectResponse{
				"c1": inspected("c1", "web-blue-0", "running", labelsOf("web", deployments.Blue, tc.container)),
			}}
			d := newDriver(fake, "", zaptest.NewLogger(t))
			d.installation = tc.driver
			err := d.Stop(context.Background(), deployments.Instance{App: "web", Color: deployments.Blue, ContainerID: "c1"}, time.Second)
			if tc.stops {
				if err != nil || len(fake.mutating) != 2 {
					t.Fatalf("Stop = %v, calls %v; want it stopped and removed", err, fake.mutating)
				}
				return
			}
			if !errors.Is(err, ErrNotManaged) || len(fake.mutating) != 0 {
				t.Fatalf("Stop = %v, calls %v; want ErrNotManaged and no call", err, fake.mutating)
			}
		})
	}
}

func TestList_ShowsOnlyContainersOfItsOwnInstallation(t *testing.T) {
	containers := map[string]container.InspectResponse{
		"legacy":  inspected("legacy", "web-blue-0", "running", labelsOf("web", deployments.Blue, "")),
		"default": inspected("default", "web-green-0", "running", labelsOf("web", deployments.Green, deployments.DefaultInstallation)),
		"team":    inspected("team", "team.web-blue-0", "running", labelsOf("web", deployments.Blue, "team")),
	}
	var list []container.Summary
	for _, id := range slices.Sorted(maps.Keys(containers)) {
		list = append(list, container.Summary{ID: id})
	}
	tests := []struct {
		installation string
		want         []string
	}{
		{deployments.DefaultInstallation, []string{"legacy", "default"}},
		{"team", []string{"team"}},
		{"other", nil},
	}
	for _, tc := range tests {
		t.Run(tc.installation, func(t *testing.T) {
			d := newDriver(listEngine{&fakeEngine{inspect: containers}, list}, "", zaptest.NewLogger(t))
			d.installation = tc.installation
			insts, err := d.List(context.Background(), "web")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, in := range insts {
				got = append(got, in.ContainerID)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("List = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCheckNames_RefusesANameAnotherInstallationsContainerHas(t *testing.T) {
	fake := &fakeEngine{inspect: map[string]container.InspectResponse{
		"web-blue-0": inspected("c1", "web-blue-0", "running", labelsOf("web", deployments.Blue, "team")),
	}}
	d := newDriver(fake, "", zaptest.NewLogger(t))
	spec := deployments.StartSpec{App: "web", Color: deployments.Blue, Deploy: "d", Image: "i", Replicas: 1, Port: 80, Replace: true}
	err := d.checkNames(context.Background(), spec, d.log)
	if !errors.Is(err, ErrNameTaken) || !strings.Contains(err.Error(), `installation "team"`) || len(fake.mutating) != 0 {
		t.Fatalf("checkNames = %v, calls %v; want ErrNameTaken naming installation team and no call", err, fake.mutating)
	}
}

func TestPickHostPorts_NeverPicksAPortAContainerPublishesOrWasGiven(t *testing.T) {
	list := []container.Summary{
		{ID: "running", Ports: []container.Port{{PublicPort: 30001, PrivatePort: 80}}},
		// a stopped or restarting container of swap's (any installation) keeps its port
		{ID: "stopped", Labels: map[string]string{deployments.LabelHostPort: "30003"}},
		{ID: "other", Ports: []container.Port{{PublicPort: 30004, PrivatePort: 80}}},
	}
	d := newDriver(listEngine{&fakeEngine{}, list}, "", zaptest.NewLogger(t))
	d.portLo, d.portHi = 30000, 30004
	for range 20 {
		got, err := d.pickHostPorts(context.Background(), 2)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		if !slices.Equal(got, []int{30000, 30002}) {
			t.Fatalf("picked %v, want the free ports 30000 and 30002", got)
		}
	}
	if _, err := d.pickHostPorts(context.Background(), 3); !errors.Is(err, ErrPortInUse) {
		t.Fatalf("picking 3 of 2 free ports = %v, want ErrPortInUse", err)
	}
}

func TestWaitRunning_ReportsAContainerItsRestartPolicyRestarts(t *testing.T) {
	c := inspected("c1", "web-blue-0", "restarting", managedLabels("web", deployments.Blue))
	c.State.Restarting = true
	fake := &fakeEngine{inspect: map[string]container.InspectResponse{"c1": c}, logs: "panic: no config\n"}
	d := newDriver(fake, "", zaptest.NewLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := d.waitRunning(ctx, "c1", "start web/blue"); !errors.Is(err, ErrExited) || !strings.Contains(err.Error(), "panic: no config") {
		t.Fatalf("waitRunning = %v, want ErrExited with the logs", err)
	}
}
