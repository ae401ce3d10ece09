package lbconfig

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func goldenLayout() *Layout {
	check := HealthCheck{Type: "http", Method: "GET", Path: "/healthz", Host: "web.internal", ExpectStatus: "200-399", Body: "ok", Timeout: time.Second}
	tmpl := Server{Check: Check{Inter: time.Second, Rise: 2, Fall: 3}}
	return &Layout{
		Dir:      "/etc/swap/haproxy",
		Frontend: Listener{Name: "swap", Bind: "127.0.0.1:8080"},
		Preview:  Listener{Name: "swap_preview", Bind: "127.0.0.1:8081"},
		Routing:  RouteByHost,
		Timeouts: Timeouts{Connect: 5 * time.Second, Client: 30 * time.Second, Server: 30 * time.Second},
		Backends: []Backend{
			{Name: "web_green", Check: check, Server: tmpl, Servers: []Server{
				{Name: "web-green-10", Addr: "127.0.0.1", Port: 32780},
				{Name: "web-green-2", Addr: "127.0.0.1", Port: 32779},
			}},
			{Name: "web_blue", Check: check, Server: tmpl, Servers: []Server{
				{Name: "web-blue-0", Addr: "127.0.0.1", Port: 32768, Weight: 100},
			}},
			{Name: "db_blue", Check: HealthCheck{Type: "tcp"}, Server: tmpl},
		},
		Routes:        []MapEntry{{"web.example.com", "web_blue"}, {"db.example.com", "db_blue"}},
		PreviewRoutes: []MapEntry{{"web.example.com", "web_green"}},
		Canary:        []MapEntry{{"web.example.com", canaryValue("web_green", 10)}},
	}
}

func TestRenderGivesTheAdminSocketToAGroupWhenAsked(t *testing.T) {
	l := goldenLayout()
	l.SocketGID = 65532
	files, err := Render(l)
	must(t, err)
	if cfg := string(files[len(files)-1].Data); !strings.Contains(cfg, "stats socket /etc/swap/haproxy/admin.sock mode 660 gid 65532 level admin") {
		t.Fatalf("the admin socket is not mode 660 with group 65532:\n%s", cfg)
	}
	l.SocketGID = -1
	if _, err := Render(l); err == nil {
		t.Fatal("a negative group id rendered")
	}
}

func TestRenderWritesTheDesignLayout(t *testing.T) {
	files, err := Render(goldenLayout())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		path := filepath.Join("testdata", "render", f.Name)
		if *update {
			must(t, os.MkdirAll(filepath.Dir(path), 0o755))
			must(t, os.WriteFile(path, f.Data, 0o644))
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if d := unifiedDiff("golden/"+f.Name, "rendered/"+f.Name, want, f.Data); d != "" {
			t.Errorf("%s differs from testdata/render (run with -update if intended):\n%s", f.Name, d)
		}
	}
	cfg := string(files[len(files)-1].Data)
	for _, want := range []string{
		"stats socket /etc/swap/haproxy/admin.sock mode 600 level admin",
		"server-state-file /etc/swap/haproxy/server-state",
		"load-server-state-from-file global",
		"use_backend %[var(txn.swap_key),map(/etc/swap/haproxy/routes.map,swap_fallback)]",
		"use_backend %[var(txn.swap_key),map(/etc/swap/haproxy/preview.map,swap_fallback)]",
		"server web-blue-0 127.0.0.1:32768 check observe layer7 inter 1s fastinter 100ms rise 2 fall 3 weight 100",
	} {
		if !strings.Contains(cfg, want) {
			t.Errorf("haproxy.cfg lacks %q", want)
		}
	}
	if strings.Index(cfg, "web-green-2 ") > strings.Index(cfg, "web-green-10 ") {
		t.Error("servers are not in index order")
	}
}

