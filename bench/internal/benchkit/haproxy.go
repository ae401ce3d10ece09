package benchkit

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/swap-dev/swap/lbconfig"
)

// HAProxy is an HAProxy in master-worker mode a benchmark started: `haproxy -W -S
// <dir>/master.sock -f <cfg>`. Its config must name <dir>/admin.sock as its stats socket
// (with `expose-fd listeners`, for seamless reloads).
type HAProxy struct {
	*Proc
	Dir    string
	Admin  *lbconfig.Client
	Master *lbconfig.Master
}

// AdminSocket is the admin socket's path an HAProxy config for StartHAProxy names.
func AdminSocket(dir string) string { return filepath.Join(dir, "admin.sock") }

// StartHAProxy starts HAProxy on cfg and waits until its worker answers.
func StartHAProxy(ctx context.Context, dir, name, cfg string) (*HAProxy, error) {
	master := filepath.Join(dir, "master.sock")
	p, err := StartProc(dir, name, nil, "haproxy", "-W", "-S", master+",mode,600", "-f", cfg)
	if err != nil {
		return nil, err
	}
	h := &HAProxy{Proc: p, Dir: dir}
	if h.Admin, err = lbconfig.Dial(AdminSocket(dir), lbconfig.WithName(name)); err == nil {
		h.Master, err = lbconfig.NewMaster(master, lbconfig.WithName(name+"-master"))
	}
	if err != nil {
		p.Stop()
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, werr := h.Master.ShowProc(ctx)
		_, ierr := h.Admin.Info(ctx)
		if werr == nil && ierr == nil {
			return h, nil
		}
		if p.Exited() || time.Now().After(deadline) || ctx.Err() != nil {
			p.Stop()
			return nil, fmt.Errorf("haproxy %s on %s did not answer (%v; %v): see %s", name, cfg, ierr, werr, p.Log)
		}
		time.Sleep(50 * time.Millisecond)
	}
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
