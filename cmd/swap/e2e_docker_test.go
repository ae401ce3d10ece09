package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
)

// Scenarios of the Docker side: installations that share a Docker host and a Consul
// agent, restart policies, and containers that restart on another host port.

func TestE2E_TwoInstallationsSharingDockerAndConsulNeverTouchEachOthersContainersOrServices(t *testing.T) {
	t.Parallel()
	// Installation one is the default one (kv_prefix swap): its objects keep the plain
	// names, as deployments made before installations were told apart. Installation
	// two shares its Docker engine and its Consul agent, has its own HAProxy, and
	// deploys an app of the same name.
	one := newStackWith(t, "", stackOptions{kvPrefix: deployments.DefaultKVPrefix})
	two := newStackWith(t, appConfig(e2eApp("web"), oneReplica), stackOptions{consul: one.consul})
	app := e2eApp("web")

	one.mustSwap("deploy", app)
	one.waitAnswer("web.test", "color=blue version=v1")
	oneIDs := one.containerIDs(deployments.LabelApp + "=" + app)
	if len(oneIDs) != 2 {
		t.Fatalf("installation one runs %d containers of %s, want 2", len(oneIDs), app)
	}
	oneServices := one.consulInstances(app)
	slices.Sort(oneServices)
	if want := []string{app + "-blue-0", app + "-blue-1"}; !slices.Equal(oneServices, want) {
		t.Fatalf("installation one's Consul services = %v, want %v", oneServices, want)
	}

	l := one.startLoad("web.test", "/", 4)
	two.mustSwap("deploy", app, "--image", two.v1)
	two.waitAnswer(app+".test", "color=blue version=v1")
	two.mustSwap(app, "green")
	two.waitAnswer(app+".test", "color=green version=v1")
	two.mustSwap("deploy", app, "--image", two.v2)
	two.waitAnswer(app+".test", "color=blue version=v2")
	two.mustSwap("rollback", app)
	two.waitAnswer(app+".test", "color=green version=v1")
	l.requireNoFailures(t)
	if l.byColor["blue"] == 0 || len(l.byColor) != 1 {
		t.Fatalf("installation one answered from %v, want blue only", l.byColor)
	}

	// One's containers are the very same ones, running.
	for _, c := range one.containerList(deployments.LabelApp + "=" + app) {
		if !slices.Contains(oneIDs, c.ID) || c.State != "running" {
			t.Fatalf("installation one's container %v is %s; want one of %v running", c.Names, c.State, oneIDs)
		}
	}
	if got := one.containerIDs(deployments.LabelApp + "=" + app); len(got) != len(oneIDs) {
		t.Fatalf("installation one has containers %v, want %v", got, oneIDs)
	}
	// Two's container carries its installation in its name and label.
	inst2 := two.installation
	for _, c := range two.containerList(deployments.LabelApp + "=" + app) {
		if c.Labels[deployments.LabelInstallation] != inst2 || !strings.HasPrefix(strings.TrimPrefix(c.Names[0], "/"), inst2+".") {
			t.Fatalf("installation two's container %v has labels %v; want its installation %s in the label and the name", c.Names, c.Labels, inst2)
		}
	}
	// Consul: one's services are still there, passing, with their meta; two's are its own.
	entries, _, err := one.consul.Client.Health().Service(app, "", false, nil)
	if err != nil {
		t.Fatal(err)
	}
	byInst := map[string][]string{}
	for _, e := range entries {
		byInst[e.Service.Meta["installation"]] = append(byInst[e.Service.Meta["installation"]], e.Service.ID)
		if e.Service.Meta["installation"] == deployments.DefaultInstallation && e.Checks.AggregatedStatus() != "passing" {
			t.Fatalf("installation one's service %s is %s", e.Service.ID, e.Checks.AggregatedStatus())
		}
	}
	slices.Sort(byInst[deployments.DefaultInstallation])
	if !slices.Equal(byInst[deployments.DefaultInstallation], oneServices) {
		t.Fatalf("installation one's services are %v, want %v untouched (all: %v)", byInst[deployments.DefaultInstallation], oneServices, byInst)
	}
	if want := []string{inst2 + "." + app + "-green-0"}; !slices.Equal(byInst[inst2], want) {
		t.Fatalf("installation two's services are %v, want %v", byInst[inst2], want)
	}

	// Each status shows its own installation's instances only.
	st1 := one.mustSwap("status", app)
	st2 := two.mustSwap("status", app)
	if !strings.Contains(st1.stdout, app+"-blue-0") || !strings.Contains(st1.stdout, app+"-blue-1") || strings.Contains(st1.stdout, app+"-green-") {
		t.Fatalf("installation one's status:\n%s", st1.stdout)
	}
	if !strings.Contains(st2.stdout, app+"-green-0") || strings.Contains(st2.stdout, app+"-blue-") {
		t.Fatalf("installation two's status:\n%s", st2.stdout)
	}
}

