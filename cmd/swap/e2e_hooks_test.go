package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/switcher"
)

// Hooks cannot hang a swap or leak processes, and see only their own environment
// (issue 8); every mutating command checks its services before it acts (9); a config
// that passes validation works (12); --dry-run changes nothing (13).

// hookDir is a directory the scenario's hooks write to (named to them by hooks.env).
func hookDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "swap-e2e-hooks-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// readPids waits for a hook to write pids (space-separated) into path.
func readPids(t *testing.T, path string) []int {
	t.Helper()
	var pids []int
	testenv.WaitFor(t, 30*time.Second, "a hook writes pids into "+filepath.Base(path), func() error {
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		pids = pids[:0]
		for _, f := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(f)
			if err != nil {
				return err
			}
			pids = append(pids, pid)
		}
		if len(pids) == 0 {
			return errors.New("no pid yet")
		}
		return nil
	})
	return pids
}

// processExists reports whether pid is a live process (a zombie is not).
func processExists(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

// killAtEnd kills pid (a process a hook left behind) when the test ends.
func killAtEnd(t *testing.T, pid int) {
	t.Cleanup(func() {
		if processExists(pid) {
			if p, err := os.FindProcess(pid); err == nil {
				_ = p.Kill()
			}
		}
	})
}

// kv reads key (relative to the stack's kv_prefix) straight from Consul: its value and
// the session holding it ("" when none); nil when absent.
func (s *stack) kv(rel string) (value []byte, session string, ok bool) {
	s.t.Helper()
	p, _, err := s.consul.Client.KV().Get("swap-test-"+s.docker.RunID+"/"+rel, nil)
	if err != nil {
		s.t.Fatalf("read %s from Consul: %v", rel, err)
	}
	if p == nil {
		return nil, "", false
	}
	return p.Value, p.Session, true
}

func TestE2E_HooksRunWithATimeoutInTheirOwnProcessGroupAndEnvironment(t *testing.T) {
	t.Parallel()
	app := e2eApp("hooks")
	host := app + ".test"
	dir := hookDir(t)
	// pre_deploy hangs (a child and a wait) while the arm file exists; post_deploy dumps
	// its environment and leaves a child in the background.
	hooks := fmt.Sprintf(`    hooks:
      pre_deploy: 'if [ -e "$E2E_DIR/arm" ]; then sleep 600 & echo $$ $! > "$E2E_DIR/group"; wait; fi'
      post_deploy: 'env > "$E2E_DIR/env"; sleep 600 & echo $! > "$E2E_DIR/bg"'
      env: {E2E_DIR: %s, NOTIFY_CHANNEL: deploys}
`, dir)
	s := newStack(t, appConfig(app, oneReplica+hooks))

	// A deploy with a secret in swap's environment: the post_deploy hook does not see it,
	// and its background child (sleep 600) keeps neither swap nor the lock.
	b := s.swapBackground([]string{"SWAP_CONSUL_TOKEN=e2e-secret-token", "E2E_OTHER_SECRET=hunter2"},
		"deploy", app, "--image", s.v1)
	r := b.wait(4 * time.Minute) // far less than the child's 600 s
	if r.code != 0 {
		t.Fatalf("deploy with a post_deploy hook leaving a background child: %s", r)
	}
	bg := readPids(t, filepath.Join(dir, "bg"))[0]
	killAtEnd(t, bg)
	if !processExists(bg) {
		t.Errorf("the hook's background child %d is gone: it was the hook's to keep", bg)
	}
	if _, session, _ := s.kv("locks/" + app); session != "" {
		t.Fatalf("the lock of %s is still held (session %s) after swap exited", app, session)
	}
	s.waitAnswer(host, "color=blue version=v1")

	env, err := os.ReadFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(env)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		vars[k] = v
	}
	for k, want := range map[string]string{"SWAP_APP": app, "SWAP_COLOR": "blue", "SWAP_IMAGE": s.v1,
		"NOTIFY_CHANNEL": "deploys", "E2E_DIR": dir, "PATH": os.Getenv("PATH")} {
		if vars[k] != want {
			t.Errorf("the hook's %s = %q, want %q", k, vars[k], want)
		}
	}
	if home := os.Getenv("HOME"); home != "" && vars["HOME"] != home {
		t.Errorf("the hook's HOME = %q, want swap's %q", vars["HOME"], home)
	}
	if vars["SWAP_DEPLOY"] == "" {
		t.Error("the hook has no SWAP_DEPLOY")
	}
	for _, k := range []string{"SWAP_CONSUL_TOKEN", "E2E_OTHER_SECRET", "SWAP_CONFIG", "SWAP_E2E_CLI"} {
		if v, ok := vars[k]; ok {
			t.Errorf("the hook sees swap's %s=%q", k, v)
		}
	}
	if strings.Contains(string(env), "e2e-secret-token") || strings.Contains(string(env), "hunter2") {
		t.Errorf("a secret of swap's environment reached the hook:\n%s", env)
	}

	// A pre_deploy hook over hooks.timeout (3s here, from the environment) is killed with
	// its child, and the deploy fails naming the hook and the timeout; blue keeps serving.
	if err := os.WriteFile(filepath.Join(dir, "arm"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	r = s.swap([]string{"SWAP_APPS_" + envKey(app) + "_HOOKS_TIMEOUT=3s"}, "deploy", app, "--image", s.v2)
	if r.code != 1 {
		t.Fatalf("a deploy whose pre_deploy hook outlives hooks.timeout: want exit 1, got %s", r)
	}
	for _, want := range []string{"pre_deploy", "timed out after 3s", "apps." + app + ".hooks.timeout", "rolled back"} {
		if !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	group := readPids(t, filepath.Join(dir, "group")) // the hook's shell and its child
	for _, pid := range group {
		killAtEnd(t, pid)
	}
	testenv.WaitFor(t, 30*time.Second, "no process of the hook's group is left", func() error {
		for _, pid := range group {
			if processExists(pid) {
				return fmt.Errorf("pid %d of the hook's group %v is alive", pid, group)
			}
		}
		return nil
	})
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers after the failed pre_deploy: %v", names)
	}
	if _, _, ok := s.kv(switcher.JournalKey(app)); ok {
		t.Error("a journal is left after the failed deploy")
	}
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("routes.map has %s -> %q, want %s_blue", host, got, app)
	}
	s.waitAnswer(host, "color=blue version=v1")

	// Ctrl-C while the hook runs (default timeout, 5m): the hook's group is killed, swap
	// rolls back, exits and frees the lock.
	if err := os.Remove(filepath.Join(dir, "group")); err != nil {
		t.Fatal(err)
	}
	b = s.swapBackground(nil, "deploy", app, "--image", s.v2)
	group = readPids(t, filepath.Join(dir, "group"))
	for _, pid := range group {
		killAtEnd(t, pid)
	}
	if err := b.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r = b.wait(2 * time.Minute) // far less than the hook's 600 s
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "pre_deploy") {
		t.Fatalf("a deploy interrupted in its pre_deploy hook: want a failure naming the hook, got %s", r)
	}
	for _, pid := range group {
		if processExists(pid) {
			t.Errorf("pid %d of the interrupted hook's group %v is alive", pid, group)
		}
	}
	if _, session, _ := s.kv("locks/" + app); session != "" {
		t.Errorf("the lock is still held (session %s) after the interrupted swap exited", session)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Errorf("green containers after the interrupted deploy: %v", names)
	}
	s.waitAnswer(host, "color=blue version=v1")
}

