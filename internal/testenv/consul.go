package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// ConsulAgent is one Consul agent started by Consul (`consul agent -dev`) or
// ConsulServer (a server that keeps its state on disk): a procs.Consul, stopped in
// t.Cleanup.
type ConsulAgent struct {
	Addr   string      // HTTP API, "127.0.0.1:<port>"
	Client *api.Client // a client for Addr
	Pid    int         // the agent's pid

	c   *procs.Consul
	log *procs.Buffer
}

// ConsulBinary finds the consul binary: $CONSUL_BIN, then <repo>/bin/consul (built by
// `make deps`), then PATH.
func ConsulBinary(t testing.TB) (string, error) {
	t.Helper()
	if p := os.Getenv("CONSUL_BIN"); p != "" {
		return p, nil
	}
	p := filepath.Join(RepoRoot(t), "bin", "consul")
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("no bin/consul, $CONSUL_BIN or consul in PATH")
}

// Consul starts a Consul dev agent with every port free, waits until it has a leader
// and its node's serfHealth check passes, and stops it in t.Cleanup (procs.StartConsul).
func Consul(t testing.TB) *ConsulAgent {
	t.Helper()
	return startConsul(t, "")
}

// ConsulServer starts a Consul server agent that keeps its state — KV, catalog, the
// agent's services and checks — in a data directory of its own, unlike `-dev`, which
// forgets everything when it stops: Restart brings it back with all of it, on the same
// ports, as a real agent's restart would. It elects itself (-bootstrap-expect=1) with
// the dev agent's raft timing.
func ConsulServer(t testing.TB) *ConsulAgent {
	t.Helper()
	return startConsul(t, t.TempDir())
}

func startConsul(t testing.TB, dataDir string) *ConsulAgent {
	t.Helper()
	bin, err := ConsulBinary(t)
	if err != nil {
		Require(t, "consul", err)
	}
	a := &ConsulAgent{log: &procs.Buffer{}}
	a.c, err = procs.StartConsul(context.Background(), procs.ConsulOptions{Bin: bin, DataDir: dataDir,
		Node: "swap-test-" + newRunID(), Output: a.log, DieWithParent: true})
	if err != nil {
		t.Fatalf("testenv: consul: %v", err)
	}
	t.Cleanup(a.Stop)
	a.Addr, a.Pid = a.c.Addr, a.c.Pid()
	if a.Client, err = api.NewClient(&api.Config{Address: a.Addr}); err != nil {
		t.Fatal(err)
	}
	return a
}

// Restart stops the agent and starts it again with the same flags and ports, and waits
// until it is ready. Only a ConsulServer agent keeps its state across it.
func (a *ConsulAgent) Restart(t testing.TB) {
	t.Helper()
	if err := a.c.Restart(context.Background()); err != nil {
		t.Fatalf("testenv: restart consul: %v", err)
	}
	a.Pid = a.c.Pid()
}

// Stop ends the agent (SIGINT: graceful leave; SIGKILL after 10s). Safe to call twice.
func (a *ConsulAgent) Stop() { _ = a.c.Stop() }

// Log is what the agent printed so far.
func (a *ConsulAgent) Log() string { return a.log.String() }

// MeshRoute compiles service's discovery chain in the agent, as a mesh client's proxy
// would get it, and says where its start node sends the traffic, by subset: "blue" (a
// resolver whose target is the subset blue), "green 30, blue 70" (a splitter), or
// "service" for the default target without a subset. The chain's protocol is returned
// too.
func (a *ConsulAgent) MeshRoute(service string) (route, protocol string, err error) {
	out, _, err := a.Client.DiscoveryChain().Get(service, nil, nil)
	if err != nil {
		return "", "", err
	}
	c := out.Chain
	target := func(node string) string {
		n := c.Nodes[node]
		if n == nil || n.Resolver == nil {
			return "?" + node
		}
		t := c.Targets[n.Resolver.Target]
		switch {
		case t == nil:
			return "?" + n.Resolver.Target
		case t.ServiceSubset == "":
			return "service"
		}
		return t.ServiceSubset
	}
	start := c.Nodes[c.StartNode]
	if start == nil {
		return "", c.Protocol, fmt.Errorf("chain of %s: no start node %q", service, c.StartNode)
	}
	switch start.Type {
	case "resolver":
		return target(c.StartNode), c.Protocol, nil
	case "splitter":
		var parts []string
		for _, sp := range start.Splits {
			parts = append(parts, fmt.Sprintf("%s %g", target(sp.NextNode), sp.Weight))
		}
		return strings.Join(parts, ", "), c.Protocol, nil
	}
	return "", c.Protocol, fmt.Errorf("chain of %s starts at a %s node", service, start.Type)
}
