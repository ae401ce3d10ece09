package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	swapstack "github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// The end-to-end tests drive the real CLI — cmd/swap built by the tests (cliBinary), or this
// test binary re-executed as swap — against a real Consul dev agent, a real HAProxy and
// the real Docker engine, with load running through HAProxy.

func TestMain(m *testing.M) {
	if os.Getenv("SWAP_E2E_CLI") == "1" {
		os.Exit(execute(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	if cli.dir != "" {
		os.RemoveAll(cli.dir)
	}
	os.Exit(code)
}

// cli is the swap binary the end-to-end scenarios run, built once.
var cli struct {
	once sync.Once
	dir  string
	path string
}

// cliBinary is the swap binary the scenarios run: this package built without the race
// detector, into a temporary directory, once per test binary. The CLI's own code is
// race-tested in-process (switcher, serve, lbconfig, wire, the CLI's unit tests); run
// with -race, the dozens of swap processes of the scenarios took about half the CPU of
// a `make test` on two cores, and the suite more than five minutes. When the build
// fails (no go command), the test binary itself is re-executed as swap (TestMain).
func cliBinary(t testing.TB) string {
	cli.once.Do(func() {
		cli.path = os.Args[0]
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		dir, err := os.MkdirTemp("", "swap-cli-")
		if err != nil {
			return
		}
		cli.dir = dir
		out := filepath.Join(dir, "swap")
		if b, err := exec.Command(goBin, "build", "-o", out, ".").CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: go build of the swap CLI failed, re-executing the test binary instead: %v\n%s\n", err, b)
			return
		}
		cli.path = out
	})
	return cli.path
}

// stack is one app world: Consul, Docker images, a rendered HAProxy, a swap.yaml.
type stack struct {
	t        testing.TB
	dir      string
	cfgPath  string
	consul   *testenv.ConsulAgent
	docker   *testenv.DockerEnv
	haproxy  *testenv.HAProxyInstance
	haproxy2 *testenv.HAProxyInstance // with stackOptions.secondLB
	frontend string                   // 127.0.0.1:port
	preview  string
	v1, v2   string // demoapp images
	// installation is the stack's installation (its consul.kv_prefix).
	installation string
	// haproxyContainer runs HAProxy with stackOptions.sidecar.
	haproxyContainer string
}

// appYAML is the default app, e2eApp("web"): two replicas of demoapp, checks every
// second. The checks are patient on purpose: with eight scenarios side by side on two
// cores, HAProxy's checks with a 250 ms timeout timed out (L7TOUT) whenever the machine
// was busier still, took live servers DOWN and failed requests with 503 — the test
// machine's starvation, not a swap's doing. HAProxy now takes a server out after three
// checks in a row get no answer within a second each.
const appYAML = `
  %s:
    image: %s
    replicas: 2
    port: 8080
    route: web.test
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
`

// newStack starts the stack with apps (YAML under `apps:`; "" for appYAML with v1).
func newStack(t *testing.T, apps string) *stack {
	t.Helper()
	return newStackWith(t, apps, stackOptions{})
}

// stackOptions vary a stack.
type stackOptions struct {
	// consul is another stack's agent to share (nil: an agent of its own).
	consul *testenv.ConsulAgent
	// kvPrefix is consul.kv_prefix, the installation's identity ("": swap-test-<run>,
	// an installation of this stack's own).
	kvPrefix string
	// docker is the content of the docker: mapping, in YAML flow style
	// ("host_ports: ephemeral").
	docker string
	// replicas of the default app (0: appYAML's 2).
	replicas int
	// secondLB adds a second HAProxy, lb2, with files of its own in haproxy2/; both
	// bind the same frontend (HAProxy's SO_REUSEPORT: the kernel spreads connections).
	secondLB bool
	// mesh sets consul.mesh: true.
	mesh bool
	// sidecar readies the stack for swap in the sidecar image, user sidecarUID: HAProxy
	// runs in a container of its own (haproxyContainer, on the host's network) that
	// checks the rendered files (haproxy.check_container), its sockets are mode 660 with
	// the sidecar's group (haproxy.socket_gid), its directory and swap.yaml are the
	// sidecar's to write and read.
	sidecar bool
}

// sidecarUID is the user (and group) of the sidecar image (Dockerfile).
const sidecarUID = 65532

// newStackWith is newStack with opts.
func newStackWith(t testing.TB, apps string, opts stackOptions) *stack {
	t.Helper()
	// A short directory: a unix socket path must stay under ~100 bytes.
	dir, err := os.MkdirTemp("", "swap-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s := &stack{t: t, dir: dir}
	s.consul = opts.consul
	if s.consul == nil {
		s.consul = testenv.Consul(t)
	}
	s.docker = testenv.Docker(t)
	if opts.kvPrefix == "" {
		opts.kvPrefix = "swap-test-" + s.docker.RunID
	}
	s.installation = deployments.Installation(opts.kvPrefix)
	s.v1 = s.docker.DemoImage(t, "v1")
	s.v2 = s.docker.DemoImage(t, "v2")
	if apps == "" {
		apps = fmt.Sprintf(appYAML, e2eApp("web"), s.v1)
		if opts.replicas > 0 {
			apps = strings.Replace(apps, "replicas: 2", fmt.Sprintf("replicas: %d", opts.replicas), 1)
		}
	}
	hdir := filepath.Join(s.dir, "haproxy")
	if err := os.MkdirAll(hdir, 0o700); err != nil {
		t.Fatal(err)
	}
	s.frontend = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	s.preview = fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	hdir2 := filepath.Join(s.dir, "haproxy2")
	lb2 := ""
	if opts.secondLB {
		if err := os.MkdirAll(hdir2, 0o700); err != nil {
			t.Fatal(err)
		}
		lb2 = fmt.Sprintf("    - name: lb2\n      socket: %s/admin.sock\n      master_socket: %s/master.sock\n      dir: %s\n", hdir2, hdir2, hdir2)
	}
	lbExtra := ""
	if opts.sidecar {
		s.haproxyContainer = "swap-test-haproxy-" + s.docker.RunID
		lbExtra = fmt.Sprintf("  check_container: %s\n  socket_gid: %d\n", s.haproxyContainer, sidecarUID)
		if err := os.Chown(hdir, sidecarUID, sidecarUID); err != nil {
			t.Fatalf("give HAProxy's directory to the sidecar's user %d (the test runs as root, like the other fixtures): %v", sidecarUID, err)
		}
	}
	cfg := fmt.Sprintf(`docker: {%s}
consul:
  address: %s
  kv_prefix: %s
  mesh: %t
haproxy:
  dir: %s
%s  instances:
    - name: lb1
      socket: %s/admin.sock
      master_socket: %s/master.sock
%s  frontend: {name: www, bind: "%s"}
  preview: {name: www_preview, bind: "%s"}
  routing: host
apps:
%s`, opts.docker, s.consul.Addr, opts.kvPrefix, opts.mesh, hdir, lbExtra, hdir, hdir, lb2, s.frontend, s.preview, apps)
	s.cfgPath = filepath.Join(s.dir, "swap.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s.render(hdir)
	if opts.sidecar {
		if err := os.Chmod(s.cfgPath, 0o644); err != nil { // no secret in it
			t.Fatal(err)
		}
		s.haproxy = s.docker.RunHAProxyContainer(t, s.docker.HAProxyImage(t), s.haproxyContainer,
			filepath.Join(hdir, "haproxy.cfg"), filepath.Join(hdir, "admin.sock"), fmt.Sprintf(",mode,660,gid,%d", sidecarUID))
	} else {
		s.haproxy = testenv.RunHAProxy(t, filepath.Join(hdir, "haproxy.cfg"), filepath.Join(hdir, "admin.sock"))
	}
	if opts.secondLB {
		s.render(hdir2)
		s.haproxy2 = testenv.RunHAProxy(t, filepath.Join(hdir2, "haproxy.cfg"), filepath.Join(hdir2, "admin.sock"))
	}
	return s
}

// render writes haproxy.cfg and the maps for the config into dir, with no servers yet.
func (s *stack) render(dir string) { renderConfig(s.t, s.cfgPath, dir) }

// renderConfig writes haproxy.cfg and the maps for the config at cfgPath into dir, with
// no servers yet.
func renderConfig(t testing.TB, cfgPath, dir string) {
	t.Helper()
	cfg, err := deployments.Load(cfgPath, overrides(newViper(newRootCmd(io.Discard, io.Discard))))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	layout, err := switcher.LBLayout(cfg, switcher.LBCurrent{})
	if err != nil {
		t.Fatal(err)
	}
	layout.Dir = dir
	files, err := lbconfig.Render(layout)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lbconfig.WriteFiles(context.Background(), dir, files, lbconfig.WriteOptions{}); err != nil {
		t.Fatalf("write haproxy files: %v", err)
	}
}

// run is one swap CLI run.
type cliRun struct {
	code           int
	stdout, stderr string
}

func (r cliRun) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
}

// swap runs the CLI in its own process; env adds variables (SWAP_FAULT=...).
func (s *stack) swap(env []string, args ...string) cliRun {
	s.t.Helper()
	cmd := exec.Command(cliBinary(s.t), args...)
	cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+s.cfgPath,
		"SWAP_CONTAINER_LABELS="+s.docker.Label, "SWAP_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ee.ProcessState.Sys() != nil && strings.Contains(ee.String(), "killed") {
			r.code = -9
		}
	case err != nil:
		s.t.Fatalf("run swap %v: %v", args, err)
	}
	return r
}

// mustSwap runs the CLI and fails the test unless it exits 0.
func (s *stack) mustSwap(args ...string) cliRun {
	s.t.Helper()
	r := s.swap(nil, args...)
	if r.code != 0 {
		s.t.Fatalf("swap %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// get sends one request for host through the frontend and returns status and body.
func (s *stack) get(host, path string) (int, string, error) { return getOn(s.frontend, host, path) }

// getOn sends one request for host through the HAProxy frontend at frontend.
func getOn(frontend, host, path string) (int, string, error) {
	req, _ := http.NewRequest("GET", "http://"+frontend+path, nil)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// load runs requests through HAProxy until stopped (internal/stack's Load): half the
// workers on keep-alive connections, half with Connection: close. It is bounded: at most
// maxLoad long. A request is a failure when it got no 200: a transport error, or another
// status. Like net/http, a request whose idle keep-alive connection HAProxy had closed
// is sent again once on a new connection, and counts by that second answer.
type load struct {
	s     *stack
	gen   *swapstack.Load
	start time.Time
	// firstFail and lastFail time the failures; atFirst is HAProxy's view of the
	// servers at the first one (so a failure in CI says which server was down and why).
	firstFail, lastFail time.Time
	atFirst             string
	total               atomic.Int64
	mu                  sync.Mutex
	fails               []string
	byColor             map[string]int
	bodies              map[string]int
}

const maxLoad = 3 * time.Minute

// loadPause is the pause between a load worker's requests. Eight scenarios run side by
// side on two cores; unpaced (or at 2-10 ms), their load (HAProxy, docker-proxy,
// demoapp) took most of the CPU, Docker starved (one container start took 10 s in CI)
// and the package took 2-2.5 minutes. At 25 ms a scenario still sends thousands of
// requests, dozens a second across every cutover, and the package takes under 2.
const loadPause = 25 * time.Millisecond

func (s *stack) startLoad(host, path string, workers int) *load {
	return s.startLoadOn(nil, s.frontend, host, path, workers)
}

// startLoadOn is startLoad through the HAProxy frontend at frontend (host:port): on
// loopback, or, with lb, at the address of that LB host's namespace (lb.Addr), which
// this test made.
func (s *stack) startLoadOn(lb *testenv.LBHost, frontend, host, path string, workers int) *load {
	s.t.Helper()
	l := &load{s: s, byColor: map[string]int{}, bodies: map[string]int{}}
	keepAlive, closing := swapstack.Split(workers)
	l.gen = &swapstack.Load{Addr: frontend, Host: host, Path: path, KeepAlive: keepAlive, Close: closing,
		Pause: loadPause, MaxTime: maxLoad, OnResult: l.heard}
	if lb != nil {
		l.gen.Namespaces = []string{lb.Addr}
	}
	l.start = time.Now()
	if err := l.gen.Start(); err != nil {
		s.t.Fatal(err)
	}
	return l
}

// heard counts one result of the load.
func (l *load) heard(r swapstack.Result) {
	l.total.Add(1)
	switch {
	case r.Err != "" && r.Status == 0:
		l.fail(r.Err)
	case !r.OK():
		why := fmt.Sprintf("%d %q", r.Status, r.Body)
		if r.Err != "" {
			why += " " + r.Err
		}
		l.fail(why)
	default:
		l.mu.Lock()
		l.byColor[r.Color]++
		l.bodies[r.Body]++
		l.mu.Unlock()
	}
}

func (l *load) fail(why string) {
	now := time.Now()
	l.mu.Lock()
	first := len(l.fails) == 0
	l.fails = append(l.fails, why)
	if first {
		l.firstFail = now
	}
	l.lastFail = now
	l.mu.Unlock()
	if first {
		snap := l.s.serverView()
		l.mu.Lock()
		l.atFirst = snap
		l.mu.Unlock()
	}
}

// serverView is every server's state as HAProxy sees it: backend, server, status,
// check status and duration, current sessions (from `show stat`).
func (s *stack) serverView() string {
	out, err := s.haproxy.Exec("show stat")
	if err != nil {
		return "show stat: " + err.Error()
	}
	rows, err := lbconfig.ParseStat(out)
	if err != nil {
		return "show stat: " + err.Error()
	}
	var b strings.Builder
	for _, r := range rows {
		if r.Type == lbconfig.StatServer {
			fmt.Fprintf(&b, "\n    %s/%s %s check %s %sms, %d sessions",
				r.Proxy, r.Name, r.Status, r.CheckStatus, r.Fields["check_duration"], r.Scur)
		}
	}
	return b.String()
}

// stop ends the load: each worker finishes the request it is in.
func (l *load) stop() { l.gen.Stop() }

// finish stops the load and returns the failures.
func (l *load) finish() []string {
	l.stop()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.fails
}

// requireNoFailures stops the load and fails the test on any failed request.
func (l *load) requireNoFailures(t *testing.T) {
	t.Helper()
	fails := l.finish()
	t.Logf("load: %d requests, by color %v, by answer %v", l.total.Load(), l.byColor, l.bodies)
	if len(fails) > 0 {
		n := min(len(fails), 10)
		t.Fatalf("%d of %d requests failed, from %s to %s after the load started; first %d: %v\nHAProxy's servers at the first failure:%s",
			len(fails), l.total.Load(), l.firstFail.Sub(l.start).Round(time.Millisecond), l.lastFail.Sub(l.start).Round(time.Millisecond),
			n, fails[:n], l.atFirst)
	}
	if l.total.Load() == 0 {
		t.Fatal("the load sent no request")
	}
}

// waitAnswer polls the frontend until host answers with want in its body.
func (s *stack) waitAnswer(host, want string) {
	s.t.Helper()
	testenv.WaitFor(s.t, 10*time.Second, "frontend answers "+want, func() error {
		code, body, err := s.get(host, "/")
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, want) {
			return fmt.Errorf("GET / = %d %q", code, body)
		}
		return nil
	})
}
