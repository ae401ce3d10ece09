package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

// hostsStack is a stack whose app runs on two Docker hosts, a and b (network namespaces
// with engines of their own), each with the stack's images loaded. apps is the apps:
// YAML ("": the default app with replicas).
func hostsStack(t *testing.T, apps string, replicas int) (*stack, map[string]*testenv.DockerHost) {
	t.Helper()
	return hostsStackN(t, 2, apps, replicas)
}

// hostsStackN is hostsStack with n Docker hosts, named a, b, c...
func hostsStackN(t testing.TB, n int, apps string, replicas int) (*stack, map[string]*testenv.DockerHost) {
	t.Helper()
	hosts := map[string]*testenv.DockerHost{}
	var list []string
	for i := range n {
		name := string(rune('a' + i))
		h := testenv.NewDockerHost(t)
		hosts[name] = h
		list = append(list, fmt.Sprintf(`{name: %s, engine: "%s", address: %s}`, name, h.Engine, h.Addr))
	}
	s := newStackWith(t, apps, stackOptions{
		docker:   "hosts: [" + strings.Join(list, ", ") + "]",
		replicas: replicas,
	})
	for _, h := range hosts {
		h.CopyImages(t, s.docker.Client, s.v1, s.v2)
	}
	return s, hosts
}

// TestE2E_TwoDockerHostsDeploySwitchAndRollbackUnderLoad runs an app with 2 replicas per
// color on each of 2 Docker hosts: a first deploy, a switch, a deploy of a new image and
// a rollback to the previous one, then a deploy killed (kill -9) before the shift and
// one killed after it, each repaired by `swap resume` on both hosts, all under load
// without a failed request, every instance on the host its placement names and served
// from that host's address; then, with one host's engine stopped, a deploy exits 4
// naming the host and changes nothing.
func TestE2E_TwoDockerHostsDeploySwitchAndRollbackUnderLoad(t *testing.T) {
	t.Parallel()
	s, hosts := hostsStack(t, "", 4)
	app := e2eApp("web")
	s.mustSwap("deploy", app)
	s.waitAnswer("web.test", "color=blue version=v1")
	s.requireOnHosts(app, "blue", hosts)

	l := s.startLoad("web.test", "/", 4)
	start := time.Now()
	s.mustSwap(app, "green")
	t.Logf("switch to green over 2 hosts: %s", time.Since(start).Round(time.Millisecond))
	s.waitAnswer("web.test", "color=green version=v1")
	s.requireOnHosts(app, "green", hosts)
	start = time.Now()
	s.mustSwap("deploy", app, "--image", s.v2)
	t.Logf("deploy of v2 over 2 hosts: %s", time.Since(start).Round(time.Millisecond))
	s.waitAnswer("web.test", "color=blue version=v2")
	s.requireOnHosts(app, "blue", hosts)
	s.mustSwap("rollback", app)
	s.waitAnswer("web.test", "color=green version=v1")
	s.requireOnHosts(app, "green", hosts)
	st := s.mustSwap("status", app)
	if !strings.Contains(st.stdout, "HOST") {
		t.Fatalf("status has no HOST column:\n%s", st.stdout)
	}

	// kill -9 after the gate (blue started on both hosts): resume rolls back on both.
	if r := s.swap([]string{"SWAP_FAULT=gate:after"}, "deploy", app, "--image", s.v2); r.code != -9 {
		t.Fatalf("the deploy with SWAP_FAULT=gate:after did not die by SIGKILL: %s", r)
	}
	if j := s.statusOf(app).InFlight; j == nil || len(j.Hosts["a"]) != 2 || len(j.Hosts["b"]) != 2 {
		t.Fatalf("the journal of the killed deploy does not record 2 instances started on each host: %+v", j)
	}
	s.mustSwap("resume", app)
	s.requireColorOnHosts(app, "blue", hosts, 0)
	s.requireOnHosts(app, "green", hosts)
	// kill -9 after the shift: resume finishes the swap forward on both hosts.
	if r := s.swap([]string{"SWAP_FAULT=drain:before"}, "deploy", app, "--image", s.v2); r.code != -9 {
		t.Fatalf("the deploy with SWAP_FAULT=drain:before did not die by SIGKILL: %s", r)
	}
	s.mustSwap("resume", app)
	s.waitAnswer("web.test", "color=blue version=v2")
	s.requireColorOnHosts(app, "green", hosts, 0)
	s.requireOnHosts(app, "blue", hosts)
	if st := s.statusOf(app); st.Live != "blue" || st.InFlight != nil {
		t.Fatalf("after the resume: live %s, in flight %+v; want blue, none", st.Live, st.InFlight)
	}

	l.requireNoFailures(t)
	for _, c := range []string{"blue", "green"} {
		if l.byColor[c] == 0 {
			t.Fatalf("no response from %s during the swaps: %v", c, l.byColor)
		}
	}

	// One engine down before a deploy: exit 4, the host named, nothing changed.
	before := s.mustSwap("status", app, "--output", "json").stdout
	hosts["b"].Stop(t)
	r := s.swap(nil, "deploy", app, "--image", s.v1)
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "docker host b") {
		t.Fatalf("deploy with host b's engine stopped: want exit %d naming docker host b, got %s", exitUnreachable, r)
	}
	s.waitAnswer("web.test", "color=blue version=v2")
	after := s.swap(nil, "status", app, "--output", "json")
	var b4, af []switcher.AppStatus
	if err := json.Unmarshal([]byte(before), &b4); err != nil {
		t.Fatalf("status before: %v\n%s", err, before)
	}
	if err := json.Unmarshal([]byte(after.stdout), &af); err != nil {
		t.Fatalf("status after: %v\n%s", err, after)
	}
	if af[0].Live != b4[0].Live || af[0].InFlight != nil || len(af[0].History) != len(b4[0].History) {
		t.Fatalf("the refused deploy changed the state: live %s -> %s, in flight %v, history %d -> %d",
			b4[0].Live, af[0].Live, af[0].InFlight, len(b4[0].History), len(af[0].History))
	}
	var onA []string
	for _, in := range af[0].Instances {
		onA = append(onA, in.ID+"@"+in.DockerHost)
	}
	if want := []string{app + "-blue-0@a", app + "-blue-2@a"}; strings.Join(onA, " ") != strings.Join(want, " ") {
		t.Fatalf("instances on the host still up after the refused deploy: %v, want %v", onA, want)
	}
}

