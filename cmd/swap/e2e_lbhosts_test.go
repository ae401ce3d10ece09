package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// TestE2E_TwoHAProxyHostsFollowEverySwapAndAStaleRestartConverges runs an app with 2
// replicas per color on each of 2 Docker hosts behind 2 HAProxy "hosts": lb1, whose
// files the swap CLI writes, and lb2, which the CLI changes at runtime only, through its
// TCP admin address (haproxy.instances[].address without dir), while a `swap watch` of
// lb2's own, with a config that lists only lb2, writes lb2's files from Consul KV. A
// deploy, a switch and a rollback run under load through both HAProxies without a
// failed request. The rollback keeps the old color up for a scale_down_delay; meanwhile
// lb2 is stopped, its files from before the rollback (routing to the other color) are
// put back and it is started again: its swap watch brings it to
// the live color (servers added, route moved once they serve), and the load through lb2
// failed only while it was down.
//
// lb2 runs in a network namespace of its own (testenv.NewLBHost), with its own
// directory, frontend (on the namespace's address) and `swap watch`: it reaches the
// Docker hosts' namespaces over veths of its own, straight, since the root namespace
// would not forward between them (the machine's firewall drops forwarded packets, FORWARD
// policy DROP, and the tests do not change it). Its TCP admin address is a loopback
// forwarder to its unix admin socket, the one the rendered haproxy.cfg has (docs/hosts.md:
// expose a remote HAProxy's admin socket over TCP yourself); its swap watch runs in the
// root namespace, where Consul's dev agent listens on loopback, and reaches lb2 by its
// unix socket, a file.
func TestE2E_TwoHAProxyHostsFollowEverySwapAndAStaleRestartConverges(t *testing.T) {
	t.Parallel()
	app := e2eApp("lbhosts")
	host := app + ".test"
	s, dockerHosts := hostsStack(t, appConfig(app, "    replicas: 4\n"), 0)
	lbHost := testenv.NewLBHost(t, dockerHosts["a"], dockerHosts["b"])
	hdir := filepath.Join(s.dir, "haproxy")
	hdir2 := filepath.Join(s.dir, "lb2")
	if err := os.MkdirAll(hdir2, 0o700); err != nil {
		t.Fatal(err)
	}
	base, err := os.ReadFile(s.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	fe2 := fmt.Sprintf("%s:%d", lbHost.Addr, testenv.FreePort(t))
	pv2 := fmt.Sprintf("%s:%d", lbHost.Addr, testenv.FreePort(t))
	lb1Block := fmt.Sprintf("    - name: lb1\n      socket: %s/admin.sock\n      master_socket: %s/master.sock\n", hdir, hdir)
	replace := func(in, old, new string) string {
		t.Helper()
		if !strings.Contains(in, old) {
			t.Fatalf("no %q in the stack's config:\n%s", old, in)
		}
		return strings.Replace(in, old, new, 1)
	}
	// lb2's host: its swap watch's config lists only lb2, with its socket and files.
	cfg2 := replace(string(base), "  dir: "+hdir+"\n", "  dir: "+hdir2+"\n")
	cfg2 = replace(cfg2, lb1Block, fmt.Sprintf("    - name: lb2\n      socket: %s/admin.sock\n", hdir2))
	cfg2 = replace(cfg2, `bind: "`+s.frontend+`"`, `bind: "`+fe2+`"`)
	cfg2 = replace(cfg2, `bind: "`+s.preview+`"`, `bind: "`+pv2+`"`)
	cfg2Path := filepath.Join(s.dir, "lb2.yaml")
	if err := os.WriteFile(cfg2Path, []byte(cfg2), 0o600); err != nil {
		t.Fatal(err)
	}
	renderConfig(t, cfg2Path, hdir2)
	lb2 := testenv.RunHAProxyIn(t, lbHost.Wrap(), filepath.Join(hdir2, "haproxy.cfg"), filepath.Join(hdir2, "admin.sock"))
	admin2 := tcpToUnix(t, lb2.AdminSock)
	// The swap CLI's config: lb1 with its files here, lb2 another host's (an address,
	// no dir: its map ids are paths in haproxy.dir, where lb2's host has its files).
	cli := replace(string(base), "  dir: "+hdir+"\n", "  dir: "+hdir2+"\n")
	cli = replace(cli, lb1Block, lb1Block+"      dir: "+hdir+"\n    - name: lb2\n      address: "+admin2+"\n")
	if err := os.WriteFile(s.cfgPath, []byte(cli), 0o600); err != nil {
		t.Fatal(err)
	}

	w := s.swapBackground([]string{"SWAP_CONFIG=" + cfg2Path, "SWAP_LOG_LEVEL=info"}, "watch", "--host", "lb2", "--resync", "2s")
	testenv.WaitFor(t, 60*time.Second, "swap watch of lb2 started", func() error {
		if w.exited() || !strings.Contains(w.err.String(), "reconcile loop started") {
			return fmt.Errorf("not yet (exited %v):\n%s", w.exited(), w.err.String())
		}
		return nil
	})
	why := func() string { return "\nlb2's swap watch:\n" + w.err.String() }

	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	waitAnswerOn(t, fe2, host, "color=blue version=v1")
	l1 := s.startLoad(host, "/", 2)
	l2 := s.startLoadOn(lbHost, fe2, host, "/", 2)
	start := time.Now()
	s.mustSwap(app, "green")
	t.Logf("switch to green: %s", time.Since(start).Round(time.Millisecond))
	s.waitAnswer(host, "color=green version=v1")
	waitAnswerOn(t, fe2, host, "color=green version=v1")
	start = time.Now()
	s.mustSwap("deploy", app, "--image", s.v2)
	t.Logf("deploy of v2: %s", time.Since(start).Round(time.Millisecond))
	s.waitAnswer(host, "color=blue version=v2")
	waitAnswerOn(t, fe2, host, "color=blue version=v2")

	// lb2's files before the last swap, as its swap watch wrote them: blue live, green
	// gone (the CLI changed lb2 at runtime only).
	green, blue := app+"_green", app+"_blue"
	waitFiles(t, hdir2, func(cfg, routes string) bool {
		return strings.Contains(routes, host+" "+blue) && strings.Contains(cfg, "server "+app+"-blue-") && !strings.Contains(cfg, "server "+app+"-green-")
	}, why)
	stale := readDir(t, hdir2)

	// The rollback keeps blue up (scale_down_delay): lb2 restarted from the stale files
	// then routes to a color that still answers, so its load may fail only while lb2 is
	// down.
	cli = replace(cli, "    stop_timeout: 5s\n", "    stop_timeout: 5s\n    scale_down_delay: 40s\n")
	if err := os.WriteFile(s.cfgPath, []byte(cli), 0o600); err != nil {
		t.Fatal(err)
	}
	rb := s.swapBackground(nil, "rollback", app, "--output", "json")
	rb.waitEvent(switcher.StepRetire, switcher.EventStart, "waiting until", 3*time.Minute)
	s.waitAnswer(host, "color=green version=v1")
	waitAnswerOn(t, fe2, host, "color=green version=v1")

	// lb2 restarted from its stale files: it routes to blue (retiring, still up).
	stoppedAt := time.Now()
	logAt := len(w.err.String())
	lb2.Stop()
	// Under the directory's lock, which the watch's writes hold from reading the runtime
	// to the last rename: one that read lb2 before its stop finishes first, and cannot
	// rename its newer files over the stale ones (later ones fail: lb2 is down).
	unlock, err := lbconfig.LockDir(context.Background(), hdir2)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range stale {
		if err := os.WriteFile(filepath.Join(hdir2, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	unlock()
	lb2.Restart(t)
	restartedAt := time.Now()
	start = time.Now()
	waitAnswerOn(t, fe2, host, "color=green version=v1")
	t.Logf("lb2 restarted from stale files served the live color again after %s", time.Since(start).Round(time.Millisecond))
	states, err := lb2.Exec("show servers state " + green)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := lbconfig.ParseServersState(states)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("lb2 has %d servers in %s after the watch's pass, want 4:\n%s%s", len(rows), green, states, why())
	}
	// The watch logs a change once it is live and written (the route is live first).
	testenv.WaitFor(t, 30*time.Second, "lb2's swap watch logs the servers it added and the route it moved after the restart", func() error {
		if after := w.err.String()[logAt:]; !strings.Contains(after, `"action":"add"`) || !strings.Contains(after, `"action":"route"`) {
			return fmt.Errorf("not yet:%s", why())
		}
		return nil
	})

	rb.mustSucceed(3 * time.Minute)
	// Blue retired: gone from lb2 at runtime (by the CLI), and from its files (by its watch).
	waitFiles(t, hdir2, func(cfg, routes string) bool {
		return strings.Contains(routes, host+" "+green) && strings.Contains(cfg, "server "+app+"-green-") && !strings.Contains(cfg, "server "+app+"-blue-")
	}, why)

	l1.requireNoFailures(t)
	fails := l2.finish()
	t.Logf("load through lb2: %d requests, by color %v; %d failed (a worker pauses loadPause after a failed request as after any) from %s to %s after lb2's stop, which was down %s",
		l2.total.Load(), l2.byColor, len(fails), l2.firstFail.Sub(stoppedAt).Round(time.Millisecond), l2.lastFail.Sub(stoppedAt).Round(time.Millisecond),
		restartedAt.Sub(stoppedAt).Round(time.Millisecond))
	if len(fails) == 0 {
		t.Fatal("no request through lb2 failed while it was down: was the load running?")
	}
	if l2.firstFail.Before(stoppedAt) || l2.lastFail.After(restartedAt) {
		t.Logf("lb2's log: %s%s", lb2.Log(), why())
		t.Fatalf("requests through lb2 failed from %s to %s, outside its downtime (%s to %s); the last: %v",
			l2.firstFail.Format(time.StampMilli), l2.lastFail.Format(time.StampMilli),
			stoppedAt.Format(time.StampMilli), restartedAt.Format(time.StampMilli), fails[max(0, len(fails)-10):])
	}
}

// tcpToUnix forwards a loopback TCP address to the unix socket sock, a connection for
// each, until the test ends, and returns the address: the TCP admin address of an
// HAProxy whose rendered config has a unix admin socket. It dials sock for each
// connection, so it survives HAProxy's restarts.
func tcpToUnix(t *testing.T, sock string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				u, err := net.Dial("unix", sock)
				if err != nil {
					return
				}
				defer u.Close()
				done := make(chan struct{})
				go func() { io.Copy(u, c); u.(*net.UnixConn).CloseWrite(); close(done) }()
				io.Copy(c, u)
				c.(*net.TCPConn).CloseWrite()
				<-done
			}()
		}
	}()
	return ln.Addr().String()
}

