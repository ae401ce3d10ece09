package wire

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/switcher"
)

// Registry adapts the Consul registry to switcher.Registry. The switcher speaks in
// instance IDs ("web-blue-0"); the registry's service IDs carry the installation
// (consul.Registry.ServiceID), and it sees and removes only its installation's services.
type Registry struct{ R *consul.Registry }

var _ switcher.Registry = Registry{}

func (r Registry) Register(ctx context.Context, inst deployments.Instance, check deployments.HealthCheck, version string) error {
	return r.R.Register(ctx, inst, check, version)
}

func (r Registry) Deregister(ctx context.Context, id string) error {
	return r.R.Deregister(ctx, r.R.ServiceID(id))
}

func (r Registry) Instances(ctx context.Context, app string) ([]switcher.RegisteredInstance, error) {
	insts, err := r.R.Instances(ctx, app)
	if err != nil {
		return nil, err
	}
	out := make([]switcher.RegisteredInstance, 0, len(insts))
	for _, in := range insts {
		out = append(out, switcher.RegisteredInstance{ID: in.Instance, Color: in.Color, Passing: in.Passing(), Why: in.Verdict.Reason,
			Addr: net.JoinHostPort(in.Address, strconv.Itoa(in.Port))})
	}
	return out, nil
}

// Store adapts Consul KV to switcher.Store.
type Store struct{ R *consul.Registry }

var _ switcher.Store = Store{}

func (s Store) Get(ctx context.Context, key string) ([]byte, uint64, error) { return s.R.Get(ctx, key) }

func (s Store) CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error) {
	n, err := s.R.CAS(ctx, key, value, index)
	if errors.Is(err, consul.ErrStale) {
		return 0, &staleError{err}
	}
	return n, err
}

// Delete removes key only while its index is still index (check-and-set), so a swap
// that lost its lock never deletes the journal of the swap that took the lock over. A
// key already gone is not an error.
func (s Store) Delete(ctx context.Context, key string, index uint64) error {
	err := s.R.DeleteCAS(ctx, key, index)
	if errors.Is(err, consul.ErrStale) {
		if b, _, gerr := s.R.Get(ctx, key); gerr == nil && b == nil {
			return nil
		}
		return &staleError{err}
	}
	return err
}

// staleError keeps consul.ErrStale in the chain and adds switcher.ErrStale.
type staleError struct{ err error }

func (e *staleError) Error() string   { return e.err.Error() }
func (e *staleError) Unwrap() []error { return []error{e.err, switcher.ErrStale} }

// Locker adapts Consul session locks to switcher.Locker.
type Locker struct {
	R       *consul.Registry
	Command string        // the holder's command line
	TTL     time.Duration // 0: consul's default
	// Log hears when a dead holder's lock is released (nil: nowhere).
	Log *zap.Logger
}

var _ switcher.Locker = Locker{}

// Lock takes app's lock. A lock whose holder is provably dead — a swap process on this
// machine, in this PID namespace, whose pid no longer exists (killed, crashed) — is
// released first instead of waiting up to twice its session TTL for Consul to expire it.
func (l Locker) Lock(ctx context.Context, app string, wait time.Duration) (switcher.Unlocker, error) {
	if h, held, err := l.R.LockHolder(ctx, app); err == nil && held {
		if why, dead := deadHolder(h, consul.Me(""), pidAlive); dead {
			if err := l.R.ForceReleaseHolder(ctx, app, h); err != nil {
				return nil, fmt.Errorf("release the lock of %s left by a dead swap (%s): %w", app, h, err)
			}
			if l.Log != nil {
				l.Log.Warn(fmt.Sprintf("released the lock of %s left by a dead swap: %s; %s", app, h, why),
					zap.String("app", app))
			}
		}
	}
	lk, err := l.R.Lock(ctx, app, consul.LockOptions{TTL: l.TTL, Wait: wait, Holder: consul.Me(l.Command)})
	if err != nil {
		return nil, err
	}
	return lk, nil
}

// deadHolder reports whether lock holder h is known to be dead, as seen by process me:
// h ran swap on the same host and in the same PID space (machine boot and PID
// namespace), and its pid is gone. Anything unsure (another host, a pid that exists,
// perhaps reused, an unknown PID space, a holder that is not swap) is not dead: its lock
// frees when its session expires.
func deadHolder(h, me consul.Holder, alive func(pid int) bool) (why string, dead bool) {
	switch {
	case h.Host == "" || h.Host != me.Host:
		return "", false
	case h.PidSpace == "" || h.PidSpace != me.PidSpace:
		return "", false
	case h.Pid <= 0 || h.Pid == me.Pid:
		return "", false
	case !isSwapCommand(h.Command):
		return "", false
	case alive(h.Pid):
		return "", false
	}
	return fmt.Sprintf("pid %d no longer exists on %s", h.Pid, h.Host), true
}

// isSwapCommand reports whether a holder's command line runs swap (its program's base
// name starts with "swap": swap, swap-linux-amd64, the tests' swap.test).
func isSwapCommand(command string) bool {
	fields := strings.Fields(command)
	return len(fields) > 0 && strings.HasPrefix(filepath.Base(fields[0]), "swap")
}

// pidAlive reports whether pid exists and is not a zombie (a killed process its parent
// has not reaped yet is dead too).
func pidAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if errors.Is(err, syscall.ESRCH) {
		return false
	}
	// It exists (EPERM: owned by someone else), or we cannot tell: not dead.
	stat, rerr := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if rerr != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}

var _ switcher.LockBreaker = Locker{}

// ForceRelease breaks app's lock and names its holder ("" when it was free).
func (l Locker) ForceRelease(ctx context.Context, app string) (string, error) {
	h, err := l.R.ForceRelease(ctx, app)
	if errors.Is(err, consul.ErrNotLocked) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	return h.String(), nil
}

// Mesh adapts the Consul registry's config entries to switcher.Mesh (consul.mesh): the
// app's service-resolver and, during a canary, its service-splitter.
type Mesh struct{ R *consul.Registry }

var _ switcher.Mesh = Mesh{}

// Route points the resolver's default subset at live, then ends any split: the split's
// weights hold until then, so the traffic never goes back to the old color on the way.
// A splitter swap may not delete is found before anything is written.
func (m Mesh) Route(ctx context.Context, app string, live deployments.Color) error {
	if _, err := m.R.Split(ctx, app); err != nil {
		return err
	}
	if err := m.R.WriteResolver(ctx, app, live); err != nil {
		return err
	}
	return m.R.WriteSplit(ctx, app, live, 0)
}

// Split writes the splitter (weight 0 deletes it).
func (m Mesh) Split(ctx context.Context, app string, to deployments.Color, weight int) error {
	return m.R.WriteSplit(ctx, app, to, weight)
}

// Target reads the resolver's default subset and the split. No resolver yet is no
// target, not an error.
func (m Mesh) Target(ctx context.Context, app string) (switcher.MeshTarget, error) {
	var t switcher.MeshTarget
	live, err := m.R.Resolver(ctx, app)
	if err != nil && !errors.Is(err, consul.ErrNoResolver) {
		return t, err
	}
	t.Live = live
	sp, err := m.R.Split(ctx, app)
	if err != nil {
		return t, err
	}
	t.Canary, t.Weight = sp.To, sp.Weight
	return t, nil
}
