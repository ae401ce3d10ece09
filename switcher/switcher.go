package switcher

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// Switcher runs swaps. Its fields are the adapters it drives; set them all (Hooks may be
// nil when no app has hooks) and call its methods from any goroutine: the per-app lock
// serialises swaps of one app.
type Switcher struct {
	Config   *deployments.Config
	Runtime  Runtime
	Registry Registry
	Balancer Balancer
	Store    Store
	Locker   Locker
	Hooks    HookRunner
	// Mesh is the service mesh's routing (consul.mesh); nil when the mesh is off.
	Mesh Mesh
	Log  *zap.Logger

	// OnEvent hears every event, in order, on the swapping goroutine.
	OnEvent func(Event)
	// Fault, when set, is called before ("before") and after ("after") every step: the
	// fault-injection point crash tests arm.
	Fault func(step Step, phase string)
	// LookupEnv resolves bare KEY lines of env files (os.LookupEnv in production).
	LookupEnv func(string) (string, bool)
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// ProbeInterval, when set, overrides the gate's polling of Consul and HAProxy
	// (default: the app's healthcheck interval, at most 500ms).
	ProbeInterval time.Duration
}

// Options tune one operation.
type Options struct {
	// DryRun plans and returns the plan without changing anything.
	DryRun bool
	// Wait is how long to wait for a busy lock (0: fail at once).
	Wait time.Duration
}

// Outcomes of an operation.
const (
	OutcomeDone       = "done"
	OutcomeNothing    = "nothing to do"
	OutcomeDryRun     = "dry run"
	OutcomeWaiting    = "waiting for promote"
	OutcomeRolledBack = "rolled back"
	OutcomeFailed     = "failed"
)

// Result is what an operation did.
type Result struct {
	Plan    Plan       `json:"plan"`
	Outcome string     `json:"outcome"`
	Steps   []StepTime `json:"steps,omitempty"`
	// Instances are the new color's instances.
	Instances []deployments.Instance `json:"instances,omitempty"`
	Message   string                 `json:"message,omitempty"`
	// Retiring is the old color a done swap kept up for scale_down_delay, until
	// RetireAt; Retired says whether it has been removed since.
	Retiring deployments.Color `json:"retiring,omitempty"`
	RetireAt time.Time         `json:"retire_at,omitzero"`
	Retired  bool              `json:"retired,omitempty"`
}

// Sentinel errors. A failed swap is an *Error wrapping the cause.
var (
	ErrPreviewPending = errors.New("a swap waits in preview")
	ErrBadInput       = errors.New("bad input")
	ErrNothingToDo    = errors.New("nothing to do")
	ErrNoPrevious     = errors.New("no previous version to roll back to")
	ErrNotHealthy     = errors.New("not healthy")
	ErrTooMany5xx     = errors.New("5xx rate over the threshold")
	ErrImageInUse     = errors.New("image in use")
	ErrLiveColor      = errors.New("refusing to touch the live color")
	// ErrLockLost: the Consul session behind the app's lock is gone (partition, agent
	// restart, TTL expiry). The swap stops before its next change and rolls nothing
	// back without the lock; `swap resume` repairs it under a new lock.
	ErrLockLost = errors.New("lost the app's lock")
)

// lockLostKey carries the held lock's Lost channel in the swap's context, so that
// repairs that outlive a cancelled context (cleanupCtx) still stop when the lock goes.
type lockLostKey struct{}

// lockLost returns the Lost channel of the lock ctx was made under (nil: none).
func lockLost(ctx context.Context) <-chan struct{} {
	ch, _ := ctx.Value(lockLostKey{}).(<-chan struct{})
	return ch
}

