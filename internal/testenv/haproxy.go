package testenv

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"text/template"

	"github.com/swap-dev/swap/internal/stack/procs"
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

// HAProxyInstance is one running `haproxy -W` (master-worker) started by HAProxy: a
// procs.HAProxy, stopped in t.Cleanup.
type HAProxyInstance struct {
	Dir        string // private directory: config, sockets, state
	CfgPath    string // the config file HAProxy runs; tests may rewrite it and Reload
	AdminSock  string // the stats socket, level admin
	MasterSock string // the master CLI socket
	StateFile  string // server-state-file

	t     testing.TB
	h     *procs.HAProxy
	ports map[string]int
	mu    sync.Mutex
	log   *procs.Buffer
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
	bin := haproxyBinary(t)
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
	h.start(t, bin, nil)
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
	dir := filepath.Dir(cfgPath)
	h := &HAProxyInstance{Dir: dir, CfgPath: cfgPath, AdminSock: adminSock,
		MasterSock: filepath.Join(dir, "master.sock"), t: t, ports: map[string]int{}}
	h.start(t, haproxyBinary(t), wrap)
	return h
}

// haproxyBinary is haproxy in PATH (Require: skipped without it, failed in CI).
func haproxyBinary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		Require(t, "haproxy", err)
	}
	return bin
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

// start checks h's config (`haproxy -c`), runs HAProxy on it (under the command prefix
// wrap) and stops it in t.Cleanup.
func (h *HAProxyInstance) start(t testing.TB, bin string, wrap []string) {
	t.Helper()
	if b, err := exec.Command(bin, "-c", "-q", "-f", h.CfgPath).CombinedOutput(); err != nil {
		cfg, _ := os.ReadFile(h.CfgPath)
		t.Fatalf("testenv: haproxy -c rejects %s: %v\n%s\n--- config ---\n%s", h.CfgPath, err, b, cfg)
	}
	h.log = &procs.Buffer{}
	var err error
	h.h, err = procs.StartHAProxy(context.Background(), procs.HAProxyOptions{Bin: bin, Config: h.CfgPath,
		AdminSock: h.AdminSock, MasterSock: h.MasterSock, Wrap: wrap, Output: h.log, DieWithParent: true})
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(h.Stop)
}

// Exec sends one command line to the admin socket and returns the whole answer. It is the
// tests' own minimal client (procs.SocketExec), independent of lbconfig.
func (h *HAProxyInstance) Exec(line string) (string, error) { return h.h.Exec(line) }

// Master sends one command line to the master CLI (";quit" is appended, as 2.6 needs).
func (h *HAProxyInstance) Master(line string) (string, error) { return h.h.Master(line) }

// WorkerPid is the pid of the current worker, from the master's `show proc`.
func (h *HAProxyInstance) WorkerPid(t testing.TB) int {
	t.Helper()
	pid, err := h.h.WorkerPid()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return pid
}

// Reload reloads HAProxy through the master CLI (2.6 answers nothing: the new worker pid
// in `show proc` confirms it) and waits until the new worker's admin socket answers.
func (h *HAProxyInstance) Reload(t testing.TB) {
	t.Helper()
	if err := h.h.Reload(context.Background()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// Restart stops HAProxy and starts it again on the same config file and ports.
func (h *HAProxyInstance) Restart(t testing.TB) {
	t.Helper()
	if err := h.h.Restart(context.Background()); err != nil {
		t.Fatalf("testenv: restart haproxy: %v", err)
	}
}

// Stop stops HAProxy: SIGTERM to the master, SIGKILL to its process group
// after 10s. It is safe to call twice.
func (h *HAProxyInstance) Stop() {
	if h.h != nil {
		_ = h.h.Stop()
	}
}

// Log is what HAProxy printed so far.
func (h *HAProxyInstance) Log() string { return h.log.String() }
