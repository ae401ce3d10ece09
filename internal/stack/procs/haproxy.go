package procs

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// HAProxyOptions say how StartHAProxy runs HAProxy.
type HAProxyOptions struct {
	// Bin is the haproxy binary ("": haproxy in PATH).
	Bin string
	// Config is the config file; its stats socket (level admin) is AdminSock.
	Config, AdminSock string
	// MasterSock is the master CLI's socket ("": master.sock next to Config).
	MasterSock string
	// Wrap is a command prefix HAProxy runs under (Options.Wrap): in another
	// network namespace, say. Its unix sockets are files, reached from any namespace.
	Wrap []string
	// Output, LogFile, PidFile and DieWithParent are the process's (Options); the
	// pid file's marker is Config.
	Output        io.Writer
	LogFile       string
	PidFile       string
	DieWithParent bool
	// Timeout bounds the wait until HAProxy is ready (default 20s).
	Timeout time.Duration
}

// HAProxy is an HAProxy in master-worker mode (-W) with a master CLI (-S).
type HAProxy struct {
	Config, AdminSock, MasterSock string

	opts HAProxyOptions
	proc *Proc // nil: HAProxyAt
}

// StartHAProxy starts `haproxy -W -S <master>,mode,600 -f <config>` and waits until its
// admin socket answers `show info` and the master lists a worker.
func StartHAProxy(ctx context.Context, opts HAProxyOptions) (*HAProxy, error) {
	if opts.Bin == "" {
		opts.Bin = "haproxy"
	}
	if opts.Timeout == 0 {
		opts.Timeout = 20 * time.Second
	}
	h := HAProxyAt(opts.Config, opts.AdminSock, opts.MasterSock)
	h.opts = opts
	if err := h.start(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

// HAProxyAt is an HAProxy started elsewhere (in a container, say), reached through its
// sockets (master: "" for master.sock next to config). Stop and Restart do nothing.
func HAProxyAt(config, admin, master string) *HAProxy {
	if master == "" {
		master = filepath.Join(filepath.Dir(config), "master.sock")
	}
	return &HAProxy{Config: config, AdminSock: admin, MasterSock: master}
}

func (h *HAProxy) start(ctx context.Context) error {
	// A socket file left by a killed HAProxy would answer nothing: waitUp would
	// mistake it for one not bound yet, until the new one replaces it.
	os.Remove(h.AdminSock)
	os.Remove(h.MasterSock)
	p, err := Start(Options{Name: "haproxy", Bin: h.opts.Bin, Wrap: h.opts.Wrap,
		Args:   []string{"-W", "-S", h.MasterSock + ",mode,600", "-f", h.Config},
		Output: h.opts.Output, LogFile: h.opts.LogFile, PidFile: h.opts.PidFile, Marker: h.Config,
		DieWithParent: h.opts.DieWithParent})
	if err != nil {
		return err
	}
	h.proc = p
	if err := p.Poll(ctx, h.opts.Timeout, h.up); err != nil {
		return p.stopWith(fmt.Errorf("haproxy on %s: %w", h.Config, err))
	}
	return nil
}

// WaitUp waits up to timeout until HAProxy is ready (see StartHAProxy); alive says why
// it is not running any more (nil: it runs), for an HAProxyAt.
func (h *HAProxy) WaitUp(ctx context.Context, timeout time.Duration, alive func() error) error {
	return Poll(ctx, timeout, func() error {
		if err := alive(); err != nil {
			return err
		}
		return h.up()
	})
}

// up says why HAProxy is not ready yet.
func (h *HAProxy) up() error {
	if _, err := h.info(); err != nil {
		return err
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
}

func (h *HAProxy) info() (string, error) {
	out, err := h.Exec("show info")
	if err != nil {
		return "", fmt.Errorf("admin socket: %w", err)
	}
	if !strings.Contains(out, "Pid:") {
		return "", fmt.Errorf("show info answered %q", out)
	}
	return out, nil
}

// Exec sends one command line to the admin socket and returns the whole answer.
func (h *HAProxy) Exec(line string) (string, error) { return SocketExec(h.AdminSock, line) }

// Master sends one command line to the master CLI (";quit" is appended, as 2.6 needs).
func (h *HAProxy) Master(line string) (string, error) {
	return SocketExec(h.MasterSock, line+";quit")
}

// SocketExec sends one command line to an HAProxy socket and returns the whole answer.
// It is a minimal client of its own, independent of lbconfig: what checks swap's
// client (the tests) must not be built on it.
func SocketExec(path, line string) (string, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return string(b), err
}

// WorkerPid is the current worker's pid, from the master's `show proc`.
func (h *HAProxy) WorkerPid() (int, error) {
	out, err := h.Master("show proc")
	if err != nil {
		return 0, fmt.Errorf("master show proc: %w", err)
	}
	if pid := firstWorker(out); pid != 0 {
		return pid, nil
	}
	return 0, fmt.Errorf("no worker in show proc:\n%s", out)
}

// firstWorker is the pid of the first worker `show proc` lists, the current one (0:
// none).
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

// Reload reloads HAProxy through the master CLI (2.6 answers nothing: a new worker in
// `show proc` confirms it) and waits until the new worker's admin socket answers.
func (h *HAProxy) Reload(ctx context.Context) error {
	before, err := h.WorkerPid()
	if err != nil {
		return err
	}
	if _, err := h.Master("reload"); err != nil {
		return fmt.Errorf("master reload: %w", err)
	}
	err = Poll(ctx, 10*time.Second, func() error {
		out, err := h.Master("show proc")
		if err != nil {
			return err
		}
		if pid := firstWorker(out); pid == 0 || pid == before {
			return fmt.Errorf("worker still %d:\n%s", before, out)
		}
		_, err = h.info()
		return err
	})
	if err != nil {
		return fmt.Errorf("haproxy reload: %w", err)
	}
	return nil
}

// Proc is HAProxy's process, its master (a new one after Restart; nil for an
// HAProxyAt).
func (h *HAProxy) Proc() *Proc { return h.proc }

// Restart stops HAProxy and starts it again on the same config file and sockets.
func (h *HAProxy) Restart(ctx context.Context) error {
	if h.proc == nil {
		return nil
	}
	if err := h.Stop(); err != nil {
		return err
	}
	return h.start(ctx)
}

// Stop stops HAProxy: SIGTERM to the master, SIGKILL to its process group after 10s.
// It is safe to call again.
func (h *HAProxy) Stop() error {
	if h.proc == nil {
		return nil
	}
	return h.proc.Stop()
}
