package lbconfig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestClientRunsEveryOperationAgainstRealHAProxy(t *testing.T) {
	env := richState(t)
	c := env.c
	ctx := testCtx(t)
	routes := env.layout.RoutesMap()

	t.Run("version is detected once", func(t *testing.T) {
		v, err := c.Version(ctx)
		if err != nil || !v.atLeast(2, 6) {
			t.Fatalf("%v %v", v, err)
		}
	})

	t.Run("a new server starts DOWN and climbs by real checks", func(t *testing.T) {
		nb := newBackend(t, "blue")
		nb.failing.Store(true)
		if err := c.AddServer(ctx, "app_blue", nb.server("app-blue-2")); err != nil {
			t.Fatal(err)
		}
		st, err := c.ServerStat(ctx, "app_blue", "app-blue-2")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(st.Status, "DOWN") {
			t.Fatalf("a server whose checks fail is %q, want DOWN", st.Status)
		}
		ss := serverState(t, c, "app_blue", "app-blue-2")
		if ss.AdminState != 0 || ss.CheckState&0x04 == 0 || ss.UWeight != 100 {
			t.Fatalf("not ready with checks on and weight 100: %+v", ss)
		}
		nb.failing.Store(false)
		waitUp(t, c, "app_blue", "app-blue-2")
	})

	t.Run("adding a server twice leaves the first untouched", func(t *testing.T) {
		err := c.AddServer(ctx, "app_green", Server{Name: "app-green-0", Addr: "127.0.0.1", Port: 1})
		if !errors.Is(err, ErrAlreadyExists) {
			t.Fatalf("%v, want ErrAlreadyExists", err)
		}
		if ss := serverState(t, c, "app_green", "app-green-0"); !ss.AdminState.Maint() || ss.Port == 1 {
			t.Fatalf("the existing server changed: %+v", ss)
		}
	})

	t.Run("HAProxy's refusals come back typed", func(t *testing.T) {
		tests := []struct {
			name string
			err  error
			want error
		}{
			{"a backend without a dynamic algorithm", c.AddServer(ctx, "static_be", Server{Name: "x", Addr: "127.0.0.1", Port: 1}), ErrNotDynamic},
			{"add to a missing backend", c.AddServer(ctx, "nope", Server{Name: "x", Addr: "127.0.0.1", Port: 1}), ErrNoSuchBackend},
			{"state of a missing server", c.setState(ctx, "app_blue", "nope", StateReady), ErrNoSuchServer},
			{"state in a missing backend", c.setState(ctx, "nope", "x", StateReady), ErrNoSuchBackend},
			{"weight of a missing server", c.setWeight(ctx, "app_blue", "nope", 1), ErrNoSuchServer},
			{"addr of a missing server", c.SetAddr(ctx, "app_blue", "nope", "127.0.0.1", 1), ErrNoSuchServer},
			{"health of a missing server", c.setHealth(ctx, "app_blue", "nope", HealthUp), ErrNoSuchServer},
			{"enable health of a missing server", c.enableHealth(ctx, "app_blue", "nope"), ErrNoSuchServer},
			{"disable health of a missing server", c.disableHealth(ctx, "app_blue", "nope"), ErrNoSuchServer},
			{"shutdown sessions of a missing server", c.ShutdownSessions(ctx, "app_blue", "nope"), ErrNoSuchServer},
			{"stat of a missing backend", func() error { _, err := c.Stat(ctx, "nope"); return err }(), ErrNoSuchBackend},
			{"servers state of a missing backend", func() error { _, err := c.ServersState(ctx, "nope"); return err }(), ErrNoSuchBackend},
			{"a server stat that is not there", func() error { _, err := c.ServerStat(ctx, "app_blue", "nope"); return err }(), ErrNoSuchServer},
			{"set map on a missing key", c.setMap(ctx, routes, "nope.test", "app_blue"), ErrMapKeyNotFound},
			{"del map on a missing key", c.delMap(ctx, routes, "nope.test"), ErrMapKeyNotFound},
			{"a map that is not loaded", c.setMap(ctx, "/nonexistent.map", "k", "v"), ErrNoSuchMap},
			{"show of a map that is not loaded", func() error { _, err := c.ShowMap(ctx, "/nonexistent.map"); return err }(), ErrNoSuchMap},
			{"an unknown command", func() error { _, err := c.Exec(ctx, mustCmd(t, "frobnicate")); return err }(), ErrUnknownCommand},
		}
		for _, tt := range tests {
			if !errors.Is(tt.err, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
			}
			var ce *CommandError
			if strings.HasPrefix(tt.name, "a server stat") {
				continue // found missing in a good answer: no HAProxy error text
			}
			if !errors.As(tt.err, &ce) || ce.Instance != "test" || ce.Answer == "" {
				t.Errorf("%s: %v is not a CommandError naming the instance and HAProxy's answer", tt.name, tt.err)
			}
		}
	})

	t.Run("a user-level socket is refused with ErrPermission", func(t *testing.T) {
		user, err := New("unix", filepath.Join(env.h.Dir, "user.sock"))
		if err != nil {
			t.Fatal(err)
		}
		for _, err := range []error{
			user.setState(ctx, "app_blue", "app-blue-0", StateDrain),
			user.AddServer(ctx, "app_blue", Server{Name: "x", Addr: "127.0.0.1", Port: 1}),
			user.ShutdownSessions(ctx, "app_blue", "app-blue-0"),
		} {
			if !errors.Is(err, ErrPermission) {
				t.Errorf("%v, want ErrPermission", err)
			}
		}
	})

	t.Run("state, weight, address, health and checks change", func(t *testing.T) {
		be, s := "app_blue", "app-blue-0"
		must(t, c.setState(ctx, be, s, StateDrain))
		if ss := serverState(t, c, be, s); !ss.AdminState.Drain() {
			t.Fatalf("not draining: %+v", ss)
		}
		must(t, c.setState(ctx, be, s, StateMaint))
		if ss := serverState(t, c, be, s); !ss.AdminState.Maint() {
			t.Fatalf("not in maint: %+v", ss)
		}
		must(t, c.setState(ctx, be, s, StateReady))
		if ss := serverState(t, c, be, s); ss.AdminState != 0 {
			t.Fatalf("not ready: %+v", ss)
		}
		must(t, c.setWeight(ctx, be, s, 42))
		if cur, init, err := c.Weight(ctx, be, s); err != nil || cur != 42 || init != 100 {
			t.Fatalf("weight %d (initial %d) %v", cur, init, err)
		}
		must(t, c.setWeight(ctx, be, s, 100))
		old := serverState(t, c, be, s).Port
		must(t, c.SetAddr(ctx, be, s, "127.0.0.1", old+1))
		if ss := serverState(t, c, be, s); ss.Port != old+1 {
			t.Fatalf("port %d, want %d", ss.Port, old+1)
		}
		must(t, c.SetAddr(ctx, be, s, "127.0.0.1", old))
		must(t, c.disableHealth(ctx, be, s))
		if ss := serverState(t, c, be, s); ss.CheckState&0x04 != 0 {
			t.Fatalf("checks still on: %+v", ss)
		}
		must(t, c.setHealth(ctx, be, s, HealthDown))
		if ss := serverState(t, c, be, s); ss.OpState != OpStopped {
			t.Fatalf("health down left it %v", ss.OpState)
		}
		must(t, c.setHealth(ctx, be, s, HealthUp))
		if ss := serverState(t, c, be, s); ss.OpState != OpRunning {
			t.Fatalf("health up left it %v", ss.OpState)
		}
		must(t, c.enableHealth(ctx, be, s))
		if ss := serverState(t, c, be, s); ss.CheckState&0x04 == 0 {
			t.Fatalf("checks still off: %+v", ss)
		}
		must(t, c.ShutdownSessions(ctx, be, s))
	})

	t.Run("a server in use is not empty until its request ends", func(t *testing.T) {
		hb := newBackend(t, "hold")
		must(t, c.AddServer(ctx, "app_green", hb.server("app-green-9")))
		waitUp(t, c, "app_green", "app-green-9")
		// Route only to the new server: the others are in maint or down.
		must(t, c.setState(ctx, "app_green", "app-green-2", StateMaint))
		_, _, err := c.PutMap(ctx, routes, "hold.test", "app_green")
		must(t, err)
		done := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest("GET", "http://"+env.layout.Frontend.Bind+"/hold", nil)
			req.Host = "hold.test"
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			done <- err
		}()
		pollT(t, func() error {
			if hb.holding.Load() != 1 {
				return errors.New("the request has not reached the backend")
			}
			return nil
		})
		// What swap's drain reads (switcher ServerStat.Empty): scur, qcur, used_conn_cur.
		st, err := c.ServerStat(ctx, "app_green", "app-green-9")
		if err != nil || st.Scur != 1 {
			t.Fatalf("in use: scur %d qcur %d used %d, %v", st.Scur, st.Qcur, st.UsedConnCur, err)
		}
		close(hb.hold)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		pollT(t, func() error {
			st, err := c.ServerStat(ctx, "app_green", "app-green-9")
			if err != nil {
				return err
			}
			if st.Scur != 0 || st.Qcur != 0 || st.UsedConnCur != 0 {
				return fmt.Errorf("still in use: scur %d qcur %d used %d", st.Scur, st.Qcur, st.UsedConnCur)
			}
			return nil
		})
	})

	t.Run("del server retries until removable or the deadline", func(t *testing.T) {
		// A bound generous enough for a loaded machine to get a few answers in.
		short, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.delServer(short, "app_green", "app-green-9")
		cancel()
		if !errors.Is(err, ErrNotRemovable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("deleting a ready server: %v, want ErrNotRemovable and the deadline", err)
		}
		must(t, c.setState(ctx, "app_green", "app-green-9", StateMaint))
		must(t, c.delServer(ctx, "app_green", "app-green-9"))
		if err := c.delServer(ctx, "app_green", "app-green-9"); !errors.Is(err, ErrNoSuchServer) {
			t.Fatalf("deleting it again: %v", err)
		}
		if err := c.delServer(ctx, "nope", "x"); !errors.Is(err, ErrNoSuchBackend) {
			t.Fatalf("deleting from a missing backend: %v", err)
		}
	})

	t.Run("show commands parse", func(t *testing.T) {
		rows, err := c.Stat(ctx, "app_blue")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.Proxy != "app_blue" {
				t.Fatalf("Stat(app_blue) returned a row of %s", r.Proxy)
			}
		}
		all, err := c.Stat(ctx, "")
		if err != nil || len(all) <= len(rows) {
			t.Fatalf("Stat(all): %d rows %v", len(all), err)
		}
		conns, err := c.ServersConn(ctx, "app_blue")
		if err != nil || len(conns) == 0 || conns[0].Backend != "app_blue" {
			t.Fatalf("servers conn %+v %v", conns, err)
		}
		info, err := c.Info(ctx)
		if err != nil || info.Pid != env.h.WorkerPid(t) {
			t.Fatalf("info pid %d %v", info.Pid, err)
		}
		names, err := c.Backends(ctx)
		if err != nil || !contains(names, "app_blue") || !contains(names, FallbackBackend) {
			t.Fatalf("backends %v %v", names, err)
		}
	})

	t.Run("maps: get, set, add, del, put, restore and an atomic replace", func(t *testing.T) {
		v, ok, err := c.GetMap(ctx, routes, "app.test")
		if err != nil || !ok || v != "app_blue" {
			t.Fatalf("get: %q %v %v", v, ok, err)
		}
		must(t, c.setMap(ctx, routes, "app.test", "app_green"))
		must(t, c.addMap(ctx, routes, "new.test", "app_blue"))
		must(t, c.delMap(ctx, routes, "new.test"))
		prev, existed, err := c.PutMap(ctx, routes, "app.test", "app_blue")
		if err != nil || !existed || prev != "app_green" {
			t.Fatalf("put: %q %v %v", prev, existed, err)
		}
		prev, existed, err = c.PutMap(ctx, routes, "put.test", "app_green")
		if err != nil || existed || prev != "" {
			t.Fatalf("put a new key: %q %v %v", prev, existed, err)
		}
		must(t, c.restoreMap(ctx, routes, "put.test", prev, existed))
		if _, ok, _ := c.GetMap(ctx, routes, "put.test"); ok {
			t.Fatal("restore left the new key")
		}
		want := []MapEntry{{"a.test", "app_blue"}, {"app.test", "app_blue"}, {"b.test", "app_green"}}
		must(t, c.replaceMap(ctx, routes, want))
		got, err := c.ShowMap(ctx, routes)
		if err != nil || len(got) != len(want) {
			t.Fatalf("after replace: %v %v", got, err)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("after replace: %v, want %v", got, want)
			}
		}
		if err := c.replaceMap(ctx, "/nonexistent.map", want); !errors.Is(err, ErrNoSuchMap) {
			t.Fatalf("replace of a missing map: %v", err)
		}
	})
}

