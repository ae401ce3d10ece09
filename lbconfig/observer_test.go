package lbconfig

import (
	"errors"
	"path/filepath"
	"sync"
	"testing"
)

// observation is one call of an Observer.
type observation struct {
	instance, verb string
	err            error
}

// recorder is an Observer that keeps what it heard.
type recorder struct {
	mu  sync.Mutex
	got []observation
}

func (r *recorder) observe(instance, verb string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, observation{instance, verb, err})
}

func (r *recorder) take() []observation {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.got
	r.got = nil
	return out
}

// An Observer hears every command sent, with its verb and its own outcome: a success,
// HAProxy's refusal of one command among others, and a connection failure for every
// command of the line.
func TestObserverHearsEveryCommandSentWithItsVerbAndOutcome(t *testing.T) {
	env := startLayout(t, baseLayout)
	ctx := testCtx(t)
	rec := &recorder{}
	c, err := New("unix", env.h.AdminSock, WithName("lb1"), WithObserver(rec.observe))
	must(t, err)
	must(t, env.c.AddServer(ctx, "app_blue", Server{Name: "app-blue-0", Addr: "127.0.0.1", Port: 1}))

	must(t, c.setState(ctx, "app_blue", "app-blue-0", StateDrain))
	if got := rec.take(); len(got) != 1 || got[0] != (observation{"lb1", "set server", nil}) {
		t.Fatalf("one set server: heard %+v", got)
	}

	// Two commands on one line, the second refused: each is heard with its own result.
	_, err = c.Do(ctx, mustSetWeightCmd(t, "app_blue", "app-blue-0", 50), mustSetWeightCmd(t, "app_blue", "nope", 50))
	if !errors.Is(err, ErrNoSuchServer) {
		t.Fatalf("%v, want ErrNoSuchServer", err)
	}
	got := rec.take()
	if len(got) != 2 || got[0].verb != "set server" || got[0].err != nil || !errors.Is(got[1].err, ErrNoSuchServer) {
		t.Fatalf("a line with a refused command: heard %+v", got)
	}

	if _, err := c.Stat(ctx, "app_blue"); err != nil {
		t.Fatal(err)
	}
	if got := rec.take(); len(got) != 1 || got[0].verb != "show stat" || got[0].err != nil {
		t.Fatalf("show stat: heard %+v", got)
	}

	// Nothing listens: every command of the line is heard failing.
	bad, err := New("unix", filepath.Join(t.TempDir(), "none.sock"), WithName("lb2"), WithObserver(rec.observe))
	must(t, err)
	if err := bad.setState(ctx, "app_blue", "app-blue-0", StateReady); !errors.Is(err, ErrUnreachable) {
		t.Fatalf("%v, want ErrUnreachable", err)
	}
	if got := rec.take(); len(got) != 1 || got[0].instance != "lb2" || got[0].verb != "set server" || !errors.Is(got[0].err, ErrUnreachable) {
		t.Fatalf("an unreachable instance: heard %+v", got)
	}
}

// setWeightCmd is setWeightCmd or the test's end.
func mustSetWeightCmd(t *testing.T, backend, server string, w int) Command {
	t.Helper()
	c, err := setWeightCmd(backend, server, w)
	must(t, err)
	return c
}

func TestCommandVerbIsItsFirstTwoWords(t *testing.T) {
	for _, tc := range []struct {
		words []string
		want  string
	}{
		{[]string{"set", "server", "be/s", "state", "ready"}, "set server"},
		{[]string{"show", "servers", "state", "be"}, "show servers"},
		{[]string{"help"}, "help"},
	} {
		c, err := NewCommand(tc.words...)
		must(t, err)
		if got := c.Verb(); got != tc.want {
			t.Errorf("%v: verb %q, want %q", tc.words, got, tc.want)
		}
	}
	joined := joinCommands(okEmpty, mustCmd(t, "help"), mustCmd(t, "show", "info"))
	if got := joined.Verb(); got != "help" {
		t.Errorf("joined: verb %q, want help", got)
	}
}
