package stack

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"

	"github.com/swap-dev/swap/internal/stack/procs"
	"github.com/swap-dev/swap/internal/testenv"
)

// swapBinary is cmd/swap, built once per test process.
func swapBinary(t *testing.T) string { t.Helper(); return testenv.Binary(t, "./cmd/swap") }

const testApps = `  %[1]s:
    image: %[2]s
    replicas: 1
    port: 8080
    route: %[1]s.test
    healthcheck: {path: /healthz, interval: 100ms, timeout: 100ms, rise: 1, fall: 2}
    min_healthy_time: 200ms
    stop_timeout: 5s
`

// up starts a stack with one app running demoapp, deployed, and checks it serves.
func up(t *testing.T) *Stack { t.Helper(); return upWith(t, 1) }

// upWith is up with that many HAProxys.
func upWith(t *testing.T, haproxies int) *Stack {
	t.Helper()
	env := testenv.Docker(t) // checks the engine; the stack labels its own things
	if _, err := exec.LookPath("haproxy"); err != nil {
		testenv.Require(t, "haproxy", err)
	}
	consul, err := testenv.ConsulBinary(t)
	if err != nil {
		testenv.Require(t, "consul", err)
	}
	base, err := os.MkdirTemp("", "sd-") // short: sockets live in it
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	app := "stk" + env.RunID
	ref := "swap-test-stack-" + env.RunID + ":v1"
	ctx := context.Background()
	s, err := Up(ctx, Options{Dir: filepath.Join(base, "w"), Swap: swapBinary(t), Consul: consul, Apps: fmt.Sprintf(testApps, app, ref),
		HAProxies: haproxies})
	if s != nil {
		t.Cleanup(func() { s.Down(context.Background()) })
	}
	if err != nil {
		t.Fatalf("Up: %v", err)
	}
	bin, err := os.ReadFile(testenv.DemoBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DemoImage(ctx, ref, "v1", bin); err != nil {
		t.Fatalf("DemoImage: %v", err)
	}
	run, err := s.SwapJSON(ctx, "", nil, "deploy", app)
	if err != nil {
		t.Fatalf("swap deploy: %v\n%s", err, run.Stderr)
	}
	testenv.WaitFor(t, 10*time.Second, "the frontend serves the app", func() error {
		req, _ := http.NewRequest("GET", "http://"+s.Frontend+"/", nil)
		req.Host = app + ".test"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "color=blue version=v1") {
			return fmt.Errorf("%d %q", resp.StatusCode, b)
		}
		return nil
	})
	return s
}

// requireGone fails the test unless nothing of s is left: no container or image with
// its label, no process from its pid files, no working directory.
func requireGone(t *testing.T, s *Stack, pids []int) {
	t.Helper()
	env := testenv.Docker(t)
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", s.Label))
	cs, err := env.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil || len(cs) > 0 {
		t.Errorf("containers labelled %s left: %d (%v)", s.Label, len(cs), err)
	}
	imgs, err := env.Client.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil || len(imgs) > 0 {
		t.Errorf("images labelled %s left: %d (%v)", s.Label, len(imgs), err)
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && procs.Runs(pid, "") {
			t.Errorf("pid %d still runs", pid)
		}
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", s.Dir, err)
	}
}

func (s *Stack) pids() []int {
	var out []int
	for _, p := range s.procs {
		out = append(out, p.Pid())
	}
	return out
}

func TestDown_RemovesEverythingTheStackStarted(t *testing.T) {
	s := up(t)
	pids := s.pids()
	if len(pids) != 2 {
		t.Fatalf("%d processes started, want consul and haproxy", len(pids))
	}
	if err := s.Down(context.Background()); err != nil {
		t.Fatalf("Down: %v", err)
	}
	requireGone(t, s, pids)
}

func TestDownDir_RemovesWhatAKilledRunLeftBehind(t *testing.T) {
	s := up(t)
	// swap serve too: a killed demo leaves it running beside HAProxy and Consul (its
	// pid file's marker once named the config, which is not on its command line, and
	// Down(dir) left it running).
	if _, err := s.Serve(context.Background()); err != nil {
		t.Fatal(err)
	}
	pids := s.pids()
	if len(pids) != 3 {
		t.Fatalf("%d processes started, want consul, haproxy and swap serve", len(pids))
	}
	// As if the demo was killed: nothing of s runs its cleanup, only the directory is left.
	downDir(t, s, pids)
}

