package lbconfig

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/swap-dev/swap/internal/testenv"
)

// startTwin starts a second HAProxy that runs env's layout rendered into its own
// directory (its own admin socket, maps and server state) on its own ports, as a second
// HAProxy host would: the map ids (their paths) differ between the two.
func startTwin(t *testing.T, env *lbEnv) *testenv.HAProxyInstance {
	t.Helper()
	h2 := testenv.HAProxy(t, bootConfig)
	l := env.layout.Clone()
	l.Dir = h2.Dir
	l.Frontend.Bind = "127.0.0.1:" + strconv.Itoa(h2.Port("fe"))
	l.Preview.Bind = "127.0.0.1:" + strconv.Itoa(h2.Port("preview"))
	files, err := Render(l)
	must(t, err)
	_, err = WriteFiles(testCtx(t), l.Dir, files, WriteOptions{})
	must(t, err)
	h2.Reload(t)
	return h2
}

func twoInstanceFleet(t *testing.T) (*Fleet, *lbEnv, *testenv.HAProxyInstance, *Client) {
	t.Helper()
	env := startLayout(t, baseLayout)
	h2 := startTwin(t, env)
	a, err := New("unix", env.h.AdminSock, WithName("edge-a"))
	must(t, err)
	b, err := New("unix", h2.AdminSock, WithName("edge-b"))
	must(t, err)
	ma, err := NewMaster(env.h.MasterSock)
	must(t, err)
	mb, err := NewMaster(h2.MasterSock)
	must(t, err)
	f, err := NewFleet(env.layout, WriteOptions{}, Instance{Client: a, Master: ma}, Instance{Client: b, Master: mb, Dir: h2.Dir})
	must(t, err)
	return f, env, h2, b
}

