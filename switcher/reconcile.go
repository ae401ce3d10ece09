package switcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// Rotation is what a reconcile pass needs of HAProxy beyond Balancer: the servers'
// administrative states, setting them, and the routing key's map entries.
type Rotation interface {
	// ServerAdmins lists backend's servers on every instance with their admin state.
	ServerAdmins(ctx context.Context, backend string) ([]ServerAdmin, error)
	// SetAdmin sets the servers' admin state on every instance, then persists.
	SetAdmin(ctx context.Context, backend string, servers []string, a Admin) error
	// AddMissing adds servers to backend on every instance that lacks them (one that
	// has a server of that name keeps it), as Balancer.AddServers adds them, then
	// persists.
	AddMissing(ctx context.Context, backend string, servers []Server) error
	// RouteEntries returns key's entries in the routes, preview and canary maps, by
	// instance name.
	RouteEntries(ctx context.Context, key string) (map[string]RouteEntries, error)
}

// LBFiles writes this host's HAProxy files from what each instance serves (files whose
// bytes are equal are left alone).
type LBFiles interface {
	WriteFiles(ctx context.Context) error
}

// LockReader says who holds an app's lock, without taking it.
type LockReader interface {
	// LockHolder returns the holder ("" and false when the lock is free).
	LockHolder(ctx context.Context, app string) (holder string, held bool, err error)
}

// Reconciler keeps this host's HAProxy instances in step with Consul between swaps (see
// desiredActions). A pass never takes the app's lock: while a swap holds it, the swap
// owns the app and the pass leaves it alone.
type Reconciler struct {
	Config   *deployments.Config
	Registry Registry
	Balancer Balancer
	Rotation Rotation
	Store    Store
	Locks    LockReader
	// Mesh is the service mesh's routing (consul.mesh); nil when the mesh is off.
	Mesh Mesh
	// Files, when set, writes this host's HAProxy files after every pass that ran: a
	// swap run elsewhere changes an HAProxy of another host at runtime only, and the
	// loop on that host keeps its files in step (nil: only the Balancer's own changes
	// are written).
	Files LBFiles
	// Host names this host in the loop's record of the servers it took out
	// (RotationKey): each host puts back only what its own loop took out of its own
	// HAProxy instances.
	Host string
	Log  *zap.Logger
	// OnPass, when set, hears each pass of Run as it ends (swap serve's metrics). It
	// runs on the app's loop goroutine: it must be quick.
	OnPass func(PassReport)

	statusMu sync.Mutex
	status   map[string]AppLoopStatus // by app: Status
}

// RotationKey is where the loop of host records the servers of app it took out of
// rotation, relative to the KV prefix.
func RotationKey(app, host string) string { return "apps/" + app + "/rotation/" + host }

// rotationRecord is RotationKey's value.
type rotationRecord struct {
	// Out: "<backend>/<server>" -> why Consul failed it.
	Out     map[string]string `json:"out"`
	Updated time.Time         `json:"updated"`
}

// PassResult is what one reconcile pass of an app did.
type PassResult struct {
	App string `json:"app"`
	// Skipped says why the pass left the app alone ("" when it ran).
	Skipped string   `json:"skipped,omitempty"`
	Applied []Action `json:"applied,omitempty"`
	Notes   []string `json:"notes,omitempty"`
}

// ErrNotInLine: a reconcile pass could not bring HAProxy in line with Consul and KV.
var ErrNotInLine = errors.New("HAProxy could not be brought in line")

func (r *Reconciler) log() *zap.Logger {
	if r.Log == nil {
		return zap.NewNop()
	}
	return r.Log
}

// Pass runs one reconcile pass for app: it reads the desired state and HAProxy's, and
// applies the difference, then writes HAProxy's files (Files) unless the pass left the
// app alone. It is idempotent: a second pass with nothing changed applies nothing. An
// error says what could not be read or changed; a change that failed, or files that
// could not be written, wrap ErrNotInLine.
func (r *Reconciler) Pass(ctx context.Context, app string) (PassResult, error) {
	res, err := r.pass(ctx, app)
	if err != nil || res.Skipped != "" || r.Files == nil {
		return res, err
	}
	if err := r.Files.WriteFiles(ctx); err != nil {
		return res, fmt.Errorf("%w for %s: write HAProxy's files: %w; the next pass retries", ErrNotInLine, app, err)
	}
	return res, nil
}

