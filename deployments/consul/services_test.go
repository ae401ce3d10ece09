package consul

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

// app is a small HTTP app whose health answer the test sets, and which records the
// requests Consul's check makes.
type app struct {
	srv    *httptest.Server
	status atomic.Int32
	mu     sync.Mutex
	seen   []string // "METHOD host path"
}

func newApp(t *testing.T) *app {
	a := &app{}
	a.status.Store(200)
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.seen = append(a.seen, r.Method+" "+r.Host+" "+r.URL.Path)
		a.mu.Unlock()
		w.WriteHeader(int(a.status.Load()))
	}))
	t.Cleanup(a.srv.Close)
	return a
}

func (a *app) port() int { return a.srv.Listener.Addr().(*net.TCPAddr).Port }

func (a *app) requests() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.seen)
}

func instance(appName string, c deployments.Color, i, port int) deployments.Instance {
	return deployments.Instance{App: appName, Color: c, Index: i, Deploy: "d-42", Image: "demo:v1",
		ContainerID: fmt.Sprintf("c0ffee%d", i), Host: "127.0.0.1", Port: port}
}

// waitStatus waits until instance id of appName has status want and returns it.
func waitStatus(t *testing.T, r *Registry, appName, id string, want Status) ServiceInstance {
	t.Helper()
	var got ServiceInstance
	testenv.WaitFor(t, 30*time.Second, id+" "+string(want), func() error {
		insts, err := r.Instances(ctxFor(t, 10*time.Second), appName)
		if err != nil {
			return err
		}
		for _, si := range insts {
			if si.ID == id {
				got = si
				if si.Verdict.Status == want {
					return nil
				}
				return fmt.Errorf("status %s (%s)", si.Verdict.Status, si.Verdict.Reason)
			}
		}
		return fmt.Errorf("%s is not registered", id)
	})
	return got
}

func TestRegister_HTTPCheckFollowsTheApp(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 60*time.Second)
	web := newApp(t)
	web.status.Store(500)
	inst := instance("web", deployments.Blue, 0, web.port())
	check := deployments.HealthCheck{Type: "http", Path: "healthz", Method: "HEAD", Host: "web.example",
		Interval: time.Second, Timeout: time.Second, DeregisterCriticalAfter: 90 * time.Second}
	if err := r.Register(ctx, inst, check, "v1"); err != nil {
		t.Fatal(err)
	}

	// It starts critical: nothing passes before the check has seen it healthy.
	si := waitStatus(t, r, "web", "web-blue-0", StatusCritical)
	if si.Passing() {
		t.Fatal("a critical instance passes")
	}
	want := ServiceInstance{ID: "web-blue-0", Address: "127.0.0.1", Port: web.port(), Color: deployments.Blue,
		Version: "v1", Image: "demo:v1", Container: "c0ffee0", Deploy: "d-42"}
	if si.ID != want.ID || si.Address != want.Address || si.Port != want.Port || si.Color != want.Color ||
		si.Version != want.Version || si.Image != want.Image || si.Container != want.Container || si.Deploy != want.Deploy || si.Node == "" {
		t.Errorf("instance = %+v, want %+v", si, want)
	}
	if !slices.Equal(si.Tags, []string{"blue", "v1"}) {
		t.Errorf("tags = %q", si.Tags)
	}
	wantMeta := map[string]string{"color": "blue", "image": "demo:v1", "container": "c0ffee0", "deploy": "d-42", "version": "v1", "installation": "swap"}
	if fmt.Sprint(si.Meta) != fmt.Sprint(wantMeta) {
		t.Errorf("meta = %v, want %v", si.Meta, wantMeta)
	}
	var ids []string
	for _, c := range si.Checks {
		ids = append(ids, c.ID)
	}
	if !slices.Equal(ids, []string{"serfHealth", "web-blue-0:probe"}) {
		t.Errorf("checks = %q", ids)
	}

	web.status.Store(200)
	waitStatus(t, r, "web", "web-blue-0", StatusPassing)
	reqs := web.requests()
	if len(reqs) == 0 || reqs[len(reqs)-1] != "HEAD web.example /healthz" {
		t.Errorf("the check requested %q, want HEAD web.example /healthz", reqs)
	}

	// 429 is Consul's warning, which swap does not count as passing.
	web.status.Store(429)
	si = waitStatus(t, r, "web", "web-blue-0", StatusWarning)
	if si.Passing() {
		t.Error("a warning instance passes")
	}

	web.status.Store(503)
	si = waitStatus(t, r, "web", "web-blue-0", StatusCritical)
	mustContain(t, si.Verdict.Reason, "web-blue-0:probe", "503")

	// The agent runs the check as defined (it does not give the definition back, so
	// its output tells).
	checks, err := agent.Client.Agent().Checks()
	if err != nil {
		t.Fatal(err)
	}
	c := checks["web-blue-0:probe"]
	if c == nil || c.Type != "http" || c.ServiceID != "web-blue-0" {
		t.Fatalf("agent check = %+v", c)
	}
	mustContain(t, c.Output, fmt.Sprintf("HTTP HEAD http://127.0.0.1:%d/healthz", web.port()))

	if err := r.Deregister(ctx, "web-blue-0"); err != nil {
		t.Fatal(err)
	}
	if insts, err := r.Instances(ctx, "web"); err != nil || len(insts) != 0 {
		t.Fatalf("after Deregister: %+v, %v", insts, err)
	}
	if err := r.Deregister(ctx, "web-blue-0"); err != nil {
		t.Fatalf("second Deregister: %v", err)
	}
}