func TestFleetFlipsEveryInstanceOrNone(t *testing.T) {
	f, env, h2, b := twoInstanceFleet(t)
	a := env.c
	ctx := testCtx(t)
	routes := env.layout.RoutesMap()

	must(t, f.Flip(ctx, routes, "app.test", "app_blue"))
	got, err := f.GetMap(ctx, routes, "app.test")
	if err != nil || got["edge-a"] != "app_blue" || got["edge-b"] != "app_blue" {
		t.Fatalf("after the first flip: %v %v", got, err)
	}
	must(t, f.Flip(ctx, routes, "app.test", "app_green"))
	got, _ = f.GetMap(ctx, routes, "app.test")
	if got["edge-a"] != "app_green" || got["edge-b"] != "app_green" {
		t.Fatalf("after the second flip: %v", got)
	}
	if file := readFile(t, routes); !strings.Contains(file, "app.test app_green\n") {
		t.Fatalf("routes.map was not persisted:\n%s", file)
	}

	t.Run("a canary and a removal reach every instance", func(t *testing.T) {
		canary := env.layout.CanaryMap()
		must(t, f.SetCanary(ctx, "app.test", "app_blue", 30))
		got, err := f.GetMap(ctx, canary, "app.test")
		if err != nil || got["edge-a"] != "app_blue:30" || got["edge-b"] != "app_blue:30" {
			t.Fatalf("canary: %v %v", got, err)
		}
		if file := readFile(t, canary); !strings.Contains(file, "app.test app_blue:30\n") {
			t.Fatalf("canary.map was not persisted:\n%s", file)
		}
		must(t, f.SetCanary(ctx, "app.test", "app_blue", 0))
		if got, _ := f.GetMap(ctx, canary, "app.test"); len(got) != 0 {
			t.Fatalf("canary 0 left %v", got)
		}
		if err := f.SetCanary(ctx, "app.test", "app_blue", 101); !errors.Is(err, ErrInvalidArgument) {
			t.Fatalf("weight 101: %v", err)
		}
		must(t, f.Flip(ctx, routes, "gone.test", "app_blue"))
		must(t, f.Flip(ctx, routes, "gone.test", "")) // an empty value removes the key
		if got, _ := f.GetMap(ctx, routes, "gone.test"); len(got) != 0 {
			t.Fatalf("flip to \"\" left %v", got)
		}
		must(t, f.replaceMap(ctx, env.layout.PreviewMap(), []MapEntry{{"app.test", "app_green"}}))
		if got, _ := f.GetMap(ctx, env.layout.PreviewMap(), "app.test"); got["edge-a"] != "app_green" || got["edge-b"] != "app_green" {
			t.Fatalf("replace: %v", got)
		}
	})

	t.Run("a failure on the second instance puts the first back", func(t *testing.T) {
		h2.Stop()
		err := f.Flip(ctx, routes, "app.test", "app_blue")
		if !errors.Is(err, ErrFlipRolledBack) || !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "haproxy edge-b") {
			t.Fatalf("%v: want a rolled-back flip naming edge-b", err)
		}
		if v, _, _ := a.GetMap(ctx, routes, "app.test"); v != "app_green" {
			t.Fatalf("edge-a kept the failed flip: %q", v)
		}
		if file := readFile(t, routes); !strings.Contains(file, "app.test app_green\n") {
			t.Fatalf("routes.map changed after a failed flip:\n%s", file)
		}
	})

	t.Run("a new key is removed again when the flip fails", func(t *testing.T) {
		err := f.Flip(ctx, routes, "new.test", "app_blue")
		if !errors.Is(err, ErrFlipRolledBack) {
			t.Fatalf("%v", err)
		}
		if _, ok, _ := a.GetMap(ctx, routes, "new.test"); ok {
			t.Fatal("edge-a kept the new key")
		}
	})

	t.Run("a failure on the first instance changes nothing", func(t *testing.T) {
		rev, err := NewFleet(nil, WriteOptions{}, Instance{Client: b}, Instance{Client: a})
		must(t, err)
		if err := rev.Flip(ctx, routes, "app.test", "app_blue"); !errors.Is(err, ErrFlipRolledBack) || !strings.Contains(err.Error(), "edge-b") {
			t.Fatalf("%v", err)
		}
		if v, _, _ := a.GetMap(ctx, routes, "app.test"); v != "app_green" {
			t.Fatalf("edge-a changed: %q", v)
		}
	})
}