func TestRenderIsDeterministic(t *testing.T) {
	a, err := Render(goldenLayout())
	must(t, err)
	l := goldenLayout()
	// The same layout listed in another order.
	l.Backends[0], l.Backends[2] = l.Backends[2], l.Backends[0]
	l.Routes[0], l.Routes[1] = l.Routes[1], l.Routes[0]
	b, err := Render(l)
	must(t, err)
	for i := range a {
		if string(a[i].Data) != string(b[i].Data) {
			t.Fatalf("%s differs with the input reordered:\n%s", a[i].Name, unifiedDiff("a", "b", a[i].Data, b[i].Data))
		}
	}
}

func TestLayoutValidateRefusesAnythingThatCouldAddAConfigLine(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Layout)
	}{
		{"a relative dir", func(l *Layout) { l.Dir = "haproxy" }},
		{"a dir with a space", func(l *Layout) { l.Dir = "/etc/my haproxy" }},
		{"a dir with a newline", func(l *Layout) { l.Dir = "/etc/x\nglobal" }},
		{"a frontend name with a space", func(l *Layout) { l.Frontend.Name = "a b" }},
		{"a bind with a newline", func(l *Layout) { l.Frontend.Bind = "127.0.0.1:80\n    bind :81" }},
		{"a bind with a host name", func(l *Layout) { l.Frontend.Bind = "localhost:80" }},
		{"a preview named like the frontend", func(l *Layout) { l.Preview.Name = l.Frontend.Name }},
		{"an unknown routing", func(l *Layout) { l.Routing = "cookie" }},
		{"a backend called swap_fallback", func(l *Layout) { l.Backends[0].Name = FallbackBackend }},
		{"a backend twice", func(l *Layout) { l.Backends[1].Name = l.Backends[0].Name }},
		{"a check path with a newline", func(l *Layout) { l.Backends[0].Check.Path = "/x\n    server evil 1.2.3.4:80" }},
		{"a check path with a comment", func(l *Layout) { l.Backends[0].Check.Path = "/x#y" }},
		{"a check path with a space", func(l *Layout) { l.Backends[0].Check.Path = "/x y" }},
		{"a lower-case method", func(l *Layout) { l.Backends[0].Check.Method = "get" }},
		{"a host with a space", func(l *Layout) { l.Backends[0].Check.Host = "a b" }},
		{"a status with a newline", func(l *Layout) { l.Backends[0].Check.ExpectStatus = "200\n" }},
		{"a body with a quote", func(l *Layout) { l.Backends[0].Check.Body = `ok" string "x` }},
		{"a body with a dollar", func(l *Layout) { l.Backends[0].Check.Body = "$HOME" }},
		{"a server with a host name", func(l *Layout) { l.Backends[0].Servers[0].Addr = "web" }},
		{"a server named twice", func(l *Layout) { l.Backends[0].Servers[1].Name = l.Backends[0].Servers[0].Name }},
		{"a route with a space", func(l *Layout) { l.Routes[0].Key = "a b" }},
		{"a host route in upper case", func(l *Layout) { l.Routes[0].Key = "WEB.example.com" }},
		{"a route to a missing backend", func(l *Layout) { l.Routes[0].Value = "nope" }},
		{"a route to the frontend", func(l *Layout) { l.Routes[0].Value = "swap" }},
		{"a route twice", func(l *Layout) { l.Routes[1].Key = l.Routes[0].Key }},
		{"a canary without a weight", func(l *Layout) { l.Canary[0].Value = "web_green" }},
		{"a canary over 100", func(l *Layout) { l.Canary[0].Value = "web_green:101" }},
		{"a path route in host routing", func(l *Layout) { l.Routes[0].Key = "/web" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := goldenLayout()
			tt.change(l)
			if _, err := Render(l); err == nil {
				t.Fatal("rendered")
			}
		})
	}
}

