package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/swap-dev/swap/deployments"
)

const minimalYAML = `
haproxy:
  instances: [{socket: /run/swap/admin.sock}]
  frontend: {bind: "127.0.0.1:8080"}
apps:
  web:
    image: web:1
    port: 8080
    route: web.example.com
`

// loadFrom writes content to swap.yaml in a temp dir (plus extra files) and loads it
// as `swap --config <file> args...` would.
func loadFrom(t *testing.T, content string, args []string, extra map[string]string) (*deployments.Config, error) {
	t.Helper()
	dir := shortTempDir(t)
	path := filepath.Join(dir, "swap.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return loadArgs(t, append([]string{"--config", path}, args...))
}

func loadArgs(t *testing.T, args []string) (*deployments.Config, error) {
	t.Helper()
	root := newRootCmd(io.Discard, io.Discard)
	if err := root.ParseFlags(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return loadConfig(root)
}

// problemLines asserts err is an invalid-config usage error and returns its problems.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != exitUsage {
		t.Fatalf("error %v is not a usage error (exit 2)", err)
	}
	var ve *deployments.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v holds no *ValidationError", err)
	}
	return ve.Lines()
}

func TestTheSidecarsExampleConfigLoadsAndChecksInHAProxysContainer(t *testing.T) {
	cfg, err := loadArgs(t, []string{"--config", "../../examples/serve/sidecar.yaml"})
	if err != nil {
		t.Fatalf("examples/serve/sidecar.yaml: %v", err)
	}
	if h := cfg.HAProxy; h.CheckContainer != "swap-haproxy" || h.SocketGID != 65532 || h.Binary != "haproxy" || h.Dir != "/srv/swap/haproxy" {
		t.Fatalf("haproxy: check_container %q, socket_gid %d, binary %q, dir %q", h.CheckContainer, h.SocketGID, h.Binary, h.Dir)
	}
}

func TestTheExampleConfigLoadsAndValidates(t *testing.T) {
	cfg, err := loadArgs(t, []string{"--config", "../../examples/swap.yaml"})
	if err != nil {
		t.Fatalf("examples/swap.yaml: %v", err)
	}
	examples, _ := filepath.Abs("../../examples")
	web, err := cfg.App("web")
	if err != nil {
		t.Fatal(err)
	}
	api, err := cfg.App("api")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"haproxy.dir", cfg.HAProxy.Dir, filepath.Join(examples, "haproxy")},
		{"instance socket", cfg.HAProxy.Instances[0].Socket, filepath.Join(examples, "haproxy/admin.sock")},
		{"preview bind", cfg.HAProxy.Preview.Bind, "127.0.0.1:8081"},
		{"web replicas", web.Replicas, 2},
		{"web env keeps upper-case names", web.Env["LOG_LEVEL"], "info"},
		{"web labels", web.Labels["team"], "storefront"},
		{"web canary", len(web.Canary), 2},
		{"web canary[1]", web.Canary[1], deployments.CanaryStep{Weight: 50, Bake: time.Minute}},
		{"web verify", web.Verify, deployments.Verify{Window: time.Minute, Max5xxRate: 0.05}},
		{"web auto_promote", web.Promotes(), true},
		{"api defaults: replicas", api.Replicas, 1},
		{"api defaults: check", api.HealthCheck.ExpectStatus.String(), "200-399"},
		{"api defaults: deploy_timeout", api.DeployTimeout, 2 * time.Minute},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}
}

func TestTheExampleConfigMentionsEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../examples/swap.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range deployments.AllKeys() {
		last := key[strings.LastIndexAny(key, ".]")+1:]
		if !bytes.Contains(data, []byte(last+":")) {
			t.Errorf("examples/swap.yaml does not show %s", key)
		}
	}
}

func TestDocsDescribeEveryKey(t *testing.T) {
	data, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range deployments.AllKeys() {
		if !bytes.Contains(data, []byte("`"+key+"`")) {
			t.Errorf("docs/config.md does not describe `%s`", key)
		}
	}
}

