package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/testenv"
)

// TestHostsPlaceReplicasOnTheirHostsAllOrNothing runs an app's color over two Docker
// hosts: each replica on the host placement names, published on that host's address;
// List merges the hosts, Stop goes to the instance's host; and a start with one engine
// down fails naming that host, leaving nothing on the other.
func TestHostsPlaceReplicasOnTheirHostsAllOrNothing(t *testing.T) {
	d := testenv.Docker(t)
	ref := d.DemoImage(t, "v1")
	ha, hb := testenv.NewDockerHost(t), testenv.NewDockerHost(t)
	ha.CopyImages(t, d.Client, ref)
	hb.CopyImages(t, d.Client, ref)
	cfg := &deployments.Config{
		Docker: deployments.DockerConfig{Hosts: []deployments.DockerHost{
			{Name: "a", Engine: ha.Engine, Address: ha.Addr},
			{Name: "b", Engine: hb.Engine, Address: hb.Addr},
		}},
		Apps: map[string]*deployments.App{"web": {Image: ref, Port: 8080, Replicas: 4}},
	}
	cfg.SetDefaults()
	h, err := NewHosts(cfg, cfg.Docker, d.Labels(nil), zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ctx := context.Background()
	if err := h.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	img, err := h.EnsureImage(ctx, ref)
	if err != nil {
		t.Fatalf("EnsureImage: %v", err)
	}
	spec := deployments.StartSpec{App: "web", Color: deployments.Blue, Deploy: "d1", Image: ref, ImageID: img.ID,
		Replicas: 4, Port: 8080, Env: []string{"COLOR=blue"}, StopTimeout: time.Second}
	insts, err := h.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	addr := map[string]string{"a": ha.Addr, "b": hb.Addr}
	if len(insts) != 4 {
		t.Fatalf("Start returned %d instances, want 4", len(insts))
	}
	for i, in := range insts {
		want := "ab"[i%2 : i%2+1]
		if in.Index != i || in.DockerHost != want || in.Host != addr[want] {
			t.Fatalf("instance %d = %s on %q at %s, want index %d on %s at %s", i, in.ID(), in.DockerHost, in.Addr(), i, want, addr[want])
		}
		body := get(t, "http://"+in.Addr()+"/")
		if body != "color=blue version=v1\n" {
			t.Fatalf("%s answers %q", in.Addr(), body)
		}
	}
	listed, err := h.List(ctx, "web")
	if err != nil || len(listed) != 4 {
		t.Fatalf("List = %d instances, %v", len(listed), err)
	}
	for i, in := range listed {
		if in.ID() != insts[i].ID() || in.DockerHost != insts[i].DockerHost || in.Addr() != insts[i].Addr() {
			t.Fatalf("List[%d] = %s on %s at %s, want %s on %s at %s", i, in.ID(), in.DockerHost, in.Addr(), insts[i].ID(), insts[i].DockerHost, insts[i].Addr())
		}
	}
	if err := h.Stop(ctx, listed[1], time.Second); err != nil {
		t.Fatalf("Stop %s: %v", listed[1].ID(), err)
	}
	if n := containers(t, hb, "web"); n != 1 {
		t.Fatalf("%d of web's containers on b after stopping web-blue-1, want 1", n)
	}

	// Different images behind one reference are refused.
	other := &testenv.DockerEnv{Client: hb.Client, RunID: d.RunID, Label: d.Label}
	v2 := (&testenv.DockerEnv{Client: ha.Client, RunID: d.RunID, Label: d.Label}).DemoImage(t, "v2")
	other.DemoImage(t, "v2")
	if _, err := h.EnsureImage(ctx, v2); err == nil || !strings.Contains(err.Error(), "every host must run the same image") {
		t.Fatalf("EnsureImage of an image that differs between hosts: %v", err)
	}

	// One engine down: nothing starts anywhere, and the error names the host.
	hb.Stop(t)
	green := spec
	green.Color, green.Deploy, green.Env = deployments.Green, "d2", []string{"COLOR=green"}
	_, err = h.Start(ctx, green)
	if err == nil || !strings.Contains(err.Error(), "docker host b") || !errors.Is(err, docker.ErrUnreachable) {
		t.Fatalf("Start with b's engine down = %v, want an ErrUnreachable naming docker host b", err)
	}
	if n := containersOf(t, ha, "web", deployments.Green); n != 0 {
		t.Fatalf("%d green containers left on a after the failed start, want 0", n)
	}
	if err := h.Ping(ctx); err == nil || !strings.Contains(err.Error(), "docker host b") || strings.Contains(err.Error(), "docker host a") {
		t.Fatalf("Ping with b down = %v, want an error naming b only", err)
	}
	listed, err = h.List(ctx, "web")
	if err == nil || len(listed) != 2 {
		t.Fatalf("List with b down = %d instances, %v; want a's 2 and an error naming b", len(listed), err)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	var body string
	testenv.WaitFor(t, 10*time.Second, "GET "+url, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		body = string(b)
		return err
	})
	return body
}

func containers(t *testing.T, h *testenv.DockerHost, app string) int {
	return containersOf(t, h, app, "")
}

func containersOf(t *testing.T, h *testenv.DockerHost, app string, c deployments.Color) int {
	t.Helper()
	f := filters.NewArgs(filters.Arg("label", deployments.LabelApp+"="+app))
	if c != "" {
		f.Add("label", deployments.LabelColor+"="+string(c))
	}
	cs, err := h.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(cs)
}

func TestHostsPlaceFollowsTheAppsPlacementAndSpreadsOtherCounts(t *testing.T) {
	cfg := &deployments.Config{
		Docker: deployments.DockerConfig{Hosts: []deployments.DockerHost{
			{Name: "a", Engine: "unix:///nonexistent/a.sock", Address: "10.0.0.1"},
			{Name: "b", Engine: "unix:///nonexistent/b.sock", Address: "10.0.0.2"},
		}},
		Apps: map[string]*deployments.App{"web": {Replicas: 3, Placement: deployments.Placement{PerHost: map[string]int{"b": 3}}}},
	}
	h, err := NewHosts(cfg, cfg.Docker, nil, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	for _, tc := range []struct {
		app      string
		replicas int
		want     string
	}{
		{"web", 3, "b b b"},   // per_host
		{"web", 2, "a b"},     // another count than the config's: spread
		{"other", 3, "a b a"}, // an app the config does not know: spread
	} {
		if got := strings.Join(h.Place(tc.app, tc.replicas), " "); got != tc.want {
			t.Errorf("Place(%s, %d) = %s, want %s", tc.app, tc.replicas, got, tc.want)
		}
	}
}