// Error is a failed operation: which app and color, at which step, and whether the live
// color was kept serving (RolledBack).
type Error struct {
	App        string
	Color      deployments.Color
	Step       Step
	Err        error
	RolledBack bool
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s to %s failed at %s: %v", e.App, e.Color, e.Step, e.Err)
	if e.RolledBack {
		fmt.Fprintf(&b, "; rolled back: the live color keeps serving and %s's new instances are removed", e.Color)
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

func (s *Switcher) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Switcher) log() *zap.Logger {
	if s.Log == nil {
		return zap.NewNop()
	}
	return s.Log
}

func (s *Switcher) kv() kv { return kv{store: s.Store} }

func (s *Switcher) emit(e Event) {
	s.emitTo(s.log().With(zap.String("app", e.App), zap.String("deploy", e.Deploy)), e)
}

// emitTo logs e on l (scoped with its app and deploy) and hands it to OnEvent.
func (s *Switcher) emitTo(l *zap.Logger, e Event) {
	if e.Time.IsZero() {
		e.Time = s.now()
	}
	l = l.With(zap.String("step", string(e.Step)))
	fields := []zap.Field{zap.String("kind", string(e.Kind))}
	if e.Instance != "" {
		fields = append(fields, zap.String("instance", e.Instance))
	}
	if e.Elapsed > 0 {
		fields = append(fields, zap.Duration("elapsed", e.Elapsed))
	}
	if e.Kind == EventFailed {
		l.Warn(e.Message, fields...)
	} else {
		l.Debug(e.Message, fields...)
	}
	if s.OnEvent != nil {
		s.OnEvent(e)
	}
}

func (s *Switcher) fault(step Step, phase string) {
	if s.Fault != nil {
		s.Fault(step, phase)
	}
}

// newDeployID names a deploy: UTC time plus 4 random bytes, e.g. 20261122-031500-9f2c01ab.
func newDeployID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

func (s *Switcher) app(name string) (*deployments.App, error) {
	return s.Config.App(name)
}

// appState returns app's spec and its state as stored, for the reads and operations
// that need both (an unknown app is an error before the store is asked).
func (s *Switcher) appState(ctx context.Context, app string) (*deployments.App, *storedState, error) {
	spec, err := s.app(app)
	if err != nil {
		return nil, nil, err
	}
	st, err := s.kv().state(ctx, app)
	if err != nil {
		return nil, nil, err
	}
	return spec, st, nil
}

// lockChecked takes the app's lock (see lock), then runs the preflight under it: a
// service that does not answer lets the lock go again before anything changed.
func (s *Switcher) lockChecked(ctx context.Context, app string, wait time.Duration) (context.Context, func(), error) {
	lctx, release, err := s.lock(ctx, app, wait)
	if err != nil {
		return nil, nil, err
	}
	if err := s.preflight(lctx, app); err != nil {
		release()
		return nil, nil, err
	}
	return lctx, release, nil
}

// lock takes the app's lock and returns a context that ends if the lock is lost.
func (s *Switcher) lock(ctx context.Context, app string, wait time.Duration) (context.Context, func(), error) {
	start := s.now()
	s.emit(Event{App: app, Step: StepLock, Kind: EventStart, Message: "taking the lock"})
	l, err := s.Locker.Lock(ctx, app, wait)
	if err != nil {
		s.emit(Event{App: app, Step: StepLock, Kind: EventFailed, Message: err.Error()})
		return nil, nil, err
	}
	s.emit(Event{App: app, Step: StepLock, Kind: EventDone, Message: "lock held", Elapsed: s.now().Sub(start)})
	lctx, cancel := context.WithCancelCause(context.WithValue(ctx, lockLostKey{}, l.Lost()))
	go func() {
		select {
		case <-l.Lost():
			cancel(fmt.Errorf("%w of %s (its Consul session is gone): the swap stopped before its next change and rolled nothing back; run `swap resume %s`",
				ErrLockLost, app, app))
		case <-lctx.Done():
		}
	}()
	release := func() {
		cancel(nil)
		uctx, c := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer c()
		if err := l.Unlock(uctx); err != nil {
			s.log().Warn("unlock failed; the lock frees when its session expires", zap.String("app", app), zap.Error(err))
		}
	}
	return lctx, release, nil
}

// cause returns why ctx ended, or err.
func cause(ctx context.Context, err error) error {
	if c := context.Cause(ctx); c != nil && !errors.Is(c, context.Canceled) {
		return c
	}
	return err
}
