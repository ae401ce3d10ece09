package lbconfig

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

// TestServerParamsWriteOutEveryDefaultThatDiffersForDynamicServers pins the words: a
// dynamic server in HAProxy 2.6 starts from zeros, a config server from the backend's
// default-server, so each of these must be given, with and without checks.
func TestServerParamsWriteOutEveryDefaultThatDiffersForDynamicServers(t *testing.T) {
	tests := []struct {
		name string
		s    Server
		want string
	}{
		{"checked server", Server{Name: "s", Addr: "127.0.0.1", Port: 80},
			"127.0.0.1:80 check observe layer7 inter 2s fastinter 100ms rise 2 fall 3 weight 100 pool-max-conn -1 pool-purge-delay 5s error-limit 1 on-error fastinter"},
		{"server without checks keeps the check timing too", Server{Name: "s", Addr: "127.0.0.1", Port: 80, Check: Check{Disabled: true}},
			"127.0.0.1:80 inter 2s fastinter 100ms rise 2 fall 3 weight 100 pool-max-conn -1 pool-purge-delay 5s error-limit 1 on-error fastinter"},
		{"a backup server", Server{Name: "s", Addr: "127.0.0.1", Port: 80, Backup: true},
			"127.0.0.1:80 check observe layer7 inter 2s fastinter 100ms rise 2 fall 3 weight 100 pool-max-conn -1 pool-purge-delay 5s error-limit 1 on-error fastinter backup"},
		{"explicit values", Server{Name: "s", Addr: "::1", Port: 80, Weight: 50, MaxConn: 7, PoolPurgeDelay: 1500e6, ErrorLimit: 3,
			Check: Check{Inter: 1e9, Rise: 1, Fall: 5}},
			"[::1]:80 check observe layer7 inter 1s fastinter 100ms rise 1 fall 5 weight 50 pool-max-conn -1 pool-purge-delay 1500ms error-limit 3 on-error fastinter maxconn 7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(tt.s.params()); got != "["+tt.want+"]" {
				t.Fatalf("params\n got %s\nwant [%s]", got, tt.want)
			}
		})
	}
}

// The settings of a server that HAProxy shows and that come from its server line (not
// from traffic or timing), by command and column.
var (
	settingStatColumns  = []string{"status", "weight", "uweight", "act", "bck", "slim", "qlimit", "throttle", "check_rise", "check_fall", "agent_status"}
	settingStateColumns = []string{"srv_op_state", "srv_admin_state", "srv_uweight", "srv_iweight", "srv_check_state", "srv_agent_state", "srv_use_ssl", "srv_check_port", "srv_check_addr", "srv_agent_addr", "srv_agent_port", "srv_fqdn", "bk_f_forced_id", "srv_f_forced_id"}
)

// serverSettings reads every per-server setting HAProxy shows for one server: `show
// servers conn` (idle pool limit, purge delay, whether it has per-thread idle lists),
// `show stat` and `show servers state`.
func serverSettings(t *testing.T, c *Client, backend, server string) map[string]string {
	t.Helper()
	ctx := testCtx(t)
	out := map[string]string{}
	conns, err := c.ServersConn(ctx, backend)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range conns {
		if r.Name == server {
			found = true
			out["conn.purge_delay"] = strconv.Itoa(r.PurgeDelay)
			out["conn.idle_lim"] = strconv.FormatInt(r.IdleLim, 10)
			out["conn.idle_per_thr columns"] = strconv.Itoa(len(r.IdlePerThread))
		}
	}
	if !found {
		t.Fatalf("show servers conn %s: no %s", backend, server)
	}
	st, err := c.ServerStat(ctx, backend, server)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range settingStatColumns {
		out["stat."+k] = st.Fields[k]
	}
	states, err := c.ServersState(ctx, backend)
	if err != nil {
		t.Fatal(err)
	}
	found = false
	for _, s := range states {
		if s.Name == server {
			found = true
			for _, k := range settingStateColumns {
				out["state."+k] = s.Fields[k]
			}
		}
	}
	if !found {
		t.Fatalf("show servers state %s: no %s", backend, server)
	}
	return out
}

