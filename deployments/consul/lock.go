package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// One file holds the app lock: session, acquire with wait, renewal, loss, holder records
// and force-release — the pieces share the session's life and are read together.

// Lock errors.
var (
	// ErrLocked: another holder has the app's lock. The error is a *BusyError.
	ErrLocked = errors.New("app is locked")
	// ErrLockLost: the lock's session ended (TTL expired or force-released) or its key
	// was taken, while this process believed it held the lock.
	ErrLockLost = errors.New("lock lost")
	// ErrNotLocked: ForceRelease found nobody holding the lock.
	ErrNotLocked = errors.New("app is not locked")
)

// Lock session limits and defaults.
const (
	// MinLockTTL is Consul's smallest session TTL.
	MinLockTTL = 10 * time.Second
	// MaxLockTTL is Consul's largest session TTL.
	MaxLockTTL = 24 * time.Hour
	// DefaultLockTTL is used when LockOptions.TTL is zero. A holder that dies leaves
	// the lock busy for up to twice this long (Consul enforces TTLs lazily).
	DefaultLockTTL = 15 * time.Second
)

// Holder says who holds a lock; it is stored as JSON in the lock key.
type Holder struct {
	Host    string    `json:"host"`
	Pid     int       `json:"pid"`
	Command string    `json:"command"`
	Since   time.Time `json:"since"`
	// PidSpace names the machine boot and PID namespace Pid is in ("" when unknown), so
	// that a pid is only ever compared with pids of the same space (see PidSpace).
	PidSpace string        `json:"pid_space,omitempty"`
	TTL      time.Duration `json:"-"` // the holder's session TTL (stored as "ttl": "15s")
	Session  string        `json:"-"` // the Consul session holding the key (read back)
}

type holderJSON struct {
	Host     string    `json:"host"`
	Pid      int       `json:"pid"`
	Command  string    `json:"command"`
	Since    time.Time `json:"since"`
	PidSpace string    `json:"pid_space,omitempty"`
	TTL      string    `json:"ttl,omitempty"`
}

func (h Holder) encode() []byte {
	b, _ := json.Marshal(holderJSON{Host: h.Host, Pid: h.Pid, Command: h.Command, Since: h.Since.UTC(), PidSpace: h.PidSpace, TTL: h.TTL.String()})
	return b
}

func decodeHolder(p *api.KVPair) Holder {
	var j holderJSON
	h := Holder{Session: p.Session}
	if err := json.Unmarshal(p.Value, &j); err != nil {
		h.Command = fmt.Sprintf("(unreadable holder record %q)", truncate(string(p.Value), 80))
		return h
	}
	h.Host, h.Pid, h.Command, h.Since, h.PidSpace = j.Host, j.Pid, j.Command, j.Since, j.PidSpace
	h.TTL, _ = time.ParseDuration(j.TTL)
	return h
}

