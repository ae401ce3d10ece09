package lbconfig

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// One file holds the Fleet: every change and read it offers is the same fan-out over
// the instances (each, change, collect) with its persistence after it, read together.

// Instance is one HAProxy of a Fleet: its admin socket and, optionally, its master CLI
// and the directory of its files.
type Instance struct {
	Client *Client
	Master *Master // nil: Reload is not possible
	// Dir is where this HAProxy reads its files (haproxy.cfg, the maps, server-state;
	// its admin socket is Dir/admin.sock in them). "": the fleet layout's Dir. No two
	// instances of a fleet that writes their files may have the same: the files of one
	// HAProxy are its own.
	Dir string
	// NoFiles: the fleet changes this HAProxy at runtime only and never writes its
	// files (another host's HAProxy, whose files are written there). Its maps are still
	// named by their paths in Dir.
	NoFiles bool
}

// Fleet applies each change to every HAProxy instance in front of the apps and, when it
// has a Layout, persists it (Persist) right after: each instance's runtime state into its
// own directory. Its methods mirror Client's; a map is named by its path in the
// layout's Dir and each instance is given its own map of that name. A Fleet is safe for
// concurrent use, and so are several Fleets, in one process or several, on the same
// directories: Persist locks the directory (LockDir) while it reads and writes.
type Fleet struct {
	instances []Instance
	layout    *Layout
	layouts   map[*Client]*Layout // each instance's layout: layout with its Dir
	write     WriteOptions

	persistMu sync.Mutex
}

// NewFleet returns a Fleet of instances. With a non-nil layout, every change is written
// to each instance's Dir (default layout.Dir) after it is live (runtime first, disk
// second); two instances with the same Dir are refused.
func NewFleet(layout *Layout, write WriteOptions, instances ...Instance) (*Fleet, error) {
	if len(instances) == 0 {
		return nil, errors.New("haproxy fleet: no instances (configure haproxy.instances)")
	}
	names := map[string]bool{}
	for _, in := range instances {
		if in.Client == nil {
			return nil, errors.New("haproxy fleet: instance without a client")
		}
		if names[in.Client.Name()] {
			return nil, fmt.Errorf("haproxy fleet: instance name %q twice", in.Client.Name())
		}
		names[in.Client.Name()] = true
	}
	f := &Fleet{instances: instances, layout: layout, write: write, layouts: map[*Client]*Layout{}}
	if layout == nil {
		return f, nil
	}
	if err := layout.Validate(); err != nil {
		return nil, err
	}
	dirs := map[string]string{}
	for _, in := range instances {
		l := layout.Clone()
		if in.Dir != "" {
			l.Dir = filepath.Clean(in.Dir)
		}
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("haproxy fleet: instance %s: %w", in.Client.Name(), err)
		}
		f.layouts[in.Client] = l
		if in.NoFiles {
			continue
		}
		if other, dup := dirs[l.Dir]; dup {
			return nil, fmt.Errorf("haproxy fleet: instances %s and %s both have their files in %s: each HAProxy needs a directory of its own (its admin socket, maps and server state are in it)",
				other, in.Client.Name(), l.Dir)
		}
		dirs[l.Dir] = in.Client.Name()
	}
	return f, nil
}

// instanceLayout returns the layout of the instance whose client is c: the fleet's
// layout with that instance's Dir (nil without a layout).
func (f *Fleet) instanceLayout(c *Client) *Layout { return f.layouts[c] }

// mapOf returns c's own path for a map named by its path in the fleet layout's Dir (a
// map's id in the Runtime API is its path as haproxy.cfg writes it). Other paths are
// left as they are.
func (f *Fleet) mapOf(c *Client, file string) string {
	l := f.layouts[c]
	if l == nil || filepath.Dir(file) != filepath.Clean(f.layout.Dir) {
		return file
	}
	return l.Path(filepath.Base(file))
}

// Instances returns the fleet's instances.
func (f *Fleet) Instances() []Instance { return append([]Instance(nil), f.instances...) }