// requireOnHosts checks, from `swap status`, that color's instances run index i on host
// a (even i) or b (odd i), published on that host's address.
func (s *stack) requireOnHosts(app, color string, hosts map[string]*testenv.DockerHost) {
	s.t.Helper()
	n := 0
	st := s.statusOf(app)
	for _, in := range st.Instances {
		if string(in.Color) != color {
			continue
		}
		var i int
		fmt.Sscanf(in.ID[strings.LastIndex(in.ID, "-")+1:], "%d", &i)
		want := "ab"[i%2 : i%2+1]
		if in.DockerHost != want || !strings.HasPrefix(in.Addr, hosts[want].Addr+":") || in.Consul != "passing" {
			s.t.Fatalf("%s runs on %q at %s (consul %s), want host %s at %s:<port>, passing", in.ID, in.DockerHost, in.Addr, in.Consul, want, hosts[want].Addr)
		}
		n++
	}
	if n != 2*len(hosts) {
		s.t.Fatalf("%d %s instances in status, want %d: %+v", n, color, 2*len(hosts), st.Instances)
	}
}

// statusOf is `swap status app` decoded.
func (s *stack) statusOf(app string) switcher.AppStatus {
	s.t.Helper()
	var st []switcher.AppStatus
	r := s.mustSwap("status", app, "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 {
		s.t.Fatalf("status: %v\n%s", err, r)
	}
	return st[0]
}

// requireColorOnHosts checks that each host's engine runs n containers of app's color.
func (s *stack) requireColorOnHosts(app, color string, hosts map[string]*testenv.DockerHost, n int) {
	s.t.Helper()
	for name, h := range hosts {
		f := filters.NewArgs(filters.Arg("label", deployments.LabelApp+"="+app), filters.Arg("label", deployments.LabelColor+"="+color))
		cs, err := h.Client.ContainerList(context.Background(), container.ListOptions{All: true, Filters: f})
		if err != nil {
			s.t.Fatalf("containers on %s: %v", name, err)
		}
		if len(cs) != n {
			s.t.Fatalf("%d %s containers of %s on host %s, want %d", len(cs), color, app, name, n)
		}
	}
}