// String reads like `pid 4242 on host "ci-1" running "swap web green" since 2026-01-02T15:04:05Z`.
func (h Holder) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "pid %d on host %q", h.Pid, h.Host)
	if h.Command != "" {
		fmt.Fprintf(&b, " running %q", h.Command)
	}
	if !h.Since.IsZero() {
		fmt.Fprintf(&b, " since %s", h.Since.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// Me is this process as a holder: hostname, pid, command (os.Args joined when empty),
// since now.
func Me(command string) Holder {
	host, _ := os.Hostname()
	if command == "" {
		command = strings.Join(os.Args, " ")
	}
	return Holder{Host: host, Pid: os.Getpid(), Command: command, Since: time.Now().UTC(), PidSpace: PidSpace()}
}

// PidSpace names this process's PID space: the machine's boot ID and the PID namespace,
// e.g. "fa5da7ac-6c49-44f7-8e8b-f715ffeab309/pid:[4026531836]". Two processes with the
// same PidSpace see the same pids; a swap in a container with the host's hostname does
// not. It is "" where Linux's /proc does not tell.
func PidSpace() string {
	boot, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(boot)) + "/" + ns
}

// BusyError is returned when an app's lock is held by someone else. It wraps ErrLocked.
type BusyError struct {
	App    string
	Holder Holder // zero when Consul refused the lock although nobody held it
	Waited time.Duration
}

func (e *BusyError) Error() string {
	waited := ""
	if e.Waited > 0 {
		waited = fmt.Sprintf(" (gave up after waiting %s)", e.Waited.Round(time.Millisecond))
	}
	if e.Holder.Session == "" {
		return fmt.Sprintf("consul: lock app %s: %v%s: Consul refused the lock although nobody holds it: "+
			"the previous holder's session ended moments ago and its lock-delay is still running; retry in a few seconds or wait (--wait)",
			e.App, ErrLocked, waited)
	}
	ttl := ""
	if e.Holder.TTL > 0 {
		ttl = fmt.Sprintf(" (its session TTL is %s: a dead holder's lock frees within %s)", e.Holder.TTL, 2*e.Holder.TTL)
	}
	return fmt.Sprintf("consul: lock app %s: %v by %s%s; another swap of this app is in progress: wait for it (--wait), "+
		"or if that process is gone, force-release the lock or let its session expire%s",
		e.App, ErrLocked, e.Holder, waited, ttl)
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *BusyError) Unwrap() error { return ErrLocked }

// LockOptions tune Lock.
type LockOptions struct {
	// TTL of the lock's session (default DefaultLockTTL, at least MinLockTTL). The lock
	// renews it every TTL/3; if this process dies, Consul frees the lock between TTL
	// and 2×TTL after the last renewal.
	TTL time.Duration
	// Wait is how long to wait for a busy lock; 0 fails at once with a *BusyError.
	Wait time.Duration
	// Holder is who takes the lock; zero fields default to Me("").
	Holder Holder
	// LockDelay is the session's lock-delay: how long Consul keeps the key from being
	// locked again after the session is invalidated (expired or destroyed). Default 0;
	// docs/consul.md says why.
	LockDelay time.Duration
}

// Lock is a held app lock: a Consul session owning the key LockKey(app). It renews the
// session in a goroutine it owns until Unlock or until the lock is lost.
type Lock struct {
	r       *Registry
	app     string
	key     string // full key
	session string
	holder  Holder
	ttl     time.Duration
	log     *zap.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	lost   chan struct{}

	mu       sync.Mutex
	err      error // why it was lost
	unlocked bool
}

// freeGrace is how long Lock keeps retrying a free key that Consul refuses (lock-delay
// of a session that just ended) when LockOptions.Wait is shorter.
const freeGrace = 2 * time.Second

// Lock takes app's lock. When another holder has it, Lock returns a *BusyError naming
// the holder at once (Wait 0), or waits with a blocking query until the key is free or
// Wait has passed. ctx bounds only the taking: once held, the lock lives until Unlock
// (or until it is lost, see Lost), so a swap whose context was cancelled can still roll
// back under it.
func (r *Registry) Lock(ctx context.Context, app string, opts LockOptions) (*Lock, error) {
	if !deployments.NamePattern.MatchString(app) {
		return nil, fmt.Errorf("consul: lock app %q: the name must match %s", app, deployments.NamePattern)
	}
	ttl := opts.TTL
	if ttl == 0 {
		ttl = DefaultLockTTL
	}
	if ttl < MinLockTTL || ttl > MaxLockTTL {
		return nil, fmt.Errorf("consul: lock app %s: TTL %s: Consul accepts %s to %s", app, ttl, MinLockTTL, MaxLockTTL)
	}
	holder := opts.Holder
	me := Me("")
	if holder.Host == "" {
		holder.Host = me.Host
	}
	if holder.Pid == 0 {
		holder.Pid = me.Pid
	}
	if holder.Command == "" {
		holder.Command = me.Command
	}
	if holder.Since.IsZero() {
		holder.Since = me.Since
	}
	if holder.PidSpace == "" {
		holder.PidSpace = me.PidSpace
	}
	holder.TTL = ttl

	key := r.Key(LockKey(app))
	renewedAt := time.Now() // when the latest create or renew of the session was sent
	sid, err := r.createSession(ctx, app, ttl, opts.LockDelay)
	if err != nil {
		return nil, err
	}
	holder.Session = sid
	giveUp := func(err error) (*Lock, error) {
		// ctx may be done: clean up with a context of our own.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, derr := r.client.Session().Destroy(sid, r.write(dctx)); derr != nil {
			r.log.Warn("destroying an unused lock session failed; it expires after its TTL",
				zap.String("app", app), zap.String("session", sid), zap.Error(derr))
		}
		return nil, err
	}

	start := time.Now()
	deadline := start.Add(opts.Wait)
	busy := func(h Holder) error {
		b := &BusyError{App: app, Holder: h}
		if opts.Wait > 0 {
			b.Waited = time.Since(start)
		}
		return b
	}
	var (
		refusedSince time.Time
		logged       bool
	)
	for {
		// The session is not renewed by a goroutine until the lock is held: keep it
		// alive while waiting, and replace it if it ended anyway.
		if time.Since(renewedAt) >= ttl/3 {
			sent := time.Now()
			entry, _, err := r.client.Session().Renew(sid, r.write(ctx))
			if err != nil {
				return giveUp(r.fail("renew the lock session of app "+app, err))
			}
			if entry == nil {
				if sid, err = r.createSession(ctx, app, ttl, opts.LockDelay); err != nil {
					return nil, err
				}
				holder.Session = sid
			}
			renewedAt = sent
		}
		ok, _, err := r.client.KV().Acquire(&api.KVPair{Key: key, Value: holder.encode(), Session: sid}, r.write(ctx))
		if err != nil {
			return giveUp(r.fail("lock app "+app, err))
		}
		if ok {
			break
		}
		pair, meta, err := r.client.KV().Get(key, r.query(ctx))
		if err != nil {
			return giveUp(r.fail("read the lock of app "+app, err))
		}
		if pair == nil || pair.Session == "" {
			// Free, yet refused: a lock-delay, or a holder that came and went.
			if refusedSince.IsZero() {
				refusedSince = time.Now()
			}
			if time.Now().After(deadline) && time.Since(refusedSince) > freeGrace {
				return giveUp(busy(Holder{}))
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return giveUp(fmt.Errorf("consul: lock app %s: %w", app, err))
			}
			continue
		}
		refusedSince = time.Time{}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return giveUp(busy(decodeHolder(pair)))
		}
		if !logged {
			r.log.Info("app is locked; waiting", zap.String("app", app), zap.String("holder", decodeHolder(pair).String()),
				zap.Duration("wait", remaining))
			logged = true
		}
		// Block until the key changes, the wait is over, or the session needs renewing.
		wait := min(remaining, ttl/3)
		wctx, cancel := context.WithDeadline(ctx, time.Now().Add(wait+wait/16+100*time.Millisecond))
		q := &api.QueryOptions{WaitIndex: meta.LastIndex, WaitTime: wait}
		_, _, err = r.client.KV().Get(key, q.WithContext(wctx))
		cancel()
		if ctx.Err() != nil {
			return giveUp(fmt.Errorf("consul: lock app %s: waiting for %s: %w", app, decodeHolder(pair), ctx.Err()))
		}
		if err != nil && wctx.Err() == nil {
			return giveUp(r.fail("wait for the lock of app "+app, err))
		}
	}

	lctx, cancel := context.WithCancel(context.Background())
	l := &Lock{r: r, app: app, key: key, session: sid, holder: holder, ttl: ttl, cancel: cancel,
		lost: make(chan struct{}), log: r.log.With(zap.String("app", app), zap.String("session", sid))}
	l.wg.Add(2)
	go l.renew(lctx, renewedAt)
	go l.watchKey(lctx)
	l.log.Info("locked", zap.String("holder", holder.String()), zap.Duration("ttl", ttl))
	return l, nil
}

