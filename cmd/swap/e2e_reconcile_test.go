package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// serverRow is server's row of backend in HAProxy's `show stat` (Type 0 when absent).
func (s *stack) serverRow(backend, server string) lbconfig.Stat {
	s.t.Helper()
	out, err := s.haproxy.Exec("show stat")
	if err != nil {
		s.t.Fatalf("show stat: %v", err)
	}
	rows, err := lbconfig.ParseStat(out)
	if err != nil {
		s.t.Fatalf("show stat: %v", err)
	}
	for _, r := range rows {
		if r.Type == lbconfig.StatServer && r.Proxy == backend && r.Name == server {
			return r
		}
	}
	return lbconfig.Stat{}
}

// waitServerStatus polls `show stat` until server's status is want (a poll with a
// deadline, generous for a busy machine) and returns its row.
func (s *stack) waitServerStatus(backend, server, want string, why func() string) lbconfig.Stat {
	s.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		r := s.serverRow(backend, server)
		if r.Status == want {
			return r
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s/%s is %q, want %q\n%s", backend, server, r.Status, want, why())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// consulCLI runs the consul binary against the stack's agent.
func (s *stack) consulCLI(args ...string) {
	s.t.Helper()
	bin, err := testenv.ConsulBinary(s.t)
	if err != nil {
		s.t.Fatal(err)
	}
	out, err := exec.Command(bin, append(args[:1:1], append([]string{"-http-addr=" + s.consul.Addr}, args[1:]...)...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("consul %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// waitOutput polls out until it holds want.
func waitOutput(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the output:\n%s", want, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// consulWatch runs `consul watch <args> <swap> hook` — the real consul watch with this
// test binary as swap for its handler — until the test ends, and returns its output.
func (s *stack) consulWatch(args ...string) *lockedBuffer {
	s.t.Helper()
	bin, err := testenv.ConsulBinary(s.t)
	if err != nil {
		s.t.Fatal(err)
	}
	argv := append([]string{"watch", "-http-addr=" + s.consul.Addr}, args...)
	// The handler notes each run (consul watch runs it through $SHELL), then execs swap.
	script := s.dir + "/hook.sh"
	body := fmt.Sprintf("#!/bin/sh\necho \"handler run at index $CONSUL_INDEX\" >&2\nexec %s hook\n", cliBinary(s.t))
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		s.t.Fatal(err)
	}
	argv = append(argv, script)
	cmd := exec.Command(bin, argv...)
	cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+s.cfgPath, "SWAP_LOG_LEVEL=debug")
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start consul watch: %v", err)
	}
	pid := cmd.Process.Pid
	s.t.Cleanup(func() {
		_ = syscall.Kill(-pid, syscall.SIGTERM) // consul watch and a handler it runs
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-done
		}
	})
	return out
}

// A `consul watch` on the app's service with `swap hook` as its handler takes an
// instance out of rotation when Consul fails it — here `consul maint`, while HAProxy's
// own checks still pass — and puts it back when Consul passes it again; the rest of the
// live color serves throughout.
func TestE2E_HookTakesAnInstanceConsulFailsOutOfRotationAndPutsItBack(t *testing.T) {
	t.Parallel()
	app := e2eApp("hook")
	host := app + ".test"
	s := newStack(t, appConfig(app, ""))
	blue := app + "_blue"
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	if r := s.serverRow(blue, app+"-blue-0"); r.Status != "UP" {
		t.Fatalf("%s-blue-0 is %q after the deploy, want UP", app, r.Status)
	}

	out := s.consulWatch("-type=service", "-service="+app)
	// Its first run, at start, finds everything in line.
	waitOutput(t, out, app+": in line")
	l := s.startLoad(host, "/", 2)
	id := deployments.ObjectName(s.installation, app+"-blue-0")
	s.consulCLI("maint", "-enable", "-service="+id, "-reason=e2e")
	r := s.waitServerStatus(blue, app+"-blue-0", "DRAIN", out.String)
	if got := strings.TrimPrefix(r.CheckStatus, "* "); got != "L7OK" {
		t.Fatalf("HAProxy's own check of %s-blue-0 is %q, want L7OK (only Consul fails it)", app, got)
	}
	if other := s.serverRow(blue, app+"-blue-1"); other.Status != "UP" {
		t.Fatalf("%s-blue-1 is %q while blue-0 is out, want UP\n%s", app, other.Status, out)
	}
	key := "swap-test-" + s.docker.RunID + "/" + switcher.RotationKey(app, "")
	if pairs, _, err := s.consul.Client.KV().List(key, nil); err != nil || len(pairs) != 1 {
		t.Fatalf("the loop's record under %s: %v %v", key, pairs, err)
	}

	// consul watch runs its handler again only for data unlike what it last handed it:
	// let the handler that took blue-0 out finish before Consul passes it again.
	waitOutput(t, out, app+": take-out ")
	s.consulCLI("maint", "-disable", "-service="+id)
	s.waitServerStatus(blue, app+"-blue-0", "UP", func() string {
		return out.String() + "\n-- a pass run by hand:\n" + s.swap([]string{"SWAP_LOG_LEVEL=debug"}, "hook", app).String()
	})
	l.stop()
	l.requireNoFailures(t)
	// The record is cleared once the server is back.
	deadline := time.Now().Add(30 * time.Second)
	for {
		pairs, _, err := s.consul.Client.KV().List(key, nil)
		if err == nil && len(pairs) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the loop's record is left after the put-back: %v %v\n%s", pairs, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(out.String(), `"action":"take-out"`) || !strings.Contains(out.String(), `"action":"put-back"`) {
		t.Fatalf("the handler's log does not show the take-out and the put-back:\n%s", out)
	}
}

// HAProxy's maps follow the live color in KV in one pass: a routes map that says blue
// (an HAProxy restarted from old files) while KV says green, a leftover preview and
// canary entry. A second pass changes nothing.
func TestE2E_HookRoutesToTheLiveColorInKVInOnePass(t *testing.T) {
	t.Parallel()
	app := e2eApp("hookroute")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    scale_down_delay: 10m\n"))
	blue, green := app+"_blue", app+"_green"
	s.mustSwap("deploy", app, "--image", s.v1)
	// The deploy to green keeps blue up, drained, and waits without the lock.
	b := s.swapBackground(nil, "deploy", app, "--image", s.v2, "--output", "json")
	b.waitEvent(switcher.StepRetire, switcher.EventStart, "waiting until", 2*time.Minute)
	s.waitAnswer(host, "color=green version=v2")
	dir := s.dir + "/haproxy/"
	for _, line := range []string{
		"set map " + dir + "routes.map " + host + " " + blue,
		"add map " + dir + "preview.map " + host + " " + blue,
		"add map " + dir + "canary.map " + host + " " + green + ":30",
	} {
		if out, err := s.haproxy.Exec(line); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s: %q %v", line, out, err)
		}
	}
	if got := s.route(host); got != blue {
		t.Fatalf("routes.map says %s -> %q, want the stale %s", host, got, blue)
	}

	r := s.mustSwap("hook", app)
	for _, want := range []string{"route -> " + green, "preview -> nothing", "canary removed"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("hook did not report %q:\n%s", want, r)
		}
	}
	if got := s.route(host); got != green {
		t.Fatalf("routes.map says %s -> %q after one pass, want %s", host, got, green)
	}
	if p, c := s.mapValue("preview.map", host), s.mapValue("canary.map", host); p != "" || c != "" {
		t.Fatalf("preview %q canary %q left after one pass", p, c)
	}
	s.requireAnswer(s.frontend, host, 200, "color=green version=v2")
	// The files follow: a restart from them serves green.
	file, err := os.ReadFile(dir + "routes.map")
	if err != nil || !strings.Contains(string(file), host+" "+green) {
		t.Fatalf("routes.map file after the pass: %q %v", file, err)
	}
	// Blue is retiring (scale_down_delay), drained by the swap: the loop leaves it so.
	if st := s.serverRow(blue, app+"-blue-0").Status; st != "DRAIN" {
		t.Fatalf("the retiring %s-blue-0 is %q, want DRAIN (the swap's drain)", app, st)
	}
	if r := s.mustSwap("hook", app); !strings.Contains(r.stdout, app+": in line") {
		t.Fatalf("a second pass was not a no-op:\n%s", r)
	}
	// Fed a consul watch's JSON on stdin, the hook finds the app in it.
	cmd := exec.Command(cliBinary(t), "hook")
	cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+s.cfgPath, "SWAP_LOG_LEVEL=warn")
	cmd.Stdin = strings.NewReader(fmt.Sprintf(`[{"Node":"n1","CheckID":"x","ServiceID":"x","ServiceName":%q,"Status":"passing"}]`, app))
	var so bytes.Buffer
	cmd.Stdout = &so
	if err := cmd.Run(); err != nil || !strings.HasPrefix(so.String(), app+": in line\n") {
		t.Fatalf("hook with a checks watch's JSON: %v\n%s", err, so.String())
	}
}