func TestClientBatchesInChunksThatFitTheCLIBuffer(t *testing.T) {
	env := richState(t)
	c := env.c
	ctx := testCtx(t)
	var cmds []Command
	for i := 0; i < 1000; i++ {
		s := []string{"app-blue-0", "app-blue-1"}[i%2]
		cmd, err := setWeightCmd("app_blue", s, 1+i%200)
		must(t, err)
		cmds = append(cmds, cmd)
	}
	lines := 0
	for start := 0; start < len(cmds); {
		end, line := c.chunk(cmds, start)
		if len(line)+1 > MaxLineBytes {
			t.Fatalf("chunk of %d bytes", len(line)+1)
		}
		lines++
		start = end
	}
	if lines < 2 {
		t.Fatalf("1000 commands fit in %d line(s)?", lines)
	}
	answers, err := c.Do(ctx, cmds...)
	if err != nil || len(answers) != 1000 {
		t.Fatalf("%d answers, %v", len(answers), err)
	}
	// The last command of each server wins.
	if cur, _, _ := c.Weight(ctx, "app_blue", "app-blue-0"); cur != 1+998%200 {
		t.Fatalf("app-blue-0 weight %d, want %d", cur, 1+998%200)
	}
	if cur, _, _ := c.Weight(ctx, "app_blue", "app-blue-1"); cur != 1+999%200 {
		t.Fatalf("app-blue-1 weight %d, want %d", cur, 1+999%200)
	}

	t.Run("a failing command is named and the others still run", func(t *testing.T) {
		a, _ := setWeightCmd("app_blue", "app-blue-0", 11)
		bad, _ := setWeightCmd("app_blue", "nope", 12)
		b, _ := setWeightCmd("app_blue", "app-blue-1", 13)
		answers, err := c.Do(ctx, a, bad, b)
		var ce *CommandError
		if !errors.Is(err, ErrNoSuchServer) || !errors.As(err, &ce) || !strings.Contains(ce.Command, "nope") {
			t.Fatalf("%v", err)
		}
		if answers[0] != "" || answers[1] != "No such server." || answers[2] != "" {
			t.Fatalf("answers %q", answers)
		}
		if cur, _, _ := c.Weight(ctx, "app_blue", "app-blue-1"); cur != 13 {
			t.Fatalf("the command after the failure did not run: weight %d", cur)
		}
	})
}