// pass is Pass without the files.
func (r *Reconciler) pass(ctx context.Context, app string) (PassResult, error) {
	res := PassResult{App: app}
	spec, err := r.Config.App(app)
	if err != nil {
		return res, err
	}
	log := r.log().With(zap.String("app", app))
	// The lock is read beside the pass's other reads (one round trip's wait, not two);
	// while a swap holds it, what was read is dropped.
	var (
		holder  string
		held    bool
		lockErr error
		locked  = make(chan struct{})
	)
	go func() { defer close(locked); holder, held, lockErr = r.Locks.LockHolder(ctx, app) }()
	o, jIndex, outIndex, err := r.observe(ctx, spec)
	<-locked
	if lockErr != nil {
		return res, fmt.Errorf("reconcile %s: read its lock: %w", app, lockErr)
	} else if held {
		res.Skipped = "a swap holds the lock (" + holder + "): it owns the app until it ends"
		log.Debug("reconcile skipped", zap.String("why", res.Skipped))
		return res, nil
	}
	if err != nil {
		return res, err
	}
	d := desiredActions(o)
	res.Notes = d.Notes
	for _, n := range d.Notes {
		log.Warn(n)
	}
	if d.Hold {
		res.Skipped = d.Notes[0]
		return res, nil
	}
	if len(d.Actions) == 0 && maps.Equal(d.Out, o.Out) {
		return res, nil
	}
	// A swap may have started since the reads: it owns the app now. Lock and journal
	// are read side by side.
	var (
		jIdx      uint64
		jErr      error
		journaled = make(chan struct{})
	)
	go func() { defer close(journaled); _, jIdx, jErr = r.Store.Get(ctx, JournalKey(app)) }()
	holder, held, lockErr = r.Locks.LockHolder(ctx, app)
	<-journaled
	if lockErr != nil {
		return res, fmt.Errorf("reconcile %s: read its lock: %w", app, lockErr)
	} else if held {
		res.Skipped = "a swap took the lock (" + holder + ") during the pass: it owns the app"
		return res, nil
	}
	if jErr != nil {
		return res, fmt.Errorf("reconcile %s: read its journal: %w", app, jErr)
	} else if jIdx != jIndex {
		res.Skipped = "a swap wrote its journal during the pass: it owns the app"
		return res, nil
	}

	// The record first: a server taken out is always in it, even after a crash.
	taken := maps.Clone(o.Out)
	if taken == nil {
		taken = map[string]string{}
	}
	maps.Copy(taken, d.Out)
	if outIndex, err = r.saveOut(ctx, app, taken, o.Out, outIndex); err != nil {
		return res, err
	}
	var errs []error
	for _, a := range d.Actions {
		if a.Kind == ActRoute && a.Backend != "" {
			// Traffic never moves to a backend without a server HAProxy's checks pass
			// (servers just added start DOWN).
			if err := r.waitServing(ctx, spec, a.Backend); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", a, err))
				log.Warn("reconcile route waits", zap.String("backend", a.Backend), zap.Error(err))
				continue
			}
		}
		if err := r.apply(ctx, spec, a); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			log.Warn("reconcile change failed", zap.String("action", a.String()), zap.Error(err))
			continue
		}
		res.Applied = append(res.Applied, a)
		log.Info("reconciled", zap.String("action", string(a.Kind)), zap.String("backend", a.Backend),
			zap.Strings("servers", a.Servers), zap.String("why", a.Why))
	}
	if err := errors.Join(errs...); err != nil {
		return res, fmt.Errorf("%w for %s: %w; the next pass retries", ErrNotInLine, app, err)
	}
	if _, err := r.saveOut(ctx, app, d.Out, taken, outIndex); err != nil {
		return res, err
	}
	return res, nil
}

// observe reads everything a pass compares: KV state and journal, Consul's instances,
// HAProxy's servers and maps, the mesh's target and the loop's record. It also returns
// the journal's and the record's indexes. The reads are independent, so they run side
// by side: a pass waits for the slowest round trip instead of the sum of eight (the
// reconcile lag in docs/benchmarks.md is mostly these reads). The first error, in the
// order below, is returned.
func (r *Reconciler) observe(ctx context.Context, spec *deployments.App) (o Observed, jIndex, outIndex uint64, err error) {
	app := spec.Name
	k := kv{store: r.Store}
	o = Observed{App: app, Route: spec.Route, Servers: map[string][]ServerAdmin{}}
	var (
		st       *storedState
		j        *storedJournal
		jOK      bool
		servers  = make([][]ServerAdmin, len(deployments.Colors))
		mesh     MeshTarget
		rec      rotationRecord
		reads    []func() error
		failures []error
	)
	reads = append(reads,
		func() (err error) {
			if st, err = k.state(ctx, app); err != nil {
				return fmt.Errorf("reconcile %s: %w", app, err)
			}
			return nil
		},
		func() (err error) {
			if j, jOK, err = k.journal(ctx, app); err != nil {
				return fmt.Errorf("reconcile %s: %w", app, err)
			}
			return nil
		},
		func() (err error) {
			if o.Instances, err = r.Registry.Instances(ctx, app); err != nil {
				return fmt.Errorf("reconcile %s: list its instances in Consul: %w; HAProxy is left as it is", app, err)
			}
			return nil
		})
	for i, c := range deployments.Colors {
		be := deployments.BackendName(app, c)
		reads = append(reads, func() (err error) {
			if servers[i], err = r.Rotation.ServerAdmins(ctx, be); err != nil {
				return fmt.Errorf("reconcile %s: read the servers of %s: %w", app, be, err)
			}
			return nil
		})
	}
	reads = append(reads,
		func() (err error) {
			if o.Maps, err = r.Rotation.RouteEntries(ctx, spec.Route); err != nil {
				return fmt.Errorf("reconcile %s: read the maps' entries for %q: %w", app, spec.Route, err)
			}
			return nil
		},
		func() error {
			if r.Mesh == nil {
				return nil
			}
			t, err := r.Mesh.Target(ctx, app)
			if err != nil {
				t.Problem = err.Error()
			}
			mesh = t
			return nil
		},
		func() (err error) {
			if outIndex, _, err = k.load(ctx, RotationKey(app, r.Host), &rec); err != nil {
				return fmt.Errorf("reconcile %s: %w", app, err)
			}
			return nil
		})
	failures = make([]error, len(reads))
	var wg sync.WaitGroup
	for i, read := range reads {
		wg.Add(1)
		go func() { defer wg.Done(); failures[i] = read() }()
	}
	wg.Wait()
	for _, err := range failures {
		if err != nil {
			return o, 0, 0, err
		}
	}
	o.State = st.State
	if jOK {
		o.Journal, jIndex = &j.Journal, j.index
	}
	for i, c := range deployments.Colors {
		o.Servers[deployments.BackendName(app, c)] = servers[i]
	}
	if r.Mesh != nil {
		o.Mesh = &mesh
	}
	o.Out = rec.Out
	return o, jIndex, outIndex, nil
}