func TestRegister_TCPCheckAndMaintenance(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 60*time.Second)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := ln.Addr().(*net.TCPAddr).Port
	inst := instance("db", deployments.Green, 1, port)
	if err := r.Register(ctx, inst, deployments.HealthCheck{Type: "tcp", Interval: time.Second}, ""); err != nil {
		t.Fatal(err)
	}
	si := waitStatus(t, r, "db", "db-green-1", StatusPassing)
	if !slices.Equal(si.Tags, []string{"green"}) || si.Version != "" {
		t.Errorf("without a version: tags %q, version %q", si.Tags, si.Version)
	}
	checks, _ := agent.Client.Agent().Checks()
	if c := checks["db-green-1:probe"]; c == nil || c.Type != "tcp" || !strings.Contains(c.Output, fmt.Sprintf("TCP connect 127.0.0.1:%d: Success", port)) {
		t.Errorf("TCP check = %+v", c)
	}

	// Maintenance as Consul really marks it.
	if err := agent.Client.Agent().EnableServiceMaintenance("db-green-1", "backup"); err != nil {
		t.Fatal(err)
	}
	si = waitStatus(t, r, "db", "db-green-1", StatusMaintenance)
	mustContain(t, si.Verdict.Reason, "db-green-1 is in maintenance", "backup")
	if err := agent.Client.Agent().DisableServiceMaintenance("db-green-1"); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, r, "db", "db-green-1", StatusPassing)
	if err := agent.Client.Agent().EnableNodeMaintenance("reboot"); err != nil {
		t.Fatal(err)
	}
	si = waitStatus(t, r, "db", "db-green-1", StatusMaintenance)
	mustContain(t, si.Verdict.Reason, "node "+si.Node+" is in maintenance", "reboot")
	if err := agent.Client.Agent().DisableNodeMaintenance(); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, r, "db", "db-green-1", StatusPassing)

	ln.Close()
	waitStatus(t, r, "db", "db-green-1", StatusCritical)
}

func TestRegister_TTLCheckFollowsPublishTTL(t *testing.T) {
	agent := testenv.Consul(t)
	r := registry(t, agent)
	ctx := ctxFor(t, 60*time.Second)

	t.Run("TTL only: Consul's view is exactly what swap publishes", func(t *testing.T) {
		inst := instance("api", deployments.Blue, 0, 18080) // nothing listens: Consul must not probe it
		if err := r.registerService(ctx, registration{Instance: inst, Version: "v2", TTL: time.Minute, TTLOnly: true}); err != nil {
			t.Fatal(err)
		}
		si := waitStatus(t, r, "api", "api-blue-0", StatusCritical)
		var ids []string
		for _, c := range si.Checks {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, []string{"api-blue-0:ttl", "serfHealth"}) {
			t.Errorf("checks = %q", ids)
		}
		if err := r.publishTTL(ctx, tTLCheckID("api-blue-0"), true, "200 OK in 3ms"); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, r, "api", "api-blue-0", StatusPassing)
		if err := r.publishTTL(ctx, tTLCheckID("api-blue-0"), false, "connection refused"); err != nil {
			t.Fatal(err)
		}
		si = waitStatus(t, r, "api", "api-blue-0", StatusCritical)
		mustContain(t, si.Verdict.Reason, "api-blue-0:ttl", "connection refused")
	})

	t.Run("TTL beside the HTTP check: both must pass", func(t *testing.T) {
		web := newApp(t)
		inst := instance("api", deployments.Green, 0, web.port())
		reg := registration{Instance: inst, Check: deployments.HealthCheck{Path: "/", Interval: time.Second}, TTL: time.Minute}
		if err := r.registerService(ctx, reg); err != nil {
			t.Fatal(err)
		}
		// Once Consul's own probe passes, the unpublished TTL check still holds it back.
		testenv.WaitFor(t, 30*time.Second, "only the TTL check critical", func() error {
			insts, err := r.Instances(ctx, "api")
			if err != nil {
				return err
			}
			for _, si := range insts {
				if si.ID == "api-green-0" && !si.Passing() && strings.Contains(si.Verdict.Reason, "api-green-0:ttl") {
					return nil
				}
			}
			return fmt.Errorf("instances %+v", insts)
		})
		if err := r.publishTTL(ctx, tTLCheckID("api-green-0"), true, "ok"); err != nil {
			t.Fatal(err)
		}
		si := waitStatus(t, r, "api", "api-green-0", StatusPassing)
		if len(si.Checks) != 3 {
			t.Errorf("checks = %+v, want serfHealth, probe and ttl", si.Checks)
		}
	})

	t.Run("publishing to an unknown check says what to check", func(t *testing.T) {
		err := r.publishTTL(ctx, tTLCheckID("nope-blue-0"), true, "")
		if err == nil {
			t.Fatal("PublishTTL of an unknown check succeeded")
		}
		mustContain(t, err.Error(), "nope-blue-0:ttl", "registration.TTL")
	})
}