// createSession makes the lock's session: TTL, behavior delete (an invalidated session
// deletes the key, so a present key with a session always names a live holder) and
// the lock-delay. The raw endpoint is used because the api client cannot send a
// lock-delay of zero (it omits it, and Consul then applies 15s).
func (r *Registry) createSession(ctx context.Context, app string, ttl, lockDelay time.Duration) (string, error) {
	body := map[string]any{
		"Name":      "swap lock " + app,
		"TTL":       ttl.String(),
		"Behavior":  api.SessionBehaviorDelete,
		"LockDelay": lockDelay.String(),
	}
	var out struct{ ID string }
	if _, err := r.client.Raw().Write("/v1/session/create", body, &out, r.write(ctx)); err != nil {
		return "", r.fail("create the lock session for app "+app, err)
	}
	if out.ID == "" {
		return "", fmt.Errorf("consul: create the lock session for app %s: Consul answered no session ID", app)
	}
	return out.ID, nil
}

// renew keeps the session alive every TTL/3. The lock counts as lost when Consul says
// the session is gone, or when no renewal has succeeded for a TTL (measured from when
// the last successful renewal was sent, so this process gives up before Consul can
// expire the session, which happens no earlier than TTL after that renewal).
func (l *Lock) renew(ctx context.Context, lastOK time.Time) {
	defer l.wg.Done()
	every := l.ttl / 3
	wait := max(0, every-time.Since(lastOK))
	for {
		if err := sleepCtx(ctx, wait); err != nil {
			return
		}
		sent := time.Now()
		entry, _, err := l.r.client.Session().Renew(l.session, l.r.write(ctx))
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && entry == nil:
			l.markLost(fmt.Errorf("consul: app %s: %w: its session expired or was destroyed (force-released?)", l.app, ErrLockLost))
			return
		case err == nil:
			lastOK, wait = sent, every
		default:
			if time.Since(lastOK) >= l.ttl {
				l.markLost(fmt.Errorf("consul: app %s: %w: no session renewal succeeded for %s: %w", l.app, ErrLockLost, l.ttl, l.r.fail("renew", err)))
				return
			}
			l.log.Warn("renewing the lock session failed; retrying", zap.Error(err))
			wait = min(time.Second, every)
		}
	}
}

