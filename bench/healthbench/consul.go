package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// reloadTimeout bounds the agent's reload with the services (and every other call).
var reloadTimeout = 90 * time.Second

// consulAgent is a Consul dev agent this program started, on free ports.
type consulAgent struct {
	cmd     *exec.Cmd
	client  *api.Client
	dir     string
	logPath string
	done    chan struct{}
}

func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	defer func() {
		for _, l := range ls {
			if l != nil {
				_ = l.Close()
			}
		}
	}()
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
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
	p, err := freePorts(4)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "healthbench-consul-")
	if err != nil {
		return nil, err
	}
	a := &consulAgent{dir: dir, logPath: filepath.Join(dir, "consul.log"), done: make(chan struct{})}
	defer func() {
		if err != nil {
			if a.cmd != nil && a.cmd.Process != nil {
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
	logf, err := os.Create(a.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	// -dev logs at DEBUG, which with thousands of checks is most of its CPU;
	// measure it at the level it would run at in production.
	a.cmd = exec.Command(bin, "agent", "-dev", "-log-level", "info", "-config-dir", conf,
		"-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", fmt.Sprint(p[0]), "-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1",
		"-serf-lan-port", fmt.Sprint(p[1]), "-serf-wan-port", fmt.Sprint(p[2]), "-server-port", fmt.Sprint(p[3]))
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()

	cfg := api.DefaultConfig()
	cfg.Address = fmt.Sprintf("127.0.0.1:%d", p[0])
	// Bounds the reload below: an agent starved of CPU can take many minutes to take
	// thousands of checks (each starts running while the others are added).
	cfg.HttpClient = &http.Client{Timeout: reloadTimeout}
	if a.client, err = api.NewClient(cfg); err != nil {
		return nil, err
	}
	if err := a.poll(60*time.Second, "a leader", func() (bool, error) {
		leader, err := a.client.Status().Leader()
		return err == nil && leader != "", nil
	}); err != nil {
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

func (a *consulAgent) pid() string { return fmt.Sprint(a.cmd.Process.Pid) }

// poll calls ok every 200 ms until it reports true, the agent exits or timeout passes.
func (a *consulAgent) poll(timeout time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	for {
		if done, err := ok(); err != nil || done {
			return err
		}
		select {
		case <-a.done:
			return fmt.Errorf("consul agent exited while waiting for %s", what)
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("consul agent has no %s after %s", what, timeout)
		}
	}
}

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

// stop ends the agent this program started: SIGTERM, then SIGKILL by pid.
func (a *consulAgent) stop() {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// cleanup removes the agent's directory (its log).
func (a *consulAgent) cleanup() { _ = os.RemoveAll(a.dir) }
