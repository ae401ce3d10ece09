package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// HAProxyGlobal is the global and defaults sections of a test HAProxy: admin socket,
// server-state file, short timeouts. HAProxy prepends it to a config without a global
// section.
const HAProxyGlobal = `global
    stats socket {{.AdminSock}} mode 600 level admin expose-fd listeners
    stats timeout 1m
    server-state-file {{.StateFile}}
    hard-stop-after 30s

defaults
    mode http
    load-server-state-from-file global
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s

`

// HAProxyInstance is one running `haproxy -W` (master-worker) started by HAProxy.
type HAProxyInstance struct {
	Dir        string // private directory: config, sockets, state
	CfgPath    string // the config file HAProxy runs; tests may rewrite it and Reload
	AdminSock  string // the stats socket, level admin
	MasterSock string // the master CLI socket
	StateFile  string // server-state-file

	t     testing.TB
	wrap  []string // command prefix HAProxy runs under (RunHAProxyIn)
	ports map[string]int
	mu    sync.Mutex
	cmd   *exec.Cmd
	exit  chan struct{}
	log   *syncBuffer
}

// syncBuffer is a bytes.Buffer that HAProxy's output goroutine and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// templateData is what a config template sees.
type templateData struct {
	Dir, AdminSock, StateFile string
	h                         *HAProxyInstance
}

// Port returns the port named name, allocating a free one on first use.
func (d templateData) Port(name string) int { return d.h.Port(name) }

// HAProxy starts HAProxy on a config rendered from cfg, a text/template that may use
// {{.Dir}}, {{.AdminSock}}, {{.StateFile}} and {{.Port "name"}} (a free loopback port per
// name). Without a `global` section, HAProxyGlobal is prepended. HAProxy waits until the
// admin socket answers and stops HAProxy in t.Cleanup.
func HAProxy(t testing.TB, cfg string) *HAProxyInstance {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		Require(t, "haproxy", err)
	}
	dir := t.TempDir()
	h := &HAProxyInstance{
		Dir:        dir,
		CfgPath:    filepath.Join(dir, "haproxy.cfg"),
		AdminSock:  filepath.Join(dir, "admin.sock"),
		MasterSock: filepath.Join(dir, "master.sock"),
		StateFile:  filepath.Join(dir, "server-state"),
		t:          t,
		ports:      map[string]int{},
	}
	if !strings.Contains(cfg, "global") {
		cfg = HAProxyGlobal + cfg
	}
	tmpl, err := template.New("haproxy.cfg").Parse(cfg)
	if err != nil {
		t.Fatalf("testenv: haproxy config template: %v", err)
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, templateData{Dir: dir, AdminSock: h.AdminSock, StateFile: h.StateFile, h: h}); err != nil {
		t.Fatalf("testenv: haproxy config template: %v", err)
	}
	if err := os.WriteFile(h.CfgPath, out.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command(bin, "-c", "-q", "-f", h.CfgPath).CombinedOutput(); err != nil {
		t.Fatalf("testenv: haproxy -c rejects the config: %v\n%s\n--- config ---\n%s", err, b, out.String())
	}
	h.start(t, bin)
	t.Cleanup(h.Stop)
	return h
}

// RunHAProxy starts HAProxy on an existing config file (rendered by swap, say) whose
// stats socket is adminSock; the master socket goes next to the config. It waits until
// both answer and stops HAProxy in t.Cleanup.
func RunHAProxy(t testing.TB, cfgPath, adminSock string) *HAProxyInstance {
	t.Helper()
	return RunHAProxyIn(t, nil, cfgPath, adminSock)
}

// RunHAProxyIn is RunHAProxy with HAProxy run under the command prefix wrap (nil:
// none), like LBHost.Wrap: HAProxy in another network namespace. Its unix sockets are
// files, reached from any namespace.
func RunHAProxyIn(t testing.TB, wrap []string, cfgPath, adminSock string) *HAProxyInstance {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		Require(t, "haproxy", err)
	}
	dir := filepath.Dir(cfgPath)
	h := &HAProxyInstance{Dir: dir, CfgPath: cfgPath, AdminSock: adminSock,
		MasterSock: filepath.Join(dir, "master.sock"), t: t, wrap: wrap, ports: map[string]int{}}
	if b, err := exec.Command(bin, "-c", "-q", "-f", cfgPath).CombinedOutput(); err != nil {
		t.Fatalf("testenv: haproxy -c rejects %s: %v\n%s", cfgPath, err, b)
	}
	h.start(t, bin)
	t.Cleanup(h.Stop)
	return h
}

// Port returns the loopback port named name, allocating a free one on first use.
func (h *HAProxyInstance) Port(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p, ok := h.ports[name]; ok {
		return p
	}
	p := FreePort(h.t)
	h.ports[name] = p
	return p
}

