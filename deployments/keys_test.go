package deployments

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckKeysReportsUnknownKeysWithTheirPath(t *testing.T) {
	tree := map[string]any{
		"consul": map[string]any{"adress": "127.0.0.1:8500", "tls": map[string]any{"ca": "x"}},
		"haproxy": map[string]any{
			"instances": []any{map[string]any{"socket": "/a.sock"}, map[string]any{"sockets": "/b.sock"}},
			"frontend":  map[string]any{"bind": ":80"},
		},
		"apps": map[string]any{
			"web": map[string]any{
				"image":       "web:1",
				"helthcheck":  map[string]any{},
				"Port":        8080,
				"env":         map[string]any{"ANY_NAME": "is fine"},
				"labels":      map[string]any{"any.label": "is fine"},
				"canary":      []any{map[string]any{"weight": 10, "bake_time": "1m"}},
				"healthcheck": map[string]any{"intervall": "1s"},
			},
			"api":         nil,
			"web app":     map[string]any{"imgae": "x"},
			"not-a-map":   "scalar values are left for the decoder",
			"zzz_unknown": map[string]any{"xyzzy": 1},
		},
		"dockr": map[string]any{},
	}
	got := NewValidationError(CheckKeys(tree)).(*ValidationError).Lines()
	want := []string{
		`apps."web app".imgae: unknown key: did you mean image?`,
		"apps.web.Port: unknown key: keys are case-sensitive, did you mean port?", // upper case sorts first
		"apps.web.canary[0].bake_time: unknown key: did you mean bake?",
		"apps.web.healthcheck.intervall: unknown key: did you mean interval?",
		"apps.web.helthcheck: unknown key: did you mean healthcheck?",
		"apps.zzz_unknown.xyzzy: unknown key: expected one of image, replicas, port, env, env_file, labels, command, placement, route, healthcheck, min_healthy_time, deploy_timeout, drain_timeout, stop_timeout, scale_down_delay, retain, auto_promote, verify, canary, hooks",
		"consul.adress: unknown key: did you mean address?",
		"consul.tls.ca: unknown key: expected one of ca_file, cert_file, key_file, server_name, insecure_skip_verify",
		"dockr: unknown key: did you mean docker?",
		"haproxy.instances[1].sockets: unknown key: did you mean socket?",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("CheckKeys:\n  got  %s\n  want %s", strings.Join(got, "\n       "), strings.Join(want, "\n       "))
	}
}

func TestCheckKeysAcceptsEveryDocumentedKey(t *testing.T) {
	tree := map[string]any{}
	for _, segs := range ScalarKeys([]string{"web"}) {
		m := tree
		for _, s := range segs[:len(segs)-1] {
			next, ok := m[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[s] = next
			}
			m = next
		}
		m[segs[len(segs)-1]] = "x"
	}
	if errs := CheckKeys(tree); len(errs) != 0 {
		t.Fatalf("CheckKeys rejects ScalarKeys: %v", errs)
	}
}

func TestScalarKeysListGlobalThenPerAppSingleValues(t *testing.T) {
	var got []string
	for _, segs := range ScalarKeys([]string{"web"}) {
		got = append(got, strings.Join(segs, "."))
	}
	for _, want := range []string{
		"docker.host", "consul.address", "consul.token", "consul.tls.ca_file", "haproxy.frontend.bind",
		"haproxy.timeouts.connect", "apps.web.image", "apps.web.auto_promote", "apps.web.healthcheck.interval",
		"apps.web.verify.max_5xx_rate", "apps.web.hooks.pre_deploy",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("ScalarKeys lacks %s", want)
		}
	}
	for _, notScalar := range []string{"haproxy.instances", "apps.web.env", "apps.web.labels", "apps.web.command", "apps.web.canary", "apps.web.name"} {
		if slices.Contains(got, notScalar) {
			t.Errorf("ScalarKeys lists %s, which is not a single value", notScalar)
		}
	}
}

func TestAllKeysSpellsListsAndAppsForDocumentation(t *testing.T) {
	got := AllKeys()
	for _, want := range []string{"docker.host_ip", "haproxy.instances", "haproxy.instances[].master_socket", "apps", "apps.<app>.env", "apps.<app>.canary[].bake", "apps.<app>.healthcheck.deregister_critical_after"} {
		if !slices.Contains(got, want) {
			t.Errorf("AllKeys lacks %s", want)
		}
	}
}
