// Package stack starts and stops the world the demo and the swap benchmark run swap in:
// a Consul dev agent and an HAProxy (master-worker, with a master socket) on free
// loopback ports, a swap.yaml, HAProxy's files rendered by `swap lb render`, and
// demoapp images made FROM scratch. Everything it starts is recorded in its working
// directory (pid files) and everything Docker holds carries the label swap.demo=<id>,
// so Down — in this process or in a later one, after a crash — removes it all.
package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/stack/procs"
)

// LabelKey marks every container and image a demo or benchmark makes; its value is the
// run's ID.
const LabelKey = "swap.demo"

// Files in the working directory.
const (
	idFile      = "demo.id"
	consulPid   = "consul.pid"
	haproxyPid  = "haproxy.pid"
	servePid    = "serve.pid"
	serveLog    = "serve.log"
	serveSocket = "swap.sock"
	configFile  = "swap.yaml"
	haproxyDir  = "haproxy"
	consulLog   = "consul.log"
	haproxyLog  = "haproxy.log"
	stopTimeout = 10 * time.Second
)

// Options say what to start.
type Options struct {
	// Dir is the working directory; it must not exist yet (see Down). Keep it short:
	// the HAProxy sockets live in it and a unix socket path has ~100 bytes at most.
	Dir string
	// Swap, Consul and HAProxy are the binaries (HAProxy: looked up in PATH).
	Swap, Consul, HAProxy string
	// Apps is the `apps:` section of swap.yaml, indented by two spaces.
	Apps string
	// Preview binds a preview frontend too.
	Preview bool
	// CheckBinary, when set, is swap.yaml's haproxy.binary: what checks a rendered
	// config (`<binary> -c -f <file>`). The benchmark sets /bin/true to measure swap
	// without those checks; nothing else should.
	CheckBinary string
	// HAProxies is how many HAProxy instances to start (0: one). Each has its own
	// directory, sockets and pid file (haproxy/, haproxy-2/, ...), and all bind the
	// frontend's address (HAProxy binds with SO_REUSEPORT: the kernel spreads the
	// connections over them).
	HAProxies int
	// HostPorts is swap.yaml's docker.host_ports ("": swap's default, 32768-60999).
	// The benchmark sets a range below Linux's ephemeral ports (ip_local_port_range,
	// 32768-60999 too): its load generator's outgoing connections take ports from there,
	// and one may take the port swap picked for a container before Docker binds it.
	HostPorts string
	// Log hears one line per thing done (nil: io.Discard).
	Log io.Writer
	// DownTimeout bounds With's teardown (0: 2 minutes); removing 64 replicas per color
	// takes longer.
	DownTimeout time.Duration
}

// Stack is a running world.
type Stack struct {
	ID       string // the run's ID: the value of LabelKey
	Label    string // LabelKey=ID, for Docker filters
	Dir      string // absolute working directory
	Config   string // swap.yaml
	Consul   string // Consul's HTTP address, 127.0.0.1:port
	Frontend string // HAProxy's frontend, 127.0.0.1:port
	Preview  string // the preview frontend, when Options.Preview
	Docker   *docker.Driver

	opts  Options
	procs []*procs.Proc // stopped in reverse order
}

// Up starts the world in opts.Dir. On error, what was started is left for Down (the
// caller's deferred Down, or Down(dir) after a crash).
func Up(ctx context.Context, opts Options) (*Stack, error) {
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.HAProxy == "" {
		opts.HAProxy = "haproxy"
	}
	dir, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, err
	}
	for _, b := range []*string{&opts.Swap, &opts.Consul} {
		if *b, err = filepath.Abs(*b); err != nil {
			return nil, err
		}
		if _, err := os.Stat(*b); err != nil {
			return nil, fmt.Errorf("%s is missing: run `make deps build` first", *b)
		}
	}
	if _, err := exec.LookPath(opts.HAProxy); err != nil {
		return nil, fmt.Errorf("haproxy is not installed (%v): run `make deps`", err)
	}
	if _, err := os.Stat(dir); err == nil {
		return nil, fmt.Errorf("%s exists: a demo may still run there, or one was killed; run `make demo-down` first", dir)
	}
	opts.HAProxies = max(opts.HAProxies, 1)
	for i := range opts.HAProxies {
		if err := os.MkdirAll(filepath.Join(dir, instanceDir(i)), 0o700); err != nil {
			return nil, err
		}
	}
	s := &Stack{ID: newID(), Dir: dir, Config: filepath.Join(dir, configFile), opts: opts}
	s.Label = LabelKey + "=" + s.ID
	if err := os.WriteFile(filepath.Join(dir, idFile), []byte(s.ID+"\n"), 0o600); err != nil {
		return nil, err
	}
	if s.Docker, err = docker.New(deployments.DockerConfig{}, nil); err != nil {
		return s, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Docker.Ping(pctx); err != nil {
		return s, err
	}
	if err := s.startConsul(ctx); err != nil {
		return s, err
	}
	if err := s.writeConfig(); err != nil {
		return s, err
	}
	if err := s.render(ctx); err != nil {
		return s, err
	}
	for i := range opts.HAProxies {
		if err := s.startHAProxy(ctx, i); err != nil {
			return s, err
		}
	}
	return s, nil
}

