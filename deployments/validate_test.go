package deployments

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// validConfig is a small config that passes Validate after SetDefaults; each malformed
// case below breaks it in one way.
func validConfig() *Config {
	return &Config{
		HAProxy: HAProxyConfig{
			Instances: []HAProxyInstance{{Socket: "/run/swap/admin.sock"}},
			Frontend:  Listener{Bind: "127.0.0.1:8080"},
		},
		Apps: map[string]*App{
			"web": {
				Image:       "registry.example.com:5000/team/web:1.4.2",
				Port:        8080,
				Route:       "web.example.com",
				HealthCheck: HealthCheck{Path: "/healthz"},
			},
			"api": {Image: "api:2", Port: 9000, Route: "api.example.com"},
		},
	}
}

func TestValidConfigPassesValidation(t *testing.T) {
	c := validConfig()
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
}

func TestAnotherHostsHAProxyOverTCPWithoutDirIsValidAndGetsNoFilesHere(t *testing.T) {
	c := validConfig()
	// The swap CLI's view: its own HAProxy (files in haproxy.dir) and another host's,
	// changed at runtime only; that host's swap serve writes its files.
	c.HAProxy.Instances = []HAProxyInstance{{Name: "lb1", Socket: "/run/haproxy/admin.sock"}, {Name: "lb2", Address: "10.0.0.12:9999"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("config with another host's HAProxy rejected: %v", err)
	}
	if !c.HAProxy.WritesFiles(0) || c.HAProxy.WritesFiles(1) {
		t.Fatalf("WritesFiles: lb1 %v lb2 %v, want true and false", c.HAProxy.WritesFiles(0), c.HAProxy.WritesFiles(1))
	}
	c.HAProxy.Instances[1].Dir = "/mnt/lb2"
	if !c.HAProxy.WritesFiles(1) {
		t.Fatal("an instance over TCP with dir: swap writes its files there")
	}
}

func TestValidateReportsEachMalformedConfigWithItsPathAndWhatToDo(t *testing.T) {
	web := func(c *Config) *App { return c.Apps["web"] }
	cases := []struct {
		name   string
		break_ func(c *Config)
		want   []string
	}{
		{"an app name with a space", func(c *Config) { c.Apps["web app"] = c.Apps["web"]; delete(c.Apps, "web") },
			[]string{`apps."web app": app name "web app" may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit: rename it`}},
		{"an app name starting with a dot", func(c *Config) { c.Apps[".web"] = c.Apps["web"]; delete(c.Apps, "web") },
			[]string{`apps.".web": app name ".web" may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit: rename it`}},
		{"an app name too long for its server names", func(c *Config) { c.Apps[strings.Repeat("a", 56)] = c.Apps["web"]; delete(c.Apps, "web") },
			[]string{"apps." + strings.Repeat("a", 56) + ": app name is 56 characters; at most 55 fit in the names swap derives from it (<app>-green-63): use a shorter name"}},
		{"an app named like a swap command", func(c *Config) { c.Apps["status"] = c.Apps["web"]; delete(c.Apps, "web") },
			[]string{"apps.status: app name \"status\" is a swap command, so `swap status <color>` could not name the app: rename it"}},
		{"two app names differing only in case", func(c *Config) { c.Apps["API"] = &App{Image: "api:3", Port: 1, Route: "api2.example.com"} },
			[]string{`apps.api: differs from app "API" only in case, and Consul treats them as one service: rename one`}},
		{"an empty app", func(c *Config) { c.Apps["web"] = nil },
			[]string{"apps.web: is empty: set at least image, port and route"}},
		{"no apps at all", func(c *Config) { c.Apps = nil },
			[]string{"apps: define at least one app (image, port and route)"}},
		{"a missing image", func(c *Config) { web(c).Image = "" },
			[]string{"apps.web.image: set the image to run, like registry.example.com/web:1.4.2"}},
		{"an upper-case repository", func(c *Config) { web(c).Image = "Web:1" },
			[]string{`apps.web.image: "Web:1" is not a valid image reference: repository names must be lower case`}},
		{"a tag starting with a dash", func(c *Config) { web(c).Image = "web:-1" },
			[]string{`apps.web.image: "web:-1" is not a valid image reference: the tag after ':' must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'`}},
		{"a short digest", func(c *Config) { web(c).Image = "web@sha256:abc" },
			[]string{`apps.web.image: "web@sha256:abc" is not a valid image reference: the digest after '@' must look like sha256:<64 hex digits>`}},
		{"too many replicas", func(c *Config) { web(c).Replicas = 65 },
			[]string{"apps.web.replicas: must be from 1 to 64, got 65"}},
		{"negative replicas", func(c *Config) { web(c).Replicas = -1 },
			[]string{"apps.web.replicas: must be from 1 to 64, got -1"}},
		{"a missing port", func(c *Config) { web(c).Port = 0 },
			[]string{"apps.web.port: set the port the app listens on inside the container (1-65535)"}},
		{"a port out of range", func(c *Config) { web(c).Port = 70000 },
			[]string{"apps.web.port: must be from 1 to 65535, got 70000"}},
		{"an env name with '='", func(c *Config) { web(c).Env = map[string]string{"A=B": "1"} },
			[]string{`apps.web.env."A=B": variable name must not contain '=', whitespace or control characters`}},
		{"an empty env name", func(c *Config) { web(c).Env = map[string]string{"": "1"} },
			[]string{`apps.web.env."": variable name is empty`}},
		{"a label in swap's namespace", func(c *Config) { web(c).Labels = map[string]string{"swap.app": "x", "team": "a"} },
			[]string{`apps.web.labels."swap.app": the swap. prefix is reserved for the labels swap sets itself: use another prefix`}},
		{"an empty program in command", func(c *Config) { web(c).Command = []string{"", "--port", "8080"} },
			[]string{"apps.web.command[0]: the program to run is empty: name it, or remove command to use the image's"}},
		{"a missing route with host routing", func(c *Config) { web(c).Route = "" },
			[]string{"apps.web.route: set the Host header this app serves, like web.example.com (haproxy.routing is host)"}},
		{"an upper-case host route", func(c *Config) { web(c).Route = "Web.example.com" },
			[]string{`apps.web.route: "Web.example.com": write it in lower case (web.example.com); Host headers are matched in lower case`}},
		{"a host route with a port", func(c *Config) { web(c).Route = "web.example.com:8080" },
			[]string{`apps.web.route: "web.example.com:8080": drop the port (web.example.com): routes match the Host header without its port`}},
		{"a host route with an underscore", func(c *Config) { web(c).Route = "my_web.example.com" },
			[]string{`apps.web.route: "my_web.example.com" is not a host name: use lower-case letters, digits and '-' in dot-separated labels, like web.example.com`}},
		{"a path route with host routing", func(c *Config) { web(c).Route = "/web" },
			[]string{`apps.web.route: "/web" is a path but haproxy.routing is host: use a Host header like web.example.com, or set haproxy.routing: path`}},
		{"a path route without its slash", func(c *Config) {
			c.HAProxy.Routing = RoutingPath
			web(c).Route = "web"
			c.Apps["api"].Route = "/api"
		}, []string{`apps.web.route: "web" must start with '/' (haproxy.routing is path), like /web`}},
		{"a path route with a semicolon", func(c *Config) {
			c.HAProxy.Routing = RoutingPath
			web(c).Route = "/web;drop"
			c.Apps["api"].Route = "/api"
		}, []string{`apps.web.route: "/web;drop" may contain only letters, digits and . _ ~ / % + = & : @ , - after its leading '/'`}},
		{"a route with a space", func(c *Config) { web(c).Route = "web example.com" },
			[]string{`apps.web.route: "web example.com" must not contain whitespace or control characters`}},
		{"two apps on one route", func(c *Config) { c.Apps["api"].Route = "web.example.com" },
			[]string{`apps.web.route: "web.example.com" is also the route of app api: every app needs its own route`}},
		{"an unknown check type", func(c *Config) { web(c).HealthCheck.Type = "grpc" },
			[]string{`apps.web.healthcheck.type: "grpc" must be http or tcp`}},
		{"a negative check interval", func(c *Config) { web(c).HealthCheck.Interval = -time.Second },
			[]string{"apps.web.healthcheck.interval: must be > 0 (like 1s), got -1s"}},
		{"a check timeout longer than its interval", func(c *Config) { web(c).HealthCheck.Timeout = 2 * time.Second },
			[]string{"apps.web.healthcheck.timeout: 2s is longer than interval 1s: a probe must end before the next one starts; lower timeout or raise interval"}},
		{"negative rise and fall", func(c *Config) { web(c).HealthCheck.Rise = -1; web(c).HealthCheck.Fall = -2 },
			[]string{
				"apps.web.healthcheck.fall: must be at least 1 (failing probes in a row to become unhealthy), got -2",
				"apps.web.healthcheck.rise: must be at least 1 (passing probes in a row to become healthy), got -1",
			}},
		{"a backwards status range", func(c *Config) { web(c).HealthCheck.ExpectStatus = statuscode.List{{Min: 399, Max: 200}} },
			[]string{`apps.web.healthcheck.expect_status: "399-200" must be status codes from 100 to 599 and ranges, like 200, 200-399 or 200,204`}},
		{"a lower-case method", func(c *Config) { web(c).HealthCheck.Method = "get" },
			[]string{`apps.web.healthcheck.method: "get" must be an upper-case HTTP method (at most 16 letters), like GET or HEAD`}},
		{"a check path with a fragment", func(c *Config) { web(c).HealthCheck.Path = "/healthz#x" },
			[]string{`apps.web.healthcheck.path: "/healthz#x" may contain only letters, digits and . _ ~ / % + = & ? : @ , - after its leading '/'`}},
		{"a check path ending in a lone '%'", func(c *Config) { web(c).HealthCheck.Path = "/health%" },
			[]string{`apps.web.healthcheck.path: "/health%": "%" is not percent-encoding: '%' must be followed by two hex digits (write %25 for a literal '%')`}},
		{"a check path with '%' and non-hex digits", func(c *Config) { web(c).HealthCheck.Path = "/a%zzb?x=%41" },
			[]string{`apps.web.healthcheck.path: "/a%zzb?x=%41": "%zz" is not percent-encoding: '%' must be followed by two hex digits (write %25 for a literal '%')`}},
		{"a check Host header with a bad port", func(c *Config) { web(c).HealthCheck.Host = "web.example.com:99999" },
			[]string{`apps.web.healthcheck.host: "web.example.com:99999": port "99999" must be a number from 1 to 65535`}},
		{"a body check with a quote", func(c *Config) { web(c).HealthCheck.Body = `"status":"ok"` },
			[]string{`apps.web.healthcheck.body: "\"status\":\"ok\"" must be at most 256 letters, digits, spaces and punctuation other than quotes, '#', '$' and '\'`}},
		{"a body check on HEAD", func(c *Config) { web(c).HealthCheck.Method = "HEAD"; web(c).HealthCheck.Body = "ok" },
			[]string{"apps.web.healthcheck.body: a HEAD response has no body: remove body or use method GET"}},
		{"a check path without its slash", func(c *Config) { web(c).HealthCheck.Path = "healthz" },
			[]string{`apps.web.healthcheck.path: "healthz" must start with '/', like /healthz`}},
		{"HTTP settings on a TCP check", func(c *Config) { web(c).HealthCheck = HealthCheck{Type: CheckTCP, Path: "/healthz"} },
			[]string{"apps.web.healthcheck.path: applies to type http only: remove it, or set type: http"}},
		{"a deregistration faster than Consul allows", func(c *Config) { web(c).HealthCheck.DeregisterCriticalAfter = 30 * time.Second },
			[]string{"apps.web.healthcheck.deregister_critical_after: 30s is below Consul's minimum of 1m: use 1m or more"}},
		{"a deploy timeout the gate cannot meet", func(c *Config) { web(c).DeployTimeout = 3 * time.Second },
			[]string{"apps.web.deploy_timeout: 3s is too short: becoming healthy takes at least healthcheck.rise × healthcheck.interval + min_healthy_time = 4s, plus the containers' start: allow more, like 2m0s"}},
		{"a negative min healthy time", func(c *Config) { web(c).MinHealthyTime = -time.Second },
			[]string{"apps.web.min_healthy_time: must not be negative, got -1s"}},
		{"a negative drain timeout", func(c *Config) { web(c).DrainTimeout = -time.Second },
			[]string{"apps.web.drain_timeout: must be > 0 (like 30s), got -1s"}},
		{"a negative scale-down delay", func(c *Config) { web(c).ScaleDownDelay = -time.Minute },
			[]string{"apps.web.scale_down_delay: must not be negative, got -1m0s"}},
		{"a negative retain", func(c *Config) { web(c).Retain = -1 },
			[]string{"apps.web.retain: must be at least 1 (a rollback needs the previous image), got -1"}},
		{"a 5xx rate given as a percentage", func(c *Config) { web(c).Verify = Verify{Window: time.Minute, Max5xxRate: 5} },
			[]string{"apps.web.verify.max_5xx_rate: must be a fraction from 0 to 1 (0.05 is 5%), got 5"}},
		{"a 5xx rate without a window", func(c *Config) { web(c).Verify.Max5xxRate = 0.05 },
			[]string{"apps.web.verify.max_5xx_rate: has no effect while verify.window is 0: set window (like 2m) to watch the new color after the shift"}},
		{"canary steps out of order, over 100 and without bake", func(c *Config) {
			web(c).Canary = []CanaryStep{{Weight: 10, Bake: time.Minute}, {Weight: 10, Bake: time.Minute}, {Weight: 150, Bake: 0}}
		}, []string{
			"apps.web.canary[1].weight: 10 is not above the previous step's 10: weights must increase",
			"apps.web.canary[2].bake: must be > 0: how long to hold this weight before the next step, like 5m",
			"apps.web.canary[2].weight: must be a percentage from 1 to 100, got 150",
		}},
		{"a hook with a NUL byte", func(c *Config) { web(c).Hooks.PostShift = "notify\x00" },
			[]string{"apps.web.hooks.post_shift: must not contain a NUL byte"}},
		{"a negative hook timeout", func(c *Config) { web(c).Hooks.Timeout = -time.Second },
			[]string{"apps.web.hooks.timeout: must be > 0 (like 5m), got -1s"}},
		{"hook env names that are not variable names, or swap's own", func(c *Config) {
			web(c).Hooks.Env = map[string]string{"1ST": "a", "A-B": "b", "SWAP_COLOR": "c", "OK_1": "d\x00"}
		}, []string{
			`apps.web.hooks.env.1ST: "1ST" is not a variable name: use letters, digits and '_', not starting with a digit, like SLACK_URL`,
			`apps.web.hooks.env.A-B: "A-B" is not a variable name: use letters, digits and '_', not starting with a digit, like SLACK_URL`,
			"apps.web.hooks.env.OK_1: value must not contain a NUL byte",
			"apps.web.hooks.env.SWAP_COLOR: swap sets SWAP_COLOR for every hook itself: remove it",
		}},
		{"an ssh Docker host", func(c *Config) { c.Docker.Host = "ssh://deploy@build" },
			[]string{`docker.host: scheme "ssh" is not supported: use unix:///var/run/docker.sock or tcp://host:2375`}},
		{"a host name as the publish IP", func(c *Config) { c.Docker.HostIP = "localhost" },
			[]string{`docker.host_ip: "localhost" is not an IP address: use the address container ports are published on, like 127.0.0.1`}},
		{"a prune that would touch images being built", func(c *Config) {
			c.Docker.Cleanup = CleanupConfig{PruneDangling: true, PruneUntil: 10 * time.Second, PruneLabels: []string{"team=web", "=x", "a b"}}
		}, []string{
			`docker.cleanup.prune_labels[1]: "=x" is not a label filter: write key or key=value, without spaces or quotes`,
			`docker.cleanup.prune_labels[2]: "a b" is not a label filter: write key or key=value, without spaces or quotes`,
			"docker.cleanup.prune_until: must be at least 1m0s (a younger dangling image may belong to a build or pull in progress), got 10s",
		}},
		{"prune labels without the prune", func(c *Config) { c.Docker.Cleanup.PruneLabels = []string{"team=web"} },
			[]string{"docker.cleanup.prune_labels: has no effect while prune_dangling is false: set prune_dangling: true, or remove prune_labels"}},
		{"a Consul URL as its address", func(c *Config) { c.Consul.Address = "https://consul:8501" },
			[]string{`consul.address: drop "https://": write host:port here (consul:8501) and the scheme in consul.scheme`}},
		{"a Consul address without a port", func(c *Config) { c.Consul.Address = "consul" },
			[]string{`consul.address: "consul" is not host:port: use host:port like 127.0.0.1:8500`}},
		{"an unknown Consul scheme", func(c *Config) { c.Consul.Scheme = "ftp" },
			[]string{`consul.scheme: "ftp" must be http or https`}},
		{"both a token and a token file", func(c *Config) { c.Consul.Token = "s3cret"; c.Consul.TokenFile = "/etc/swap/token" },
			[]string{"consul.token: token_file is set too: keep only one of token and token_file"}},
		{"a client certificate without its key", func(c *Config) {
			c.Consul.Scheme = "https"
			c.Consul.TLS.CertFile = "/etc/swap/client.pem"
		}, []string{"consul.tls.key_file: cert_file is set without key_file: set both to use a client certificate"}},
		{"TLS settings over plain http", func(c *Config) { c.Consul.TLS.CAFile = "/etc/swap/ca.pem" },
			[]string{"consul.scheme: is http but consul.tls is set: use scheme: https, or remove tls"}},
		{"a KV prefix with a '..' segment", func(c *Config) { c.Consul.KVPrefix = "team/../swap" },
			[]string{`consul.kv_prefix: "team/../swap" has a '.' or '..' segment, which Consul's HTTP paths resolve away (swap's keys would land elsewhere): use plain names, like swap or team/swap`}},
		{"a KV prefix with a '.' segment", func(c *Config) { c.Consul.KVPrefix = "./swap" },
			[]string{`consul.kv_prefix: "./swap" has a '.' or '..' segment, which Consul's HTTP paths resolve away (swap's keys would land elsewhere): use plain names, like swap or team/swap`}},
		{"a KV prefix that is only '..'", func(c *Config) { c.Consul.KVPrefix = ".." },
			[]string{`consul.kv_prefix: ".." has a '.' or '..' segment, which Consul's HTTP paths resolve away (swap's keys would land elsewhere): use plain names, like swap or team/swap`}},
		{"a KV prefix with slashes around it", func(c *Config) { c.Consul.KVPrefix = "/swap/" },
			[]string{`consul.kv_prefix: "/swap/": remove the leading and trailing '/', like swap`}},
		{"a datacenter with a dot", func(c *Config) { c.Consul.Datacenter = "eu.west" },
			[]string{`consul.datacenter: "eu.west" must be letters, digits, '_' and '-', or empty for the agent's datacenter`}},
		{"no HAProxy instance", func(c *Config) { c.HAProxy.Instances = nil },
			[]string{"haproxy.instances: add at least one HAProxy instance: its admin socket (socket: /path/admin.sock) or address (address: host:port)"}},
		{"an instance with both a socket and an address", func(c *Config) { c.HAProxy.Instances[0].Address = "127.0.0.1:9999" },
			[]string{"haproxy.instances[0]: set one of socket and address, not both"}},
		{"an instance with neither a socket nor an address", func(c *Config) {
			c.HAProxy.Instances = append(c.HAProxy.Instances, HAProxyInstance{Name: "edge"})
		}, []string{"haproxy.instances[1]: set socket (the admin socket's path) or address (its host:port)"}},
		{"two instances with one name and one socket", func(c *Config) {
			c.HAProxy.Instances = []HAProxyInstance{{Name: "lb", Socket: "/a.sock"}, {Name: "lb", Socket: "/a.sock"}}
		}, []string{
			`haproxy.instances[1].dir: "haproxy" is also where haproxy.instances[0] has its files: each HAProxy needs a directory of its own (its admin socket, maps and server state are in it); set dir on one of them`,
			`haproxy.instances[1].name: "lb" is also the name of haproxy.instances[0]: names must be unique`,
			`haproxy.instances[1].socket: "/a.sock" is also used by haproxy.instances[0]: list each HAProxy once`,
		}},
		{"an instance name with a semicolon", func(c *Config) { c.HAProxy.Instances[0].Name = "lb;shutdown" },
			[]string{`haproxy.instances[0].name: name "lb;shutdown" must be 1 to 64 letters, digits, '.', '_' or '-'`}},
		{"two instances whose files would be the same", func(c *Config) {
			c.HAProxy.Instances = []HAProxyInstance{{Name: "a", Socket: "/a.sock"}, {Name: "b", Socket: "/b.sock", Dir: "/srv/x"}, {Name: "c", Socket: "/c.sock", Dir: "/srv/x/"}}
		}, []string{
			`haproxy.instances[2].dir: "/srv/x" is also where haproxy.instances[1] has its files: each HAProxy needs a directory of its own (its admin socket, maps and server state are in it); set dir on one of them`,
		}},
		{"an instance dir with a quote", func(c *Config) { c.HAProxy.Instances[0].Dir = `/srv/x"` },
			[]string{`haproxy.instances[0].dir: "/srv/x\"" must not contain spaces, quotes, '#', '$', '\' or control characters: it is written into haproxy.cfg`}},
		{"an instance address without a port", func(c *Config) { c.HAProxy.Instances[0] = HAProxyInstance{Address: "127.0.0.1", Dir: "/srv/edge"} },
			[]string{`haproxy.instances[0].address: "127.0.0.1" is not host:port: use the host:port of HAProxy's admin socket, like 127.0.0.1:9999`}},
		{"a frontend without a bind address", func(c *Config) { c.HAProxy.Frontend.Bind = "" },
			[]string{"haproxy.frontend.bind: set the address HAProxy serves the apps on, like 127.0.0.1:8080 or :80"}},
		{"a frontend bound to a port out of range", func(c *Config) { c.HAProxy.Frontend.Bind = ":80800" },
			[]string{`haproxy.frontend.bind: port "80800" must be a number from 1 to 65535: use an address like 127.0.0.1:8080 or :80`}},
		{"a frontend named like an app's backend", func(c *Config) { c.HAProxy.Frontend.Name = "web_blue" },
			[]string{`haproxy.frontend.name: "web_blue" is the name of app web's blue backend: choose another name`}},
		{"a preview on the frontend's address", func(c *Config) { c.HAProxy.Preview.Bind = "127.0.0.1:8080" },
			[]string{`haproxy.preview.bind: "127.0.0.1:8080" is also haproxy.frontend.bind: the preview frontend needs its own address`}},
		{"a preview name without a bind address", func(c *Config) { c.HAProxy.Preview.Name = "preview" },
			[]string{"haproxy.preview.name: is set but preview.bind is empty: set bind to enable the preview frontend, or remove name"}},
		{"an unknown routing mode", func(c *Config) { c.HAProxy.Routing = "header" },
			[]string{`haproxy.routing: "header" must be host (route by Host header) or path (route by path prefix)`}},
		{"a HAProxy dir with a space", func(c *Config) { c.HAProxy.Dir = "/srv/my haproxy" },
			[]string{`haproxy.dir: "/srv/my haproxy" must not contain spaces, quotes, '#', '$', '\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule`}},
		{"a HAProxy dir with a comma, which would split the routing rule's map() arguments", func(c *Config) { c.HAProxy.Dir = "/srv/a,b" },
			[]string{`haproxy.dir: "/srv/a,b" must not contain spaces, quotes, '#', '$', '\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule`}},
		{"a HAProxy dir with parentheses", func(c *Config) { c.HAProxy.Dir = "/srv/haproxy(1)" },
			[]string{`haproxy.dir: "/srv/haproxy(1)" must not contain spaces, quotes, '#', '$', '\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule`}},
		{"a HAProxy dir with brackets", func(c *Config) { c.HAProxy.Dir = "/srv/[lb]" },
			[]string{`haproxy.dir: "/srv/[lb]" must not contain spaces, quotes, '#', '$', '\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule`}},
		{"a HAProxy dir too long for the admin socket", func(c *Config) { c.HAProxy.Dir = "/var/lib/" + strings.Repeat("d", 80) },
			[]string{`haproxy.dir: "/var/lib/` + strings.Repeat("d", 80) + `" is too long: the admin socket /var/lib/` + strings.Repeat("d", 80) + `/admin.sock would be 100 bytes and HAProxy takes at most 97; use a shorter directory`}},
		{"a frontend bound to a host name", func(c *Config) { c.HAProxy.Frontend.Bind = "localhost:8080" },
			[]string{`haproxy.frontend.bind: "localhost:8080": the host must be an IP address (HAProxy binds addresses, not names): use an address like 127.0.0.1:8080 or :80`}},
		{"a frontend named like the fallback backend", func(c *Config) { c.HAProxy.Frontend.Name = "swap_fallback" },
			[]string{`haproxy.frontend.name: "swap_fallback" is the name of swap's fallback backend: choose another name`}},
		{"a negative connect timeout", func(c *Config) { c.HAProxy.Timeouts.Connect = -time.Second },
			[]string{"haproxy.timeouts.connect: must be > 0 (like 5s), got -1s"}},
		{"a check container that is no container name", func(c *Config) { c.HAProxy.CheckContainer = "my haproxy" },
			[]string{`haproxy.check_container: "my haproxy" is not a container name or ID (letters, digits, '_', '.', '-', starting with a letter or digit): name the container HAProxy runs in`}},
		{"a relative haproxy binary in a check container", func(c *Config) {
			c.HAProxy.CheckContainer = "haproxy"
			c.HAProxy.Binary = "sbin/haproxy"
		}, []string{`haproxy.binary: "sbin/haproxy" is relative: with check_container it is a path inside that container; use an absolute path like /usr/local/sbin/haproxy, or a name its PATH finds`}},
		{"a negative admin socket group", func(c *Config) { c.HAProxy.SocketGID = -1 },
			[]string{"haproxy.socket_gid: -1 is not a group id: use 1 to 2147483646 (the group of the user swap runs as), or 0 to keep the admin socket HAProxy's user's only"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.break_(c)
			c.SetDefaults()
			err := c.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			if !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("errors.Is(err, ErrInvalidConfig) = false")
			}
			if got := ve.Lines(); !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n  got  %q\n  want %q", got, tc.want)
			}
		})
	}
	if len(cases) < 30 {
		t.Fatalf("only %d malformed configs; the acceptance asks for at least 30", len(cases))
	}
}

