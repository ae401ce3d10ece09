package lbconfig

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
)

func TestFleetRefusesTwoInstancesWithTheSameFiles(t *testing.T) {
	l := baseLayout("/tmp/swap-files", func(string) int { return 8080 })
	a, _ := New("unix", "/tmp/a.sock", WithName("edge-a"))
	b, _ := New("unix", "/tmp/b.sock", WithName("edge-b"))
	tests := []struct {
		name    string
		a, b    string
		wantErr bool
	}{
		{"both in the layout's dir", "", "", true},
		{"one in the layout's dir, one naming it", "", "/tmp/swap-files/", true},
		{"the same dir of their own", "/tmp/x", "/tmp/x", true},
		{"a dir each", "", "/tmp/swap-files-b", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewFleet(l, WriteOptions{}, Instance{Client: a, Dir: tt.a}, Instance{Client: b, Dir: tt.b})
			if (err != nil) != tt.wantErr {
				t.Fatalf("NewFleet: %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), "edge-a and edge-b") {
				t.Fatalf("the error does not name both instances: %v", err)
			}
		})
	}
}

// TestTwoFleetsChangingDifferentAppsLeaveTheNewestFilesOnDisk runs two Fleets with
// clients of their own (as two swap processes would) on one HAProxy and one directory,
// each changing its own app's servers and route many times at once. At the end the
// files on disk are exactly what HAProxy's runtime holds, and a reload serves it.
// Without the directory lock, a fleet that read the runtime before the other's change
// could rename its older files over the newer ones.
func TestTwoFleetsChangingDifferentAppsLeaveTheNewestFilesOnDisk(t *testing.T) {
	env := startLayout(t, twoAppLayout)
	ctx := testCtx(t)
	const rounds = 10
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for _, app := range []string{"a", "b"} {
		c, err := New("unix", env.h.AdminSock, WithName("proc-"+app))
		must(t, err)
		f, err := NewFleet(env.layout, WriteOptions{}, Instance{Client: c})
		must(t, err)
		color := map[bool]string{false: "blue", true: "green"}
		backends := map[string]*backend{"blue": newBackend(t, app+"-blue"), "green": newBackend(t, app+"-green")}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- func() error {
				for i := range rounds {
					to := color[i%2 == 1]
					be := app + "_" + to
					name := fmt.Sprintf("%s-%s-%d", app, to, i)
					s, err := env.layout.NewServer(be, name, "127.0.0.1", backends[to].port())
					if err != nil {
						return err
					}
					if err := f.AddServer(ctx, be, s); err != nil {
						return err
					}
					if err := f.Flip(ctx, env.layout.RoutesMap(), app+".test", be); err != nil {
						return err
					}
					if i > 0 {
						old := app + "_" + color[i%2 == 0]
						if err := f.DelServers(ctx, old, []string{fmt.Sprintf("%s-%s-%d", app, color[i%2 == 0], i-1)}); err != nil {
							return err
						}
					}
				}
				return nil
			}()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}

	live, err := env.c.Snapshot(ctx, env.layout)
	must(t, err)
	want, err := Render(live)
	must(t, err)
	for _, f := range want {
		got, err := os.ReadFile(env.layout.Path(f.Name))
		must(t, err)
		if !bytes.Equal(got, f.Data) {
			t.Errorf("%s on disk is not what HAProxy holds:\n%s", f.Name, unifiedDiff("runtime", "disk", f.Data, got))
		}
	}
	last := fmt.Sprintf("-%s-%d", "green", rounds-1) // round rounds-1 is odd: green
	for _, app := range []string{"a", "b"} {
		be := live.Backend(app + "_green")
		if len(be.Servers) != 1 || be.Servers[0].Name != app+last {
			t.Errorf("%s_green holds %+v, want only %s%s", app, be.Servers, app, last)
		}
	}

	env.h.Reload(t)
	after, err := env.c.Snapshot(ctx, env.layout)
	must(t, err)
	byKey := func(m []MapEntry) { sort.Slice(m, func(i, j int) bool { return m[i].Key < m[j].Key }) }
	byKey(after.Routes)
	byKey(live.Routes)
	if !reflect.DeepEqual(after.Backends, live.Backends) || !reflect.DeepEqual(after.Routes, live.Routes) {
		t.Fatalf("after the reload HAProxy serves\n%+v\n%+v\nwant\n%+v\n%+v", after.Backends, after.Routes, live.Backends, live.Routes)
	}
	for _, app := range []string{"a", "b"} {
		code, color := get(t, http.DefaultClient, env.layout.Frontend.Bind, app+".test")
		if code != http.StatusOK || color != app+"-green" {
			t.Errorf("%s.test after the reload: %d from %q, want 200 from %s-green", app, code, color, app)
		}
	}
}

