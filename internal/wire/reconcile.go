package wire

import (
	"context"
	"errors"
	"os"
	"sync"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

var (
	_ switcher.Rotation   = (*Balancer)(nil)
	_ switcher.LockReader = Locker{}
)

// ServerAdmins reads backend's `show servers state` on every instance.
func (b *Balancer) ServerAdmins(ctx context.Context, backend string) ([]switcher.ServerAdmin, error) {
	byLB, err := b.F.ServersState(ctx, backend)
	return rowsOf(byLB, err, func(lb string, r lbconfig.ServerState) (switcher.ServerAdmin, bool) {
		a := switcher.AdminReady
		switch {
		case r.AdminState.Maint():
			a = switcher.AdminMaint
		case r.AdminState.Drain():
			a = switcher.AdminDrain
		}
		return switcher.ServerAdmin{LB: lb, Name: r.Name, Admin: a, Up: r.OpState == lbconfig.OpRunning}, r.Backend == backend
	})
}

// SetAdmin sets the servers' admin state on every instance and persists once.
func (b *Balancer) SetAdmin(ctx context.Context, backend string, servers []string, a switcher.Admin) error {
	if len(servers) == 0 {
		return nil
	}
	return b.F.SetStates(ctx, backend, servers, lbconfig.State(a))
}

// RouteEntries reads key in routes.map, preview.map (when there is a preview frontend)
// and canary.map on every instance.
func (b *Balancer) RouteEntries(ctx context.Context, key string) (map[string]switcher.RouteEntries, error) {
	l := b.layout()
	var mu sync.Mutex
	var errs []error
	read := func(file string) map[string]string {
		got, err := b.F.GetMap(ctx, file, key)
		mu.Lock()
		errs = append(errs, err)
		mu.Unlock()
		return got
	}
	routes := read(l.RoutesMap())
	canary := read(l.CanaryMap())
	preview := map[string]string{}
	if l.Preview.Bind != "" {
		preview = read(l.PreviewMap())
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	out := map[string]switcher.RouteEntries{}
	for _, in := range b.F.Instances() {
		n := in.Client.Name()
		out[n] = switcher.RouteEntries{Route: routes[n], Preview: preview[n], Canary: canary[n]}
	}
	return out, nil
}

// WriteFiles writes every instance's files (those of this host: the fleet skips another
// host's) from what it serves now; without a layout there is nothing to write.
func (b *Balancer) WriteFiles(ctx context.Context) error {
	if b.F.Layout() == nil {
		return nil
	}
	_, err := b.F.Persist(ctx)
	return err
}

// LockHolder says who holds app's lock, without taking it.
func (l Locker) LockHolder(ctx context.Context, app string) (string, bool, error) {
	h, held, err := l.R.LockHolder(ctx, app)
	if err != nil || !held {
		return "", false, err
	}
	return h.String(), true, nil
}

// NewReconciler wires a reconcile loop for cfg (already defaulted and validated): the
// Consul registry and KV, and this host's HAProxy fleet; no Docker. host names this host
// in the loop's record ("": the hostname). The Feed is what Reconciler.Run follows.
func NewReconciler(cfg *deployments.Config, log *zap.Logger, host string) (*switcher.Reconciler, Feed, error) {
	if log == nil {
		log = zap.NewNop()
	}
	reg, err := consul.New(cfg.Consul, log.Named("consul"))
	if err != nil {
		return nil, Feed{}, err
	}
	fleet, err := Fleet(cfg, nil)
	if err != nil {
		return nil, Feed{}, err
	}
	r, feed := reconcilerOn(cfg, reg, &Balancer{F: fleet, Log: log.Named("haproxy")}, log, host)
	return r, feed, nil
}

// ReconcilerOf wires a reconciler on the Consul and HAProxy clients of sw, built by New:
// `swap serve` runs swaps and the reconcile loop with one set of clients.
func ReconcilerOf(sw *switcher.Switcher, log *zap.Logger, host string) (*switcher.Reconciler, Feed, error) {
	reg, ok := sw.Registry.(Registry)
	bal, ok2 := sw.Balancer.(*Balancer)
	if !ok || !ok2 {
		return nil, Feed{}, errors.New("wire: ReconcilerOf needs a switcher built by wire.New")
	}
	if log == nil {
		log = zap.NewNop()
	}
	r, feed := reconcilerOn(sw.Config, reg.R, bal, log, host)
	return r, feed, nil
}

// reconcilerOn is the reconciler on reg and bal.
func reconcilerOn(cfg *deployments.Config, reg *consul.Registry, bal *Balancer, log *zap.Logger, host string) (*switcher.Reconciler, Feed) {
	if host == "" {
		host, _ = os.Hostname()
	}
	r := &switcher.Reconciler{
		Config:   cfg,
		Registry: Registry{R: reg},
		Balancer: bal,
		Rotation: bal,
		Files:    bal,
		Store:    Store{R: reg},
		Locks:    Locker{R: reg},
		Host:     host,
		Log:      log.Named("reconcile"),
	}
	if cfg.Consul.Mesh {
		r.Mesh = Mesh{R: reg}
	}
	return r, Feed{R: reg}
}

// Feed reports an app's changes to the reconcile loop from Consul blocking queries: the
// app's instances and their health (consul.WatchService), and its state, journal and
// lock keys (consul.WatchKey).
type Feed struct{ R *consul.Registry }

var _ switcher.ChangeFeed = Feed{}

// WatchApp runs the four watches until ctx ends; each failed query is reported to failed.
func (f Feed) WatchApp(ctx context.Context, app string, changed func(), failed func(error)) error {
	var wg sync.WaitGroup
	run := func(watch func() error) {
		wg.Add(1)
		go func() { defer wg.Done(); _ = watch() }()
	}
	run(func() error {
		return f.R.WatchService(ctx, app, func([]consul.ServiceInstance) { changed() }, failed)
	})
	for _, key := range []string{switcher.StateKey(app), switcher.JournalKey(app), consul.LockKey(app)} {
		run(func() error { return f.R.WatchKey(ctx, key, func(consul.KeyVersion) { changed() }, failed) })
	}
	wg.Wait()
	return ctx.Err()
}
