package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

// hostsStack is a stack whose app runs on two Docker hosts (network namespaces with
// engines of their own), each with the stack's images loaded.
func hostsStack(t *testing.T, replicas int) (*stack, map[string]*testenv.DockerHost) {
	t.Helper()
	ha, hb := testenv.NewDockerHost(t), testenv.NewDockerHost(t)
	s := newStackWith(t, "", stackOptions{
		docker: fmt.Sprintf(`hosts: [{name: a, engine: "%s", address: %s}, {name: b, engine: "%s", address: %s}]`,
			ha.Engine, ha.Addr, hb.Engine, hb.Addr),
		replicas: replicas,
	})
	for _, h := range []*testenv.DockerHost{ha, hb} {
		h.CopyImages(t, s.docker.Client, s.v1, s.v2)
	}
	return s, map[string]*testenv.DockerHost{"a": ha, "b": hb}
}

// TestE2E_TwoDockerHostsDeploySwitchAndRollbackUnderLoad runs an app with 2 replicas per
// color on each of 2 Docker hosts: a first deploy, a switch, a rollback and a deploy of
// a new image under load without a failed request, every instance on the host its
// placement names and served from that host's address; then, with one host's engine
// stopped, a deploy exits 4 naming the host and changes nothing.
func TestE2E_TwoDockerHostsDeploySwitchAndRollbackUnderLoad(t *testing.T) {
	s, hosts := hostsStack(t, 4)
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
	s.mustSwap("rollback", app)
	s.waitAnswer("web.test", "color=blue version=v1")
	start = time.Now()
	s.mustSwap("deploy", app, "--image", s.v2)
	t.Logf("deploy of v2 over 2 hosts: %s", time.Since(start).Round(time.Millisecond))
	s.waitAnswer("web.test", "color=green version=v2")
	l.requireNoFailures(t)
	for _, c := range []string{"blue", "green"} {
		if l.byColor[c] == 0 {
			t.Fatalf("no response from %s during the swaps: %v", c, l.byColor)
		}
	}
	s.requireOnHosts(app, "green", hosts)
	st := s.mustSwap("status", app)
	if !strings.Contains(st.stdout, "HOST") {
		t.Fatalf("status has no HOST column:\n%s", st.stdout)
	}

	// One engine down before a deploy: exit 4, the host named, nothing changed.
	before := s.mustSwap("status", app, "--output", "json").stdout
	hosts["b"].Stop(t)
	r := s.swap(nil, "deploy", app, "--image", s.v1)
	if r.code != exitUnreachable || !strings.Contains(r.stderr, "docker host b") {
		t.Fatalf("deploy with host b's engine stopped: want exit %d naming docker host b, got %s", exitUnreachable, r)
	}
	s.waitAnswer("web.test", "color=green version=v2")
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
	if want := []string{app + "-green-0@a", app + "-green-2@a"}; strings.Join(onA, " ") != strings.Join(want, " ") {
		t.Fatalf("instances on the host still up after the refused deploy: %v, want %v", onA, want)
	}
}

// requireOnHosts checks, from `swap status`, that color's instances run index i on host
// a (even i) or b (odd i), published on that host's address.
func (s *stack) requireOnHosts(app, color string, hosts map[string]*testenv.DockerHost) {
	s.t.Helper()
	var st []switcher.AppStatus
	r := s.mustSwap("status", app, "--output", "json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || len(st) != 1 {
		s.t.Fatalf("status: %v\n%s", err, r)
	}
	n := 0
	for _, in := range st[0].Instances {
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
	if n != 4 {
		s.t.Fatalf("%d %s instances in status, want 4:\n%s", n, color, r.stdout)
	}
}