// CheckerReady says whether the haproxy that checks every file the fleet persists
// (WriteOptions: a local binary, or one in HAProxy's container) can be found, so that a
// swap is refused before it starts anything rather than when its first file is written.
// A fleet without persistence needs none.
func (f *Fleet) CheckerReady(ctx context.Context) error {
	if f.layout == nil {
		return nil
	}
	if _, err := f.write.checker().Identity(ctx, f.write.Binary); err != nil {
		return fmt.Errorf("haproxy -c, which checks each rendered file before it replaces a live one, cannot run: %w", err)
	}
	return nil
}

// Layout returns the fleet's layout (nil without persistence).
func (f *Fleet) Layout() *Layout { return f.layout }

// each runs op on every instance at once and joins the errors, each naming its instance.
func (f *Fleet) each(ctx context.Context, op func(context.Context, *Client) error) error {
	errs := make([]error, len(f.instances))
	var wg sync.WaitGroup
	for i, in := range f.instances {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := op(ctx, in.Client); err != nil {
				errs[i] = nameErr(in.Client, err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// nameErr makes sure err names the instance (a CommandError already does).
func nameErr(c *Client, err error) error {
	var ce *CommandError
	if errors.As(err, &ce) {
		return err
	}
	return &InstanceError{Instance: c.Name(), Err: err}
}

// InstanceError is a failure on one instance of a Fleet.
type InstanceError struct {
	Instance string
	Err      error
}

func (e *InstanceError) Error() string {
	return fmt.Sprintf("haproxy %s: %v", e.Instance, e.Err)
}

func (e *InstanceError) Unwrap() error { return e.Err }

// change runs op on every instance, then persists.
func (f *Fleet) change(ctx context.Context, op func(context.Context, *Client) error) error {
	err := f.each(ctx, op)
	if perr := f.persistIfLayout(ctx); perr != nil {
		return errors.Join(err, perr)
	}
	return err
}

func (f *Fleet) persistIfLayout(ctx context.Context) error {
	if f.layout == nil {
		return nil
	}
	_, err := f.Persist(ctx)
	return err
}

// Persist writes what each instance serves to that instance's directory (see the
// Persist function), every instance even when one fails. The result lists the files
// changed as paths; the error wraps ErrPersist and names every instance that failed.
func (f *Fleet) Persist(ctx context.Context) (WriteResult, error) {
	if f.layout == nil {
		return WriteResult{}, errors.New("haproxy fleet: no layout to persist")
	}
	f.persistMu.Lock()
	defer f.persistMu.Unlock()
	var all WriteResult
	var errs []error
	for _, in := range f.instances {
		if in.NoFiles {
			continue
		}
		l := f.layouts[in.Client]
		res, err := Persist(ctx, in.Client, l, f.write)
		for _, n := range res.Changed {
			all.Changed = append(all.Changed, l.Path(n))
		}
		for _, n := range res.Unchanged {
			all.Unchanged = append(all.Unchanged, l.Path(n))
		}
		all.Diff += res.Diff
		if err != nil {
			errs = append(errs, nameErr(in.Client, err))
		}
	}
	return all, errors.Join(errs...)
}

// AddServer adds s to backend on every instance (safe activation, see addServerCmd).
func (f *Fleet) AddServer(ctx context.Context, backend string, s Server) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.AddServer(ctx, backend, s) })
}

// AddServers adds servers to backend on every instance.
func (f *Fleet) AddServers(ctx context.Context, backend string, servers []Server) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.AddServers(ctx, backend, servers) })
}

// AddMissingServers adds, on every instance, those of servers its backend lacks (a
// server of that name is left as it is), then persists.
func (f *Fleet) AddMissingServers(ctx context.Context, backend string, servers []Server) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error {
		have, err := c.ServersState(ctx, backend)
		if err != nil {
			return err
		}
		var add []Server
		for _, s := range servers {
			if !slices.ContainsFunc(have, func(h ServerState) bool { return h.Backend == backend && h.Name == s.Name }) {
				add = append(add, s)
			}
		}
		if len(add) == 0 {
			return nil
		}
		return c.AddServers(ctx, backend, add)
	})
}