func TestE2E_ADeployWithHAProxyDownExits4BeforeItsHookOrJournal(t *testing.T) {
	t.Parallel()
	app := e2eApp("preflight")
	dir := hookDir(t)
	hooks := fmt.Sprintf("    hooks:\n      pre_deploy: 'touch %s'\n", filepath.Join(dir, "pre_deploy_ran"))
	s := newStack(t, appConfig(app, oneReplica+hooks))
	s.haproxy.Stop()

	r := s.swap(nil, "deploy", app, "--image", s.v1)
	if r.code != 4 {
		t.Fatalf("deploy with HAProxy down: want exit 4, got %s", r)
	}
	for _, want := range []string{"preflight", "HAProxy", "lb1", "nothing was changed"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the failure does not say %q:\n%s", want, r)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "pre_deploy_ran")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the pre_deploy hook ran (stat: %v)", err)
	}
	if j, _, ok := s.kv(switcher.JournalKey(app)); ok {
		t.Errorf("a journal was written: %s", j)
	}
	if names := s.containers("swap.app=" + app); len(names) != 0 {
		t.Errorf("containers were started: %v", names)
	}
	if _, session, _ := s.kv("locks/" + app); session != "" {
		t.Errorf("the lock is still held (session %s)", session)
	}
}

// world is what a dry run must not change: the journal, the routes, the containers
// and the Consul instances.
type world struct {
	journal, route, preview string
	containers, consul      []string
}

