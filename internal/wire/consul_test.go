package wire

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestDeadHolder_OnlyASwapOfThisHostAndPidSpaceWhosePidIsGoneIsDead(t *testing.T) {
	me := consul.Holder{Host: "box", Pid: 100, PidSpace: "boot/pid:[1]", Command: "swap resume web"}
	dead := func(int) bool { return false }
	alive := func(int) bool { return true }
	holder := func(edit func(*consul.Holder)) consul.Holder {
		h := consul.Holder{Host: "box", Pid: 4242, PidSpace: "boot/pid:[1]", Command: "/usr/local/bin/swap deploy web --image web:v2"}
		if edit != nil {
			edit(&h)
		}
		return h
	}
	tests := []struct {
		name  string
		h     consul.Holder
		alive func(int) bool
		want  bool
	}{
		{"a swap on this host whose pid is gone is dead", holder(nil), dead, true},
		{"the test binary counts as swap", holder(func(h *consul.Holder) { h.Command = "/tmp/go-build1/b001/swap.test deploy web" }), dead, true},
		{"a pid that exists is not dead (it may be reused: unsure)", holder(nil), alive, false},
		{"another host is never judged", holder(func(h *consul.Holder) { h.Host = "other" }), dead, false},
		{"an empty host is never judged", holder(func(h *consul.Holder) { h.Host = "" }), dead, false},
		{"another PID namespace (a container with this hostname) is never judged", holder(func(h *consul.Holder) { h.PidSpace = "boot/pid:[2]" }), dead, false},
		{"another boot is never judged", holder(func(h *consul.Holder) { h.PidSpace = "reboot/pid:[1]" }), dead, false},
		{"a holder from before pid spaces were recorded is never judged", holder(func(h *consul.Holder) { h.PidSpace = "" }), dead, false},
		{"a holder that is not swap is never judged", holder(func(h *consul.Holder) { h.Command = "consul lock swap/locks/web" }), dead, false},
		{"an empty command is never judged", holder(func(h *consul.Holder) { h.Command = "" }), dead, false},
		{"this very process is not dead", holder(func(h *consul.Holder) { h.Pid = me.Pid }), dead, false},
		{"pid 0 is not a process", holder(func(h *consul.Holder) { h.Pid = 0 }), dead, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			why, got := deadHolder(tt.h, me, tt.alive)
			if got != tt.want {
				t.Fatalf("deadHolder(%+v) = %v (%q), want %v", tt.h, got, why, tt.want)
			}
			if got && !strings.Contains(why, "4242") {
				t.Fatalf("the reason %q does not name the pid", why)
			}
		})
	}
}

func TestPidAlive_SeesRunningExitedAndZombieProcesses(t *testing.T) {
	if !pidAlive(os.Getpid()) {
		t.Fatal("this process is not alive")
	}
	if pidAlive(exitedPid(t)) {
		t.Fatal("a reaped process is alive")
	}
	zombie := exec.Command("sleep", "60")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zombie.Wait() })
	if !pidAlive(zombie.Process.Pid) {
		t.Fatal("a running child is not alive")
	}
	if err := zombie.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Not reaped until the cleanup: it turns into a zombie.
	testenv.WaitFor(t, 10*time.Second, "the killed child is a zombie", func() error {
		if pidAlive(zombie.Process.Pid) {
			return errors.New("still alive")
		}
		return nil
	})
}

// exitedPid runs a process to its end and returns its (now free) pid.
func exitedPid(t *testing.T) int {
	t.Helper()
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	return c.Process.Pid
}

func TestLocker_ReleasesADeadSwapsLockAtOnceAndWaitsForALiveOne(t *testing.T) {
	agent := testenv.Consul(t)
	reg, err := consul.New(deployments.ConsulConfig{Address: agent.Addr, KVPrefix: "wire-test"}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	me := consul.Me("")
	locker := Locker{R: reg, Command: "swap resume web", Log: zaptest.NewLogger(t)}

	// A lock whose holder record names a dead swap process; this process keeps its
	// session alive, as a hung Consul TTL would.
	holdAs := func(app string, pid int) *consul.Lock {
		t.Helper()
		h := consul.Holder{Host: me.Host, Pid: pid, PidSpace: me.PidSpace, Command: "/usr/bin/swap deploy " + app + " --image web:v2"}
		l, err := reg.Lock(ctx, app, consul.LockOptions{Holder: h})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Unlock(context.Background()) })
		return l
	}

	t.Run("a dead holder's lock is released and taken without waiting", func(t *testing.T) {
		stale := holdAs("dead", exitedPid(t))
		l, err := locker.Lock(ctx, "dead", 0)
		if err != nil {
			t.Fatalf("Lock over a dead holder: %v", err)
		}
		defer l.Unlock(ctx)
		select {
		case <-stale.Lost():
		case <-ctx.Done():
			t.Fatal("the dead holder's lock was not lost")
		}
		if h, held, err := reg.LockHolder(ctx, "dead"); err != nil || !held || h.Pid != os.Getpid() || h.Command != "swap resume web" {
			t.Fatalf("LockHolder = %+v, %v, %v; want this process", h, held, err)
		}
	})

	t.Run("a live holder's lock is left alone", func(t *testing.T) {
		live := exec.Command("sleep", "60")
		if err := live.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = live.Process.Kill(); _ = live.Wait() }()
		held := holdAs("live", live.Process.Pid)
		_, err := locker.Lock(ctx, "live", 0)
		var busy *consul.BusyError
		if !errors.As(err, &busy) || busy.Holder.Pid != live.Process.Pid {
			t.Fatalf("Lock over a live holder = %v, want a BusyError naming pid %d", err, live.Process.Pid)
		}
		select {
		case <-held.Lost():
			t.Fatal("a live holder lost its lock")
		default:
		}
	})

	t.Run("another host's holder is left alone even with a free pid", func(t *testing.T) {
		h := consul.Holder{Host: me.Host + "-elsewhere", Pid: exitedPid(t), PidSpace: me.PidSpace, Command: "swap deploy web"}
		l, err := reg.Lock(ctx, "remote", consul.LockOptions{Holder: h})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Unlock(ctx)
		if _, err := locker.Lock(ctx, "remote", 0); !errors.Is(err, consul.ErrLocked) {
			t.Fatalf("Lock over another host's holder = %v, want ErrLocked", err)
		}
	})
}
