package testenv_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/go-connections/nat"

	"github.com/swap-dev/swap/internal/testenv"
)

// TestDockerHostRunsContainersOnItsAddressAndLeavesNothing makes a Docker host, runs the
// demo app there from an image copied from the machine's engine (same ID), reaches it
// on the host's address from the root namespace, stops the engine and starts it again
// with its data, and checks that the fixture's cleanup left no namespace, veth, engine process or directory, and that the
// machine's own engine and docker0 bridge are untouched.
func TestDockerHostRunsContainersOnItsAddressAndLeavesNothing(t *testing.T) {
	d := testenv.Docker(t)
	ref := d.DemoImage(t, "v1")
	ctx := context.Background()
	want, err := d.Client.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	var h *testenv.DockerHost
	var dir string
	t.Run("host", func(t *testing.T) {
		h = testenv.NewDockerHost(t)
		h.CopyImages(t, d.Client, ref)
		got, err := h.Client.ImageInspect(ctx, ref)
		if err != nil || got.ID != want.ID {
			t.Fatalf("%s on %s = %s, %v; want the ID %s it has on the machine's engine", ref, h.Name, got.ID, err, want.ID)
		}
		c, err := h.Client.ContainerCreate(ctx, &container.Config{
			Image: ref, Env: []string{"COLOR=green"}, Labels: d.Labels(nil),
			ExposedPorts: nat.PortSet{"8080/tcp": {}},
		}, &container.HostConfig{PortBindings: nat.PortMap{"8080/tcp": {{HostIP: h.Addr}}}}, nil, nil, "swap-test-"+d.RunID)
		if err != nil {
			t.Fatalf("create on %s: %v", h.Name, err)
		}
		if err := h.Client.ContainerStart(ctx, c.ID, container.StartOptions{}); err != nil {
			t.Fatalf("start on %s: %v", h.Name, err)
		}
		ins, err := h.Client.ContainerInspect(ctx, c.ID)
		if err != nil || len(ins.NetworkSettings.Ports["8080/tcp"]) == 0 {
			t.Fatalf("inspect: %v %+v", err, ins.NetworkSettings)
		}
		b := ins.NetworkSettings.Ports["8080/tcp"][0]
		if b.HostIP != h.Addr {
			t.Fatalf("published on %s, want %s", b.HostIP, h.Addr)
		}
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(b.HostIP, b.HostPort))
		testenv.WaitFor(t, 10*time.Second, "demoapp on "+h.Name, func() error {
			code, body, err := get(url)
			if err != nil {
				return err
			}
			if code != 200 || body != "color=green version=v1\n" {
				return fmt.Errorf("GET %s = %d %q", url, code, body)
			}
			return nil
		})
		dir = strings.TrimSuffix(strings.TrimPrefix(h.Engine, "unix://"), "/docker.sock")

		h.Stop(t)
		if _, err := h.Client.Ping(ctx); err == nil {
			t.Fatalf("the engine of %s answers after Stop", h.Name)
		}
		if _, err := os.Stat("/var/run/netns/" + h.Name); err != nil {
			t.Fatalf("Stop removed the namespace: %v", err)
		}
		h.Restart(t)
		if _, err := h.Client.ContainerInspect(ctx, c.ID); err != nil {
			t.Fatalf("the container is gone after the engine's restart: %v", err)
		}
	})
	if h == nil {
		t.Fatal("no host made")
	}
	if _, err := os.Stat("/var/run/netns/" + h.Name); !os.IsNotExist(err) {
		t.Errorf("namespace %s still there after cleanup (%v)", h.Name, err)
	}
	if ifs, _ := net.Interfaces(); true {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, strings.Replace(h.Name, "swap-h", "swh", 1)+"a") {
				t.Errorf("veth %s still there after cleanup", i.Name)
			}
		}
	}
	if err := syscall.Kill(h.Pid(), 0); err == nil {
		t.Errorf("dockerd pid %d still runs after cleanup", h.Pid())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there after cleanup (%v)", dir, err)
	}
	if _, err := d.Client.Ping(ctx); err != nil {
		t.Errorf("the machine's engine: %v", err)
	}
	if _, err := net.InterfaceByName("docker0"); err != nil {
		t.Errorf("the machine's docker0 bridge: %v", err)
	}
}