func TestRenderedConfigsPassHAProxyCheck(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Layout)
	}{
		{"host routing with preview and canary", func(*Layout) {}},
		{"path routing", func(l *Layout) {
			l.Routing = RouteByPath
			l.Routes = []MapEntry{{"/", "web_blue"}, {"/api", "web_green"}}
			l.PreviewRoutes = []MapEntry{{"/", "web_green"}}
			l.Canary = nil
		}},
		{"no preview frontend", func(l *Layout) { l.Preview = Listener{}; l.PreviewRoutes = nil }},
		{"an IPv6 server", func(l *Layout) { l.Backends[0].Servers[0].Addr = "::1" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := goldenLayout()
			l.Dir = t.TempDir()
			tt.change(l)
			files, err := Render(l)
			must(t, err)
			res, err := WriteFiles(testCtx(t), l.Dir, files, WriteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !contains(res.Changed, ConfigFile) {
				t.Fatalf("haproxy.cfg not written: %+v", res)
			}
		})
	}
}

// routedEnv is a running HAProxy whose app_blue and app_green each have one UP server.
func routedEnv(t *testing.T, build func(dir string, port func(string) int) *Layout) (*lbEnv, *backend, *backend) {
	t.Helper()
	env := startLayout(t, build)
	ctx := testCtx(t)
	blue, green := newBackend(t, "blue"), newBackend(t, "green")
	must(t, env.c.AddServer(ctx, "app_blue", blue.server("app-blue-0")))
	must(t, env.c.AddServer(ctx, "app_green", green.server("app-green-0")))
	waitUp(t, env.c, "app_blue", "app-blue-0")
	waitUp(t, env.c, "app_green", "app-green-0")
	return env, blue, green
}

func getPath(t testing.TB, addr, host, path string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+addr+path, nil)
	must(t, err)
	req.Host = host
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("X-Color"), string(body)
}

func TestRenderedFrontendsRouteByHostPreviewAndCanary(t *testing.T) {
	env, _, _ := routedEnv(t, baseLayout)
	ctx := testCtx(t)
	c, l := env.c, env.layout
	_, _, err := c.PutMap(ctx, l.RoutesMap(), "app.test", "app_blue")
	must(t, err)
	_, _, err = c.PutMap(ctx, l.PreviewMap(), "app.test", "app_green")
	must(t, err)

	tests := []struct {
		name, addr, host string
		code             int
		color            string
	}{
		{"the route's backend serves its host", l.Frontend.Bind, "app.test", 200, "blue"},
		{"the Host header's port is ignored", l.Frontend.Bind, "app.test:8080", 200, "blue"},
		{"the Host header's case is ignored", l.Frontend.Bind, "APP.Test", 200, "blue"},
		{"the preview frontend routes the idle color", l.Preview.Bind, "app.test", 200, "green"},
		{"an unknown host gets the fallback's 503", l.Frontend.Bind, "nope.test", 503, ""},
	}
	for _, tt := range tests {
		code, color, body := getPath(t, tt.addr, tt.host, "/")
		if code != tt.code || color != tt.color {
			t.Errorf("%s: %d %q, want %d %q", tt.name, code, color, tt.code, tt.color)
		}
		if code == 503 && !strings.Contains(body, "swap: no app is routed here") {
			t.Errorf("%s: the 503 says %q", tt.name, body)
		}
	}

	count := func(n int) map[string]int {
		seen := map[string]int{}
		for i := 0; i < n; i++ {
			_, color, _ := getPath(t, l.Frontend.Bind, "app.test", "/")
			seen[color]++
		}
		return seen
	}
	canary := func(weight int) {
		t.Helper()
		var err error
		if weight == 0 {
			err = c.restoreMap(ctx, l.CanaryMap(), "app.test", "", false)
		} else {
			_, _, err = c.PutMap(ctx, l.CanaryMap(), "app.test", canaryValue("app_green", weight))
		}
		must(t, err)
	}
	canary(100)
	if seen := count(50); seen["green"] != 50 {
		t.Fatalf("canary 100%%: %v", seen)
	}
	canary(50)
	// Both colors answer: the chance that 200 requests all land on one is 2^-199.
	if seen := count(200); seen["green"] == 0 || seen["blue"] == 0 || seen["green"]+seen["blue"] != 200 {
		t.Fatalf("canary 50%%: %v", seen)
	}
	canary(0)
	if seen := count(50); seen["blue"] != 50 {
		t.Fatalf("canary removed: %v", seen)
	}
	_, _, err = c.PutMap(ctx, l.CanaryMap(), "app.test", canaryValue("app_green", 0))
	must(t, err)
	if seen := count(50); seen["blue"] != 50 {
		t.Fatalf("canary weight 0: %v", seen)
	}
}

