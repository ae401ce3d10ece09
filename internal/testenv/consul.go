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

// ConsulAgent is one `consul agent -dev` started by Consul.
type ConsulAgent struct {
	Addr   string      // HTTP API, "127.0.0.1:<port>"
	Client *api.Client // a client for Addr
	Pid    int         // the agent's pid

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
	var last error
	for attempt := 0; attempt < 3; attempt++ {
		a, err := startConsul(t, bin)
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

func startConsul(t testing.TB, bin string) (*ConsulAgent, error) {
	httpPort := FreePort(t)
	node := "swap-test-" + newRunID()
	args := []string{"agent", "-dev",
		"-node", node,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(httpPort),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(FreePort(t)),
		"-serf-wan-port", strconv.Itoa(FreePort(t)),
		"-server-port", strconv.Itoa(FreePort(t)),
		"-log-level", "warn",
	}
	a := &ConsulAgent{Addr: fmt.Sprintf("127.0.0.1:%d", httpPort), log: &syncBuffer{}, exit: make(chan struct{})}
	a.cmd = exec.Command(bin, args...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start consul: %w", err)
	}
	a.Pid = a.cmd.Process.Pid
	go func() { a.cmd.Wait(); close(a.exit) }()
	var err error
	a.Client, err = api.NewClient(&api.Config{Address: a.Addr})
	if err != nil {
		a.Stop()
		return nil, err
	}
	err = Poll(30*time.Second, func() error {
		select {
		case <-a.exit:
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
		// The dev agent's own node, with its passing serfHealth check, must be in
		// the catalog before services are registered: the leader adds it a moment
		// after the election, later still on a loaded machine, and health queries
		// made before then miss the node check.
		checks, _, err := a.Client.Health().Node(node, nil)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if c.CheckID == "serfHealth" && c.Status == api.HealthPassing {
				return nil
			}
		}
		return fmt.Errorf("node %s has no passing serfHealth check yet", node)
	})
	if err != nil {
		a.Stop()
		return nil, err
	}
	t.Cleanup(a.Stop)
	return a, nil
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