// Addr is "127.0.0.1:<Port(name)>".
func (h *HAProxyInstance) Addr(name string) string {
	return "127.0.0.1:" + strconv.Itoa(h.Port(name))
}

func (h *HAProxyInstance) start(t testing.TB, bin string) {
	t.Helper()
	os.Remove(h.AdminSock)
	os.Remove(h.MasterSock)
	h.log = &syncBuffer{}
	argv := append(append([]string(nil), h.wrap...), bin, "-W", "-S", h.MasterSock+",mode,600", "-f", h.CfgPath)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = h.log
	cmd.Stderr = h.log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start haproxy: %v", err)
	}
	exit := make(chan struct{})
	go func() { cmd.Wait(); close(exit) }()
	h.cmd, h.exit = cmd, exit
	err := h.waitUp(10*time.Second, func() error {
		select {
		case <-exit:
			return fmt.Errorf("haproxy exited: %s", h.log.String())
		default:
			return nil
		}
	})
	if err != nil {
		h.Stop()
		t.Fatalf("testenv: haproxy admin socket never answered: %v", err)
	}
}

// waitUp waits up to timeout until the admin socket and the master CLI answer and the
// master lists a worker; alive says whether HAProxy still runs.
func (h *HAProxyInstance) waitUp(timeout time.Duration, alive func() error) error {
	return Poll(timeout, func() error {
		if err := alive(); err != nil {
			return err
		}
		out, err := h.Exec("show info")
		if err != nil {
			return err
		}
		if !strings.Contains(out, "Pid:") {
			return fmt.Errorf("show info answered %q", out)
		}
		// The master listens on its own socket a moment after the worker does.
		procs, err := h.Master("show proc")
		if err != nil {
			return fmt.Errorf("master socket: %w", err)
		}
		if firstWorker(procs) == 0 {
			return fmt.Errorf("master lists no worker yet:\n%s", procs)
		}
		return nil
	})
}

// Exec sends one command line to the admin socket and returns the whole answer. It is the
// tests' own minimal client, independent of lbconfig.
func (h *HAProxyInstance) Exec(line string) (string, error) {
	return socketExec(h.AdminSock, line)
}

// Master sends one command line to the master CLI (";quit" is appended, as 2.6 needs).
func (h *HAProxyInstance) Master(line string) (string, error) {
	return socketExec(h.MasterSock, line+";quit")
}

func socketExec(path, line string) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// WorkerPid is the pid of the current worker, from the master's `show proc`.
func (h *HAProxyInstance) WorkerPid(t testing.TB) int {
	t.Helper()
	out, err := h.Master("show proc")
	if err != nil {
		t.Fatalf("testenv: master show proc: %v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "worker" {
			pid, err := strconv.Atoi(f[0])
			if err == nil {
				return pid // the first worker listed is the current one
			}
		}
	}
	t.Fatalf("testenv: no worker in show proc:\n%s", out)
	return 0
}

// Reload reloads HAProxy through the master CLI (2.6 answers nothing: the new worker pid
// in `show proc` confirms it) and waits until the new worker's admin socket answers.
func (h *HAProxyInstance) Reload(t testing.TB) {
	t.Helper()
	before := h.WorkerPid(t)
	if _, err := h.Master("reload"); err != nil {
		t.Fatalf("testenv: master reload: %v", err)
	}
	WaitFor(t, 10*time.Second, "haproxy reload", func() error {
		out, err := h.Master("show proc")
		if err != nil {
			return err
		}
		if pid := firstWorker(out); pid == 0 || pid == before {
			return fmt.Errorf("worker still %d:\n%s", before, out)
		}
		info, err := h.Exec("show info")
		if err != nil {
			return err
		}
		if !strings.Contains(info, "Pid:") {
			return fmt.Errorf("show info answered %q", info)
		}
		return nil
	})
}

func firstWorker(showProc string) int {
	for _, line := range strings.Split(showProc, "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[1] == "worker" {
			if pid, err := strconv.Atoi(f[0]); err == nil {
				return pid
			}
		}
	}
	return 0
}

// Restart stops HAProxy and starts it again on the same config file and ports.
func (h *HAProxyInstance) Restart(t testing.TB) {
	t.Helper()
	h.Stop()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal(err)
	}
	h.start(t, bin)
}

// Stop stops HAProxy: SIGTERM to the master, SIGKILL to its process group
// after 10s. It is safe to call twice.
func (h *HAProxyInstance) Stop() {
	if h.cmd == nil || h.cmd.Process == nil {
		return
	}
	select {
	case <-h.exit:
		return
	default:
	}
	h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.exit:
	case <-time.After(10 * time.Second):
		syscall.Kill(-h.cmd.Process.Pid, syscall.SIGKILL)
		<-h.exit
	}
}

// Log is what HAProxy printed so far.
func (h *HAProxyInstance) Log() string { return h.log.String() }