// objectName is the container name and Consul service ID of instance id ("web-blue-0")
// in this stack's installation.
func (s *stack) objectName(id string) string {
	return deployments.ObjectName(s.installation, id)
}

// instanceContainer inspects the container of app's instance color/index in this
// stack's installation.
func (s *stack) instanceContainer(app, color string, index int) container.InspectResponse {
	s.t.Helper()
	cs := s.containerList(deployments.LabelApp+"="+app, deployments.LabelColor+"="+color, deployments.LabelIndex+"="+strconv.Itoa(index))
	if len(cs) != 1 {
		s.t.Fatalf("%d containers of %s-%s-%d, want 1", len(cs), app, color, index)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := s.docker.Client.ContainerInspect(ctx, cs[0].ID)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// publishedPort is the host port the container publishes its app port (8080) on now,
// 0 when it does not run.
func publishedPort(c container.InspectResponse) int {
	if c.NetworkSettings == nil {
		return 0
	}
	for _, b := range c.NetworkSettings.Ports["8080/tcp"] {
		p, _ := strconv.Atoi(b.HostPort)
		return p
	}
	return 0
}

// waitRunningAgain waits until the container runs again after a restart that began
// after since, and returns it.
func (s *stack) waitRunningAgain(id string, since time.Time) container.InspectResponse {
	s.t.Helper()
	var c container.InspectResponse
	testenv.WaitFor(s.t, time.Minute, "container "+id+" runs again", func() error {
		var err error
		c, err = s.docker.Client.ContainerInspect(context.Background(), id)
		if err != nil {
			return err
		}
		started, _ := time.Parse(time.RFC3339Nano, c.State.StartedAt)
		if !c.State.Running || !started.After(since) || publishedPort(c) == 0 {
			return fmt.Errorf("state %s, started %s", c.State.Status, c.State.StartedAt)
		}
		return nil
	})
	return c
}

func TestE2E_ContainersHaveARestartPolicyAndComeBackOnTheirOwnPort(t *testing.T) {
	t.Parallel()
	s := newStack(t, "")
	app := e2eApp("web")
	s.mustSwap("deploy", app)
	s.waitAnswer("web.test", "color=blue version=v1")

	c := s.instanceContainer(app, "blue", 0)
	if got := c.HostConfig.RestartPolicy.Name; got != "unless-stopped" {
		t.Fatalf("restart policy = %q, want unless-stopped (docker.restart_policy's default)", got)
	}
	port := publishedPort(c)
	if b := c.HostConfig.PortBindings["8080/tcp"]; len(b) != 1 || b[0].HostPort != strconv.Itoa(port) {
		t.Fatalf("port bindings = %v, want the published port %d pinned", b, port)
	}

	// The app's process dies: the restart policy brings the container back, on its port.
	before := time.Now()
	if err := syscall.Kill(c.State.Pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill the container's process %d: %v", c.State.Pid, err)
	}
	c = s.waitRunningAgain(c.ID, before)
	if c.RestartCount < 1 || publishedPort(c) != port {
		t.Fatalf("after a crash: restart count %d, port %d; want restarted by its policy on port %d", c.RestartCount, publishedPort(c), port)
	}
	// `docker restart` (like the engine's own restart) keeps the port too.
	before = time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.docker.Client.ContainerRestart(ctx, c.ID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	c = s.waitRunningAgain(c.ID, before)
	if publishedPort(c) != port {
		t.Fatalf("after docker restart the container publishes port %d, want its pinned port %d", publishedPort(c), port)
	}

	// Nothing drifted; swap keeps serving from both containers.
	testenv.WaitFor(t, time.Minute, "blue-0 is UP in HAProxy again", func() error {
		for _, line := range strings.Split(s.serverView(), "\n") {
			if strings.Contains(line, "/"+app+"-blue-0 UP") {
				return nil
			}
		}
		return errors.New(s.serverView())
	})
	st := s.mustSwap("status", app)
	if strings.Contains(st.stdout, "drift") {
		t.Fatalf("status shows a drift after restarts on a pinned port:\n%s", st.stdout)
	}
	s.waitAnswer("web.test", "color=blue version=v1")
}

func TestE2E_ResumeMakesHAProxyAndConsulFollowAContainerThatRestartedOnAnotherPort(t *testing.T) {
	t.Parallel()
	// Ephemeral host ports: the engine picks a new one on every start.
	s := newStackWith(t, "", stackOptions{docker: "host_ports: ephemeral"})
	app := e2eApp("web")
	s.mustSwap("deploy", app)
	s.waitAnswer("web.test", "color=blue version=v1")

	c := s.instanceContainer(app, "blue", 0)
	old := publishedPort(c)
	before := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.docker.Client.ContainerRestart(ctx, c.ID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	c = s.waitRunningAgain(c.ID, before)
	moved := publishedPort(c)
	if moved == old {
		t.Skipf("this Docker engine kept the ephemeral port %d across a restart: nothing drifts", old)
	}

	st := s.mustSwap("status", app)
	wantDrift := fmt.Sprintf("drift: %s-blue-0: the container publishes 127.0.0.1:%d but haproxy lb1 sends it to 127.0.0.1:%d, consul has 127.0.0.1:%d", app, moved, old, old)
	if !strings.Contains(st.stdout, wantDrift) {
		t.Fatalf("status does not show %q:\n%s", wantDrift, st.stdout)
	}

	r := s.mustSwap("resume", app)
	if !strings.Contains(r.stdout, "1 instance(s) that restarted on another host port are served there again") {
		t.Fatalf("resume did not report the repair:\n%s", r)
	}
	// HAProxy, at runtime and in its files, and Consul follow the container.
	out, err := s.haproxy.Exec("show servers state " + deployments.BackendName(app, deployments.Blue))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := lbconfig.ParseServersState(out)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, row := range rows {
		if row.Name == app+"-blue-0" {
			found = true
			if row.Port != moved {
				t.Fatalf("HAProxy sends %s to port %d, want %d", row.Name, row.Port, moved)
			}
		}
	}
	if !found {
		t.Fatalf("HAProxy has no server %s-blue-0:\n%s", app, out)
	}
	cfg, err := os.ReadFile(filepath.Join(s.dir, "haproxy", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), fmt.Sprintf("server %s-blue-0 127.0.0.1:%d ", app, moved)) {
		t.Fatalf("haproxy.cfg was not rewritten with the new port %d:\n%s", moved, cfg)
	}
	// A test stack is an installation of its own: its service IDs carry it.
	inst := s.objectName(app + "-blue-0")
	svc, _, err := s.consul.Client.Agent().Service(inst, nil)
	if err != nil || svc.Port != moved {
		t.Fatalf("Consul's service %s = %+v, %v; want port %d", inst, svc, err, moved)
	}

	// The moved container serves again: HAProxy's check passes on its new port and it
	// answers requests; nothing drifts any more.
	testenv.WaitFor(t, time.Minute, "blue-0 is UP in HAProxy on its new port", func() error {
		for _, line := range strings.Split(s.serverView(), "\n") {
			if strings.Contains(line, "/"+app+"-blue-0 UP") {
				return nil
			}
		}
		return errors.New(s.serverView())
	})
	served := func() uint64 {
		rows, err := s.haproxy.Exec("show stat")
		if err != nil {
			t.Fatal(err)
		}
		st, err := lbconfig.ParseStat(rows)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range st {
			if r.Type == lbconfig.StatServer && r.Name == app+"-blue-0" {
				return uint64(r.Hrsp2xx)
			}
		}
		return 0
	}
	base := served()
	for range 10 {
		code, body, err := s.get("web.test", "/")
		if err != nil || code != 200 || !strings.Contains(body, "color=blue version=v1") {
			t.Fatalf("GET / = %d %q %v", code, body, err)
		}
	}
	if served() <= base {
		t.Fatalf("%s-blue-0 answered none of 10 requests after the repair", app)
	}
	if st := s.mustSwap("status", app); strings.Contains(st.stdout, "drift") {
		t.Fatalf("status still shows a drift after resume:\n%s", st.stdout)
	}
}