func TestValidateReportsEveryProblemAtOnceSortedByPath(t *testing.T) {
	c := validConfig()
	c.Apps["web"].Port = 0
	c.Apps["web"].Canary = make([]CanaryStep, 11)
	for i := range c.Apps["web"].Canary {
		c.Apps["web"].Canary[i] = CanaryStep{Weight: 5 * (i + 1), Bake: time.Minute}
	}
	c.Apps["web"].Canary[2].Bake = 0
	c.Apps["web"].Canary[10].Bake = 0
	c.Apps["api"].Image = ""
	c.HAProxy.Instances = nil
	c.Consul.Scheme = "ftp"
	c.SetDefaults()
	err := c.Validate()
	want := `invalid config (6 problems):
  apps.api.image: set the image to run, like registry.example.com/web:1.4.2
  apps.web.canary[2].bake: must be > 0: how long to hold this weight before the next step, like 5m
  apps.web.canary[10].bake: must be > 0: how long to hold this weight before the next step, like 5m
  apps.web.port: set the port the app listens on inside the container (1-65535)
  consul.scheme: "ftp" must be http or https
  haproxy.instances: add at least one HAProxy instance: its admin socket (socket: /path/admin.sock) or address (address: host:port)`
	if err == nil || err.Error() != want {
		t.Fatalf("Validate() =\n%v\nwant\n%s", err, want)
	}
}