// instanceDir is the directory of the i-th HAProxy (from 0), relative to the stack's:
// haproxy, haproxy-2, haproxy-3...
func instanceDir(i int) string {
	if i == 0 {
		return haproxyDir
	}
	return fmt.Sprintf("%s-%d", haproxyDir, i+1)
}

// instanceName names the i-th HAProxy in swap.yaml: demo, demo-2, demo-3...
func instanceName(i int) string {
	if i == 0 {
		return "demo"
	}
	return fmt.Sprintf("demo-%d", i+1)
}

// instancesYAML is swap.yaml's haproxy.instances for n instances, each in its own
// directory (swap refuses two instances on one).
func instancesYAML(n int) string {
	var b strings.Builder
	for i := range n {
		d := instanceDir(i)
		fmt.Fprintf(&b, "    - name: %s\n      socket: %s/admin.sock\n      master_socket: %s/master.sock\n", instanceName(i), d, d)
		if i > 0 {
			fmt.Fprintf(&b, "      dir: %s\n", d)
		}
	}
	return b.String()
}

func since(t0 time.Time) string {
	return time.Since(t0).Round(time.Millisecond).String()
}

func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Stack) logf(format string, args ...any) {
	fmt.Fprintf(s.opts.Log, format+"\n", args...)
}

// start runs bin with args (and env beyond this process's own) in the working
// directory, its output in logName, and records "<pid> <marker>" in pidName: Down kills
// the pid only while its command line still holds marker.
func (s *Stack) start(bin, pidName, logName, marker string, env []string, args ...string) (*procs.Proc, error) {
	p, err := procs.Start(procs.Options{Bin: bin, Args: args, Env: env, Dir: s.Dir,
		LogFile: filepath.Join(s.Dir, logName), PidFile: filepath.Join(s.Dir, pidName), Marker: marker})
	if err != nil {
		return nil, err
	}
	s.procs = append(s.procs, p)
	return p, nil
}

func (s *Stack) startConsul(ctx context.Context) error {
	t0 := time.Now()
	c, err := procs.StartConsul(ctx, procs.ConsulOptions{Bin: s.opts.Consul, Node: "swap-demo-" + s.ID,
		LogFile: filepath.Join(s.Dir, consulLog), PidFile: filepath.Join(s.Dir, consulPid)})
	if err != nil {
		return err
	}
	s.procs = append(s.procs, c.Proc())
	s.Consul = c.Addr
	s.logf("consul dev agent   %s, pid %d (%s)", s.Consul, c.Pid(), since(t0))
	return nil
}

func (s *Stack) writeConfig() error {
	fe, err := procs.FreePort()
	if err != nil {
		return err
	}
	s.Frontend = fmt.Sprintf("127.0.0.1:%d", fe)
	preview := ""
	if s.opts.Preview {
		pv, err := procs.FreePort()
		if err != nil {
			return err
		}
		s.Preview = fmt.Sprintf("127.0.0.1:%d", pv)
		preview = fmt.Sprintf("  preview: {name: demo_preview, bind: %q}\n", s.Preview)
	}
	if s.opts.CheckBinary != "" {
		preview += fmt.Sprintf("  binary: %q\n", s.opts.CheckBinary)
	}
	docker := "{}"
	if s.opts.HostPorts != "" {
		docker = fmt.Sprintf("{host_ports: %q}", s.opts.HostPorts)
	}
	cfg := fmt.Sprintf(`# swap.yaml written by the demo (examples/demo): everything on 127.0.0.1.
docker: %s
consul:
  address: %s
haproxy:
  dir: %s
  instances:
%s  frontend: {name: demo, bind: %q}
%s  routing: host
apps:
%s`, docker, s.Consul, haproxyDir, instancesYAML(s.opts.HAProxies), s.Frontend, preview, s.opts.Apps)
	return os.WriteFile(s.Config, []byte(cfg), 0o600)
}

