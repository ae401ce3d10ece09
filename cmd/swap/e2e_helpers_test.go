package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// Helpers of the end-to-end scenarios (e2e_*_test.go): swaps run in the background with
// their progress watched, HAProxy, Consul and Docker read from the test's side.

// e2eParallel is how many tests of this package run at once unless -parallel says. The
// end-to-end tests, one stack each, spend their time waiting on Docker, Consul and
// HAProxy rather than on the CPU: go test's default (GOMAXPROCS, 2 on a 2-core machine)
// would run them two at a time and take minutes longer.
const e2eParallel = 8

func init() {
	testing.Init() // registers -test.parallel now; go test's own call then does nothing
	f := flag.Lookup("test.parallel")
	if f != nil && runtime.GOMAXPROCS(0) < e2eParallel && f.Value.String() == f.DefValue {
		_ = f.Value.Set(strconv.Itoa(e2eParallel)) // the command line, parsed later, still wins
		f.DefValue = f.Value.String()
	}
}

// lockedBuffer is a bytes.Buffer shared by a child process's output copier and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// bgSwap is a swap CLI process running in the background.
type bgSwap struct {
	t        testing.TB
	args     []string
	cmd      *exec.Cmd
	out, err lockedBuffer
	done     chan struct{}
	res      cliRun
}

// swapBackground starts the CLI like s.swap, without waiting for it. The process is
// killed (by its pid) in t.Cleanup if the test did not wait for it.
func (s *stack) swapBackground(env []string, args ...string) *bgSwap {
	s.t.Helper()
	b := &bgSwap{t: s.t, args: args, done: make(chan struct{})}
	b.cmd = exec.Command(cliBinary(s.t), args...)
	b.cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+s.cfgPath,
		"SWAP_CONTAINER_LABELS="+s.docker.Label, "SWAP_LOG_LEVEL=warn")
	b.cmd.Env = append(b.cmd.Env, env...)
	b.cmd.Stdout, b.cmd.Stderr = &b.out, &b.err
	if err := b.cmd.Start(); err != nil {
		s.t.Fatalf("start swap %v: %v", args, err)
	}
	go func() {
		err := b.cmd.Wait()
		b.res = cliRun{stdout: b.out.String(), stderr: b.err.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			b.res.code = ee.ExitCode()
		} else if err != nil {
			b.res.code = -1
			b.res.stderr += "\n(wait: " + err.Error() + ")"
		}
		close(b.done)
	}()
	s.t.Cleanup(func() {
		select {
		case <-b.done:
		default:
			_ = b.cmd.Process.Kill()
			<-b.done
		}
	})
	return b
}

// pid is the process id of the background swap.
func (b *bgSwap) pid() int { return b.cmd.Process.Pid }

// exited reports whether the process has ended.
func (b *bgSwap) exited() bool {
	select {
	case <-b.done:
		return true
	default:
		return false
	}
}

// wait waits (at most timeout) for the process and returns how it ended.
func (b *bgSwap) wait(timeout time.Duration) cliRun {
	b.t.Helper()
	select {
	case <-b.done:
		return b.res
	case <-time.After(timeout):
		_ = b.cmd.Process.Kill()
		<-b.done
		b.t.Fatalf("swap %s did not end within %s; killed it:\n%s", strings.Join(b.args, " "), timeout, b.res)
		return cliRun{}
	}
}

// mustSucceed waits for the process and fails the test unless it exited 0.
func (b *bgSwap) mustSucceed(timeout time.Duration) cliRun {
	b.t.Helper()
	r := b.wait(timeout)
	if r.code != 0 {
		b.t.Fatalf("swap %s: %s", strings.Join(b.args, " "), r)
	}
	return r
}

// jsonEvent is one line of `--output json`: an event or the result.
type jsonEvent struct {
	Type string `json:"type"`
	switcher.Event
	Result *switcher.Result `json:"result"`
	Error  string           `json:"error"`
}

// events parses JSON progress lines (`--output json`); other lines are skipped.
func events(stdout string) []jsonEvent {
	var out []jsonEvent
	sc := bufio.NewScanner(strings.NewReader(stdout))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var e jsonEvent
		if json.Unmarshal(sc.Bytes(), &e) == nil && e.Type != "" {
			out = append(out, e)
		}
	}
	return out
}

// findEvent returns the first event of step and kind whose message contains msg.
func findEvent(evs []jsonEvent, step switcher.Step, kind switcher.EventKind, msg string) (jsonEvent, bool) {
	for _, e := range evs {
		if e.Type == "event" && e.Step == step && e.Kind == kind && strings.Contains(e.Message, msg) {
			return e, true
		}
	}
	return jsonEvent{}, false
}