// TestE2E_ADockerHostLostHalfWayIsRepairedByResumeWhenItIsBack kills a deploy over two
// Docker hosts after its gate (green started on both), then stops host b's engine: `swap
// resume` refuses with exit 4 naming the host and changes nothing, the live color keeps
// serving from host a; once b's engine is back (its containers with it), `swap resume`
// rolls the deploy back on both hosts, b's leftovers included, and the next deploy
// works.
func TestE2E_ADockerHostLostHalfWayIsRepairedByResumeWhenItIsBack(t *testing.T) {
	t.Parallel()
	s, hosts := hostsStack(t, "", 2)
	app := e2eApp("web")
	s.mustSwap("deploy", app)
	s.waitAnswer("web.test", "color=blue version=v1")

	if r := s.swap([]string{"SWAP_FAULT=gate:after"}, "deploy", app, "--image", s.v2); r.code != -9 {
		t.Fatalf("the deploy with SWAP_FAULT=gate:after did not die by SIGKILL: %s", r)
	}
	s.requireColorOnHosts(app, "green", hosts, 1)
	hosts["b"].Stop(t)
	r := s.swap(nil, "resume", app)
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "docker host b") {
		t.Fatalf("resume with host b's engine stopped: want exit %d naming docker host b, got %s", exitUnreachable, r)
	}
	if st := s.statusOf(app); st.InFlight == nil || st.Live != "blue" {
		t.Fatalf("after the refused resume: live %s, in flight %v; want blue and the journal kept", st.Live, st.InFlight)
	}
	s.waitAnswer("web.test", "color=blue version=v1") // from host a

	hosts["b"].Restart(t)
	s.mustSwap("resume", app)
	s.requireColorOnHosts(app, "green", hosts, 0)
	s.requireColorOnHosts(app, "blue", hosts, 1)
	st := s.statusOf(app)
	if st.Live != "blue" || st.InFlight != nil {
		t.Fatalf("after the resume: live %s, in flight %+v; want blue, none", st.Live, st.InFlight)
	}
	s.mustSwap("deploy", app, "--image", s.v2)
	s.waitAnswer("web.test", "color=green version=v2")
	s.requireColorOnHosts(app, "green", hosts, 1)
	s.requireColorOnHosts(app, "blue", hosts, 0)
}

// TestE2E_ADockerHostLostDuringADeployRollsItBack stops host b's engine while a deploy
// holds in its pre_deploy hook, after the preflight found every host up: the start fails
// on b, what started on a is removed, the live color keeps serving from a, and the swap
// fails naming the host, its journal kept for `swap resume`. Once b is back, resume
// finishes the rollback and the next deploy works on both hosts.
func TestE2E_ADockerHostLostDuringADeployRollsItBack(t *testing.T) {
	t.Parallel()
	app := e2eApp("lost")
	s, hosts := hostsStack(t, appConfig(app, holdHooks(app, "pre_deploy")), 0)
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(app+".test", "color=blue version=v1")

	h := s.newHold(app)
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2)
	h.waitHeld(b)
	hosts["b"].Stop(t)
	h.release()
	r := b.wait(2 * time.Minute)
	t.Logf("the deploy that lost host b: %s", r)
	if r.code == 0 || !strings.Contains(r.stderr, "docker host b") {
		t.Fatalf("the deploy that lost host b: want a failure naming docker host b, got %s", r)
	}
	s.requireColorOnHosts(app, "green", map[string]*testenv.DockerHost{"a": hosts["a"]}, 0)
	s.requireColorOnHosts(app, "blue", map[string]*testenv.DockerHost{"a": hosts["a"]}, 1)
	s.waitAnswer(app+".test", "color=blue version=v1") // from host a

	hosts["b"].Restart(t)
	if st := s.statusOf(app); st.InFlight != nil {
		s.mustSwap("resume", app)
	}
	s.requireColorOnHosts(app, "green", hosts, 0)
	s.mustSwap("deploy", app, "--image", s.v2)
	s.waitAnswer(app+".test", "color=green version=v2")
	s.requireColorOnHosts(app, "green", hosts, 1)
	s.requireColorOnHosts(app, "blue", hosts, 0)
}