func TestValidationErrorWithOneProblemIsOneLine(t *testing.T) {
	err := NewValidationError([]FieldError{{Path: "apps.web.port", Msg: "set the port"}})
	if got, want := err.Error(), "invalid config: apps.web.port: set the port"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if NewValidationError(nil) != nil {
		t.Fatal("NewValidationError(nil) is not nil")
	}
}

func TestCheckImageRefAcceptsTheReferenceForms(t *testing.T) {
	for _, ref := range []string{
		"web", "web:1.4.2", "team/web:latest", "registry.example.com/team/web:1",
		"localhost:5000/web", "127.0.0.1:5000/a/b/c:v1_2-3", "swap-test-demoapp-abc123:v1",
		"web@sha256:" + strings.Repeat("ab", 32), "ghcr.io/org/web:1@sha256:" + strings.Repeat("0", 64),
		"a__b/c-d.e:x", "[::1]:5000/web:1",
	} {
		if err := CheckImageRef(ref); err != nil {
			t.Errorf("CheckImageRef(%q) = %v, want nil", ref, err)
		}
	}
}

func TestCheckImageRefRejectsMalformedReferences(t *testing.T) {
	for _, ref := range []string{
		"", "web:", ":1", "web app:1", "web/", "/web", "web//x", "-web", "web-:1", "web:1:2",
		"reg.example.com:http/web", "web@md5", "we..b", strings.Repeat("a", 256),
	} {
		if err := CheckImageRef(ref); err == nil {
			t.Errorf("CheckImageRef(%q) = nil, want an error", ref)
		}
	}
}

