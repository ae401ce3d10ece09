package deployments_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swap-dev/swap/deployments"
)

const loadYAML = `haproxy:
  frontend: {bind: "127.0.0.1:8080"}
  instances:
    - {name: lb1, socket: /run/haproxy/admin.sock}
apps:
  web:
    image: web:v1
    port: 8080
    route: web.example
    canary:
      - {weight: 10, bake: 1m}
`

// Load is what every command reads the config with: the file, the overrides over it,
// and every problem with its path.
func TestLoad_FileOverridesAndProblemsWithPaths(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "swap.yaml")
	if err := os.WriteFile(path, []byte(loadYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	over := map[string]string{"apps.web.image": "web:v2", "consul.address": "127.0.0.1:9500"}
	cfg, err := deployments.Load(path, func(k string) (string, bool) { v, ok := over[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	web, err := cfg.App("web")
	if err != nil || web.Image != "web:v2" || cfg.Consul.Address != "127.0.0.1:9500" {
		t.Fatalf("overrides not applied: image %q, consul %q", web.Image, cfg.Consul.Address)
	}

	if _, err := deployments.Load(filepath.Join(dir, "nope.yaml"), nil); err == nil || !strings.Contains(err.Error(), "pass --config FILE") {
		t.Fatalf("missing file: %v", err)
	}

	bad := strings.Replace(loadYAML, "weight: 10", "weight: ten", 1) + "    helthcheck: {}\n" +
		"  api:\n    image: api:v1\n    port: 8080\n    route: api.example\n    healthcheck: {expect_status: 2xx}\n"
	_, err = deployments.Parse([]byte(bad), nil, dir)
	var ve *deployments.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("bad config: %v, want a *ValidationError", err)
	}
	got := strings.Join(ve.Lines(), "\n")
	for _, want := range []string{`apps.web.canary[0].weight: "ten" is not a whole number`, "apps.web.helthcheck: unknown key: did you mean healthcheck?",
		`apps.api.healthcheck.expect_status: "2xx" must be status codes from 100 to 599 and ranges, like 200, 200-399 or 200,204`} {
		if !strings.Contains(got, want) {
			t.Errorf("problems\n%s\nlack %q", got, want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := deployments.EnvName([]string{"apps", "web-api", "healthcheck", "interval"}); got != "SWAP_APPS_WEB_API_HEALTHCHECK_INTERVAL" {
		t.Fatal(got)
	}
}