// watchKey notices at once when the key is deleted or taken by another session, e.g.
// after a force-release.
func (l *Lock) watchKey(ctx context.Context) {
	defer l.wg.Done()
	var index uint64
	backoff := 100 * time.Millisecond
	for {
		q := &api.QueryOptions{WaitIndex: index, WaitTime: 5 * time.Minute}
		pair, meta, err := l.r.client.KV().Get(l.key, q.WithContext(ctx))
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// The renewer decides when failures mean loss; keep trying.
			if sleepCtx(ctx, backoff) != nil {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if pair == nil || pair.Session != l.session {
			by := "deleted"
			if pair != nil && pair.Session != "" {
				by = "taken by " + decodeHolder(pair).String()
			} else if pair != nil {
				by = "released"
			}
			l.markLost(fmt.Errorf("consul: app %s: %w: the lock key was %s (force-released?)", l.app, ErrLockLost, by))
			return
		}
		if meta.LastIndex < index {
			index = 0
		} else {
			index = meta.LastIndex
		}
	}
}

func (l *Lock) markLost(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.unlocked {
		return
	}
	l.err = err
	l.log.Error("lock lost", zap.Error(err))
	close(l.lost)
	l.cancel()
}

// Lost is closed when the lock is lost while held: its session expired or was
// destroyed (ForceRelease), or the key was deleted or taken. Err says why. It is not
// closed by Unlock.
func (l *Lock) Lost() <-chan struct{} { return l.lost }

// Err is nil while the lock is held or after Unlock, and the reason (wrapping
// ErrLockLost) once it is lost.
func (l *Lock) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Holder is who holds this lock (this process).
func (l *Lock) Holder() Holder { return l.holder }

// App is the locked app.
func (l *Lock) App() string { return l.app }

// Unlock stops renewing, deletes the key if the session still holds it, and destroys
// the session. It returns an error wrapping ErrLockLost if the lock had been lost.
// Calling it again does nothing.
func (l *Lock) Unlock(ctx context.Context) error {
	l.mu.Lock()
	if l.unlocked {
		l.mu.Unlock()
		return nil
	}
	l.unlocked = true
	lostErr := l.err
	l.mu.Unlock()
	l.cancel()
	l.wg.Wait()

	var errs []error
	if lostErr != nil {
		errs = append(errs, lostErr)
	} else {
		// Delete the key only while our session holds it: no lock-delay applies to a
		// key deleted this way, and nobody else's lock is ever touched.
		ops := api.KVTxnOps{
			{Verb: api.KVCheckSession, Key: l.key, Session: l.session},
			{Verb: api.KVDelete, Key: l.key},
		}
		ok, _, _, err := l.r.client.KV().Txn(ops, l.r.query(ctx))
		switch {
		case err != nil:
			errs = append(errs, l.r.fail("unlock app "+l.app, err))
		case !ok:
			errs = append(errs, fmt.Errorf("consul: unlock app %s: %w: the key was no longer held by this session", l.app, ErrLockLost))
		}
	}
	if _, err := l.r.client.Session().Destroy(l.session, l.r.write(ctx)); err != nil && !isNotFound(err) {
		errs = append(errs, l.r.fail("destroy the lock session of app "+l.app, err))
	}
	if len(errs) == 0 {
		l.log.Info("unlocked")
	}
	return errors.Join(errs...)
}

// LockHolder reads who holds app's lock; ok is false when nobody does.
func (r *Registry) LockHolder(ctx context.Context, app string) (h Holder, ok bool, err error) {
	pair, _, err := r.client.KV().Get(r.Key(LockKey(app)), r.query(ctx))
	if err != nil {
		return Holder{}, false, r.fail("read the lock of app "+app, err)
	}
	if pair == nil || pair.Session == "" {
		return Holder{}, false, nil
	}
	return decodeHolder(pair), true, nil
}

// ForceRelease destroys the session holding app's lock, which deletes the key, and
// returns who held it. Use it when the holder is known to be dead and its TTL is too
// long to wait for; a holder that is still alive sees Lost close. It returns an error
// wrapping ErrNotLocked when nobody holds the lock.
func (r *Registry) ForceRelease(ctx context.Context, app string) (Holder, error) {
	h, ok, err := r.LockHolder(ctx, app)
	if err != nil {
		return Holder{}, err
	}
	if !ok {
		return Holder{}, fmt.Errorf("consul: force-release app %s: %w: nothing to release", app, ErrNotLocked)
	}
	if _, err := r.client.Session().Destroy(h.Session, r.write(ctx)); err != nil && !isNotFound(err) {
		return h, r.fail("force-release app "+app+" (destroy session "+h.Session+")", err)
	}
	r.log.Warn("lock force-released", zap.String("app", app), zap.String("holder", h.String()))
	return h, nil
}

// ForceReleaseHolder destroys the session of h, a holder of app's lock read with
// LockHolder, and nothing else: a lock taken since h was read (by a new session) is never
// touched. A session already gone is not an error. Use it to free the lock of a holder
// known to be dead.
func (r *Registry) ForceReleaseHolder(ctx context.Context, app string, h Holder) error {
	if h.Session == "" {
		return fmt.Errorf("consul: force-release app %s: %w: the holder %s names no session", app, ErrNotLocked, h)
	}
	if _, err := r.client.Session().Destroy(h.Session, r.write(ctx)); err != nil && !isNotFound(err) {
		return r.fail("force-release app "+app+" (destroy session "+h.Session+")", err)
	}
	r.log.Warn("lock force-released", zap.String("app", app), zap.String("holder", h.String()))
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
