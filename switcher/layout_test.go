package switcher

import (
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/statuscode"
)

func layoutConfig() *deployments.Config {
	cfg := &deployments.Config{
		HAProxy: deployments.HAProxyConfig{
			Dir:       "/etc/swap/haproxy",
			Instances: []deployments.HAProxyInstance{{Name: "local", Socket: "/etc/swap/haproxy/admin.sock"}},
			Frontend:  deployments.Listener{Bind: "127.0.0.1:8080"},
			Preview:   deployments.Listener{Bind: "127.0.0.1:8081"},
		},
		Apps: map[string]*deployments.App{
			"web": {Image: "web:1", Port: 8080, Route: "web.example.com",
				HealthCheck: deployments.HealthCheck{Path: "/healthz", Host: "web.internal", ExpectStatus: statuscode.List{{Min: 200, Max: 200}}, Interval: 500 * time.Millisecond, Rise: 3, Fall: 2}},
			"api": {Image: "api:1", Port: 9000, Route: "api.example.com",
				HealthCheck: deployments.HealthCheck{Type: deployments.CheckTCP}},
		},
	}
	cfg.SetDefaults()
	return cfg
}

func TestLBLayoutMakesABackendPerAppAndColorCheckedLikeTheApp(t *testing.T) {
	l, err := LBLayout(layoutConfig(), LBCurrent{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range l.Backends {
		names = append(names, b.Name)
	}
	if got := strings.Join(names, " "); got != "api_blue api_green web_blue web_green" {
		t.Fatalf("backends %s", got)
	}
	web := l.Backend("web_green")
	want := lbconfig.HealthCheck{Type: "http", Method: "GET", Path: "/healthz", Host: "web.internal", ExpectStatus: "200", Timeout: time.Second}
	if web.Check != want {
		t.Fatalf("web check %+v, want %+v", web.Check, want)
	}
	if c := web.Server.Check; c.Inter != 500*time.Millisecond || c.Rise != 3 || c.Fall != 2 || web.Server.Weight != 100 {
		t.Fatalf("web server template %+v", web.Server)
	}
	if api := l.Backend("api_blue"); api.Check.Type != "tcp" || api.Check.Path != "" {
		t.Fatalf("api check %+v", api.Check)
	}
	if l.Frontend != (lbconfig.Listener{Name: "swap", Bind: "127.0.0.1:8080"}) || l.Preview.Name != "swap_preview" || l.Routing != lbconfig.RouteByHost {
		t.Fatalf("listeners %+v %+v routing %s", l.Frontend, l.Preview, l.Routing)
	}
	if len(l.Routes) != 0 || len(l.PreviewRoutes) != 0 {
		t.Fatalf("routes without a live color: %v %v", l.Routes, l.PreviewRoutes)
	}
	if _, err := lbconfig.Render(l); err != nil {
		t.Fatalf("the layout does not render: %v", err)
	}
}

func TestLBLayoutPutsInstancesInTheirBackendAndRoutesTheLiveColor(t *testing.T) {
	cur := LBCurrent{
		Instances: []deployments.Instance{
			{App: "web", Color: deployments.Blue, Index: 0, Host: "127.0.0.1", Port: 32768},
			{App: "web", Color: deployments.Blue, Index: 1, Host: "127.0.0.1", Port: 32769},
			{App: "web", Color: deployments.Green, Index: 0, Host: "127.0.0.1", Port: 32770},
		},
		Live: map[string]deployments.Color{"web": deployments.Blue},
	}
	l, err := LBLayout(layoutConfig(), cur)
	if err != nil {
		t.Fatal(err)
	}
	blue := l.Backend("web_blue").Servers
	if len(blue) != 2 || blue[0] != (lbconfig.Server{Name: "web-blue-0", Addr: "127.0.0.1", Port: 32768}) || blue[1].Name != "web-blue-1" {
		t.Fatalf("web_blue servers %+v", blue)
	}
	if g := l.Backend("web_green").Servers; len(g) != 1 || g[0].Port != 32770 {
		t.Fatalf("web_green servers %+v", g)
	}
	if len(l.Backend("api_blue").Servers) != 0 {
		t.Fatal("api got servers")
	}
	if len(l.Routes) != 1 || l.Routes[0] != (lbconfig.MapEntry{Key: "web.example.com", Value: "web_blue"}) {
		t.Fatalf("routes %v", l.Routes)
	}
	if len(l.PreviewRoutes) != 1 || l.PreviewRoutes[0].Value != "web_green" {
		t.Fatalf("preview routes %v", l.PreviewRoutes)
	}
}

func TestLBLayoutRefusesWhatCannotRender(t *testing.T) {
	tests := []struct {
		name   string
		change func(*deployments.Config)
	}{
		{"a relative dir", func(c *deployments.Config) { c.HAProxy.Dir = "haproxy" }},
		{"a route with a newline", func(c *deployments.Config) { c.Apps["web"].Route = "web.example.com\nbackend x" }},
		{"a check path with a comment", func(c *deployments.Config) { c.Apps["web"].HealthCheck.Path = "/x#y" }},
		{"a bind that is not host:port", func(c *deployments.Config) { c.HAProxy.Frontend.Bind = "8080" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := layoutConfig()
			tt.change(cfg)
			if _, err := LBLayout(cfg, LBCurrent{Live: map[string]deployments.Color{"web": deployments.Blue}}); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
