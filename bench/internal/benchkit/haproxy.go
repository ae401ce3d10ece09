package benchkit

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/swap-dev/swap/internal/stack/procs"
	"github.com/swap-dev/swap/lbconfig"
)

// HAProxy is an HAProxy in master-worker mode a benchmark started (procs.StartHAProxy:
// `haproxy -W -S <dir>/master.sock -f <cfg>`, its output in <dir>/<name>.log), with
// swap's own clients of its sockets: what the benchmarks measure. Its config must name
// <dir>/admin.sock (AdminSocket) as its stats socket (with `expose-fd listeners`, for
// seamless reloads).
type HAProxy struct {
	*procs.HAProxy
	Admin     *lbconfig.Client
	MasterCLI *lbconfig.Master
}

// AdminSocket is the admin socket's path an HAProxy config for StartHAProxy names.
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }

// StartHAProxy starts HAProxy on cfg, waits until its worker answers and dials its
// sockets. HAProxy dies with the benchmark.
func StartHAProxy(ctx context.Context, dir, name, cfg string) (*HAProxy, error) {
	sh, err := procs.StartHAProxy(ctx, procs.HAProxyOptions{Config: cfg, AdminSock: AdminSocket(dir),
		MasterSock: filepath.Join(dir, "master.sock"), LogFile: filepath.Join(dir, name+".log"), DieWithParent: true})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	h := &HAProxy{HAProxy: sh}
	if h.Admin, err = lbconfig.Dial(sh.AdminSock, lbconfig.WithName(name)); err == nil {
		h.MasterCLI, err = lbconfig.NewMaster(sh.MasterSock, lbconfig.WithName(name+"-master"))
	}
	if err != nil {
		_ = sh.Stop()
		return nil, err
	}
	return h, nil
}

// ClassicConfig is a hand-written style haproxy.cfg for StartHAProxy in dir: one
// frontend on bind sending everything to defaultBackend, then backends (the text of the
// backend sections). It is what the comparisons reload, by hand or by consul-template
// (whose template directives may be in defaultBackend and backends).
func ClassicConfig(comment, dir, bind, defaultBackend, backends string) string {
	return fmt.Sprintf(`# %s
global
    stats socket %s mode 600 level admin expose-fd listeners
    stats timeout 1m
    hard-stop-after 30s

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 10s

frontend fe
    bind %s
    default_backend %s

%s`, comment, AdminSocket(dir), bind, defaultBackend, backends)
}