func TestRegister_RefusesWhatConsulWouldRefuse(t *testing.T) {
	long := strings.Repeat("x", 600)
	tests := []struct {
		name string
		reg  registration
		want string
	}{
		{"bad app name", registration{Instance: instance("we b", "blue", 0, 80)}, "app name"},
		{"bad color", registration{Instance: instance("web", "red", 0, 80)}, "blue or green"},
		{"no port", registration{Instance: instance("web", "blue", 0, 0)}, "published host and port"},
		{"an image too long for meta", registration{Instance: deployments.Instance{App: "web", Color: "blue", Host: "127.0.0.1", Port: 80, Image: long}}, "over Consul's limit of 512"},
		{"an unknown check type", registration{Instance: instance("web", "blue", 0, 80), Check: deployments.HealthCheck{Type: "grpc"}}, "http or tcp"},
		{"TTL only without a TTL", registration{Instance: instance("web", "blue", 0, 80), TTLOnly: true}, "TTLOnly needs a TTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := definition(tc.reg, deployments.DefaultInstallation)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if err := validMeta("consul-x", "v"); err == nil {
		t.Error("a consul- meta key passed")
	}
}

func TestRegister_CheckDefinitionDefaults(t *testing.T) {
	tests := []struct {
		name  string
		check deployments.HealthCheck
		want  api.AgentServiceCheck
	}{
		{"a path means HTTP GET, with default interval and timeout",
			deployments.HealthCheck{Path: "/up"},
			api.AgentServiceCheck{CheckID: "web-blue-0:probe", Name: "HTTP GET /up", HTTP: "http://127.0.0.1:8080/up", Method: "GET", Interval: "5s", Timeout: "2s", Status: "critical"}},
		{"no path means TCP",
			deployments.HealthCheck{},
			api.AgentServiceCheck{CheckID: "web-blue-0:probe", Name: "TCP 127.0.0.1:8080", TCP: "127.0.0.1:8080", Interval: "5s", Timeout: "2s", Status: "critical"}},
		{"rise and fall become Consul's success and failure thresholds; a short interval caps the timeout",
			deployments.HealthCheck{Type: "tcp", Interval: time.Second, Rise: 3, Fall: 2},
			api.AgentServiceCheck{CheckID: "web-blue-0:probe", Name: "TCP 127.0.0.1:8080", TCP: "127.0.0.1:8080", Interval: "1s", Timeout: "1s", Status: "critical",
				SuccessBeforePassing: 3, FailuresBeforeCritical: 2}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := probeCheck("web-blue-0", instance("web", "blue", 0, 8080), tc.check)
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", *c) != fmt.Sprintf("%+v", tc.want) {
				t.Errorf("check =\n%+v\nwant\n%+v", *c, tc.want)
			}
		})
	}
}

func TestRegister_DeregisterCriticalAfterGoesOnTheCheckConsulRuns(t *testing.T) {
	hc := deployments.HealthCheck{Path: "/up", DeregisterCriticalAfter: 90 * time.Second}
	tests := []struct {
		name string
		reg  registration
		want map[string]string // check ID -> DeregisterCriticalServiceAfter
	}{
		{"probe only", registration{Check: hc}, map[string]string{"web-blue-0:probe": "1m30s"}},
		{"probe and TTL: only the probe removes the instance, a silent publisher does not",
			registration{Check: hc, TTL: time.Minute}, map[string]string{"web-blue-0:probe": "1m30s", "web-blue-0:ttl": ""}},
		{"TTL only: the TTL check does", registration{Check: hc, TTL: time.Minute, TTLOnly: true}, map[string]string{"web-blue-0:ttl": "1m30s"}},
		{"not set", registration{Check: deployments.HealthCheck{Path: "/up"}}, map[string]string{"web-blue-0:probe": ""}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.reg.Instance = instance("web", "blue", 0, 8080)
			svc, err := definition(tc.reg, deployments.DefaultInstallation)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, c := range svc.Checks {
				got[c.CheckID] = c.DeregisterCriticalServiceAfter
				if c.TTL != "" && (c.TTL != "1m0s" || c.Status != "critical") {
					t.Errorf("TTL check = %+v", c)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("checks = %v, want %v", got, tc.want)
			}
		})
	}
}