// waitAnswerOn polls the HAProxy frontend at frontend until host answers with want.
func waitAnswerOn(t *testing.T, frontend, host, want string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, frontend+" answers "+want, func() error {
		code, body, err := getOn(frontend, host, "/")
		if err != nil {
			return err
		}
		if code != 200 || !strings.Contains(body, want) {
			return fmt.Errorf("GET / = %d %q", code, body)
		}
		return nil
	})
}

// waitFiles polls dir's haproxy.cfg and routes.map until ok says they are as wanted.
func waitFiles(t *testing.T, dir string, ok func(cfg, routes string) bool, why func() string) {
	t.Helper()
	testenv.WaitFor(t, 60*time.Second, "the files in "+dir, func() error {
		cfg, err1 := os.ReadFile(filepath.Join(dir, lbconfig.ConfigFile))
		routes, err2 := os.ReadFile(filepath.Join(dir, lbconfig.RoutesMapFile))
		if err1 != nil || err2 != nil || !ok(string(cfg), string(routes)) {
			return fmt.Errorf("not yet (%v %v): routes.map:\n%s\nhaproxy.cfg:\n%s%s", err1, err2, routes, cfg, why())
		}
		return nil
	})
}

// readDir reads HAProxy's files in dir (not its sockets, nor the lock file).
func readDir(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, e := range ents {
		if !e.Type().IsRegular() || e.Name() == lbconfig.LockFile {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = b
	}
	return out
}
