package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// reloadTimeout bounds the agent's reload with the services (and every other call).
var reloadTimeout = 90 * time.Second

// consulAgent is a Consul dev agent this program started (procs.StartConsul), on free
// ports.
type consulAgent struct {
	agent   *procs.Consul
	client  *api.Client
	dir     string
	logPath string
}

// startConsul starts a dev agent with one service per port, each with an HTTP check
// on /health at interval and timeout, loaded from a config file once the agent has
// elected itself leader (registering thousands through the agent API takes minutes on
// this machine, and an agent that starts with 5,000 checks to run can starve its own
// election; the checks are the same). On failure it stops the agent and removes its
// directory, quoting the end of its log.
func startConsul(bin string, ports []int, interval, timeout time.Duration) (_ *consulAgent, err error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("consul binary %s: %w (build it with `make consul`, or pass -consul none)", bin, err)
	}
	dir, err := os.MkdirTemp("", "healthbench-consul-")
	if err != nil {
		return nil, err
	}
	a := &consulAgent{dir: dir, logPath: filepath.Join(dir, "consul.log")}
	defer func() {
		if err != nil {
			if a.agent != nil {
				a.stop()
			}
			err = fmt.Errorf("%w; the agent's log ended with:\n%s", err, logTail(a.logPath, 5))
			a.cleanup()
		}
	}()
	conf := filepath.Join(dir, "conf")
	if err := os.Mkdir(conf, 0o700); err != nil {
		return nil, err
	}
	// -dev logs at DEBUG, which with thousands of checks is most of its CPU;
	// measure it at the level it would run at in production.
	a.agent, err = procs.StartConsul(context.Background(), procs.ConsulOptions{Bin: bin, LogLevel: "info",
		Args: []string{"-config-dir", conf}, LogFile: a.logPath, DieWithParent: true})
	if err != nil {
		return nil, err
	}
	cfg := api.DefaultConfig()
	cfg.Address = a.agent.Addr
	// Bounds the reload below: an agent starved of CPU can take many minutes to take
	// thousands of checks (each starts running while the others are added).
	cfg.HttpClient = &http.Client{Timeout: reloadTimeout}
	if a.client, err = api.NewClient(cfg); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(conf, "services.json"), servicesJSON(ports, interval, timeout), 0o600); err != nil {
		return nil, err
	}
	// The reload returns once the services and their checks are registered.
	if err := a.client.Agent().Reload(); err != nil {
		return nil, fmt.Errorf("the agent did not take %d services with their checks (a reload) within %s: %w", len(ports), reloadTimeout, err)
	}
	return a, nil
}

func (a *consulAgent) pid() string { return fmt.Sprint(a.agent.Pid()) }

// logTail is the last n lines of the file at path.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// servicesJSON is an agent config file with one service per port, each with an HTTP
// check on /health. The checks start passing (the targets are up): otherwise the agent
// begins with thousands of critical-to-passing changes to write to its catalog, which
// on a busy machine starves its own checks for a minute.
func servicesJSON(ports []int, interval, timeout time.Duration) []byte {
	type check struct {
		HTTP     string `json:"http"`
		Interval string `json:"interval"`
		Timeout  string `json:"timeout"`
		Status   string `json:"status"`
	}
	type service struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Address string `json:"address"`
		Port    int    `json:"port"`
		Check   check  `json:"check"`
	}
	var cfg struct {
		Services []service `json:"services"`
	}
	for i, p := range ports {
		cfg.Services = append(cfg.Services, service{ID: fmt.Sprintf("bench-%d", i), Name: "bench", Address: "127.0.0.1", Port: p,
			Check: check{HTTP: fmt.Sprintf("http://127.0.0.1:%d/health", p), Interval: interval.String(), Timeout: timeout.String(),
				Status: "passing"}})
	}
	b, _ := json.Marshal(cfg) // plain strings and ints: cannot fail
	return b
}

// waitPassing polls until n checks pass or the deadline.
func (a *consulAgent) waitPassing(n int, deadline time.Time) (int, error) {
	for {
		checks, err := a.client.Agent().Checks()
		passing := 0
		for _, c := range checks {
			if c.Status == api.HealthPassing && c.ServiceID != "" {
				passing++
			}
		}
		if err == nil && passing >= n {
			return passing, nil
		}
		if time.Now().After(deadline) {
			return passing, errors.Join(fmt.Errorf("%d of %d consul checks passing at the deadline", passing, n), err)
		}
		time.Sleep(time.Second) // poll, bounded by the deadline
	}
}

// checkSummary counts the agent's service checks by status and groups the
// outputs of those not passing (numbers masked), most frequent first.
func (a *consulAgent) checkSummary() (map[string]int, []string, error) {
	checks, err := a.client.Agent().Checks()
	if err != nil {
		return nil, nil, err
	}
	status := map[string]int{}
	why := map[string]int{}
	digits := regexp.MustCompile(`[0-9]+`)
	for _, c := range checks {
		if c.ServiceID == "" {
			continue
		}
		status[c.Status]++
		if c.Status != api.HealthPassing {
			out := c.Output
			if len(out) > 160 {
				out = out[:160] + "..."
			}
			why[digits.ReplaceAllString(out, "N")]++
		}
	}
	var reasons []string
	for r, n := range why {
		reasons = append(reasons, fmt.Sprintf("%d× %s", n, r))
	}
	slices.SortFunc(reasons, func(x, y string) int {
		var nx, ny int
		fmt.Sscan(x, &nx)
		fmt.Sscan(y, &ny)
		return ny - nx
	})
	return status, reasons, nil
}

// stop ends the agent this program started (SIGINT, then SIGKILL to its group).
func (a *consulAgent) stop() { _ = a.agent.Stop() }

// cleanup removes the agent's directory (its log).
func (a *consulAgent) cleanup() { _ = os.RemoveAll(a.dir) }