func TestClientHonoursContextDeadlinesAndLimits(t *testing.T) {
	env := startLayout(t, baseLayout)
	c, err := New("unix", env.h.AdminSock, withMaxConns(2))
	must(t, err)
	ctx := testCtx(t)
	if _, err := c.Version(ctx); err != nil {
		t.Fatal(err)
	}
	// A line ending in "<<" makes HAProxy wait for a payload: a connection that never
	// answers, which the client itself never sends (see the hostile tests).
	hang := "add map " + env.layout.RoutesMap() + " <<"

	t.Run("a deadline ends a call HAProxy never answers", func(t *testing.T) {
		short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer cancel()
		_, err := c.roundTrip(short, hang)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%v, want the deadline", err)
		}
	})

	t.Run("a cancelled context ends a call at once", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		errc := make(chan error, 1)
		go func() { _, err := c.roundTrip(cctx, hang); errc <- err }()
		pollT(t, func() error {
			if len(c.sem) == 0 {
				return errors.New("not connected yet")
			}
			return nil
		})
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("%v, want context.Canceled", err)
		}
	})

	t.Run("no more than MaxConns connections at once", func(t *testing.T) {
		hold, release := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); c.roundTrip(hold, hang) }()
		}
		pollT(t, func() error {
			if len(c.sem) != 2 {
				return errors.New("the two connections are not open yet")
			}
			return nil
		})
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, err := c.Info(short)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "waiting for a free connection") {
			t.Fatalf("a third call got through: %v", err)
		}
		release()
		wg.Wait()
		if _, err := c.Info(ctx); err != nil {
			t.Fatalf("after the others closed: %v", err)
		}
	})

	t.Run("an absent socket is ErrUnreachable", func(t *testing.T) {
		bad, _ := New("unix", filepath.Join(t.TempDir(), "none.sock"))
		if _, err := bad.Info(ctx); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%v", err)
		}
	})

	t.Run("TCP sockets work like unix sockets", func(t *testing.T) {
		addr := "127.0.0.1:" + strconv.Itoa(env.h.Port("tcpadmin"))
		out, err := env.h.Exec("show cli sockets")
		must(t, err)
		if !strings.Contains(out, env.h.AdminSock) {
			t.Fatalf("show cli sockets: %s", out)
		}
		tc, err := Dial("tcp:" + addr)
		must(t, err)
		if _, err := tc.Info(ctx); !errors.Is(err, ErrUnreachable) {
			t.Fatalf("nothing listens on %s yet: %v", addr, err)
		}
		// Listen on TCP too, through a config change.
		addTCPAdminSocket(t, env, addr)
		info, err := tc.Info(ctx)
		if err != nil || info.Pid == 0 {
			t.Fatalf("TCP admin socket: %+v %v", info, err)
		}
	})
}

func addTCPAdminSocket(t *testing.T, env *lbEnv, addr string) {
	t.Helper()
	cfg := readFile(t, env.h.CfgPath)
	cfg += "global\n    stats socket " + addr + " level admin\n"
	writeFile(t, env.h.CfgPath, cfg)
	env.h.Reload(t)
}

func serverState(t testing.TB, c *Client, backend, server string) ServerState {
	t.Helper()
	rows, err := c.ServersState(context.Background(), backend)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if r.Name == server {
			return r
		}
	}
	t.Fatalf("no server %s/%s", backend, server)
	return ServerState{}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func mustCmd(t testing.TB, words ...string) Command {
	t.Helper()
	c, err := NewCommand(words...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
