package switcher

import (
	"fmt"
	"path/filepath"
	"sort"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/lbconfig"
)

// LBCurrent is what is running now, for LBLayout: the instances become the backends'
// servers, and Live says which color each app's route points at (the preview frontend
// routes the other one). The zero value renders backends without servers and no routes.
type LBCurrent struct {
	Instances []deployments.Instance
	Live      map[string]deployments.Color // app → live color
}

// LBLayout maps the config to the HAProxy layout lbconfig renders (docs/haproxy.md):
// for every app and color a backend `<app>_<color>` checked like the app's
// healthcheck, whose servers `<app>-<color>-<i>` get the check's interval, rise and
// fall; routes.map keyed by each app's route; preview.map pointing at the idle color.
// It is a pure function of its arguments.
func LBLayout(cfg *deployments.Config, cur LBCurrent) (*lbconfig.Layout, error) {
	h := cfg.HAProxy
	if !filepath.IsAbs(h.Dir) {
		return nil, fmt.Errorf("haproxy.dir %q must be an absolute path by now (the config loader resolves it against the config file's directory)", h.Dir)
	}
	l := &lbconfig.Layout{
		Dir:       h.Dir,
		Frontend:  lbconfig.Listener{Name: h.Frontend.Name, Bind: h.Frontend.Bind},
		Preview:   lbconfig.Listener{Name: h.Preview.Name, Bind: h.Preview.Bind},
		Routing:   lbconfig.Routing(h.Routing),
		Timeouts:  lbconfig.Timeouts{Connect: h.Timeouts.Connect, Client: h.Timeouts.Client, Server: h.Timeouts.Server},
		SocketGID: h.SocketGID,
	}
	apps := make([]string, 0, len(cfg.Apps))
	for name := range cfg.Apps {
		apps = append(apps, name)
	}
	sort.Strings(apps)

	servers := map[string][]lbconfig.Server{}
	for _, in := range cur.Instances {
		be := deployments.BackendName(in.App, in.Color)
		servers[be] = append(servers[be], lbconfig.Server{Name: in.ID(), Addr: in.Host, Port: in.Port})
	}
	for _, name := range apps {
		app := cfg.Apps[name]
		if app == nil {
			return nil, fmt.Errorf("app %q has no settings", name)
		}
		hc := app.HealthCheck
		check := lbconfig.HealthCheck{
			Type: hc.Type, Method: hc.Method, Path: hc.Path, Host: hc.Host,
			ExpectStatus: hc.ExpectStatus.String(), Body: hc.Body, Timeout: hc.Timeout,
		}
		if hc.Type == deployments.CheckTCP {
			check = lbconfig.HealthCheck{Type: "tcp", Timeout: hc.Timeout}
		}
		tmpl := lbconfig.Server{
			Weight: lbconfig.DefaultWeight,
			Check:  lbconfig.Check{Inter: hc.Interval, Rise: hc.Rise, Fall: hc.Fall},
		}
		for _, c := range deployments.Colors {
			be := deployments.BackendName(name, c)
			l.Backends = append(l.Backends, lbconfig.Backend{Name: be, Check: check, Server: tmpl, Servers: servers[be]})
		}
		if live, ok := cur.Live[name]; ok && app.Route != "" {
			l.Routes = append(l.Routes, lbconfig.MapEntry{Key: app.Route, Value: deployments.BackendName(name, live)})
			if h.Preview.Bind != "" {
				l.PreviewRoutes = append(l.PreviewRoutes, lbconfig.MapEntry{Key: app.Route, Value: deployments.BackendName(name, live.Other())})
			}
		}
	}
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("the HAProxy layout for this config is invalid: %w", err)
	}
	return l, nil
}