// waitEvent waits until the background swap (run with --output json) has reported an
// event of step and kind whose message contains msg.
func (b *bgSwap) waitEvent(step switcher.Step, kind switcher.EventKind, msg string, timeout time.Duration) jsonEvent {
	b.t.Helper()
	var found jsonEvent
	testenv.WaitFor(b.t, timeout, fmt.Sprintf("swap %s reports %s %s %q", strings.Join(b.args, " "), step, kind, msg), func() error {
		if e, ok := findEvent(events(b.out.String()), step, kind, msg); ok {
			found = e
			return nil
		}
		if b.exited() {
			return fmt.Errorf("it ended first:\n%s", b.res)
		}
		return errors.New("not yet")
	})
	return found
}

// holdHook is a deploy hook that holds the swap while the file named by $<envVar>
// exists (at most 60s), after creating "<file>.held" to say it holds. Without the
// variable, or without the file, it does nothing.
func holdHook(envVar string) string {
	return strings.ReplaceAll(`if [ -n "$V" ] && [ -e "$V" ]; then touch "$V.held"; i=0; `+
		`while [ -e "$V" ] && [ $i -lt 1200 ]; do sleep 0.05; i=$((i+1)); done; fi`, "V", envVar)
}

// holdHooks is the hooks: YAML (for appConfig) of an app whose hook (pre_deploy,
// post_shift, ...) holds each swap of app that runs it while app's hold file exists:
// see newHold. Hooks do not see swap's environment, so the hook learns its hold file
// from hooks.env.
func holdHooks(app, hook string) string {
	return fmt.Sprintf("    hooks:\n      %s: '%s'\n      env: {E2E_HOLD: %s}\n", hook, holdHook("E2E_HOLD"), holdPath(app))
}

// holdPath is app's hold file: app names are unique per test and per run (e2eApp).
func holdPath(app string) string { return filepath.Join(os.TempDir(), "swap-e2e-hold-"+app) }

// hold is one use of holdHooks: how to wait for it and release it.
type hold struct {
	t    testing.TB
	path string
}

// newHold creates app's hold file: the next swap of app that runs its hold hook holds
// there until release.
func (s *stack) newHold(app string) *hold {
	s.t.Helper()
	h := &hold{t: s.t, path: holdPath(app)}
	if err := os.WriteFile(h.path, nil, 0o600); err != nil {
		s.t.Fatal(err)
	}
	os.Remove(h.path + ".held")
	s.t.Cleanup(func() { os.Remove(h.path); os.Remove(h.path + ".held") })
	return h
}

// waitHeld waits until the hook holds the swap.
func (h *hold) waitHeld(b *bgSwap) {
	h.t.Helper()
	testenv.WaitFor(h.t, 2*time.Minute, "the hook holds the swap", func() error {
		if _, err := os.Stat(h.path + ".held"); err == nil {
			return nil
		}
		if b != nil && b.exited() {
			return fmt.Errorf("the swap ended first:\n%s", b.res)
		}
		return errors.New("not yet")
	})
}

// release lets the held swap go on.
func (h *hold) release() {
	if err := os.Remove(h.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		h.t.Fatal(err)
	}
}

// haproxyServers lists the servers of backend from `show servers state`, read through
// the admin socket by the test's own client.
func (s *stack) haproxyServers(backend string) []string {
	s.t.Helper()
	out, err := s.haproxy.Exec("show servers state " + backend)
	if err != nil {
		s.t.Fatalf("show servers state %s: %v", backend, err)
	}
	if strings.Contains(out, "Can't find") {
		s.t.Fatalf("show servers state %s: %s", backend, out)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || strings.HasPrefix(f[0], "#") || f[1] != backend {
			continue
		}
		names = append(names, f[3])
	}
	return names
}

// backups lists backend's backup servers (`show stat`, bck 1).
func (s *stack) backups(backend string) []string {
	s.t.Helper()
	out, err := s.haproxy.Exec("show stat")
	if err != nil {
		s.t.Fatalf("show stat: %v", err)
	}
	rows, err := lbconfig.ParseStat(out)
	if err != nil {
		s.t.Fatalf("show stat: %v", err)
	}
	var names []string
	for _, r := range rows {
		if r.Type == lbconfig.StatServer && r.Proxy == backend && r.Fields["bck"] == "1" {
			names = append(names, r.Name)
		}
	}
	return names
}

// route is what the routes map says for key, read through the admin socket.
func (s *stack) route(key string) string { return s.mapValue("routes.map", key) }

// mapValue is key's value in one of HAProxy's maps (routes.map, preview.map,
// canary.map), read through the admin socket; "" when absent.
func (s *stack) mapValue(file, key string) string {
	s.t.Helper()
	out, err := s.haproxy.Exec("show map " + filepath.Join(s.dir, "haproxy", file))
	if err != nil {
		s.t.Fatalf("show map %s: %v", file, err)
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[1] == key {
			return f[2]
		}
	}
	return ""
}