// render writes haproxy.cfg and the maps with `swap lb render`.
func (s *Stack) render(ctx context.Context) error {
	t0 := time.Now()
	var out bytes.Buffer
	cmd := s.Command(ctx, "lb", "render")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("swap lb render: %v\n%s", err, out.String())
	}
	instances := "1 instance"
	if s.opts.HAProxies > 1 {
		instances = fmt.Sprintf("%d instances", s.opts.HAProxies)
	}
	s.logf("haproxy files      swap lb render wrote %s (%s, %s)", filepath.Join(s.Dir, haproxyDir), instances, since(t0))
	return nil
}

// startHAProxy starts the i-th HAProxy (from 0) on the files in its directory.
func (s *Stack) startHAProxy(ctx context.Context, i int) error {
	t0 := time.Now()
	hdir := filepath.Join(s.Dir, instanceDir(i))
	pidName, logName := haproxyPid, haproxyLog
	if i > 0 {
		pidName = fmt.Sprintf("haproxy-%d.pid", i+1)
		logName = fmt.Sprintf("haproxy-%d.log", i+1)
	}
	h, err := procs.StartHAProxy(ctx, procs.HAProxyOptions{Bin: s.opts.HAProxy,
		Config: filepath.Join(hdir, "haproxy.cfg"), AdminSock: filepath.Join(hdir, "admin.sock"),
		LogFile: filepath.Join(s.Dir, logName), PidFile: filepath.Join(s.Dir, pidName)})
	if err != nil {
		return err
	}
	s.procs = append(s.procs, h.Proc())
	s.logf("haproxy %-10s frontend %s, pid %d (%s)", instanceName(i), s.Frontend, h.Proc().Pid(), since(t0))
	return nil
}

// DemoImage makes the FROM-scratch image ref from the static demoapp binary, with
// VERSION=version and the run's label.
func (s *Stack) DemoImage(ctx context.Context, ref, version string, demoapp []byte) error {
	changes := []string{"ENV VERSION=" + version, `ENTRYPOINT ["/demoapp"]`, "EXPOSE 8080/tcp"}
	_, err := s.Docker.ImportImage(ctx, ref, map[string][]byte{"demoapp": demoapp}, changes, map[string]string{LabelKey: s.ID})
	return err
}

// Serve starts `swap serve` on a unix socket in the working directory, as a deploy
// pipeline's sidecar would run it, and returns the address for `swap --server` once
// its API answers. Down stops it (SIGTERM: it lets a running swap finish).
func (s *Stack) Serve(ctx context.Context) (string, error) {
	t0 := time.Now()
	sock := filepath.Join(s.Dir, serveSocket)
	// The marker is the socket: it is on the command line (the config is only in the
	// environment, which a later Down cannot read).
	p, err := s.start(s.opts.Swap, servePid, serveLog, sock, s.env("info"), "serve", "--listen", "unix://"+sock)
	if err != nil {
		return "", fmt.Errorf("start swap serve: %w", err)
	}
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}}}
	defer client.CloseIdleConnections()
	err = p.Poll(ctx, 20*time.Second, func() error {
		resp, err := client.Get("http://swap/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET /healthz: %s", resp.Status)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("swap serve on %s: %w (see %s)", sock, err, filepath.Join(s.Dir, serveLog))
	}
	s.logf("swap serve         unix://%s, pid %d (%s)", sock, p.Pid(), since(t0))
	return "unix://" + sock, nil
}

// env is what every swap this stack runs gets: its config, its containers' label and
// the log level.
func (s *Stack) env(logLevel string) []string {
	return []string{"SWAP_CONFIG=" + s.Config, "SWAP_CONTAINER_LABELS=" + s.Label, "SWAP_LOG_LEVEL=" + logLevel}
}

// Command is `swap args...` on this stack's config; every container it starts carries
// the run's label. ctx's end interrupts swap (SIGINT: it rolls back what it can) and
// kills it a minute later.
func (s *Stack) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, s.opts.Swap, args...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), s.env("warn")...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	// Should this process die (kill -9), swap hears SIGTERM and rolls back what it can
	// instead of going on creating containers behind `make demo-down`'s back.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	cmd.WaitDelay = time.Minute
	return cmd
}