func TestAppReturnsTheAppOrSaysWhichAppsExist(t *testing.T) {
	c := validConfig()
	c.SetDefaults()
	a, err := c.App("web")
	if err != nil || a.Name != "web" {
		t.Fatalf("App(web) = %v, %v", a, err)
	}
	_, err = c.App("wbe")
	if !errors.Is(err, ErrUnknownApp) {
		t.Fatalf("App(wbe) error %v does not wrap ErrUnknownApp", err)
	}
	want := `unknown app "wbe"; did you mean web? (configured: api, web); check the name or add the app under apps: in the config file`
	if err.Error() != want {
		t.Fatalf("App(wbe) error\n  %q\nwant\n  %q", err, want)
	}
	_, err = (&Config{}).App("web")
	if want := `unknown app "web": no apps are configured; add one under apps: in the config file`; err == nil || err.Error() != want {
		t.Fatalf("App on an empty config = %v, want %q", err, want)
	}
}

func TestSetDefaultsFillsZeroValuesAndKeepsTheRest(t *testing.T) {
	c := validConfig()
	c.HAProxy.Preview.Bind = "127.0.0.1:8081"
	no := false
	c.Apps["api"].AutoPromote = &no
	c.Apps["api"].HealthCheck = HealthCheck{Type: CheckTCP, Interval: 5 * time.Second}
	c.Apps["api"].Retain = 7
	c.SetDefaults()
	hBefore, webBefore := c.HAProxy, *c.Apps["web"]
	hBefore.Instances = slices.Clone(hBefore.Instances)
	c.SetDefaults()
	if !reflect.DeepEqual(c.HAProxy, hBefore) || !reflect.DeepEqual(*c.Apps["web"], webBefore) {
		t.Error("SetDefaults is not idempotent")
	}

	checks := []struct {
		what      string
		got, want any
	}{
		{"docker.host_ip", c.Docker.HostIP, "127.0.0.1"},
		{"docker.cleanup.prune_until", c.Docker.Cleanup.PruneUntil, 24 * time.Hour},
		{"docker.cleanup.prune_dangling", c.Docker.Cleanup.PruneDangling, false},
		{"consul.address", c.Consul.Address, "127.0.0.1:8500"},
		{"consul.scheme", c.Consul.Scheme, "http"},
		{"consul.kv_prefix", c.Consul.KVPrefix, "swap"},
		{"haproxy.dir", c.HAProxy.Dir, "haproxy"},
		{"haproxy.binary", c.HAProxy.Binary, "haproxy"},
		{"haproxy.routing", c.HAProxy.Routing, "host"},
		{"haproxy.frontend.name", c.HAProxy.Frontend.Name, "swap"},
		{"haproxy.preview.name", c.HAProxy.Preview.Name, "swap_preview"},
		{"haproxy.instances[0].name", c.HAProxy.Instances[0].Name, "haproxy-0"},
		{"haproxy.timeouts", c.HAProxy.Timeouts, HAProxyTimeouts{5 * time.Second, 30 * time.Second, 30 * time.Second}},
		{"web name", c.Apps["web"].Name, "web"},
		{"web replicas", c.Apps["web"].Replicas, 1},
		{"web healthcheck", c.Apps["web"].HealthCheck, HealthCheck{
			Type: "http", Path: "/healthz", Method: "GET", ExpectStatus: statuscode.Default,
			Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3, DeregisterCriticalAfter: time.Minute,
		}},
		{"web min_healthy_time", c.Apps["web"].MinHealthyTime, 2 * time.Second},
		{"web deploy_timeout", c.Apps["web"].DeployTimeout, 2 * time.Minute},
		{"web drain_timeout", c.Apps["web"].DrainTimeout, 30 * time.Second},
		{"web stop_timeout", c.Apps["web"].StopTimeout, 10 * time.Second},
		{"web scale_down_delay", c.Apps["web"].ScaleDownDelay, time.Duration(0)},
		{"web retain", c.Apps["web"].Retain, 2},
		{"web hooks.timeout", c.Apps["web"].Hooks.Timeout, 5 * time.Minute},
		{"web auto_promote", c.Apps["web"].Promotes(), true},
		{"web verify", c.Apps["web"].Verify, Verify{}},
		{"api auto_promote kept", c.Apps["api"].Promotes(), false},
		{"api retain kept", c.Apps["api"].Retain, 7},
		{"api tcp check gets no http defaults", c.Apps["api"].HealthCheck, HealthCheck{
			Type: "tcp", Interval: 5 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3, DeregisterCriticalAfter: time.Minute,
		}},
	}
	for _, ck := range checks {
		if !reflect.DeepEqual(ck.got, ck.want) {
			t.Errorf("%s = %v, want %v", ck.what, ck.got, ck.want)
		}
	}
	if err := c.Validate(); err != nil {
		t.Errorf("defaulted config does not validate: %v", err)
	}
}
