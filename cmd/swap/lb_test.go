package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
)

// lbConfig writes a swap.yaml whose HAProxy is h (dir, admin socket) plus extra
// instances, and returns its path.
func lbConfig(t *testing.T, h *testenv.HAProxyInstance, extra string) string {
	t.Helper()
	cfg := fmt.Sprintf(`haproxy:
  dir: %s
  instances:
    - name: local
      socket: %s
%s  frontend:
    bind: 127.0.0.1:%d
  routing: host
apps:
  web:
    image: web:1
    port: 8080
    route: web.example.com
    healthcheck:
      path: /healthz
      interval: 100ms
      timeout: 100ms
`, h.Dir, h.AdminSock, extra, h.Port("fe"))
	path := filepath.Join(t.TempDir(), "swap.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runSwap(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = execute(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestLBRenderWritesWhatHAProxyServesAndStatusShowsIt(t *testing.T) {
	h := testenv.HAProxy(t, "frontend boot\n    bind 127.0.0.1:{{.Port \"boot\"}}\n    http-request return status 200\n")
	cfgPath := lbConfig(t, h, "")

	// HAProxy runs a config swap did not render: render falls back to the files (none).
	code, out, errOut := runSwap(t, "--config", cfgPath, "lb", "render", "--dry-run")
	if code != exitOK {
		t.Fatalf("dry run: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "servers and maps from the files in "+h.Dir) || !strings.Contains(out, "+backend web_blue") {
		t.Fatalf("dry run printed:\n%s", out)
	}
	if !strings.Contains(errOut, "haproxy local not used") {
		t.Fatalf("no note about the instance: %q", errOut)
	}
	if _, err := os.Stat(filepath.Join(h.Dir, "routes.map")); err == nil {
		t.Fatal("the dry run wrote routes.map")
	}

	code, out, errOut = runSwap(t, "--config", cfgPath, "lb", "render")
	if code != exitOK || !strings.Contains(out, "wrote routes.map, canary.map, haproxy.cfg") {
		t.Fatalf("render: exit %d:\n%s\n%s", code, out, errOut)
	}
	h.Reload(t) // HAProxy now runs the rendered config

	// A runtime change, then render again: the files follow HAProxy.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := lbconfig.New("unix", h.AdminSock)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(ctx, "web_blue", lbconfig.Server{Name: "web-blue-0", Addr: "127.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.PutMap(ctx, filepath.Join(h.Dir, "routes.map"), "web.example.com", "web_blue"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runSwap(t, "--config", cfgPath, "lb", "render", "--dry-run")
	if code != exitOK || !strings.Contains(out, "servers and maps from haproxy local") ||
		!strings.Contains(out, "+    server web-blue-0 127.0.0.1:1 check observe layer7 inter 100ms fastinter 100ms rise 2 fall 3 weight 100") ||
		!strings.Contains(out, "+web.example.com web_blue") {
		t.Fatalf("dry run after a runtime change: exit %d:\n%s\n%s", code, out, errOut)
	}
	code, out, _ = runSwap(t, "--config", cfgPath, "--output", "json", "lb", "render")
	var res renderResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || res.Source != "haproxy local" ||
		!lbHas(res.Changed, "haproxy.cfg") || !lbHas(res.Changed, "server-state") {
		t.Fatalf("render --output json: exit %d: %s", code, out)
	}
	code, out, _ = runSwap(t, "--config", cfgPath, "--output", "json", "lb", "render")
	res = renderResult{}
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || lbHas(res.Changed, "haproxy.cfg") || lbHas(res.Changed, "routes.map") {
		t.Fatalf("a second render rewrote files: exit %d: %s", code, out)
	}

	code, out, errOut = runSwap(t, "--config", cfgPath, "lb", "status")
	if code != exitOK {
		t.Fatalf("status: exit %d: %s", code, errOut)
	}
	for _, want := range []string{"haproxy local (2.", "route web.example.com -> web_blue", "BACKEND", "web_blue", "web-blue-0", "127.0.0.1:1", "swap_fallback"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = runSwap(t, "--config", cfgPath, "--output", "json", "lb", "status")
	var st []lbInstance
	if code != exitOK || json.Unmarshal([]byte(out), &st) != nil || len(st) != 1 {
		t.Fatalf("status --output json: exit %d: %s", code, out)
	}
	var found bool
	for _, b := range st[0].Backends {
		for _, s := range b.Servers {
			if b.Name == "web_blue" && s.Name == "web-blue-0" && strings.HasPrefix(s.Status, "DOWN") && s.Addr == "127.0.0.1:1" {
				found = true
			}
		}
	}
	if !found || st[0].Routes["web.example.com"] != "web_blue" {
		t.Fatalf("status JSON: %s", out)
	}

	t.Run("an instance that does not answer is listed and exits 4", func(t *testing.T) {
		ghost := filepath.Join(t.TempDir(), "ghost.sock")
		cfgPath := lbConfig(t, h, "    - name: ghost\n      socket: "+ghost+"\n      dir: "+filepath.Dir(ghost)+"\n")
		code, out, errOut := runSwap(t, "--config", cfgPath, "lb", "status")
		if code != exitUnreachable || !strings.Contains(out, "haproxy ghost: unreachable") || !strings.Contains(out, "web-blue-0") || !strings.Contains(errOut, "ghost") {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
		}
	})
}

// TestLBRenderWritesEachInstanceItsOwnFiles runs two HAProxy instances, each on the
// files of its own directory, changes only the second at runtime and renders: each
// directory holds what its own HAProxy serves, and a reload of the second keeps its
// change. Two instances left on one directory are refused at config load.
func TestLBRenderWritesEachInstanceItsOwnFiles(t *testing.T) {
	boot := "frontend boot\n    bind 127.0.0.1:{{.Port \"boot\"}}\n    http-request return status 200\n"
	h := testenv.HAProxy(t, boot)
	h2 := testenv.HAProxy(t, boot)
	second := "    - name: edge-2\n      socket: " + h2.AdminSock + "\n      dir: " + h2.Dir + "\n"

	t.Run("two instances on one directory are refused at config load", func(t *testing.T) {
		shared := "    - name: edge-2\n      socket: " + h2.AdminSock + "\n"
		code, _, errOut := runSwap(t, "--config", lbConfig(t, h, shared), "lb", "render", "--dry-run")
		if code != exitUsage || !strings.Contains(errOut, "haproxy.instances[1].dir: ") || !strings.Contains(errOut, "haproxy.instances[0]") {
			t.Fatalf("exit %d, want %d naming haproxy.instances[1].dir:\n%s", code, exitUsage, errOut)
		}
	})

	cfgPath := lbConfig(t, h, second)
	if code, out, errOut := runSwap(t, "--config", cfgPath, "lb", "render"); code != exitOK {
		t.Fatalf("first render: exit %d:\n%s\n%s", code, out, errOut)
	}
	h.Reload(t)
	h2.Reload(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c2, err := lbconfig.New("unix", h2.AdminSock)
	if err != nil {
		t.Fatal(err)
	}
	if err := c2.AddServer(ctx, "web_blue", lbconfig.Server{Name: "web-blue-7", Addr: "127.0.0.1", Port: 1}); err != nil {
		t.Fatal(err)
	}
	// The second instance's routes map is its own file: the map id is its path.
	if _, _, err := c2.PutMap(ctx, filepath.Join(h2.Dir, "routes.map"), "web.example.com", "web_blue"); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runSwap(t, "--config", cfgPath, "--output", "json", "lb", "render")
	var res renderResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || len(res.Others) != 1 ||
		res.Dir != h.Dir || res.Others[0].Dir != h2.Dir || res.Others[0].Source != "haproxy edge-2" {
		t.Fatalf("render: exit %d:\n%s\n%s", code, out, errOut)
	}
	for _, tt := range []struct {
		dir    string
		wantIn bool
	}{{h.Dir, false}, {h2.Dir, true}} {
		cfg, routes := readTestFile(t, filepath.Join(tt.dir, "haproxy.cfg")), readTestFile(t, filepath.Join(tt.dir, "routes.map"))
		if got := strings.Contains(cfg, "server web-blue-7 ") && strings.Contains(routes, "web.example.com web_blue"); got != tt.wantIn {
			t.Errorf("%s holds the second instance's change: %v, want %v\n%s\n%s", tt.dir, got, tt.wantIn, cfg, routes)
		}
		if !strings.Contains(cfg, "stats socket "+filepath.Join(tt.dir, "admin.sock")) {
			t.Errorf("%s/haproxy.cfg does not put the admin socket in its own directory:\n%s", tt.dir, cfg)
		}
	}
	h2.Reload(t)
	if rows, err := c2.ServersState(ctx, "web_blue"); err != nil || len(rows) != 1 || rows[0].Name != "web-blue-7" {
		t.Fatalf("edge-2 after its reload: %+v %v", rows, err)
	}

	t.Run("another host's instance (address, no dir) gets no files here", func(t *testing.T) {
		remote := "    - name: edge-3\n      address: 127.0.0.1:1\n" // never dialed by render
		code, out, errOut := runSwap(t, "--config", lbConfig(t, h, remote), "lb", "render")
		if code != exitOK || !strings.Contains(errOut, "haproxy edge-3 is another host's") || !strings.Contains(errOut, "swap serve or swap watch of that host") {
			t.Fatalf("render with another host's instance: exit %d:\n%s\n%s", code, out, errOut)
		}
	})
}

func readTestFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func lbHas(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestLBRenderReloadServesANewAppAndKeepsTheLiveRouting adds an app to swap.yaml and
// runs `swap lb render --reload`: HAProxy has the new app's backends without a reload by
// hand, while the running app keeps its color, its server and that server's state.
// --reload refuses an instance without master_socket before it writes anything, and
// one that does not run swap's config yet.
func TestLBRenderReloadServesANewAppAndKeepsTheLiveRouting(t *testing.T) {
	h := testenv.HAProxy(t, "frontend boot\n    bind 127.0.0.1:{{.Port \"boot\"}}\n    http-request return status 200\n")
	master := "      master_socket: " + h.MasterSock + "\n"
	cfgPath := lbConfig(t, h, master)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// HAProxy runs a config swap did not render: the files are written, the reload refused.
	boot := h.WorkerPid(t)
	code, out, errOut := runSwap(t, "--config", cfgPath, "lb", "render", "--reload")
	if code != exitFailed || !strings.Contains(out, "wrote routes.map, canary.map, haproxy.cfg") ||
		!strings.Contains(errOut, "haproxy local is not reloaded") || !strings.Contains(errOut, "reloaded or started by hand on "+h.CfgPath) {
		t.Fatalf("render --reload on a foreign config: exit %d, want %d:\n%s\n%s", code, exitFailed, out, errOut)
	}
	if pid := h.WorkerPid(t); pid != boot {
		t.Fatalf("the refused reload reloaded: worker %d, was %d", pid, boot)
	}
	h.Reload(t) // this once, by hand

	// web is live on blue: a real server, a route, a weight set at runtime.
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "web blue") }))
	defer app.Close()
	port, err := strconv.Atoi(app.URL[strings.LastIndex(app.URL, ":")+1:])
	if err != nil {
		t.Fatal(err)
	}
	c, err := lbconfig.New("unix", h.AdminSock)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddServer(ctx, "web_blue", lbconfig.Server{Name: "web-blue-0", Addr: "127.0.0.1", Port: port}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.PutMap(ctx, filepath.Join(h.Dir, "routes.map"), "web.example.com", "web_blue"); err != nil {
		t.Fatal(err)
	}
	if out, err := h.Exec("set server web_blue/web-blue-0 weight 37"); err != nil || strings.TrimSpace(out) != "" {
		t.Fatalf("set weight: %q %v", out, err)
	}
	servesWeb := func(when string) {
		t.Helper()
		testenv.WaitFor(t, 20*time.Second, "web.example.com served by web_blue "+when, func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+h.Addr("fe")+"/", nil)
			if err != nil {
				return err
			}
			req.Host = "web.example.com"
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || string(b) != "web blue" {
				return fmt.Errorf("%d %q", resp.StatusCode, b)
			}
			return nil
		})
	}
	servesWeb("before")

	// A new app in swap.yaml.
	f, err := os.OpenFile(cfgPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("  api:\n    image: api:1\n    port: 8080\n    route: api.example.com\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	hasAPI := func() bool {
		t.Helper()
		backends, err := c.Backends(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return lbHas(backends, "api_blue") && lbHas(backends, "api_green")
	}

	before := h.WorkerPid(t)
	code, out, errOut = runSwap(t, "--config", cfgPath, "lb", "render", "--dry-run", "--reload")
	if code != exitOK || !strings.Contains(out, "+backend api_blue") || !strings.Contains(errOut, "--dry-run: no HAProxy reloaded") {
		t.Fatalf("render --dry-run --reload: exit %d:\n%s\n%s", code, out, errOut)
	}
	if pid := h.WorkerPid(t); pid != before || hasAPI() {
		t.Fatalf("--dry-run --reload reloaded: worker %d (was %d), api backends %v", pid, before, hasAPI())
	}

	code, out, errOut = runSwap(t, "--config", cfgPath, "--output", "json", "lb", "render", "--reload")
	var res renderResult
	if code != exitOK || json.Unmarshal([]byte(out), &res) != nil || !res.Reloaded || !lbHas(res.Changed, "haproxy.cfg") {
		t.Fatalf("render --reload: exit %d:\n%s\n%s", code, out, errOut)
	}
	if pid := h.WorkerPid(t); pid == before {
		t.Fatalf("worker still %d after render --reload", pid)
	}
	if !hasAPI() {
		t.Fatal("the new app's backends are not in HAProxy after render --reload")
	}
	if rows, err := c.ServersState(ctx, "api_blue"); err != nil || len(rows) != 0 {
		t.Fatalf("show servers state api_blue: %+v %v", rows, err)
	}
	// The live routing is the same: web on blue, its server with the weight set at runtime.
	if v, ok, err := c.GetMap(ctx, filepath.Join(h.Dir, "routes.map"), "web.example.com"); err != nil || !ok || v != "web_blue" {
		t.Fatalf("route of web.example.com after the reload: %q %v %v", v, ok, err)
	}
	rows, err := c.ServersState(ctx, "web_blue")
	if err != nil || len(rows) != 1 || rows[0].Name != "web-blue-0" || rows[0].Port != port || rows[0].UWeight != 37 {
		t.Fatalf("web_blue after the reload: %+v %v", rows, err)
	}
	servesWeb("after")

	// Text output: the instance says it was reloaded.
	code, out, errOut = runSwap(t, "--config", cfgPath, "lb", "render", "--reload")
	if code != exitOK || !strings.Contains(out, "(unchanged: routes.map, canary.map, haproxy.cfg)") || !strings.Contains(out, "reloaded haproxy local: it serves the files of "+h.Dir+" now") {
		t.Fatalf("render --reload again: exit %d:\n%s\n%s", code, out, errOut)
	}

	t.Run("another host's instance is left to its host", func(t *testing.T) {
		remote := master + "    - name: edge-3\n      address: 127.0.0.1:1\n" // never dialed
		code, out, errOut := runSwap(t, "--config", lbConfig(t, h, remote), "lb", "render", "--dry-run", "--reload")
		if code != exitOK || !strings.Contains(errOut, "haproxy edge-3 is another host's") || !strings.Contains(errOut, "it is reloaded there") {
			t.Fatalf("exit %d:\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("an instance without master_socket is refused before anything is written", func(t *testing.T) {
		files := readTestFile(t, h.CfgPath)
		pid := h.WorkerPid(t)
		code, out, errOut := runSwap(t, "--config", lbConfig(t, h, ""), "lb", "render", "--reload") // without api: it would drop api's backends
		if code != exitUsage || !strings.Contains(errOut, "haproxy.instances[0].master_socket: haproxy local has none") ||
			!strings.Contains(errOut, "`swap lb render` without --reload and reload that HAProxy yourself") {
			t.Fatalf("exit %d, want %d:\n%s\n%s", code, exitUsage, out, errOut)
		}
		if readTestFile(t, h.CfgPath) != files || h.WorkerPid(t) != pid {
			t.Fatal("the refused render --reload wrote haproxy.cfg or reloaded")
		}
	})
}
