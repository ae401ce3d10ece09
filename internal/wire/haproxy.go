package wire

import (
	"context"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// Balancer adapts an lbconfig.Fleet (with its Layout, so every change is persisted) to
// switcher.Balancer.
type Balancer struct {
	F *lbconfig.Fleet
	// DelTimeout bounds how long RemoveServer retries `del server` (default 30s).
	DelTimeout time.Duration
	Log        *zap.Logger
}

var _ switcher.Balancer = (*Balancer)(nil)

func (b *Balancer) layout() *lbconfig.Layout { return b.F.Layout() }

// AddServers adds servers with their backend's check timing, DOWN until the checks
// pass, persisting once.
func (b *Balancer) AddServers(ctx context.Context, backend string, servers []switcher.Server) error {
	add, err := b.servers(backend, servers)
	if err != nil {
		return err
	}
	return b.F.AddServers(ctx, backend, add)
}

// AddMissing adds servers as AddServers does, each on the instances that lack it.
func (b *Balancer) AddMissing(ctx context.Context, backend string, servers []switcher.Server) error {
	add, err := b.servers(backend, servers)
	if err != nil {
		return err
	}
	return b.F.AddMissingServers(ctx, backend, add)
}

// servers are the lbconfig servers of backend: its server settings (check timing and
// the rest, as the layout renders them) with each one's name and address.
func (b *Balancer) servers(backend string, servers []switcher.Server) ([]lbconfig.Server, error) {
	be := b.layout().Backend(backend)
	if be == nil {
		return nil, fmt.Errorf("backend %s is not in the HAProxy layout: run `swap lb render --reload` (or `swap lb render`, then reload HAProxy yourself)", backend)
	}
	var add []lbconfig.Server
	for _, srv := range servers {
		s := be.Server
		s.Name, s.Addr, s.Port, s.Backup = srv.Name, srv.Host, srv.Port, srv.Backup
		add = append(add, s)
	}
	return add, nil
}

// RemoveServers puts the servers in maintenance and deletes them, retrying until they
// are removable (sessions gone) or DelTimeout, persisting once.
func (b *Balancer) RemoveServers(ctx context.Context, backend string, servers []string) error {
	if len(servers) == 0 {
		return nil
	}
	d := b.DelTimeout
	if d <= 0 {
		d = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return b.F.DelServers(ctx, backend, servers)
}

// Servers returns backend's server rows of `show stat` on every instance.
func (b *Balancer) Servers(ctx context.Context, backend string) ([]switcher.ServerStat, error) {
	byLB, err := b.F.Stat(ctx, backend)
	return rowsOf(byLB, err, func(lb string, r lbconfig.Stat) (switcher.ServerStat, bool) {
		return switcher.ServerStat{
			LB: lb, Name: r.Name, Addr: r.Addr, Status: r.Status,
			CheckStatus: strings.TrimPrefix(r.CheckStatus, "* "),
			Sessions:    int(r.Scur), Queued: int(r.Qcur), UsedConns: int(r.UsedConnCur),
			Responses: responses(r), Errors5xx: uint64(r.Hrsp5xx),
			Backup: r.Fields["bck"] == "1",
		}, r.Type == lbconfig.StatServer
	})
}

// Counters returns backend's own row of `show stat` on every instance.
func (b *Balancer) Counters(ctx context.Context, backend string) ([]switcher.BackendCounters, error) {
	byLB, err := b.F.Stat(ctx, backend)
	return rowsOf(byLB, err, func(lb string, r lbconfig.Stat) (switcher.BackendCounters, bool) {
		return switcher.BackendCounters{LB: lb, Responses: responses(r), Errors5xx: uint64(r.Hrsp5xx)},
			r.Type == lbconfig.StatBackend && r.Proxy == backend
	})
}

// rowsOf turns a Fleet's answer, rows by instance name, into one list of the rows conv
// keeps, converted; a Fleet error is returned as is, with nothing.
func rowsOf[R, T any](byLB map[string][]R, err error, conv func(lb string, r R) (T, bool)) ([]T, error) {
	if err != nil {
		return nil, err
	}
	var out []T
	for lb, rows := range byLB {
		for _, r := range rows {
			if t, ok := conv(lb, r); ok {
				out = append(out, t)
			}
		}
	}
	return out, nil
}

// responses is how many HTTP responses a `show stat` row counts, of every class.
func responses(r lbconfig.Stat) uint64 {
	return uint64(r.Hrsp1xx + r.Hrsp2xx + r.Hrsp3xx + r.Hrsp4xx + r.Hrsp5xx + r.HrspOther)
}

// SetServerAddr moves a server to host:port on every instance and persists.
func (b *Balancer) SetServerAddr(ctx context.Context, backend, server, host string, port int) error {
	return b.F.SetAddr(ctx, backend, server, host, port)
}

func (b *Balancer) Drain(ctx context.Context, backend string, servers []string) error {
	if len(servers) == 0 {
		return nil
	}
	return b.F.SetStates(ctx, backend, servers, lbconfig.StateDrain)
}

func (b *Balancer) ShutdownSessions(ctx context.Context, backend, server string) error {
	return b.F.ShutdownSessions(ctx, backend, server)
}

// Route flips key to backend in routes.map on every instance, all or nothing. When only
// writing the files failed, the flip is live but a reload or restart would serve the old
// route: the error wraps lbconfig.ErrPersist, and the caller decides (the shift step
// flips back and fails).
func (b *Balancer) Route(ctx context.Context, key, backend string) error {
	return b.F.Flip(ctx, b.layout().RoutesMap(), key, backend)
}

// Routes reads key from routes.map on every instance ("" where it is unset).
func (b *Balancer) Routes(ctx context.Context, key string) (map[string]string, error) {
	got, err := b.F.GetMap(ctx, b.layout().RoutesMap(), key)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, in := range b.F.Instances() {
		out[in.Client.Name()] = got[in.Client.Name()]
	}
	return out, nil
}

// Preview points key at backend in preview.map ("" removes the key). Without a preview
// frontend it does nothing.
func (b *Balancer) Preview(ctx context.Context, key, backend string) error {
	if b.layout().Preview.Bind == "" {
		return nil
	}
	return b.F.Flip(ctx, b.layout().PreviewMap(), key, backend)
}

func (b *Balancer) Canary(ctx context.Context, key, backend string, weight int) error {
	return b.F.SetCanary(ctx, key, backend, weight)
}
