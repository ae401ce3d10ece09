package testenv

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// LBHost is a load balancer "host" on this machine: a network namespace joined to the
// root namespace by a veth pair (10.215.N.1 on the root side, Addr 10.215.N.2 inside),
// where clients reach its frontends, and to each Docker host's namespace by a veth pair
// of its own, routed on both ends to the other's address: traffic and checks from it to
// the containers published on a Docker host's Addr go straight from one namespace to the
// other, never forwarded through the root namespace (whose firewall drops forwarded
// packets, and which the tests do not change). Run HAProxy in it with HAProxyIn.
type LBHost struct {
	// Name is the network namespace's name, "swap-l<N>".
	Name string
	// Addr is the namespace's end of its veth to the root namespace, 10.215.N.2.
	Addr string
}

// NewLBHost makes an LB host that reaches dockerHosts, and removes it (namespace and
// veths) in t.Cleanup. It needs root, ip and nsenter, as NewDockerHost.
func NewLBHost(t testing.TB, dockerHosts ...*DockerHost) *LBHost {
	t.Helper()
	for _, bin := range []string{"ip", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			Require(t, bin+" (for a load balancer host)", err)
		}
	}
	sweepDeadLBHosts(t)
	var n int
	var name string
	for range 100 {
		n = 1 + rand.IntN(254)
		name = "swap-l" + strconv.Itoa(n)
		if err := ipCmd("netns", "add", name); err != nil {
			if strings.Contains(err.Error(), "File exists") {
				continue
			}
			Require(t, "ip netns add (network namespaces)", err)
		}
		break
	}
	h := &LBHost{Name: name, Addr: fmt.Sprintf("10.215.%d.2", n)}
	// Deleting the namespace deletes the veth ends in it, and so their peers.
	t.Cleanup(func() {
		if err := ipCmd("netns", "del", name); err != nil && !strings.Contains(err.Error(), "No such file") {
			t.Errorf("testenv: delete network namespace %s: %v", name, err)
		}
		os.Remove(ownerFile(name))
	})
	// The owner file lets a later fixture remove it if this process dies first.
	if err := os.MkdirAll(filepath.Dir(ownerFile(name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ownerFile(name), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	root, peer := fmt.Sprintf("swl%da", n), fmt.Sprintf("swl%db", n)
	run(t, "ip", "link", "add", root, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { _ = ipCmd("link", "del", root) })
	run(t, "ip", "link", "set", peer, "netns", name)
	run(t, "ip", "addr", "add", fmt.Sprintf("10.215.%d.1/24", n), "dev", root)
	run(t, "ip", "link", "set", root, "up")
	h.inNS(t, "ip", "addr", "add", h.Addr+"/24", "dev", peer)
	h.inNS(t, "ip", "link", "set", peer, "up")
	h.inNS(t, "ip", "link", "set", "lo", "up")
	for i, d := range dockerHosts {
		lb, dh := fmt.Sprintf("swl%dd%d", n, i), fmt.Sprintf("swl%de%d", n, i)
		run(t, "ip", "link", "add", lb, "type", "veth", "peer", "name", dh)
		t.Cleanup(func() { _ = ipCmd("link", "del", lb) }) // gone with the namespace already, mostly
		run(t, "ip", "link", "set", lb, "netns", name)
		run(t, "ip", "link", "set", dh, "netns", d.Name)
		h.inNS(t, "ip", "link", "set", lb, "up")
		d.inNS(t, "ip", "link", "set", dh, "up")
		// No addresses on the link: each end routes the other's address over it.
		h.inNS(t, "ip", "route", "add", d.Addr+"/32", "dev", lb, "src", h.Addr)
		d.inNS(t, "ip", "route", "add", h.Addr+"/32", "dev", dh, "src", d.Addr)
	}
	return h
}

// inNS runs a command in the host's namespace.
func (h *LBHost) inNS(t testing.TB, args ...string) {
	t.Helper()
	run(t, append([]string{"nsenter", "--net=/var/run/netns/" + h.Name}, args...)...)
}

// Wrap is the command prefix that runs a program in the host's namespace (nsenter
// execs it: its pid is the program's).
func (h *LBHost) Wrap() []string { return []string{"nsenter", "--net=/var/run/netns/" + h.Name} }

// sweepDeadLBHosts removes the LB hosts (namespace, veth to the root namespace) of test
// processes that died before their cleanup ran; one without an owner file is being made.
func sweepDeadLBHosts(t testing.TB) { sweepDead(t, "swap-l", "swl%da") }