// TestAPersistThatReadTheRuntimeFirstNeverRenamesOverANewerOne forces the interleaving
// two swap processes can hit: fleet A changes its app and reads the runtime, then, while
// A's `haproxy -c` runs (a gate holds it until B is done, at most 2 s), fleet B changes
// its app and persists. Without the directory lock B writes first and A then renames its
// older haproxy.cfg over B's, losing B's server; with it B waits for A and writes last.
func TestAPersistThatReadTheRuntimeFirstNeverRenamesOverANewerOne(t *testing.T) {
	env := startLayout(t, twoAppLayout)
	ctx := testCtx(t)
	gate := t.TempDir()
	script := filepath.Join(gate, "haproxy-gated")
	writeFile(t, script, "#!/bin/sh\ntouch "+gate+"/checking\ni=0\nwhile [ ! -e "+gate+"/go ] && [ $i -lt 40 ]; do sleep 0.05; i=$((i+1)); done\nexec haproxy \"$@\"\n")
	must(t, os.Chmod(script, 0o755))
	fleet := func(name string, opts WriteOptions) *Fleet {
		c, err := New("unix", env.h.AdminSock, WithName(name))
		must(t, err)
		f, err := NewFleet(env.layout, opts, Instance{Client: c})
		must(t, err)
		return f
	}
	a, b := fleet("proc-a", WriteOptions{Binary: script}), fleet("proc-b", WriteOptions{})
	app := newBackend(t, "x")
	server := func(be, name string) Server {
		s, err := env.layout.NewServer(be, name, "127.0.0.1", app.port())
		must(t, err)
		return s
	}
	aDone := make(chan error, 1)
	go func() { aDone <- a.AddServer(ctx, "a_blue", server("a_blue", "a-blue-0")) }()
	waitFile(t, filepath.Join(gate, "checking")) // A has read the runtime and is checking
	must(t, b.AddServer(ctx, "b_blue", server("b_blue", "b-blue-0")))
	writeFile(t, filepath.Join(gate, "go"), "")
	must(t, <-aDone)

	cfg := readFile(t, env.layout.Path(ConfigFile))
	for _, s := range []string{"server a-blue-0 ", "server b-blue-0 "} {
		if !strings.Contains(cfg, s) {
			t.Errorf("haproxy.cfg lost %q (an older snapshot was renamed over a newer one):\n%s", s, cfg)
		}
	}
}

// twoAppLayout is baseLayout with apps a and b (a_blue, a_green, b_blue, b_green),
// servers without checks.
func twoAppLayout(dir string, port func(string) int) *Layout {
	l := baseLayout(dir, port)
	tmpl := l.Backends[0]
	l.Backends = nil
	for _, app := range []string{"a", "b"} {
		for _, color := range []string{"blue", "green"} {
			be := tmpl
			be.Name = app + "_" + color
			be.Server.Check.Disabled = true // these tests are about files, not checks
			l.Backends = append(l.Backends, be)
		}
	}
	return l
}

func waitFile(t *testing.T, path string) {
	t.Helper()
	pollT(t, func() error {
		_, err := os.Stat(path)
		return err
	})
}