// backendSessions is the scur of backend's BACKEND row in `show stat`.
func (s *stack) backendSessions(backend string) int {
	s.t.Helper()
	out, err := s.haproxy.Exec("show stat")
	if err != nil {
		s.t.Fatalf("show stat: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(line, ",")
		if len(f) > 4 && f[0] == backend && f[1] == "BACKEND" {
			var n int
			fmt.Sscan(f[4], &n)
			return n
		}
	}
	s.t.Fatalf("show stat has no backend %s:\n%s", backend, out)
	return 0
}

// containers lists the names of this test's containers with the given labels (and the
// test's own label), in any state.
func (s *stack) containers(labels ...string) []string {
	s.t.Helper()
	var names []string
	for _, c := range s.containerList(labels...) {
		if len(c.Names) > 0 {
			names = append(names, strings.TrimPrefix(c.Names[0], "/"))
		}
	}
	return names
}

// containerIDs is containers by ID: a container started anew under the same name
// has another.
func (s *stack) containerIDs(labels ...string) []string {
	s.t.Helper()
	var ids []string
	for _, c := range s.containerList(labels...) {
		ids = append(ids, c.ID)
	}
	return ids
}

func (s *stack) containerList(labels ...string) []container.Summary {
	s.t.Helper()
	f := filters.NewArgs(filters.Arg("label", s.docker.Label))
	for _, l := range labels {
		f.Add("label", l)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := s.docker.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		s.t.Fatalf("docker list %v: %v", labels, err)
	}
	return cs
}

// consulInstances lists app's service instance IDs in Consul's catalog.
func (s *stack) consulInstances(app string) []string {
	s.t.Helper()
	svcs, _, err := s.consul.Client.Catalog().Service(app, "", nil)
	if err != nil {
		s.t.Fatalf("consul catalog service %s: %v", app, err)
	}
	var ids []string
	for _, sv := range svcs {
		ids = append(ids, sv.ServiceID)
	}
	return ids
}

// answer is one finished request.
type answer struct {
	code  int
	color string
	body  string
	err   error
	at    time.Time // when the response ended
}

// startRequest sends one GET for host through the frontend and returns once HAProxy has
// the whole request; the answer arrives on the channel.
func (s *stack) startRequest(host, path string) <-chan answer {
	s.t.Helper()
	ch := make(chan answer, 1)
	wrote := make(chan struct{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	trace := &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(wrote) }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(ctx, trace), "GET", "http://"+s.frontend+path, nil)
	req.Host = host
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	go func() {
		defer cancel()
		resp, err := client.Do(req)
		if err != nil {
			ch <- answer{err: err, at: time.Now()}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		ch <- answer{code: resp.StatusCode, color: resp.Header.Get("X-Color"), body: strings.TrimSpace(string(b)), err: err, at: time.Now()}
	}()
	select {
	case <-wrote:
	case <-time.After(10 * time.Second):
		s.t.Fatalf("request %s%s was not sent within 10s", host, path)
	}
	return ch
}

// getFrom sends one request to addr (a frontend) for host.
func getFrom(addr, host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

// appConfig renders one app of the scenarios: two replicas of demoapp with fast checks,
// routed by Host "<name>.test", plus extra YAML lines indented like the app's keys (four
// spaces); a top-level key of extra replaces the default's. Its image is a placeholder:
// the scenarios deploy with --image. Checks are fast but not touchy: two cores busy with
// several stacks must not fail three checks in a row of a live server. Name apps with
// e2eApp.
func appConfig(name, extra string) string {
	base := fmt.Sprintf(`    image: swap-e2e-unused:0
    replicas: 2
    port: 8080
    route: %s.test
    healthcheck:
      path: /healthz
      interval: 1s
      timeout: 1s
      rise: 2
      fall: 3
    min_healthy_time: 300ms
    deploy_timeout: 2m
    drain_timeout: 10s
    stop_timeout: 5s
`, name)
	override := map[string]bool{}
	for _, line := range strings.Split(extra, "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.HasPrefix(k, "    ") && !strings.HasPrefix(k, "     ") {
			override[strings.TrimSpace(k)] = true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n  %s:\n", name)
	skip := false
	for _, line := range strings.SplitAfter(base, "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "     ") { // a nested line follows its key
			if !skip {
				b.WriteString(line)
			}
			continue
		}
		k, _, _ := strings.Cut(line, ":")
		skip = override[strings.TrimSpace(k)]
		if !skip {
			b.WriteString(line)
		}
	}
	b.WriteString(extra)
	return b.String()
}

// oneReplica makes an appConfig app run one container per color, for scenarios that are
// not about several instances: half the Docker work, which is most of a swap's time
// when several stacks share one engine.
const oneReplica = `    replicas: 1
`

// e2eApp names a scenario's app: container names (<app>-<color>-<i>) are per Docker
// host, so the scenarios, which run side by side, and two runs of this package on one
// machine each need names of their own.
func e2eApp(name string) string { return fmt.Sprintf("%s-%d", name, os.Getpid()) }