// `swap watch` follows Consul with blocking queries: `consul maint` takes a server out
// of rotation and back without any handler or timer, and SIGTERM stops it with exit 0.
func TestE2E_WatchFollowsConsulHealthWithBlockingQueriesUntilStopped(t *testing.T) {
	t.Parallel()
	app := e2eApp("watch")
	host := app + ".test"
	s := newStack(t, appConfig(app, ""))
	blue := app + "_blue"
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	// A resync longer than the test: only the blocking queries can trigger the passes.
	b := s.swapBackground([]string{"SWAP_LOG_LEVEL=info"}, "watch", "--resync", "1h")
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(b.err.String(), "reconcile loop started") {
		if time.Now().After(deadline) || b.exited() {
			t.Fatalf("swap watch did not start:\n%s", b.err.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	l := s.startLoad(host, "/", 2)
	id := deployments.ObjectName(s.installation, app+"-blue-0")
	s.consulCLI("maint", "-enable", "-service="+id, "-reason=e2e")
	s.waitServerStatus(blue, app+"-blue-0", "DRAIN", b.err.String)
	if other := s.serverRow(blue, app+"-blue-1"); other.Status != "UP" {
		t.Fatalf("%s-blue-1 is %q while blue-0 is out, want UP", app, other.Status)
	}
	s.consulCLI("maint", "-disable", "-service="+id)
	s.waitServerStatus(blue, app+"-blue-0", "UP", b.err.String)
	l.stop()
	l.requireNoFailures(t)

	if err := syscall.Kill(b.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if r := b.wait(30 * time.Second); r.code != 0 {
		t.Fatalf("swap watch after SIGTERM: %s", r)
	}
}