// delServer deletes a server on every instance, retrying each until it is removable or
// ctx ends. A server already gone from an instance counts as deleted there.
func (f *Fleet) delServer(ctx context.Context, backend, server string) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error {
		err := c.delServer(ctx, backend, server)
		if errors.Is(err, ErrNoSuchServer) {
			return nil
		}
		return err
	})
}

// DelServers puts servers of backend in maintenance and deletes them on every instance,
// retrying each until it is removable or ctx ends, then persists once. Servers already
// gone count as deleted.
func (f *Fleet) DelServers(ctx context.Context, backend string, servers []string) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error {
		for _, srv := range servers {
			if err := c.setState(ctx, backend, srv, StateMaint); err != nil && !errors.Is(err, ErrNoSuchServer) {
				return err
			}
			if err := c.delServer(ctx, backend, srv); err != nil && !errors.Is(err, ErrNoSuchServer) {
				return err
			}
		}
		return nil
	})
}

// SetStates sets the admin state of several servers of backend on every instance, then
// persists once.
func (f *Fleet) SetStates(ctx context.Context, backend string, servers []string, st State) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error {
		for _, srv := range servers {
			if err := c.setState(ctx, backend, srv, st); err != nil {
				return err
			}
		}
		return nil
	})
}

// setState sets a server's admin state on every instance.
func (f *Fleet) setState(ctx context.Context, backend, server string, st State) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.setState(ctx, backend, server, st) })
}

// setWeight sets a server's weight on every instance.
func (f *Fleet) setWeight(ctx context.Context, backend, server string, weight int) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.setWeight(ctx, backend, server, weight) })
}

// SetAddr moves a server on every instance.
func (f *Fleet) SetAddr(ctx context.Context, backend, server, ip string, port int) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.SetAddr(ctx, backend, server, ip, port) })
}

// ShutdownSessions closes a server's sessions on every instance (nothing to persist).
func (f *Fleet) ShutdownSessions(ctx context.Context, backend, server string) error {
	return f.each(ctx, func(ctx context.Context, c *Client) error { return c.ShutdownSessions(ctx, backend, server) })
}

// Do runs the same commands on every instance, then persists.
func (f *Fleet) Do(ctx context.Context, cmds ...Command) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { _, err := c.Do(ctx, cmds...); return err })
}

// replaceMap replaces a map's content atomically on every instance, then persists. It
// is not rolled back across instances; use Flip for a route.
func (f *Fleet) replaceMap(ctx context.Context, file string, entries []MapEntry) error {
	return f.change(ctx, func(ctx context.Context, c *Client) error { return c.replaceMap(ctx, f.mapOf(c, file), entries) })
}

// Flip points key at value in the map on every instance (value "" removes the key),
// all or nothing: the instances
// are changed one after the other, and when one fails, those already changed are put
// back. The error names the instance that failed and wraps ErrFlipRolledBack (or
// ErrRollbackIncomplete when putting back failed too). After a successful flip the
// files are persisted; a persist failure wraps ErrPersist while the flip stays live.
func (f *Fleet) Flip(ctx context.Context, file, key, value string) error {
	type undo struct {
		c       *Client
		prev    string
		existed bool
	}
	var done []undo
	for _, in := range f.instances {
		prev, existed, read, err := in.Client.putMap(ctx, f.mapOf(in.Client, file), key, value)
		if read {
			// Once the old value is known, the instance may have the new one even if
			// the answer was lost: undo it too (restoring an unchanged entry is a no-op).
			done = append(done, undo{in.Client, prev, existed})
		}
		if err == nil {
			continue
		}
		failure := fmt.Errorf("flip %s %s → %s failed on haproxy %s: %w", file, key, value, in.Client.Name(), err)
		// Put back what was changed, with a context of its own: ctx may be what ended.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		var rerrs []error
		for i := len(done) - 1; i >= 0; i-- {
			u := done[i]
			if rerr := u.c.restoreMap(rctx, f.mapOf(u.c, file), key, u.prev, u.existed); rerr != nil {
				rerrs = append(rerrs, nameErr(u.c, rerr))
			}
		}
		if len(rerrs) > 0 {
			return errors.Join(failure, ErrRollbackIncomplete, errors.Join(rerrs...))
		}
		return fmt.Errorf("%w; %w", failure, ErrFlipRolledBack)
	}
	return f.persistIfLayout(ctx)
}

