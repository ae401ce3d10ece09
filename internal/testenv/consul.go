package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ConsulAgent is one Consul agent started by Consul (`consul agent -dev`) or
// ConsulServer (a server that keeps its state on disk).
type ConsulAgent struct {
	Addr   string      // HTTP API, "127.0.0.1:<port>"
	Client *api.Client // a client for Addr
	Pid    int         // the agent's pid

	bin  string
	args []string
	node string
	cmd  *exec.Cmd
	exit chan struct{}
	log  *syncBuffer
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
// and its node's serfHealth check passes, and stops it in t.Cleanup. A start that
// loses a port to another process is retried on new ports.
func Consul(t testing.TB) *ConsulAgent {
	t.Helper()
	bin, err := ConsulBinary(t)
	if err != nil {
		Require(t, "consul", err)
	}
	return startRetrying(t, bin, func() []string { return []string{"-dev"} })
}

// startRetrying is startAgent with the flags mode makes, retried with new ones on new
// ports when a start lost a port to another process.
func startRetrying(t testing.TB, bin string, mode func() []string) *ConsulAgent {
	t.Helper()
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		a, err := startAgent(t, bin, mode()...)
		if err == nil {
			return a
		}
		last = err
		if !strings.Contains(err.Error(), "address already in use") && !strings.Contains(err.Error(), "already configured") {
			break
		}
	}
	t.Fatalf("testenv: consul: %v", last)
	return nil
}

// ConsulServer starts a Consul server agent that keeps its state — KV, catalog, the
// agent's services and checks — in a data directory of its own, unlike `-dev`, which
// forgets everything when it stops: Restart brings it back with all of it, on the same
// ports, as a real agent's restart would. It elects itself (-bootstrap-expect=1) with
// the dev agent's raft timing.
func ConsulServer(t testing.TB) *ConsulAgent {
	t.Helper()
	bin, err := ConsulBinary(t)
	if err != nil {
		Require(t, "consul", err)
	}
	return startRetrying(t, bin, func() []string {
		// A data directory of each attempt's own: a failed start may have left raft
		// state of its node there.
		return []string{"-server", "-bootstrap-expect=1", "-data-dir=" + t.TempDir(),
			"-hcl=performance { raft_multiplier = 1 }"}
	})
}

// startAgent starts an agent with mode's flags on free ports and waits until it is
// ready (start).
func startAgent(t testing.TB, bin string, mode ...string) (*ConsulAgent, error) {
	httpPort := FreePort(t)
	node := "swap-test-" + newRunID()
	args := append([]string{"agent"}, mode...)
	args = append(args,
		"-node", node,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(httpPort),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(FreePort(t)),
		"-serf-wan-port", strconv.Itoa(FreePort(t)),
		"-server-port", strconv.Itoa(FreePort(t)),
		"-log-level", "warn",
	)
	a := &ConsulAgent{Addr: fmt.Sprintf("127.0.0.1:%d", httpPort), bin: bin, args: args, node: node, log: &syncBuffer{}}
	var err error
	a.Client, err = api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		return nil, err
	}
	if err := a.start(); err != nil {
		return nil, err
	}
	t.Cleanup(a.Stop)
	return a, nil
}

// start runs the agent and waits until it has a leader and its node's serfHealth check
// passes.
func (a *ConsulAgent) start() error {
	a.exit = make(chan struct{})
	a.cmd = exec.Command(a.bin, a.args...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start consul: %w", err)
	}
	a.Pid = a.cmd.Process.Pid
	cmd, exit := a.cmd, a.exit
	go func() { cmd.Wait(); close(exit) }()
	err := Poll(60*time.Second, func() error {
		select {
		case <-exit:
			return fmt.Errorf("consul exited: %s", a.log.String())
		default:
		}
		leader, err := a.Client.Status().Leader()
		if err != nil {
			return err
		}
		if leader == "" {
			return errors.New("no leader yet")
		}
		// The agent's own node, with its passing serfHealth check, must be in the
		// catalog before services are registered: the leader adds it a moment after
		// the election, later still on a loaded machine, and health queries made
		// before then miss the node check.
		checks, _, err := a.Client.Health().Node(a.node, nil)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == api.HealthPassing {
				return nil
			}
		}
		return fmt.Errorf("node %s has no passing serfHealth check yet", a.node)
	})
	if err != nil {
		a.Stop()
		return err
	}
	return nil
}

// Restart stops the agent and starts it again with the same flags and ports, and waits
// until it is ready. Only a ConsulServer agent keeps its state across it.
func (a *ConsulAgent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	if err := a.start(); err != nil {
		t.Fatalf("testenv: restart consul: %v", err)
	}
}

// Stop ends the agent (SIGINT: graceful leave; SIGKILL after 10s). Safe to call twice.
func (a *ConsulAgent) Stop() {
	select {
	case <-a.exit:
		return
	default:
	}
	a.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.exit:
	case <-time.After(10 * time.Second):
		syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
		<-a.exit
	}
}

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