func TestFleetAppliesServerChangesToEveryInstance(t *testing.T) {
	f, env, h2, b := twoInstanceFleet(t)
	a := env.c
	ctx := testCtx(t)
	blue := newBackend(t, "blue")
	srv, err := env.layout.NewServer("app_blue", "app-blue-0", "127.0.0.1", blue.port())
	must(t, err)
	if srv.Check.Inter != fastCheck.Inter || srv.Check.Rise != fastCheck.Rise {
		t.Fatalf("NewServer ignored the backend's check timing: %+v", srv.Check)
	}
	must(t, f.AddServer(ctx, "app_blue", srv))
	waitUp(t, a, "app_blue", "app-blue-0")
	waitUp(t, b, "app_blue", "app-blue-0")
	if cfg := readFile(t, env.layout.Path(ConfigFile)); !strings.Contains(cfg, "server app-blue-0 127.0.0.1:"+strconv.Itoa(blue.port())) {
		t.Fatalf("the new server is not in haproxy.cfg:\n%s", cfg)
	}

	must(t, f.setState(ctx, "app_blue", "app-blue-0", StateDrain))
	states, err := f.ServersState(ctx, "app_blue")
	must(t, err)
	for _, name := range []string{"edge-a", "edge-b"} {
		if len(states[name]) != 1 || !states[name][0].AdminState.Drain() {
			t.Fatalf("%s: %+v", name, states[name])
		}
	}
	stats, err := f.Stat(ctx, "app_blue")
	if err != nil || len(stats["edge-a"]) == 0 || len(stats["edge-b"]) == 0 {
		t.Fatalf("stats %v %v", stats, err)
	}
	must(t, f.setWeight(ctx, "app_blue", "app-blue-0", 10))
	must(t, f.SetAddr(ctx, "app_blue", "app-blue-0", "127.0.0.1", blue.port()+1))
	cmd, err := setWeightCmd("app_blue", "app-blue-0", 20)
	must(t, err)
	must(t, f.Do(ctx, cmd))
	for _, c := range []*Client{a, b} {
		ss := serverState(t, c, "app_blue", "app-blue-0")
		if ss.Port != blue.port()+1 || ss.UWeight != 20 {
			t.Fatalf("%s: %+v", c.Name(), ss)
		}
	}
	must(t, f.ShutdownSessions(ctx, "app_blue", "app-blue-0"))
	must(t, f.setState(ctx, "app_blue", "app-blue-0", StateMaint))
	must(t, f.delServer(ctx, "app_blue", "app-blue-0"))
	must(t, f.delServer(ctx, "app_blue", "app-blue-0")) // already gone: not an error
	for _, c := range []*Client{a, b} {
		if rows, _ := c.ServersState(ctx, "app_blue"); len(rows) != 0 {
			t.Fatalf("%s still has %v", c.Name(), rows)
		}
	}

	t.Run("a reload of every instance keeps what the fleet persisted", func(t *testing.T) {
		must(t, f.AddServer(ctx, "app_green", Server{Name: "app-green-0", Addr: "127.0.0.1", Port: blue.port(), Check: fastCheck}))
		must(t, f.Reload(ctx))
		for _, c := range []*Client{a, b} {
			if rows, err := c.ServersState(ctx, "app_green"); err != nil || len(rows) != 1 {
				t.Fatalf("%s after reload: %v %v", c.Name(), rows, err)
			}
		}
	})

	t.Run("an instance that fails is named", func(t *testing.T) {
		h2.Stop()
		err := f.setState(ctx, "app_green", "app-green-0", StateReady)
		var ie *InstanceError
		if !errors.As(err, &ie) || ie.Instance != "edge-b" || !errors.Is(err, ErrUnreachable) {
			t.Fatalf("%v", err)
		}
		if ss := serverState(t, a, "app_green", "app-green-0"); ss.AdminState != 0 {
			t.Fatalf("edge-a: %+v", ss)
		}
	})

	t.Run("persist writes the instances that answer and names the one that does not", func(t *testing.T) {
		rev, err := NewFleet(env.layout, WriteOptions{}, Instance{Client: b, Dir: h2.Dir}, Instance{Client: a})
		must(t, err)
		must(t, a.setState(ctx, "app_green", "app-green-0", StateDrain))
		_, err = rev.Persist(ctx)
		if !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "edge-b") || strings.Contains(err.Error(), "edge-a") {
			t.Fatalf("%v: want ErrPersist naming edge-b only", err)
		}
		states, err := ParseServersState(readFile(t, env.layout.Path(StateFile)))
		must(t, err)
		drained := false
		for _, st := range states {
			drained = drained || (st.Name == "app-green-0" && st.AdminState.Drain())
		}
		if !drained {
			t.Fatalf("edge-a's server-state does not hold the drain: %+v", states)
		}
		bad, _ := New("unix", filepath.Join(t.TempDir(), "x.sock"), WithName("ghost"))
		only, _ := NewFleet(env.layout, WriteOptions{}, Instance{Client: bad})
		if _, err := only.Persist(context.Background()); !errors.Is(err, ErrPersist) || !strings.Contains(err.Error(), "ghost") {
			t.Fatalf("%v", err)
		}
	})
}

