package procs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ConsulOptions say how StartConsul runs an agent.
type ConsulOptions struct {
	// Bin is the consul binary.
	Bin string
	// DataDir, when set, makes the agent a server (-server -bootstrap-expect=1, with the
	// dev agent's raft timing) that keeps its state — KV, catalog, the agent's services
	// and checks — there, across Restart, as a real agent does. It must be empty or
	// missing. "": a dev agent (-dev), which forgets everything when it stops.
	DataDir string
	// Node is the node's name ("": swap-<random>).
	Node string
	// LogLevel is the agent's (default warn).
	LogLevel string
	// Args are more flags (-config-dir, say).
	Args []string
	// Output, LogFile, PidFile and DieWithParent are the process's (Options); the
	// pid file's marker is the node's name.
	Output        io.Writer
	LogFile       string
	PidFile       string
	DieWithParent bool
	// Timeout bounds the wait until the agent is ready (default 60s).
	Timeout time.Duration
}

// Consul is a Consul agent StartConsul started on free loopback ports.
type Consul struct {
	Addr string // the HTTP API, "127.0.0.1:<port>"
	Node string // the agent's node

	opts ConsulOptions
	args []string
	proc *Proc
}

// StartConsul starts an agent with every port free and waits until it has a leader and
// its node's serfHealth check passes in the catalog. A start that loses a port to
// another process is retried on new ports.
func StartConsul(ctx context.Context, opts ConsulOptions) (*Consul, error) {
	if opts.Node == "" {
		opts.Node = "swap-" + newID()
	}
	if opts.LogLevel == "" {
		opts.LogLevel = "warn"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 60 * time.Second
	}
	var last error
	for range 3 {
		c, err := startConsulOnce(ctx, opts)
		if err == nil {
			return c, nil
		}
		last = err
		if !strings.Contains(err.Error(), "address already in use") && !strings.Contains(err.Error(), "already configured") {
			break
		}
		if opts.DataDir != "" {
			// The failed start may have left raft state there.
			if err := os.RemoveAll(opts.DataDir); err != nil {
				return nil, err
			}
			if err := os.MkdirAll(opts.DataDir, 0o700); err != nil {
				return nil, err
			}
		}
	}
	return nil, last
}

func startConsulOnce(ctx context.Context, opts ConsulOptions) (*Consul, error) {
	ports, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	mode := []string{"-dev"}
	if opts.DataDir != "" {
		mode = []string{"-server", "-bootstrap-expect=1", "-data-dir=" + opts.DataDir, "-hcl=performance { raft_multiplier = 1 }"}
	}
	args := append([]string{"agent"}, mode...)
	args = append(args,
		"-node", opts.Node,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]),
		"-server-port", strconv.Itoa(ports[3]),
		"-log-level", opts.LogLevel,
	)
	c := &Consul{Addr: fmt.Sprintf("127.0.0.1:%d", ports[0]), Node: opts.Node, opts: opts, args: append(args, opts.Args...)}
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// start runs the agent and waits until it is ready.
func (c *Consul) start(ctx context.Context) error {
	p, err := Start(Options{Name: "consul", Bin: c.opts.Bin, Args: c.args,
		Output: c.opts.Output, LogFile: c.opts.LogFile, PidFile: c.opts.PidFile, Marker: c.Node,
		StopSignal:    syscall.SIGINT, // a graceful leave
		DieWithParent: c.opts.DieWithParent})
	if err != nil {
		return err
	}
	c.proc = p
	client := &http.Client{Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	err = p.Poll(ctx, c.opts.Timeout, func() error { return c.ready(client) })
	if err != nil {
		return p.stopWith(fmt.Errorf("consul agent on %s: %w", c.Addr, err))
	}
	return nil
}

// ready says why the agent is not ready yet: no leader, or its own node without its
// passing serfHealth check in the catalog. Services must not be registered before: the
// leader adds the node a moment after the election (later still on a loaded machine),
// and health queries made before then miss the node check.
func (c *Consul) ready(client *http.Client) error {
	var leader string
	if err := getJSON(client, "http://"+c.Addr+"/v1/status/leader", &leader); err != nil {
		return err
	}
	if leader == "" {
		return errors.New("no leader yet")
	}
	var checks []struct{ CheckID, Status string }
	if err := getJSON(client, "http://"+c.Addr+"/v1/health/node/"+c.Node, &checks); err != nil {
		return err
	}
	for _, ch := range checks {
		if ch.CheckID == "serfHealth" && ch.Status == "passing" {
			return nil
		}
	}
	return fmt.Errorf("node %s has no passing serfHealth check yet", c.Node)
}

func getJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", url, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// Pid is the agent's pid.
func (c *Consul) Pid() int { return c.proc.Pid() }

// Proc is the agent's process (a new one after Restart).
func (c *Consul) Proc() *Proc { return c.proc }

// Restart stops the agent and starts it again with the same flags and ports, and waits
// until it is ready. Only an agent with a DataDir keeps its state across it.
func (c *Consul) Restart(ctx context.Context) error {
	if err := c.Stop(); err != nil {
		return err
	}
	return c.start(ctx)
}

// Stop ends the agent (SIGINT: a graceful leave; SIGKILL after 10s). It is safe to call
// again.
func (c *Consul) Stop() error { return c.proc.Stop() }