// downDir removes s by its directory alone, as after a crash, and checks nothing is left.
func downDir(t *testing.T, s *Stack, pids []int) {
	t.Helper()
	if err := Down(context.Background(), s.Dir, io.Discard); err != nil {
		t.Fatalf("Down(dir): %v", err)
	}
	for _, p := range s.procs {
		select {
		case <-p.Done():
		case <-time.After(15 * time.Second):
			t.Fatalf("%s (pid %d) still runs after Down(dir)", p.Name, p.Pid())
		}
	}
	requireGone(t, s, pids)
}

func TestUp_RefusesADirectoryThatExists(t *testing.T) {
	dir := t.TempDir()
	_, err := Up(context.Background(), Options{Dir: dir, Swap: "/bin/true", Consul: "/bin/true", HAProxy: "true"})
	if err == nil || !strings.Contains(err.Error(), "make demo-down") {
		t.Fatalf("Up in an existing directory = %v, want an error naming make demo-down", err)
	}
}

func TestDownDir_TouchesNoDockerObjectWithoutTheRunsID(t *testing.T) {
	// Another run's containers carry the same label key: without an ID, Down must not
	// guess. It still removes the directory.
	dir := filepath.Join(t.TempDir(), "w")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	if err := Down(context.Background(), dir, &log); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if !strings.Contains(log.String(), "no demo to remove from Docker") {
		t.Errorf("log %q does not say Docker was left alone", log.String())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there (%v)", dir, err)
	}
	if err := Down(context.Background(), dir, &log); err != nil {
		t.Errorf("Down of a directory that is gone: %v, want nil", err)
	}
}

func TestUp_StartsSeveralHAProxysThatAllTakeTheSwapAndDownStopsThemAll(t *testing.T) {
	s := upWith(t, 3)
	pids := s.pids()
	if len(pids) != 4 {
		t.Fatalf("%d processes started, want consul and 3 haproxy", len(pids))
	}
	app := strings.TrimSuffix(strings.Fields(s.opts.Apps)[0], ":")
	run, err := s.SwapJSON(context.Background(), "", nil, "deploy", app) // blue -> green
	if err != nil {
		t.Fatalf("swap deploy: %v\n%s", err, run.Stderr)
	}
	for i := range 3 {
		sock := filepath.Join(s.Dir, instanceDir(i), "admin.sock")
		out, err := procs.SocketExec(sock, "show servers state "+app+"_green")
		if err != nil || !strings.Contains(out, app+"-green-") {
			t.Errorf("HAProxy %d (%s) has no green server after the swap: %v\n%s", i+1, sock, err, out)
		}
	}
	if run.PeakRSS < 1<<20 || run.MaxRSS < run.PeakRSS {
		t.Errorf("peak RSS %d (VmHWM) and %d (wait4): want a sampled peak over 1 MiB, not above the kernel's", run.PeakRSS, run.MaxRSS)
	}
	downDir(t, s, pids)
}

func TestInstancesYAML_GivesEveryHAProxyButTheFirstItsOwnDirectory(t *testing.T) {
	want := `    - name: demo
      socket: haproxy/admin.sock
      master_socket: haproxy/master.sock
    - name: demo-2
      socket: haproxy-2/admin.sock
      master_socket: haproxy-2/master.sock
      dir: haproxy-2
`
	if got := instancesYAML(2); got != want {
		t.Errorf("instancesYAML(2) =\n%s\nwant\n%s", got, want)
	}
}

func TestStatusKB_ReadsAKiBLineOfProcStatus(t *testing.T) {
	status := []byte("Name:\tswap\nVmPeak:\t 1300000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   40000 kB\n")
	if n, ok := statusKB(status, "VmHWM"); !ok || n != 41234 {
		t.Errorf("VmHWM = %d, %v", n, ok)
	}
	if _, ok := statusKB(status, "VmSwap"); ok {
		t.Error("a missing key was found")
	}
	if _, ok := statusKB([]byte("VmHWM:\tlots kB\n"), "VmHWM"); ok {
		t.Error("a value that is not a number was read")
	}
}