func TestFleetDrainsAndDeletesSeveralServersInOneChange(t *testing.T) {
	f, env, _, b := twoInstanceFleet(t)
	a := env.c
	ctx := testCtx(t)
	var servers []Server
	var names []string
	for i := range 2 {
		be := newBackend(t, "blue")
		name := "app-blue-" + strconv.Itoa(i)
		srv, err := env.layout.NewServer("app_blue", name, "127.0.0.1", be.port())
		must(t, err)
		servers = append(servers, srv)
		names = append(names, name)
	}
	must(t, f.AddServers(ctx, "app_blue", servers))
	for _, n := range names {
		waitUp(t, a, "app_blue", n)
		waitUp(t, b, "app_blue", n)
	}
	must(t, f.SetStates(ctx, "app_blue", names, StateDrain))
	for _, c := range []*Client{a, b} {
		for _, n := range names {
			if ss := serverState(t, c, "app_blue", n); !ss.AdminState.Drain() {
				t.Fatalf("%s %s not draining: %+v", c.Name(), n, ss)
			}
		}
	}
	must(t, f.DelServers(ctx, "app_blue", append(names, "app-blue-9"))) // a missing one is not an error
	for _, c := range []*Client{a, b} {
		if rows, _ := c.ServersState(ctx, "app_blue"); len(rows) != 0 {
			t.Fatalf("%s still has %v", c.Name(), rows)
		}
	}
	if cfg := readFile(t, env.layout.Path(ConfigFile)); strings.Contains(cfg, "server app-blue-") {
		t.Fatalf("deleted servers still in haproxy.cfg:\n%s", cfg)
	}
}

func TestFleetChangesAnotherHostsHAProxyAtRuntimeOnlyAndAddsOnlyWhatAnInstanceLacks(t *testing.T) {
	env := startLayout(t, baseLayout)
	h2 := startTwin(t, env) // another host's HAProxy: its files are written there
	a := env.c
	b, err := New("unix", h2.AdminSock, WithName("edge-b"))
	must(t, err)
	f, err := NewFleet(env.layout, WriteOptions{}, Instance{Client: a}, Instance{Client: b, Dir: h2.Dir, NoFiles: true})
	must(t, err)
	ctx := testCtx(t)
	twinCfg := readFile(t, filepath.Join(h2.Dir, ConfigFile))
	blue := newBackend(t, "blue")
	s0, err := env.layout.NewServer("app_blue", "app-blue-0", "127.0.0.1", blue.port())
	must(t, err)
	s1, err := env.layout.NewServer("app_blue", "app-blue-1", "127.0.0.1", blue.port())
	must(t, err)
	must(t, a.AddServers(ctx, "app_blue", []Server{s0})) // a has s0 already, b has none
	must(t, f.AddMissingServers(ctx, "app_blue", []Server{s0, s1}))
	for _, c := range []*Client{a, b} {
		waitUp(t, c, "app_blue", "app-blue-0")
		waitUp(t, c, "app_blue", "app-blue-1")
	}
	must(t, f.Flip(ctx, env.layout.RoutesMap(), "app.test", "app_blue"))
	got, err := f.GetMap(ctx, env.layout.RoutesMap(), "app.test")
	must(t, err)
	if got[a.Name()] != "app_blue" || got["edge-b"] != "app_blue" {
		t.Fatalf("route on each instance: %v", got)
	}
	if cfg := readFile(t, env.layout.Path(ConfigFile)); !strings.Contains(cfg, "server app-blue-1 ") {
		t.Fatalf("edge-a's files do not have the server added:\n%s", cfg)
	}
	if cfg := readFile(t, filepath.Join(h2.Dir, ConfigFile)); cfg != twinCfg {
		t.Fatalf("the fleet wrote the files of edge-b, whose files are its own host's:\n%s", cfg)
	}
	// Its directory is no other instance's concern: another instance may use the same.
	if _, err := NewFleet(env.layout, WriteOptions{}, Instance{Client: a}, Instance{Client: b, NoFiles: true}); err != nil {
		t.Fatalf("a files-less instance with the default dir refused: %v", err)
	}
}
