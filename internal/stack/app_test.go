package stack

import (
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// What App writes is a config swap loads, with the values asked for.
func TestApp_YAMLIsAConfigSwapLoads(t *testing.T) {
	apps := App{Name: "web", Image: "swap-demo/web:v1", Route: "web.demo", Replicas: 2, Verify: 3 * time.Second}.YAML() +
		App{Name: "api", Image: "api:v1", Check: time.Second, ScaleDownDelay: time.Minute, DeployTimeout: 5 * time.Minute}.YAML()
	yaml := "haproxy:\n  frontend: {bind: \"127.0.0.1:8080\"}\n  instances:\n    - {name: lb1, socket: /run/haproxy/admin.sock}\napps:\n" + apps
	cfg, err := deployments.Parse([]byte(yaml), nil, t.TempDir())
	if err != nil {
		t.Fatalf("%v\n%s", err, yaml)
	}
	web, _ := cfg.App("web")
	api, _ := cfg.App("api")
	if web.Replicas != 2 || web.Route != "web.demo" || web.Verify.Window != 3*time.Second || web.HealthCheck.Interval != 250*time.Millisecond {
		t.Errorf("web: %+v", web)
	}
	if api.Replicas != 1 || api.Route != "api.bench" || api.ScaleDownDelay != time.Minute || api.DeployTimeout != 5*time.Minute ||
		api.HealthCheck.Timeout != time.Second {
		t.Errorf("api: %+v", api)
	}
	if !strings.HasPrefix(apps, "  web:\n") {
		t.Errorf("not indented as an entry of apps:\n%s", apps)
	}
}