func (s *stack) world(app string) world {
	s.t.Helper()
	j, _, _ := s.kv(switcher.JournalKey(app))
	return world{journal: string(j), route: s.route(app + ".test"), preview: s.mapValue("preview.map", app+".test"),
		containers: sorted(s.containerIDs("swap.app=" + app)), consul: sorted(s.consulInstances(app))}
}

func (w world) diff(o world) string {
	var d []string
	if w.journal != o.journal {
		d = append(d, fmt.Sprintf("journal %s -> %s", w.journal, o.journal))
	}
	if w.route != o.route || w.preview != o.preview {
		d = append(d, fmt.Sprintf("routes %q/%q -> %q/%q", w.route, w.preview, o.route, o.preview))
	}
	if !slices.Equal(w.containers, o.containers) {
		d = append(d, fmt.Sprintf("containers %v -> %v", w.containers, o.containers))
	}
	if !slices.Equal(w.consul, o.consul) {
		d = append(d, fmt.Sprintf("Consul instances %v -> %v", w.consul, o.consul))
	}
	return strings.Join(d, "; ")
}

func TestE2E_DryRunPromoteAbortAndResumeSayWhatTheyWouldDoAndChangeNothing(t *testing.T) {
	t.Parallel()
	app := e2eApp("dry")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    auto_promote: false\n"))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.mustSwap("promote", app)
	s.waitAnswer(host, "color=blue version=v1")

	// A swap to green waits in preview.
	if r := s.mustSwap("deploy", app, "--image", s.v2); !strings.Contains(r.stdout, "waits in preview") {
		t.Fatalf("the deploy did not wait in preview:\n%s", r)
	}
	before := s.world(app)
	if before.journal == "" || before.preview != app+"_green" {
		t.Fatalf("no swap waiting in preview: %+v", before)
	}
	for _, tc := range []struct {
		cmd  string
		want []string
	}{
		{"promote", []string{"dry run: would promote " + app + "'s swap to green", app + "_green", "drain", "Nothing was changed"}},
		{"abort", []string{"dry run: would abort " + app + "'s swap to green", "remove green's", "blue keeps serving", "Nothing was changed"}},
	} {
		r := s.mustSwap(tc.cmd, app, "--dry-run")
		for _, want := range tc.want {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("%s --dry-run does not say %q:\n%s", tc.cmd, want, r)
			}
		}
		if d := before.diff(s.world(app)); d != "" {
			t.Fatalf("%s --dry-run changed: %s", tc.cmd, d)
		}
	}
	s.requireAnswer(s.preview, host, 200, "color=green version=v2")
	s.requireAnswer(s.frontend, host, 200, "color=blue version=v1")
	s.mustSwap("abort", app) // for real

	// A deploy killed after its gate: resume --dry-run says it would roll back, and
	// changes nothing (not even the dead swap's lock).
	if r := s.swap([]string{"SWAP_FAULT=gate:after"}, "deploy", app, "--image", s.v2); r.code != -9 {
		t.Fatalf("the deploy with SWAP_FAULT=gate:after did not die by SIGKILL: %s", r)
	}
	before = s.world(app)
	_, lockBefore, _ := s.kv("locks/" + app)
	if before.journal == "" || lockBefore == "" {
		t.Fatalf("the killed deploy left no journal or lock: %+v, lock session %q", before, lockBefore)
	}
	r := s.mustSwap("resume", app, "--dry-run")
	for _, want := range []string{"dry run: would resume " + app + "'s swap to green", "interrupted at gate", "roll back", "Nothing was changed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("resume --dry-run does not say %q:\n%s", want, r)
		}
	}
	if d := before.diff(s.world(app)); d != "" {
		t.Fatalf("resume --dry-run changed: %s", d)
	}
	if _, lock, _ := s.kv("locks/" + app); lock != lockBefore {
		t.Fatalf("resume --dry-run changed the lock: session %q -> %q", lockBefore, lock)
	}
	if r := s.mustSwap("resume", app); !strings.Contains(r.stdout, "rolled back") {
		t.Fatalf("resume did not roll back:\n%s", r)
	}
	if w := s.world(app); w.journal != "" || w.route != app+"_blue" {
		t.Fatalf("after resume: %+v", w)
	}
}