func TestPathRoutingPicksTheLongestPrefixWhateverTheOrder(t *testing.T) {
	env, _, _ := routedEnv(t, func(dir string, port func(string) int) *Layout {
		l := baseLayout(dir, port)
		l.Routing = RouteByPath
		l.Preview = Listener{}
		return l
	})
	ctx := testCtx(t)
	routes := env.layout.RoutesMap()
	// The shorter prefix goes in first: an ordered list would let it win.
	must(t, env.c.addMap(ctx, routes, "/", "app_blue"))
	must(t, env.c.addMap(ctx, routes, "/api", "app_green"))
	tests := []struct{ path, color string }{
		{"/", "blue"}, {"/web/x", "blue"}, {"/api", "green"}, {"/api/v1/x", "green"}, {"/apix", "green"},
	}
	for _, tt := range tests {
		if code, color, _ := getPath(t, env.layout.Frontend.Bind, "any.host", tt.path); code != 200 || color != tt.color {
			t.Errorf("%s: %d %q, want %q", tt.path, code, color, tt.color)
		}
	}
}

func TestHealthChecksSendTheHostHeaderAndExpectTheStatus(t *testing.T) {
	env := startLayout(t, func(dir string, port func(string) int) *Layout {
		l := baseLayout(dir, port)
		l.Backends[0].Check = HealthCheck{Type: "http", Method: "GET", Path: "/healthz?deep=1", Host: "health.internal", ExpectStatus: "204"}
		l.Backends[1].Check = HealthCheck{Type: "tcp"}
		l.Backends = append(l.Backends, Backend{Name: "app_body", Check: HealthCheck{Path: "/healthz", ExpectStatus: "200", Body: "alive"}})
		return l
	})
	ctx := testCtx(t)
	hosts := make(chan string, 16)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case hosts <- r.Host + " " + r.URL.RequestURI():
		default:
		}
		if r.Host != "health.internal" {
			w.WriteHeader(http.StatusOK) // 200 is not the expected 204
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	ln := listen(t)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	must(t, env.c.AddServer(ctx, "app_blue", Server{Name: "h-0", Addr: "127.0.0.1", Port: portOf(ln), Check: fastCheck}))
	waitUp(t, env.c, "app_blue", "h-0")
	if got := <-hosts; got != "health.internal /healthz?deep=1" {
		t.Fatalf("the check asked for %q", got)
	}
	// The tcp-checked backend comes up on a bare TCP listener.
	tl := listen(t)
	go func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	must(t, env.c.AddServer(ctx, "app_green", Server{Name: "t-0", Addr: "127.0.0.1", Port: portOf(tl), Check: fastCheck}))
	waitUp(t, env.c, "app_green", "t-0")
	st, err := env.c.ServerStat(context.Background(), "app_green", "t-0")
	if err != nil || !strings.HasPrefix(st.CheckStatus, "L4OK") {
		t.Fatalf("tcp check status %q %v", st.CheckStatus, err)
	}

	// The body check: a 200 without the string fails, with it passes.
	body := newBackend(t, "body") // "/healthz" answers 200 with no body
	must(t, env.c.AddServer(ctx, "app_body", body.server("b-0")))
	pollT(t, func() error {
		st, err := env.c.ServerStat(ctx, "app_body", "b-0")
		if err != nil {
			return err
		}
		if st.CheckStatus != "L7RSP" {
			return errors.New("check status " + st.CheckStatus + ", want L7RSP (content mismatch)")
		}
		return nil
	})
	alive := listen(t)
	asrv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "i am alive\n") })}
	go asrv.Serve(alive)
	t.Cleanup(func() { asrv.Close() })
	must(t, env.c.AddServer(ctx, "app_body", Server{Name: "b-1", Addr: "127.0.0.1", Port: portOf(alive), Check: fastCheck}))
	waitUp(t, env.c, "app_body", "b-1")
}