// TestRuntimeAddedServerHasTheSettingsOfAFileLoadedOne adds a server at runtime, writes
// the files and reloads (so HAProxy now loads it from haproxy.cfg), then adds a second
// server at runtime with the same template: every per-server setting HAProxy shows is
// the same for both. On 2.6 without pool-max-conn, the runtime one has idle_lim 0 and no
// idle lists (every request a new connection), the file one -1.
func TestRuntimeAddedServerHasTheSettingsOfAFileLoadedOne(t *testing.T) {
	env := startLayout(t, func(dir string, port func(string) int) *Layout {
		l := baseLayout(dir, port)
		l.Backends[1].Server.Check.Disabled = true // app_green: a server without checks
		return l
	})
	ctx := testCtx(t)
	add := func(backend, name string) {
		t.Helper()
		b := newBackend(t, "x")
		s, err := env.layout.NewServer(backend, name, "127.0.0.1", b.port())
		if err != nil {
			t.Fatal(err)
		}
		if err := env.c.AddServer(ctx, backend, s); err != nil {
			t.Fatal(err)
		}
		if !s.Check.Disabled {
			waitUp(t, env.c, backend, name)
		}
	}
	add("app_blue", "app-blue-0")
	add("app_green", "app-green-0")
	if _, err := Persist(ctx, env.c, env.layout, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.h.Reload(t)
	add("app_blue", "app-blue-1")
	add("app_green", "app-green-1")
	waitUp(t, env.c, "app_blue", "app-blue-0")

	for _, tt := range []struct{ backend, fromFile, atRuntime string }{
		{"app_blue", "app-blue-0", "app-blue-1"},
		{"app_green", "app-green-0", "app-green-1"},
	} {
		t.Run(tt.backend, func(t *testing.T) {
			file := serverSettings(t, env.c, tt.backend, tt.fromFile)
			runtime := serverSettings(t, env.c, tt.backend, tt.atRuntime)
			for k, want := range file {
				if runtime[k] != want {
					t.Errorf("%s: loaded from haproxy.cfg %q, added at runtime %q", k, want, runtime[k])
				}
			}
			if file["conn.idle_lim"] != "-1" {
				t.Errorf("the file-loaded server's idle_lim is %s, want -1 (no limit): %v", file["conn.idle_lim"], file)
			}
		})
	}
}

// TestRuntimeAddedServerReusesItsConnections sends requests through HAProxy's frontend
// over keep-alive client connections to a keep-alive backend and reads the server's
// connect and reuse counters, for a server added at runtime and for the same server
// loaded from haproxy.cfg after a reload: both reuse their connections. Without an idle
// pool (a 2.6 dynamic server without pool-max-conn) HAProxy closes the server connection
// after every response: connect equals the requests, reuse is 0.
func TestRuntimeAddedServerReusesItsConnections(t *testing.T) {
	env := startLayout(t, baseLayout)
	ctx := testCtx(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok\n")
	}))
	t.Cleanup(app.Close)
	port, err := strconv.Atoi(app.URL[len("http://127.0.0.1:"):])
	if err != nil {
		t.Fatalf("httptest URL %s: %v", app.URL, err)
	}
	s, err := env.layout.NewServer("app_blue", "app-blue-0", "127.0.0.1", port)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.c.AddServer(ctx, "app_blue", s); err != nil {
		t.Fatal(err)
	}
	if _, _, err := env.c.PutMap(ctx, env.layout.RoutesMap(), "app.test", "app_blue"); err != nil {
		t.Fatal(err)
	}
	waitUp(t, env.c, "app_blue", "app-blue-0")

	const clients, perClient = 4, 50
	run := func(t *testing.T) {
		t.Helper()
		before, err := env.c.ServerStat(ctx, "app_blue", "app-blue-0")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < clients; i++ {
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			client := &http.Client{Transport: tr}
			for j := 0; j < perClient; j++ {
				if code := getKeepAlive(t, ctx, client, env.layout.Frontend.Bind, "app.test"); code != http.StatusOK {
					t.Fatalf("client %d request %d: status %d", i, j, code)
				}
			}
			tr.CloseIdleConnections()
		}
		after, err := env.c.ServerStat(ctx, "app_blue", "app-blue-0")
		if err != nil {
			t.Fatal(err)
		}
		connect, reuse := after.Connect-before.Connect, after.Reuse-before.Reuse
		served := after.Hrsp2xx - before.Hrsp2xx
		t.Logf("%d requests: connect %d, reuse %d", served, connect, reuse)
		if served != clients*perClient {
			t.Fatalf("the server answered %d requests, want %d", served, clients*perClient)
		}
		if connect+reuse < served || reuse*10 < 9*(connect+reuse) {
			t.Fatalf("connect %d, reuse %d for %d requests: want at least 90%% of the server connections used to be reused", connect, reuse, served)
		}
	}
	t.Run("added at runtime", run)
	if _, err := Persist(ctx, env.c, env.layout, WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.h.Reload(t)
	waitUp(t, env.c, "app_blue", "app-blue-0")
	t.Run("loaded from haproxy.cfg after a reload", run)
}

// getKeepAlive sends GET / with Host host to addr on client's kept-alive connection and
// reads the whole body, so the connection can carry the next request.
func getKeepAlive(t *testing.T, ctx context.Context, client *http.Client, addr, host string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+addr+"/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", addr, host, err)
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatalf("GET %s (Host %s): body: %v", addr, host, err)
	}
	return resp.StatusCode
}