// swapCLI runs the CLI (cliBinary) with config file cfg and env added.
func swapCLI(t *testing.T, cfg string, env []string, args ...string) cliRun {
	t.Helper()
	cmd := exec.Command(cliBinary(t), args...)
	cmd.Env = append(os.Environ(), "SWAP_E2E_CLI=1", "SWAP_CONFIG="+cfg, "SWAP_LOG_LEVEL=warn")
	cmd.Env = append(cmd.Env, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run swap %v: %v", args, err)
	}
	return r
}

func TestE2E_AConfigThatCouldNotWorkExits2NamingItsKey(t *testing.T) {
	t.Parallel()
	app := func(name, route string) string {
		return fmt.Sprintf("  %s:\n    image: web:1\n    port: 8080\n    route: %s\n", name, route)
	}
	// base is a config with extra lines under haproxy: and consul:, and apps.
	base := func(haproxy, consul, apps string) string {
		return fmt.Sprintf("consul:\n  address: 127.0.0.1:8500\n%shaproxy:\n  instances: [{socket: /run/swap-e2e/admin.sock}]\n  frontend: {bind: \"127.0.0.1:8080\"}\n%sapps:\n%s",
			consul, haproxy, apps)
	}
	web := app("web", "web.test")
	cases := []struct {
		name string
		cfg  string
		env  []string
		want []string
	}{
		{"haproxy.dir with a comma", base("  dir: /srv/a,b\n", "", web), nil,
			[]string{`haproxy.dir: "/srv/a,b" must not contain`}},
		{"haproxy.dir with parentheses", base("  dir: /srv/lb(1)\n", "", web), nil,
			[]string{`haproxy.dir: "/srv/lb(1)" must not contain`}},
		{"a health check path that is not percent-encoding", base("", "", web+"    healthcheck: {path: /health%}\n"), nil,
			[]string{`apps.web.healthcheck.path: "/health%": "%" is not percent-encoding`}},
		{"a kv_prefix with a '..' segment", base("", "  kv_prefix: swap/../other\n", web), nil,
			[]string{`consul.kv_prefix: "swap/../other" has a '.' or '..' segment`}},
		{"an environment override matching three apps", base("", "", app("web-api", "a.test")+app("web_api", "b.test")+app("web.api", "c.test")),
			[]string{"SWAP_APPS_WEB_API_IMAGE=web:2"},
			[]string{"apps.web-api.image: SWAP_APPS_WEB_API_IMAGE is set, and it names", `apps."web.api".image: SWAP_APPS_WEB_API_IMAGE`, "apps.web_api.image: SWAP_APPS_WEB_API_IMAGE"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "swap.yaml")
			if err := os.WriteFile(path, []byte(tc.cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			r := swapCLI(t, path, tc.env, "deploy", "web", "--image", "web:2")
			if r.code != 2 {
				t.Fatalf("want exit 2, got %s", r)
			}
			for _, want := range tc.want {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("stderr does not say %q:\n%s", want, r)
				}
			}
		})
	}
}
