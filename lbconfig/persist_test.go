package lbconfig

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func inode(t testing.TB, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	must(t, err)
	return fi.Sys().(*syscall.Stat_t).Ino
}

func TestWriteFilesIsANoOpWhenTheBytesAreEqual(t *testing.T) {
	l := goldenLayout()
	l.Dir = t.TempDir()
	files, err := Render(l)
	must(t, err)
	ctx := testCtx(t)
	res, err := WriteFiles(ctx, l.Dir, files, WriteOptions{})
	must(t, err)
	if len(res.Changed) != len(files) {
		t.Fatalf("first write: %+v", res)
	}
	before := inode(t, l.Path(ConfigFile))
	res, err = WriteFiles(ctx, l.Dir, files, WriteOptions{Binary: "/nonexistent/haproxy"})
	must(t, err) // no check runs: nothing changed
	if len(res.Changed) != 0 || len(res.Unchanged) != len(files) || res.Diff != "" {
		t.Fatalf("second write: %+v", res)
	}
	if inode(t, l.Path(ConfigFile)) != before {
		t.Fatal("haproxy.cfg was replaced although its bytes were equal")
	}
}

func TestWriteFilesKeepsTheOldConfigWhenHAProxyRejectsTheNew(t *testing.T) {
	l := goldenLayout()
	l.Dir = t.TempDir()
	files, err := Render(l)
	must(t, err)
	ctx := testCtx(t)
	_, err = WriteFiles(ctx, l.Dir, files, WriteOptions{})
	must(t, err)
	old := readFile(t, l.Path(ConfigFile))
	bad := []File{{ConfigFile, []byte(old + "backend broken\n    balance nonsense\n")}}
	_, err = WriteFiles(ctx, l.Dir, bad, WriteOptions{})
	if !errors.Is(err, ErrConfigRejected) || !strings.Contains(err.Error(), "balance only supports") {
		t.Fatalf("%v, want ErrConfigRejected quoting HAProxy", err)
	}
	if readFile(t, l.Path(ConfigFile)) != old {
		t.Fatal("the rejected config replaced the old one")
	}
	entries, _ := os.ReadDir(l.Dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Fatalf("temp file %s left behind", e.Name())
		}
	}
	_, err = WriteFiles(ctx, l.Dir, bad, WriteOptions{Binary: filepath.Join(t.TempDir(), "no-haproxy")})
	if err == nil || errors.Is(err, ErrConfigRejected) || !strings.Contains(err.Error(), "haproxy.binary") {
		t.Fatalf("a missing binary: %v", err)
	}
}

func TestWriteFilesDryRunReportsADiffAndWritesNothing(t *testing.T) {
	l := goldenLayout()
	l.Dir = t.TempDir()
	files, err := Render(l)
	must(t, err)
	ctx := testCtx(t)
	_, err = WriteFiles(ctx, l.Dir, files, WriteOptions{})
	must(t, err)
	l.Routes[0].Value = "web_green"
	files, err = Render(l)
	must(t, err)
	res, err := WriteFiles(ctx, l.Dir, files, WriteOptions{DryRun: true})
	must(t, err)
	if len(res.Changed) != 1 || res.Changed[0] != RoutesMapFile {
		t.Fatalf("changed %v", res.Changed)
	}
	if !strings.Contains(res.Diff, "-web.example.com web_blue\n+web.example.com web_green\n") {
		t.Fatalf("diff:\n%s", res.Diff)
	}
	if strings.Contains(readFile(t, l.Path(RoutesMapFile)), "web_green") {
		t.Fatal("the dry run wrote the map")
	}
}

