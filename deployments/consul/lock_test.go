package consul

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestLock_TwoProcessesRaceExactlyOneWinsAndAWaiterGetsItAfterRelease(t *testing.T) {
	agent := testenv.Consul(t)
	const app = "race"
	a := startLocker(t, agent, app, "locker-a", MinLockTTL)
	b := startLocker(t, agent, app, "locker-b", MinLockTTL)
	a.send("go")
	b.send("go")
	ra, rb := a.next(), b.next()

	winner, loser, loserSaid := a, b, rb
	if rb == "LOCKED" {
		winner, loser, loserSaid = b, a, ra
	}
	if got := []string{ra, rb}; (ra == "LOCKED") == (rb == "LOCKED") {
		t.Fatalf("exactly one locker must win; they said %q", got)
	}
	// The loser failed fast, naming the winner.
	after, ok := strings.CutPrefix(loserSaid, "BUSY ")
	if !ok {
		t.Fatalf("locker %s: got %q, want BUSY <holder>", loser.name, loserSaid)
	}
	var seen Holder
	if err := json.Unmarshal([]byte(after), &seen); err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if seen.Pid != winner.pid || seen.Command != winner.name || seen.Host != host || seen.Since.IsZero() {
		t.Errorf("loser saw holder %+v, want pid %d command %s host %s", seen, winner.pid, winner.name, host)
	}

	// A third contender, this process, fails fast too, with an error that says who and what to do.
	core, logs := observer.New(zapcore.InfoLevel)
	r, err := New(deployments.ConsulConfig{Address: agent.Addr}, zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Lock(ctxFor(t, 30*time.Second), app, LockOptions{TTL: MinLockTTL})
	var busy *BusyError
	if !errors.As(err, &busy) || !errors.Is(err, ErrLocked) {
		t.Fatalf("Lock of a held lock = %v, want a *BusyError wrapping ErrLocked", err)
	}
	if busy.Holder.Pid != winner.pid || busy.App != app || busy.Waited != 0 {
		t.Errorf("BusyError = %+v, want holder pid %d of app %s without waiting", busy, winner.pid, app)
	}
	mustContain(t, err.Error(), "pid "+strconv.Itoa(winner.pid), winner.name, host, "--wait", "force-release", "20s")
	if h, held, err := r.LockHolder(ctxFor(t, 10*time.Second), app); err != nil || !held || h.Pid != winner.pid {
		t.Fatalf("LockHolder = %+v, %v, %v; want pid %d", h, held, err, winner.pid)
	}

	// With a wait, this process blocks until the winner unlocks, then holds the lock.
	type result struct {
		l   *Lock
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := r.Lock(ctxFor(t, 90*time.Second), app, LockOptions{TTL: MinLockTTL, Wait: 60 * time.Second, Holder: Me("waiter")})
		got <- result{l, err}
	}()
	testenv.WaitFor(t, 30*time.Second, "the waiter to block", func() error {
		if logs.FilterMessage("app is locked; waiting").Len() == 0 {
			return errors.New("not waiting yet")
		}
		return nil
	})
	winner.send("unlock")
	winner.expect("UNLOCKED")
	res := <-got
	if res.err != nil {
		t.Fatalf("waiting Lock: %v", res.err)
	}
	h, held, err := r.LockHolder(ctxFor(t, 10*time.Second), app)
	if err != nil || !held || h.Pid != os.Getpid() || h.Command != "waiter" || h.Session != res.l.holder.Session {
		t.Fatalf("after the handover LockHolder = %+v, %v, %v; want this process", h, held, err)
	}
	if err := res.l.Unlock(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, held, _ := r.LockHolder(ctxFor(t, 10*time.Second), app); held {
		t.Fatal("the lock is still held after Unlock")
	}
}

func TestLock_AKilledHoldersLockFreesAfterItsTTL(t *testing.T) {
	t.Parallel()
	agent := testenv.Consul(t)
	r := registry(t, agent)
	const app = "killed"
	holder := startLocker(t, agent, app, "doomed", MinLockTTL)
	holder.send("go")
	holder.expect("LOCKED")

	if err := holder.cmd.Process.Kill(); err != nil { // SIGKILL our own child: no Unlock runs
		t.Fatal(err)
	}
	<-holder.stopped

	// Its session outlives it: still busy, naming the dead holder.
	_, err := r.Lock(ctxFor(t, 30*time.Second), app, LockOptions{TTL: MinLockTTL})
	var busy *BusyError
	if !errors.As(err, &busy) || busy.Holder.Pid != holder.pid {
		t.Fatalf("Lock right after the kill = %v, want busy by pid %d", err, holder.pid)
	}
	// Consul expires the session between TTL and 2×TTL after the last renewal; the wait
	// bound is generous on purpose.
	l, err := r.Lock(ctxFor(t, 90*time.Second), app, LockOptions{TTL: MinLockTTL, Wait: 75 * time.Second})
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	if h := l.Holder(); h.Pid != os.Getpid() {
		t.Errorf("holder = %+v, want this process", h)
	}
	if err := l.Unlock(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestLock_AWaiterKeepsItsSessionAliveLongerThanItsTTL(t *testing.T) {
	t.Parallel()
	agent := testenv.Consul(t)
	r := registry(t, agent)
	const app = "patient"
	holder, err := r.Lock(ctxFor(t, 10*time.Second), app, LockOptions{TTL: MinLockTTL, Holder: Me("holder")})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		l   *Lock
		err error
	}
	got := make(chan result, 1)
	go func() {
		l, err := r.Lock(ctxFor(t, 120*time.Second), app, LockOptions{TTL: MinLockTTL, Wait: 90 * time.Second, Holder: Me("waiter")})
		got <- result{l, err}
	}()
	// Longer than Consul could keep an unrenewed session (2×TTL) alive.
	select {
	case res := <-got:
		t.Fatalf("the waiter returned while the lock was held: %v", res.err)
	case <-time.After(2*MinLockTTL + 5*time.Second):
	}
	if err := holder.Unlock(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	res := <-got
	if res.err != nil {
		t.Fatalf("the waiter: %v", res.err)
	}
	if h, held, _ := r.LockHolder(ctxFor(t, 10*time.Second), app); !held || h.Command != "waiter" {
		t.Fatalf("holder after the wait = %+v, held %v", h, held)
	}
	if err := res.l.Unlock(ctxFor(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
}

func TestLock_InProcess(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)

	t.Run("unlock frees it at once, and unlocking twice does nothing", func(t *testing.T) {
		ctx := ctxFor(t, 30*time.Second)
		l, err := r.Lock(ctx, "plain", LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if h := l.Holder(); h.TTL != DefaultLockTTL || h.Pid != os.Getpid() || h.Command == "" || h.Host == "" {
			t.Errorf("defaults: holder %+v", h)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatalf("second Unlock: %v", err)
		}
		select {
		case <-l.Lost():
			t.Fatal("Lost closed by Unlock")
		default:
		}
		l2, err := r.Lock(ctx, "plain", LockOptions{})
		if err != nil {
			t.Fatalf("Lock right after Unlock: %v", err)
		}
		if err := l2.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
		sessions, _, err := agent.Client.Session().List(nil)
		if err != nil || len(sessions) != 0 {
			t.Fatalf("sessions left after Unlock: %d, %v", len(sessions), err)
		}
	})

	t.Run("force-release frees it at once and the old holder sees it lost", func(t *testing.T) {
		ctx := ctxFor(t, 60*time.Second)
		old, err := r.Lock(ctx, "forced", LockOptions{Holder: Me("stuck swap")})
		if err != nil {
			t.Fatal(err)
		}
		h, err := r.ForceRelease(ctx, "forced")
		if err != nil || h.Command != "stuck swap" || h.Session == "" {
			t.Fatalf("ForceRelease = %+v, %v", h, err)
		}
		select {
		case <-old.Lost():
		case <-ctx.Done():
			t.Fatal("Lost not closed after a force-release")
		}
		if !errors.Is(old.Err(), ErrLockLost) {
			t.Errorf("Err = %v, want ErrLockLost", old.Err())
		}
		l, err := r.Lock(ctx, "forced", LockOptions{})
		if err != nil {
			t.Fatalf("Lock right after the force-release: %v", err)
		}
		if err := old.Unlock(ctx); !errors.Is(err, ErrLockLost) {
			t.Errorf("Unlock of a lost lock = %v, want ErrLockLost", err)
		}
		if h, held, _ := r.LockHolder(ctx, "forced"); !held || h.Session != l.Holder().Session {
			t.Fatalf("the old holder's Unlock touched the new lock: holder %+v held %v", h, held)
		}
		if err := l.Unlock(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("force-release of a free lock says nothing is locked", func(t *testing.T) {
		_, err := r.ForceRelease(ctxFor(t, 10*time.Second), "free")
		if !errors.Is(err, ErrNotLocked) {
			t.Fatalf("ForceRelease = %v, want ErrNotLocked", err)
		}
	})

	t.Run("a lock-delay keeps a free key refused, then it is granted", func(t *testing.T) {
		ctx := ctxFor(t, 60*time.Second)
		old, err := r.Lock(ctx, "delayed", LockOptions{LockDelay: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ForceRelease(ctx, "delayed"); err != nil {
			t.Fatal(err)
		}
		old.Unlock(ctx)
		_, err = r.Lock(ctx, "delayed", LockOptions{})
		var busy *BusyError
		if !errors.As(err, &busy) || busy.Holder.Session != "" {
			t.Fatalf("Lock during the lock-delay = %v, want a BusyError without holder", err)
		}
		mustContain(t, err.Error(), "lock-delay")
		l, err := r.Lock(ctx, "delayed", LockOptions{Wait: 30 * time.Second})
		if err != nil {
			t.Fatalf("Lock waiting out the lock-delay: %v", err)
		}
		l.Unlock(ctx)
	})

	t.Run("a wait that runs out reports the holder and the time waited", func(t *testing.T) {
		ctx := ctxFor(t, 30*time.Second)
		held, err := r.Lock(ctx, "busy", LockOptions{Holder: Me("long swap")})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock(ctx)
		_, err = r.Lock(ctx, "busy", LockOptions{Wait: 300 * time.Millisecond})
		var busy *BusyError
		if !errors.As(err, &busy) || busy.Holder.Command != "long swap" || busy.Waited < 300*time.Millisecond {
			t.Fatalf("Lock = %v, want busy by long swap after waiting", err)
		}
		mustContain(t, err.Error(), "gave up after waiting")
	})

	t.Run("a cancelled context stops a wait", func(t *testing.T) {
		ctx := ctxFor(t, 30*time.Second)
		held, err := r.Lock(ctx, "cancel", LockOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer held.Unlock(ctx)
		wctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := r.Lock(wctx, "cancel", LockOptions{Wait: time.Minute}); !errors.Is(err, context.Canceled) {
			t.Fatalf("Lock with a cancelled context = %v", err)
		}
	})

	t.Run("bad TTLs and names are refused before Consul is asked", func(t *testing.T) {
		ctx := ctxFor(t, 10*time.Second)
		for _, tc := range []struct {
			app string
			ttl time.Duration
		}{{"ok", 5 * time.Second}, {"ok", 25 * time.Hour}, {"bad/name", 0}} {
			if _, err := r.Lock(ctx, tc.app, LockOptions{TTL: tc.ttl}); err == nil {
				t.Errorf("Lock(%q, TTL %s) succeeded", tc.app, tc.ttl)
			}
		}
	})

	t.Run("the key lives under the KV prefix and holds the holder as JSON", func(t *testing.T) {
		ctx := ctxFor(t, 10*time.Second)
		rr, err := New(deployments.ConsulConfig{Address: agent.Addr, KVPrefix: "/custom/root/"}, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		l, err := rr.Lock(ctx, "keyed", LockOptions{Holder: Me("swap keyed blue")})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock(ctx)
		pair, _, err := agent.Client.KV().Get("custom/root/locks/keyed", nil)
		if err != nil || pair == nil || pair.Session == "" {
			t.Fatalf("lock key = %+v, %v", pair, err)
		}
		var j map[string]any
		if err := json.Unmarshal(pair.Value, &j); err != nil {
			t.Fatal(err)
		}
		if j["command"] != "swap keyed blue" || j["pid"] != float64(os.Getpid()) || j["ttl"] != "15s" || j["host"] == "" || j["since"] == "" {
			t.Errorf("holder JSON = %s", pair.Value)
		}
		sess, _, err := agent.Client.Session().Info(pair.Session, nil)
		if err != nil || sess.Behavior != "delete" || sess.LockDelay != 0 || sess.TTL != "15s" {
			t.Errorf("session = %+v, %v; want behavior delete, no lock-delay, TTL 15s", sess, err)
		}
	})
}