// saveOut writes the record when it changed and returns its index.
func (r *Reconciler) saveOut(ctx context.Context, app string, out, was map[string]string, index uint64) (uint64, error) {
	if maps.Equal(out, was) && (index != 0 || len(out) == 0) {
		return index, nil
	}
	key := RotationKey(app, r.Host)
	if len(out) == 0 && index != 0 {
		if err := r.Store.Delete(ctx, key, index); err != nil {
			return index, fmt.Errorf("reconcile %s: clear %s: %w", app, key, err)
		}
		return 0, nil
	}
	n, err := kv{store: r.Store}.save(ctx, key, rotationRecord{Out: out, Updated: time.Now().UTC()}, index)
	if err != nil {
		return index, fmt.Errorf("reconcile %s: %w", app, err)
	}
	return n, nil
}

// apply makes one change through the Balancer (every HAProxy instance, then its files).
func (r *Reconciler) apply(ctx context.Context, spec *deployments.App, a Action) error {
	switch a.Kind {
	case ActAdd:
		return r.Rotation.AddMissing(ctx, a.Backend, a.Add)
	case ActRoute:
		return r.Balancer.Route(ctx, spec.Route, a.Backend)
	case ActPreview:
		return r.Balancer.Preview(ctx, spec.Route, a.Backend)
	case ActCanary:
		return r.Balancer.Canary(ctx, spec.Route, a.Backend, 0)
	case ActPutBack:
		return r.Rotation.SetAdmin(ctx, a.Backend, a.Servers, AdminReady)
	case ActTakeOut:
		return r.Rotation.SetAdmin(ctx, a.Backend, a.Servers, AdminDrain)
	case ActRemove:
		return r.Balancer.RemoveServers(ctx, a.Backend, a.Servers)
	case ActMesh:
		if r.Mesh == nil {
			return fmt.Errorf("the mesh is off")
		}
		return r.Mesh.Route(ctx, spec.Name, a.Color)
	}
	return fmt.Errorf("unknown reconcile action %q", a.Kind)
}

// waitServing waits until every HAProxy instance has a healthy server in backend, a few
// check intervals at most (riseWait).
func (r *Reconciler) waitServing(ctx context.Context, spec *deployments.App, backend string) error {
	wait := riseWait(spec.HealthCheck)
	deadline := time.Now().Add(wait)
	for {
		stats, err := r.Balancer.Servers(ctx, backend)
		if err == nil {
			err = everyLBServes(stats, backend)
		}
		if err == nil || !errors.Is(err, ErrNotHealthy) {
			return err
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("%w (waited %s); the route stays where it is until the next pass", err, wait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(spec.HealthCheck.Interval, 100*time.Millisecond)):
		}
	}
}

// settlePasses bounds Settle.
const settlePasses = 3

// Settle runs passes of app until one applies nothing (at most settlePasses), and
// returns what they applied together. A one-shot caller (swap hook) uses it: Consul may
// change while a pass runs, and `consul watch` does not run its handler again for data
// equal to what it last handed it, so a change that is undone while the handler runs
// would otherwise leave HAProxy acting on the state in between.
func (r *Reconciler) Settle(ctx context.Context, app string) (PassResult, error) {
	var all PassResult
	for range settlePasses {
		res, err := r.Pass(ctx, app)
		all.App, all.Skipped, all.Notes = res.App, res.Skipped, res.Notes
		all.Applied = append(all.Applied, res.Applied...)
		if err != nil || len(res.Applied) == 0 || res.Skipped != "" {
			return all, err
		}
	}
	return all, nil
}
