package lbconfig

import (
	"errors"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// versionProxy is a unix socket in front of a real HAProxy admin socket that replaces
// HAProxy's version line in every answer with the version it is told, as HAProxy itself
// would answer after an upgrade and a reload; cutAfter > 0 also cuts each answer after
// that many version lines, like a connection closed early.
type versionProxy struct {
	path, real, realVersion string

	mu       sync.Mutex
	version  string
	cutAfter int
}

func startVersionProxy(t *testing.T, env *lbEnv) *versionProxy {
	t.Helper()
	out, err := env.h.Exec("show version")
	must(t, err)
	p := &versionProxy{path: filepath.Join(t.TempDir(), "proxy.sock"), real: env.h.AdminSock,
		realVersion: strings.TrimSpace(out)}
	p.version = p.realVersion
	ln, err := net.Listen("unix", p.path)
	must(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(conn)
		}
	}()
	return p
}

func (p *versionProxy) set(version string, cutAfter int) {
	p.mu.Lock()
	p.version, p.cutAfter = version, cutAfter
	p.mu.Unlock()
}

func (p *versionProxy) serve(conn net.Conn) {
	defer conn.Close()
	up, err := net.Dial("unix", p.real)
	if err != nil {
		return
	}
	defer up.Close()
	go io.Copy(up, conn)
	out, _ := io.ReadAll(up)
	p.mu.Lock()
	version, cut := p.version, p.cutAfter
	p.mu.Unlock()
	lines := strings.SplitAfter(string(out), "\n")
	var b strings.Builder
	seen := 0
	for _, l := range lines {
		if strings.TrimRight(l, "\n") == p.realVersion {
			l = version + "\n"
			seen++
		}
		b.WriteString(l)
		if cut > 0 && seen == cut {
			break
		}
	}
	conn.Write([]byte(b.String()))
}

// TestClientFollowsAnHAProxyReloadedIntoAnotherVersion learns HAProxy's version, then
// HAProxy answers as another version would after an upgrade and a reload (the real 2.6
// binary's answers, with its version line replaced by each of testdata/other-versions.txt):
// every operation still gets its own answer, and Version reports the new version. With
// the version cached for good, every answer looked truncated (ErrTruncated). A
// connection really cut short stays ErrTruncated whatever the version.
func TestClientFollowsAnHAProxyReloadedIntoAnotherVersion(t *testing.T) {
	env := startLayout(t, baseLayout)
	ctx := testCtx(t)
	proxy := startVersionProxy(t, env)
	c, err := New("unix", proxy.path, WithName("upgraded"))
	must(t, err)
	first, err := c.Version(ctx)
	must(t, err)
	if first.Raw != proxy.realVersion {
		t.Fatalf("Version %q, want the real %q", first.Raw, proxy.realVersion)
	}
	app := newBackend(t, "blue")
	var versions []string
	for _, line := range strings.Split(readTestdata(t, "other-versions.txt"), "\n") {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			versions = append(versions, line)
		}
	}
	// The real version comes first in the file; run it last too, as a downgrade.
	versions = append(versions[1:], versions[0])
	for i, version := range versions {
		t.Run(version, func(t *testing.T) {
			proxy.set(version, 0)
			name := "app-blue-" + strconv.Itoa(i)
			s, err := env.layout.NewServer("app_blue", name, "127.0.0.1", app.port())
			must(t, err)
			must(t, c.AddServer(ctx, "app_blue", s)) // five commands on one line
			must(t, c.setState(ctx, "app_blue", name, StateDrain))
			if ss := serverState(t, c, "app_blue", name); !ss.AdminState.Drain() {
				t.Fatalf("%s not draining: %+v", name, ss)
			}
			if _, _, err := c.PutMap(ctx, env.layout.RoutesMap(), "app.test", "app_blue"); err != nil {
				t.Fatal(err)
			}
			if v, ok, err := c.GetMap(ctx, env.layout.RoutesMap(), "app.test"); err != nil || !ok || v != "app_blue" {
				t.Fatalf("get map: %q %v %v", v, ok, err)
			}
			if err := c.setState(ctx, "app_blue", "nope", StateReady); !errors.Is(err, ErrNoSuchServer) {
				t.Fatalf("a missing server: %v, want ErrNoSuchServer", err)
			}
			if v, err := c.Version(ctx); err != nil || v.Raw != version {
				t.Fatalf("Version after the reload: %q %v, want %q", v.Raw, err, version)
			}
		})
	}

	t.Run("a connection cut short after another version's first answer", func(t *testing.T) {
		proxy.set("3.0.11-1", 1)
		cmds := []Command{mustCmd(t, "show", "servers", "state", "app_blue"), mustCmd(t, "show", "servers", "state", "app_green")}
		answers, err := c.Do(ctx, cmds...)
		if !errors.Is(err, ErrTruncated) || !strings.Contains(err.Error(), "app_green") || strings.Contains(err.Error(), "app_blue") {
			t.Fatalf("%v: want ErrTruncated for the second command only", err)
		}
		if _, perr := ParseServersState(answers[0]); perr != nil || !strings.Contains(answers[0], "app-blue-0") {
			t.Fatalf("first answer %q: %v", answers[0], perr)
		}
	})
}