// SetCanary sends weight percent (0..100) of key's traffic to backend through the canary
// map on every instance, all or nothing like Flip; weight 0 removes the entry.
func (f *Fleet) SetCanary(ctx context.Context, key, backend string, weight int) error {
	if f.layout == nil {
		return errors.New("haproxy fleet: SetCanary needs a layout (it names the canary map)")
	}
	if weight < 0 || weight > 100 {
		return fmt.Errorf("canary weight %d: want 0..100: %w", weight, ErrInvalidArgument)
	}
	if err := CheckName("backend", backend); err != nil {
		return err
	}
	if weight == 0 {
		return f.change(ctx, func(ctx context.Context, c *Client) error {
			return c.restoreMap(ctx, f.mapOf(c, f.layout.CanaryMap()), key, "", false)
		})
	}
	return f.Flip(ctx, f.layout.CanaryMap(), key, canaryValue(backend, weight))
}

// Stat returns `show stat` (for one backend, or all with "") of every instance, by
// instance name.
func (f *Fleet) Stat(ctx context.Context, backend string) (map[string][]Stat, error) {
	return collect(ctx, f, func(ctx context.Context, c *Client) ([]Stat, error) { return c.Stat(ctx, backend) })
}

// ServersState returns `show servers state` of every instance, by instance name.
func (f *Fleet) ServersState(ctx context.Context, backend string) (map[string][]ServerState, error) {
	return collect(ctx, f, func(ctx context.Context, c *Client) ([]ServerState, error) { return c.ServersState(ctx, backend) })
}

// collect runs read on every instance at once and returns the answers by instance name,
// an instance's even when it failed (with the failures joined in the error).
func collect[T any](ctx context.Context, f *Fleet, read func(context.Context, *Client) (T, error)) (map[string]T, error) {
	out := make(map[string]T, len(f.instances))
	var mu sync.Mutex
	err := f.each(ctx, func(ctx context.Context, c *Client) error {
		v, err := read(ctx, c)
		mu.Lock()
		out[c.Name()] = v
		mu.Unlock()
		return err
	})
	return out, err
}

// GetMap returns key's value in the map of every instance, by instance name ("" and
// absent from the result when an instance has no such key).
func (f *Fleet) GetMap(ctx context.Context, file, key string) (map[string]string, error) {
	out := map[string]string{}
	var mu sync.Mutex
	err := f.each(ctx, func(ctx context.Context, c *Client) error {
		v, ok, err := c.GetMap(ctx, f.mapOf(c, file), key)
		if ok {
			mu.Lock()
			out[c.Name()] = v
			mu.Unlock()
		}
		return err
	})
	return out, err
}

// Reload persists (so the new workers load the live state), then reloads every instance
// through its master CLI, one after the other, each waited for until its new worker
// answers on the admin socket.
func (f *Fleet) Reload(ctx context.Context) error {
	if err := f.persistIfLayout(ctx); err != nil {
		return err
	}
	for _, in := range f.instances {
		if in.Master == nil {
			return &InstanceError{Instance: in.Client.Name(), Err: errors.New("no master socket configured: cannot reload")}
		}
		if err := in.Master.Reload(ctx); err != nil {
			return nameErr(in.Client, err)
		}
		pid, _, err := in.Master.worker(ctx)
		if err != nil {
			return nameErr(in.Client, err)
		}
		err = pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
			info, err := in.Client.Info(ctx)
			if err != nil {
				return false, err
			}
			if info.Pid == pid {
				return true, nil
			}
			return false, fmt.Errorf("admin socket still answered by pid %d, want %d", info.Pid, pid)
		})
		if err != nil {
			return nameErr(in.Client, err)
		}
	}
	return nil
}