func TestAMinimalConfigGetsTheDefaults(t *testing.T) {
	cfg, err := loadFrom(t, minimalYAML, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Apps["web"]
	if web.Name != "web" || web.Replicas != 1 || web.HealthCheck.Interval != time.Second || web.Retain != 2 ||
		cfg.Consul.Address != "127.0.0.1:8500" || cfg.HAProxy.Routing != "host" || cfg.HAProxy.Timeouts.Client != 30*time.Second {
		t.Fatalf("defaults not applied: consul %+v, haproxy %+v, web %+v", cfg.Consul, cfg.HAProxy, web)
	}
}

func TestEnvironmentOverridesTheFileAndFlagsOverrideTheEnvironment(t *testing.T) {
	t.Setenv("SWAP_CONSUL_ADDRESS", "10.0.0.1:8500")
	t.Setenv("SWAP_CONSUL_TOKEN", "from-env")
	t.Setenv("SWAP_DOCKER_HOST", "tcp://127.0.0.1:2375")
	t.Setenv("SWAP_APPS_WEB_REPLICAS", "3")
	t.Setenv("SWAP_APPS_WEB_HEALTHCHECK_INTERVAL", "3s")
	t.Setenv("SWAP_APPS_WEB_AUTO_PROMOTE", "false")
	t.Setenv("SWAP_APPS_WEB_API_IMAGE", "api:9")
	t.Setenv("SWAP_HAPROXY_PREVIEW_BIND", "127.0.0.1:8081")
	content := minimalYAML + `
    replicas: 2
  web-api:
    image: api:1
    port: 9000
    route: api.example.com
consul:
  address: 127.0.0.1:8500
`
	cfg, err := loadFrom(t, content, []string{"--docker-host", "unix:///run/docker.sock"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		what      string
		got, want any
	}{
		{"consul.address (env over file)", cfg.Consul.Address, "10.0.0.1:8500"},
		{"consul.token (env, not in file)", cfg.Consul.Token, "from-env"},
		{"docker.host (flag over env)", cfg.Docker.Host, "unix:///run/docker.sock"},
		{"apps.web.replicas (env over file)", cfg.Apps["web"].Replicas, 3},
		{"apps.web.healthcheck.interval", cfg.Apps["web"].HealthCheck.Interval, 3 * time.Second},
		{"apps.web.auto_promote", cfg.Apps["web"].Promotes(), false},
		{"apps.web-api.image ('-' as '_')", cfg.Apps["web-api"].Image, "api:9"},
		{"haproxy.preview.bind (section not in file)", cfg.HAProxy.Preview.Bind, "127.0.0.1:8081"},
		{"haproxy.preview.name (defaulted once bind is set)", cfg.HAProxy.Preview.Name, "swap_preview"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}

	cfg, err = loadFrom(t, content, []string{"--consul-address", "10.0.0.2:8500"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Consul.Address != "10.0.0.2:8500" {
		t.Errorf("--consul-address did not win over SWAP_CONSUL_ADDRESS: %s", cfg.Consul.Address)
	}
}

func TestAnInvalidEnvironmentValueIsReportedWithItsKeyPath(t *testing.T) {
	t.Setenv("SWAP_APPS_WEB_PORT", "http")
	_, err := loadFrom(t, minimalYAML, nil, nil)
	want := []string{`apps.web.port: "http" is not a whole number`}
	if got := problemLines(t, err); !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestTheConfigPathComesFromSWAP_CONFIG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(path, []byte(minimalYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SWAP_CONFIG", path)
	cfg, err := loadArgs(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.App("web"); err != nil {
		t.Fatal(err)
	}
}

func TestDecodingProblemsAreReportedWithPathsAndExitCode2(t *testing.T) {
	cases := []struct {
		name    string
		content string
		want    []string
	}{
		{"a misspelt key", minimalYAML + "    helthcheck: {path: /}\n",
			[]string{"apps.web.helthcheck: unknown key: did you mean healthcheck?"}},
		{"a key in the wrong case", minimalYAML + "    Replicas: 2\n",
			[]string{"apps.web.Replicas: unknown key: keys are case-sensitive, did you mean replicas?"}},
		{"a top-level typo", minimalYAML + "consol: {}\n",
			[]string{"consol: unknown key: did you mean consul?"}},
		{"a word for a number", minimalYAML + "    replicas: two\n",
			[]string{`apps.web.replicas: "two" is not a whole number`}},
		{"a fraction for a number", minimalYAML + "    replicas: 2.5\n",
			[]string{`apps.web.replicas: "2.5" is not a whole number`}},
		{"a duration without a unit", minimalYAML + "    healthcheck: {interval: 5}\n",
			[]string{`apps.web.healthcheck.interval: "5" has no unit: write a duration like 5s or 5ms`}},
		{"a malformed duration", minimalYAML + "    drain_timeout: 30 seconds\n",
			[]string{`apps.web.drain_timeout: "30 seconds" is not a duration: write it like 500ms, 5s, 2m or 1h30m`}},
		{"yes for a bool", minimalYAML + "    auto_promote: yes\n",
			[]string{`apps.web.auto_promote: "yes" must be true or false`}},
		{"yes for the mesh switch", minimalYAML + "consul: {mesh: on}\n",
			[]string{`consul.mesh: "on" must be true or false`}},
		{"a rate that is not a number", minimalYAML + "    verify: {window: 1m, max_5xx_rate: 5%}\n",
			[]string{`apps.web.verify.max_5xx_rate: "5%" is not a number`}},
		{"a string for a list", minimalYAML + "    command: /app --port 8080\n",
			[]string{`apps.web.command: must be a list, like [a, b], not "/app --port 8080"`}},
		{"a list for a mapping", minimalYAML + "    env: [A=1]\n",
			[]string{"apps.web.env: must be a mapping of keys to values, not a list"}},
		{"a mapping for a single value", minimalYAML + "    hooks: {pre_deploy: {run: ./notify}}\n",
			[]string{"apps.web.hooks.pre_deploy: must be a single value, not a mapping"}},
		{"a bad canary step", minimalYAML + "    canary: [{weight: 10, bake: 1m}, {weight: half, bake: 1m}]\n",
			[]string{`apps.web.canary[1].weight: "half" is not a whole number`}},
		{"an instance field of the wrong shape", strings.Replace(minimalYAML, "{socket: /run/swap/admin.sock}", "{socket: [a, b]}", 1),
			[]string{"haproxy.instances[0].socket: must be a single value, not a list"}},
		{"apps as a list", "apps: [web, api]\n",
			[]string{"apps: must be a mapping of keys to values, not a list"}},
		{"a key set twice", minimalYAML + "    port: 9090\n",
			[]string{"apps.web.port: is set twice (lines 8 and 10): keep one"}},
		{"unknown keys and type errors together", minimalYAML + "    replicas: many\n    imagee: web:2\n",
			[]string{`apps.web.imagee: unknown key: did you mean image?`, `apps.web.replicas: "many" is not a whole number`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFrom(t, tc.content, nil, nil)
			if got := problemLines(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n  got  %q\n  want %q", got, tc.want)
			}
		})
	}
}

func TestValidationAndFileProblemsAreReportedTogether(t *testing.T) {
	content := minimalYAML + "    env_file: missing.env\n    healthcheck: {interval: -1s}\n  api:\n    image: api:1\n    port: 9000\n    route: api.example.com\n    env_file: api.env\n"
	_, err := loadFrom(t, content, nil, map[string]string{"api.env": "OK=1\nNOT OK=2\n"})
	lines := problemLines(t, err)
	if len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "apps.api.env_file: ") || !strings.HasSuffix(lines[0], `api.env: line 2: variable name "NOT OK" contains whitespace: write NAME=value with nothing around the '='`) ||
		lines[1] != "apps.web.env_file: "+filepath.Join(filepath.Dir(lines[0][len("apps.api.env_file: "):]), "missing.env")+" does not exist: create it or fix the path (relative paths are relative to the config file)" ||
		lines[2] != "apps.web.healthcheck.interval: must be > 0 (like 1s), got -1s" {
		t.Fatalf("problems:\n  %s", strings.Join(lines, "\n  "))
	}
	if msg := err.Error(); !strings.Contains(msg, "swap.yaml: invalid config (3 problems):\n  apps.api.env_file: ") {
		t.Fatalf("error message does not name the file and count the problems:\n%s", msg)
	}
}

func TestYAMLScalarsKeepTheirSpellingAndCase(t *testing.T) {
	content := minimalYAML + `    env:
      VERSION: 1.10
      Mixed_Case: "x"
      DEBUG: true
      EMPTY:
      OCTAL: 0755
    labels: {com.Example.Owner: ops}
    command: [sleep, 10]
`
	cfg, err := loadFrom(t, content, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	web := cfg.Apps["web"]
	got, err := web.Environment(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"DEBUG=true", "EMPTY=", "Mixed_Case=x", "OCTAL=0755", "VERSION=1.10"}; !slices.Equal(got, want) {
		t.Errorf("environment %q, want %q", got, want)
	}
	if web.Labels["com.Example.Owner"] != "ops" {
		t.Errorf("labels %v lost their case", web.Labels)
	}
	if !slices.Equal(web.Command, []string{"sleep", "10"}) {
		t.Errorf("command %q", web.Command)
	}
}

func TestYAMLAnchorsAndMergeKeysShareSettingsBetweenApps(t *testing.T) {
	content := minimalYAML + `    healthcheck: &check
      path: /healthz
      interval: 2s
  api:
    <<: {image: "api:1", port: 9000}
    route: api.example.com
    healthcheck:
      <<: *check
      interval: 5s
`
	cfg, err := loadFrom(t, content, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := cfg.Apps["api"]
	if api.Image != "api:1" || api.Port != 9000 || api.HealthCheck.Path != "/healthz" || api.HealthCheck.Interval != 5*time.Second {
		t.Fatalf("merge keys not applied: %+v", api)
	}
}

func TestLoadingFailsClearlyWithoutAUsableFile(t *testing.T) {
	cases := []struct {
		name, content, want string
	}{
		{"not YAML", "apps: [unclosed\n", "swap.yaml: not valid YAML: yaml: line 1: did not find expected ',' or ']'"},
		{"two documents", minimalYAML + "---\napps: {}\n", "swap.yaml: holds more than one YAML document (a second --- line): keep one"},
		{"a list at the top", "- web\n", "swap.yaml: the top level must be a mapping of docker:, consul:, haproxy: and apps:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := loadFrom(t, tc.content, nil, nil)
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != exitUsage {
				t.Fatalf("error %v is not a usage error", err)
			}
			if !strings.HasSuffix(err.Error(), tc.want) {
				t.Fatalf("error %q does not end with %q", err, tc.want)
			}
		})
	}

	_, err := loadArgs(t, []string{"--config", filepath.Join(t.TempDir(), "nope.yaml")})
	if err == nil || !strings.Contains(err.Error(), "nope.yaml not found: pass --config FILE or set SWAP_CONFIG") {
		t.Fatalf("missing file error = %v", err)
	}

	_, err = loadFrom(t, "", nil, nil)
	if got := problemLines(t, err); !slices.Contains(got, "apps: define at least one app (image, port and route)") {
		t.Fatalf("an empty file gave %q", got)
	}
}

func TestBadGlobalFlagsExitWithUsageCode(t *testing.T) {
	for _, args := range [][]string{{"--output", "yaml", "version"}, {"--log-level", "loud", "version"}} {
		var out, errOut bytes.Buffer
		if code := execute(args, &out, &errOut); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", args, code, exitUsage, errOut.String())
		}
	}
	t.Setenv("SWAP_OUTPUT", "json")
	root := newRootCmd(io.Discard, io.Discard)
	if err := root.ParseFlags(nil); err != nil {
		t.Fatal(err)
	}
	if g, err := globalOptions(root); err != nil || g.Output != "json" || g.LogLevel != "info" {
		t.Fatalf("globalOptions = %+v, %v; want output json from SWAP_OUTPUT, level info", g, err)
	}
}

func TestASubcommandLoadsTheConfigNamedBeforeOrAfterIt(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte(minimalYAML), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(minimalYAML+"    port: 0\n    prot: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"--config", good, "probe"}, exitOK},
		{[]string{"probe", "--config", good}, exitOK},
		{[]string{"probe", "--config", bad}, exitUsage},
	} {
		var loaded *deployments.Config
		root := newRootCmd(io.Discard, io.Discard)
		root.AddCommand(&cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, _ []string) (err error) {
			loaded, err = loadConfig(cmd)
			return err
		}})
		root.SetArgs(tc.args)
		err := root.Execute()
		code := exitOK
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		} else if err != nil {
			code = -1
		}
		if code != tc.code {
			t.Errorf("%q: exit %d (%v), want %d", tc.args, code, err, tc.code)
		}
		if tc.code == exitOK && (loaded == nil || loaded.Apps["web"] == nil) {
			t.Errorf("%q: config not loaded", tc.args)
		}
	}
}

func TestFileValuesStandWhenNoVariableOrFlagIsSet(t *testing.T) {
	for _, k := range []string{"SWAP_CONSUL_ADDRESS", "SWAP_DOCKER_HOST", "SWAP_CONFIG"} {
		t.Setenv(k, "") // empty counts as unset
	}
	cfg, err := loadFrom(t, minimalYAML+"consul: {address: \"10.9.9.9:8500\"}\ndocker: {host: \"tcp://10.9.9.9:2375\"}\n", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Consul.Address != "10.9.9.9:8500" || cfg.Docker.Host != "tcp://10.9.9.9:2375" {
		t.Fatalf("file values replaced by unset flags: consul.address %q, docker.host %q", cfg.Consul.Address, cfg.Docker.Host)
	}
}

// shortTempDir is a temp dir short enough for the HAProxy admin socket under it
// (t.TempDir's long names exceed HAProxy's 97-byte socket paths).
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "swapcfg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func TestConfigsThatWouldNotWorkAreRefusedAtLoadTimeWithTheirPath(t *testing.T) {
	apps := func(names ...string) string {
		var b strings.Builder
		for i, n := range names {
			fmt.Fprintf(&b, "  %s:\n    image: web:1\n    port: 8080\n    route: r%d.example.com\n", n, i)
		}
		return b.String()
	}
	haproxyDir := func(dir string) string {
		return strings.Replace(minimalYAML, "haproxy:\n", "haproxy:\n  dir: "+dir+"\n", 1)
	}
	dirMsg := `must not contain spaces, quotes, '#', '$', '\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule`
	kvMsg := `has a '.' or '..' segment, which Consul's HTTP paths resolve away (swap's keys would land elsewhere): use plain names, like swap or team/swap`
	envMsg := `SWAP_APPS_WEB_API_IMAGE is set, and it names apps.web-api.image, apps."web.api".image, apps.web_api.image alike: set the value in the config file instead, or rename the apps so their names differ in more than '-', '_' and '.'`
	cases := []struct {
		name    string
		content string
		env     map[string]string
		want    []string
	}{
		{"a HAProxy dir with a comma", haproxyDir("/srv/a,b"), nil,
			[]string{`haproxy.dir: "/srv/a,b" ` + dirMsg}},
		{"a HAProxy dir with parentheses and brackets", haproxyDir(`"/srv/(lb)[1]"`), nil,
			[]string{`haproxy.dir: "/srv/(lb)[1]" ` + dirMsg}},
		{"a check path that is not percent-encoding", minimalYAML + "    healthcheck: {path: /health%}\n", nil,
			[]string{`apps.web.healthcheck.path: "/health%": "%" is not percent-encoding: '%' must be followed by two hex digits (write %25 for a literal '%')`}},
		{"a KV prefix with a '..' segment", minimalYAML + "consul: {kv_prefix: swap/../other}\n", nil,
			[]string{`consul.kv_prefix: "swap/../other" ` + kvMsg}},
		{"a KV prefix with a '.' segment", minimalYAML + "consul: {kv_prefix: ./swap}\n", nil,
			[]string{`consul.kv_prefix: "./swap" ` + kvMsg}},
		{"an environment override naming three apps", minimalYAML + apps("web-api", "web_api", "web.api"),
			map[string]string{"SWAP_APPS_WEB_API_IMAGE": "api:9"},
			[]string{`apps."web.api".image: ` + envMsg, "apps.web-api.image: " + envMsg, "apps.web_api.image: " + envMsg}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			_, err := loadFrom(t, tc.content, nil, nil)
			if got := problemLines(t, err); !slices.Equal(got, tc.want) {
				t.Fatalf("problems:\n  got  %q\n  want %q", got, tc.want)
			}
		})
	}

	// One app per spelling takes its variable as before.
	t.Setenv("SWAP_APPS_WEB_API_IMAGE", "api:9")
	cfg, err := loadFrom(t, minimalYAML+apps("web-api"), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Apps["web-api"].Image; got != "api:9" {
		t.Fatalf("apps.web-api.image = %q, want api:9 from SWAP_APPS_WEB_API_IMAGE", got)
	}
}

func TestDockerHostsAndPlacementLoadFromYAML(t *testing.T) {
	content := minimalYAML + `    placement: {per_host: {b: 2}}
docker:
  hosts:
    - {name: a, engine: "unix:///run/a.sock", address: 10.0.0.1}
    - name: b
      engine: tcp://10.0.0.2:2376
      tls: {ca_file: ca.pem, cert_file: cert.pem, key_file: key.pem}
      address: 10.0.0.2
`
	pem := "-----BEGIN CERTIFICATE-----\n"
	cfg, err := loadFrom(t, content, nil, map[string]string{"ca.pem": pem, "cert.pem": pem, "key.pem": pem})
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	hosts := cfg.Docker.HostList()
	if len(hosts) != 2 || hosts[1].Name != "b" || hosts[1].Address != "10.0.0.2" || !filepath.IsAbs(hosts[1].TLS.CAFile) {
		t.Fatalf("hosts = %+v", hosts)
	}
	web, _ := cfg.App("web")
	if got := cfg.HostsOf(web); !slices.Equal(got, []string{"b", "b"}) {
		t.Fatalf("web placed on %v, want [b b] (replicas unset: the per_host sum)", got)
	}

	_, err = loadFrom(t, content, nil, nil)
	want := []string{}
	for _, f := range []string{"ca_file", "cert_file", "key_file"} {
		want = append(want, "docker.hosts[1].tls."+f)
	}
	got := problemLines(t, err)
	if len(got) != 3 {
		t.Fatalf("without the TLS files: %q", got)
	}
	for i, w := range want {
		if !strings.HasPrefix(got[i], w+": ") {
			t.Errorf("problem %d = %q, want it about %s", i, got[i], w)
		}
	}

	typo := minimalYAML + "docker:\n  hosts: [{name: a, engine: \"unix:///run/a.sock\", adress: 10.0.0.1}]\n"
	_, err = loadFrom(t, typo, nil, nil)
	if got := problemLines(t, err); !slices.Contains(got, "docker.hosts[0].adress: unknown key: did you mean address?") {
		t.Fatalf("a misspelt host key: %q", got)
	}
}