// liveView is what a reload or restart must reproduce: every server's address, admin
// state and weight, and the maps.
func liveView(t *testing.T, c *Client, l *Layout) string {
	t.Helper()
	ctx := context.Background()
	states, err := c.ServersState(ctx, "")
	must(t, err)
	var lines []string
	for _, s := range states {
		lines = append(lines, strings.Join([]string{s.Backend, s.Name, s.Addr + ":" + itoa(s.Port),
			"admin=" + itoa(int(s.AdminState)), "weight=" + itoa(s.UWeight) + "/" + itoa(s.IWeight),
			"checks=" + itoa(s.CheckState&0x04)}, " "))
	}
	for _, m := range []string{l.RoutesMap(), l.PreviewMap(), l.CanaryMap()} {
		entries, err := c.ShowMap(ctx, m)
		must(t, err)
		for _, e := range entries {
			lines = append(lines, filepath.Base(m)+" "+e.Key+" "+e.Value)
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestPersistedFilesReproduceRuntimeChangesAfterReloadAndRestart(t *testing.T) {
	env := startLayout(t, baseLayout)
	ctx := testCtx(t)
	c, l := env.c, env.layout
	blue0, blue1 := newBackend(t, "blue"), newBackend(t, "blue")
	green0, green1, green2 := newBackend(t, "green"), newBackend(t, "green"), newBackend(t, "green")

	// Runtime only: the starting point, then persisted.
	must(t, c.AddServers(ctx, "app_blue", []Server{blue0.server("app-blue-0"), blue1.server("app-blue-1")}))
	must(t, c.AddServers(ctx, "app_green", []Server{green0.server("app-green-0"), green2.server("app-green-2")}))
	_, _, err := c.PutMap(ctx, l.RoutesMap(), "app.test", "app_blue")
	must(t, err)
	waitUp(t, c, "app_blue", "app-blue-0")
	waitUp(t, c, "app_green", "app-green-0")
	_, err = Persist(ctx, c, l, WriteOptions{})
	must(t, err)

	// A swap, at runtime: add a green server, flip, remove a blue one, drain a green
	// one, a canary entry, a weight.
	must(t, c.AddServer(ctx, "app_green", green1.server("app-green-1")))
	waitUp(t, c, "app_green", "app-green-1")
	_, _, err = c.PutMap(ctx, l.RoutesMap(), "app.test", "app_green")
	must(t, err)
	_, _, err = c.PutMap(ctx, l.PreviewMap(), "app.test", "app_blue")
	must(t, err)
	_, _, err = c.PutMap(ctx, l.CanaryMap(), "other.test", canaryValue("app_blue", 5))
	must(t, err)
	must(t, c.setState(ctx, "app_green", "app-green-2", StateDrain))
	must(t, c.setState(ctx, "app_blue", "app-blue-1", StateMaint))
	must(t, c.delServer(ctx, "app_blue", "app-blue-1"))
	must(t, c.setWeight(ctx, "app_green", "app-green-0", 60))
	want := liveView(t, c, l)

	t.Run("without Persist a reload loses the changes", func(t *testing.T) {
		// The control: HAProxy reloads the files of the last Persist.
		saved := readFile(t, l.Path(ConfigFile))
		env.h.Reload(t)
		if got := liveView(t, c, l); got == want {
			t.Fatal("the runtime changes survived a reload without Persist: this test could not tell")
		}
		if readFile(t, l.Path(ConfigFile)) != saved {
			t.Fatal("the config changed")
		}
		// Redo the runtime changes on the reloaded HAProxy.
		must(t, c.AddServer(ctx, "app_green", green1.server("app-green-1")))
		waitUp(t, c, "app_green", "app-green-1")
		_, _, err = c.PutMap(ctx, l.RoutesMap(), "app.test", "app_green")
		must(t, err)
		_, _, err = c.PutMap(ctx, l.PreviewMap(), "app.test", "app_blue")
		must(t, err)
		_, _, err = c.PutMap(ctx, l.CanaryMap(), "other.test", canaryValue("app_blue", 5))
		must(t, err)
		must(t, c.setState(ctx, "app_green", "app-green-2", StateDrain))
		must(t, c.setState(ctx, "app_blue", "app-blue-1", StateMaint))
		must(t, c.delServer(ctx, "app_blue", "app-blue-1"))
		must(t, c.setWeight(ctx, "app_green", "app-green-0", 60))
		if got := liveView(t, c, l); got != want {
			t.Fatalf("redoing the changes gave\n%s\nwant\n%s", got, want)
		}
	})

	res, err := Persist(ctx, c, l, WriteOptions{})
	must(t, err)
	if !contains(res.Changed, ConfigFile) || !contains(res.Changed, RoutesMapFile) || !contains(res.Changed, StateFile) {
		t.Fatalf("persist wrote %v", res.Changed)
	}
	if res, err := Persist(ctx, c, l, WriteOptions{}); err != nil || contains(res.Changed, ConfigFile) || contains(res.Changed, RoutesMapFile) {
		t.Fatalf("a second persist with nothing changed rewrote %v (%v)", res.Changed, err)
	}

	check := func(t *testing.T) {
		t.Helper()
		if got := liveView(t, c, l); got != want {
			t.Fatalf("HAProxy serves\n%s\nwant\n%s\n\n%s", got, want, unifiedDiff("want", "got", []byte(want+"\n"), []byte(got+"\n")))
		}
		for i := 0; i < 20; i++ {
			if code, color := get(t, http.DefaultClient, l.Frontend.Bind, "app.test"); code != 200 || color != "green" {
				t.Fatalf("request %d: %d %q, want green", i, code, color)
			}
		}
		if code, color := get(t, http.DefaultClient, l.Preview.Bind, "app.test"); code != 200 || color != "blue" {
			t.Fatalf("preview: %d %q, want blue", code, color)
		}
	}

	t.Run("a reload through the master CLI serves the same", func(t *testing.T) {
		m, err := NewMaster(env.h.MasterSock)
		must(t, err)
		if v, err := m.version(ctx); err != nil || !v.atLeast(2, 6) {
			t.Fatalf("master version %v %v", v, err)
		}
		before := env.h.WorkerPid(t)
		must(t, m.Reload(ctx))
		pid, _, err := m.worker(ctx)
		must(t, err)
		if pid == before {
			t.Fatal("Reload returned with the old worker")
		}
		pollT(t, func() error {
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			if info.Pid != pid {
				return errors.New("the admin socket is still the old worker's")
			}
			return nil
		})
		check(t)
	})

	t.Run("a restart serves the same", func(t *testing.T) {
		env.h.Restart(t)
		check(t)
	})
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestReadLayoutFilesRecoversServersAndMapsFromTheFiles(t *testing.T) {
	l := goldenLayout()
	l.Dir = t.TempDir()
	files, err := Render(l)
	must(t, err)
	_, err = WriteFiles(testCtx(t), l.Dir, files, WriteOptions{})
	must(t, err)
	empty := l.Clone()
	for i := range empty.Backends {
		empty.Backends[i].Servers = nil
	}
	empty.Routes, empty.PreviewRoutes, empty.Canary = nil, nil, nil
	back, err := ReadLayoutFiles(empty)
	must(t, err)
	again, err := Render(back)
	must(t, err)
	for i := range files {
		if string(files[i].Data) != string(again[i].Data) {
			t.Fatalf("%s does not survive a round trip:\n%s", files[i].Name, unifiedDiff("a", "b", files[i].Data, again[i].Data))
		}
	}
	// No files at all: the layout as it was.
	none := l.Clone()
	none.Dir = t.TempDir()
	got, err := ReadLayoutFiles(none)
	if err != nil || len(got.Routes) != len(l.Routes) {
		t.Fatalf("%v %v", got, err)
	}
}

func TestDialReadsUnixAndTCPAddresses(t *testing.T) {
	tests := []struct{ in, network, addr string }{
		{"/run/haproxy/admin.sock", "unix", "/run/haproxy/admin.sock"},
		{"unix:/run/admin.sock", "unix", "/run/admin.sock"},
		{"./admin.sock", "unix", "./admin.sock"},
		{"127.0.0.1:9999", "tcp", "127.0.0.1:9999"},
		{"tcp:[::1]:9999", "tcp", "[::1]:9999"},
	}
	for _, tt := range tests {
		c, err := Dial(tt.in)
		if err != nil || c.network != tt.network || c.Address() != tt.addr || c.Name() != tt.addr {
			t.Errorf("Dial(%q) = %+v, %v", tt.in, c, err)
		}
	}
	if _, err := New("udp", "x"); err == nil {
		t.Error("udp accepted")
	}
}
