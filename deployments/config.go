package deployments

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// Config is swap's whole configuration: where Docker, Consul and HAProxy are, and the
// apps. It is decoded from YAML (plus SWAP_* environment and flags, in cmd/) and checked
// by Validate. Field tags are the YAML keys; durations are Go durations ("1s", "2m").
// SetDefaults fills the defaults; docs/config.md describes every key.
type Config struct {
	Docker  DockerConfig    `yaml:"docker" mapstructure:"docker"`
	Consul  ConsulConfig    `yaml:"consul" mapstructure:"consul"`
	HAProxy HAProxyConfig   `yaml:"haproxy" mapstructure:"haproxy"`
	Serve   ServeConfig     `yaml:"serve" mapstructure:"serve"`
	Apps    map[string]*App `yaml:"apps" mapstructure:"apps"`
}

// ServeConfig is `swap serve`, the daemon with the HTTP API for deploy pipelines.
type ServeConfig struct {
	// Listen is the API's address: host:port (a token is then required) or
	// unix:///path/swap.sock (created mode 0600). --listen overrides it.
	Listen string `yaml:"listen" mapstructure:"listen"`
	// TokenFile holds the bearer token (SWAP_SERVE_TOKEN wins over it).
	TokenFile string `yaml:"token_file" mapstructure:"token_file"`
	// Metrics serves GET /metrics (Prometheus, no token); default true.
	Metrics *bool `yaml:"metrics" mapstructure:"metrics"`
	// ShutdownTimeout is how long SIGTERM waits for running swaps to finish before it
	// cancels them (they then roll back, or leave a journal for `swap resume`).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout" mapstructure:"shutdown_timeout"`
}

// MetricsOn reports whether /metrics is served.
func (s ServeConfig) MetricsOn() bool { return s.Metrics == nil || *s.Metrics }

// DockerConfig says which Docker engine runs the containers.
type DockerConfig struct {
	// Host is a Docker host URL (unix:///var/run/docker.sock, tcp://...); empty means
	// DOCKER_HOST or the default socket.
	Host string `yaml:"host" mapstructure:"host"`
	// HostIP is the address container ports are published on (default 127.0.0.1).
	HostIP string `yaml:"host_ip" mapstructure:"host_ip"`
	// Cleanup says what the cleanup step may remove besides swap's own old images.
	Cleanup CleanupConfig `yaml:"cleanup" mapstructure:"cleanup"`
	// RestartPolicy is Docker's restart policy for swap's containers: no, always,
	// unless-stopped (default) or on-failure[:N].
	RestartPolicy string `yaml:"restart_policy" mapstructure:"restart_policy"`
	// HostPorts is where swap publishes an app's port: a range "LO-HI" (default
	// 32768-60999) that swap picks a free port from itself and pins, so a restarted
	// container keeps its port (or fails to start) and never moves onto a port another
	// container had; or "ephemeral" for a port the engine picks on every start.
	HostPorts string `yaml:"host_ports" mapstructure:"host_ports"`
	// Hosts are the Docker hosts the apps run on, when there are several (or one
	// reached otherwise than docker.host says); see HostList. Without it the one host is
	// docker.host, publishing on docker.host_ip.
	Hosts []DockerHost `yaml:"hosts" mapstructure:"hosts"`
	// Installation is this installation's identity (Installation(consul.kv_prefix)),
	// set by SetDefaults; not a key of its own.
	Installation string `yaml:"-" mapstructure:"-"`
}

// HostPortsEphemeral is docker.host_ports for ports the engine picks on every start.
const HostPortsEphemeral = "ephemeral"

// HostPortRange parses docker.host_ports: the range swap picks host ports from, or
// ok false for "ephemeral".
func (d DockerConfig) HostPortRange() (lo, hi int, ok bool, err error) {
	if d.HostPorts == HostPortsEphemeral {
		return 0, 0, false, nil
	}
	a, b, found := strings.Cut(d.HostPorts, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !found || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, false, fmt.Errorf("%q is neither a port range like 32768-60999 (1 to 65535, low first) nor %q", d.HostPorts, HostPortsEphemeral)
	}
	return lo, hi, true, nil
}

// RestartPolicyName splits docker.restart_policy into Docker's policy name and its
// maximum retry count (on-failure:N).
func (d DockerConfig) RestartPolicyName() (name string, retries int, err error) {
	name, n, hasN := strings.Cut(d.RestartPolicy, ":")
	switch {
	case name == "no" || name == "always" || name == "unless-stopped":
		if hasN {
			return "", 0, fmt.Errorf("%q: only on-failure takes a retry count", d.RestartPolicy)
		}
	case name == "on-failure":
		if hasN {
			if retries, err = strconv.Atoi(n); err != nil || retries < 0 {
				return "", 0, fmt.Errorf("%q: the retry count after on-failure: must be a number >= 0", d.RestartPolicy)
			}
		}
	default:
		return "", 0, fmt.Errorf("%q must be no, always, unless-stopped or on-failure[:N]", d.RestartPolicy)
	}
	return name, retries, nil
}

// ConsulConfig says how to reach Consul.
type ConsulConfig struct {
	Address    string    `yaml:"address" mapstructure:"address"` // host:port, default 127.0.0.1:8500
	Scheme     string    `yaml:"scheme" mapstructure:"scheme"`   // http or https
	Token      string    `yaml:"token" mapstructure:"token"`     // ACL token; never logged
	TokenFile  string    `yaml:"token_file" mapstructure:"token_file"`
	Datacenter string    `yaml:"datacenter" mapstructure:"datacenter"`
	KVPrefix   string    `yaml:"kv_prefix" mapstructure:"kv_prefix"` // default "swap"
	TLS        TLSConfig `yaml:"tls" mapstructure:"tls"`
	// Mesh makes every flip a mesh flip too: swap keeps each app's service-resolver
	// (subsets blue and green, default subset the live color) and, during canary steps,
	// a service-splitter with HAProxy's weights (docs/mesh.md).
	Mesh bool `yaml:"mesh" mapstructure:"mesh"`
}

// TLSConfig is a client TLS setup.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file" mapstructure:"ca_file"`
	CertFile           string `yaml:"cert_file" mapstructure:"cert_file"`
	KeyFile            string `yaml:"key_file" mapstructure:"key_file"`
	ServerName         string `yaml:"server_name" mapstructure:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" mapstructure:"insecure_skip_verify"`
}

// HAProxyConfig describes the HAProxy instances in front of the apps and the files swap
// renders for them.
type HAProxyConfig struct {
	// Dir holds haproxy.cfg, routes.map, preview.map and server-state (default
	// "haproxy", relative to the config file's directory).
	Dir string `yaml:"dir" mapstructure:"dir"`
	// Binary is the haproxy executable used for `haproxy -c` (default "haproxy").
	Binary string `yaml:"binary" mapstructure:"binary"`
	// CheckContainer, when set, is the container `haproxy -c` runs in (through the
	// Docker Engine API's exec), with Binary its path there: a swap without haproxy of
	// its own (the sidecar image) checks with HAProxy's. HAProxy's files directory must
	// be mounted at the same path in that container and in swap's.
	CheckContainer string `yaml:"check_container" mapstructure:"check_container"`
	// SocketGID, when not 0, makes the admin socket of the rendered haproxy.cfg mode 660
	// with this group, so that a swap running as another user of that group may use it
	// (the sidecar image's user); 0 keeps it mode 600, HAProxy's user's only.
	SocketGID int               `yaml:"socket_gid" mapstructure:"socket_gid"`
	Instances []HAProxyInstance `yaml:"instances" mapstructure:"instances"`
	Frontend  Listener          `yaml:"frontend" mapstructure:"frontend"`
	Preview   Listener          `yaml:"preview" mapstructure:"preview"` // optional: Bind empty = no preview frontend
	// Routing is what the routes map is keyed by: "host" (the Host header) or "path"
	// (the longest matching path prefix).
	Routing  string          `yaml:"routing" mapstructure:"routing"` // default "host"
	Timeouts HAProxyTimeouts `yaml:"timeouts" mapstructure:"timeouts"`
}

// HAProxyInstance is one HAProxy's admin socket: a unix socket path or a TCP address.
type HAProxyInstance struct {
	Name    string `yaml:"name" mapstructure:"name"`       // default "haproxy-<index>"
	Socket  string `yaml:"socket" mapstructure:"socket"`   // unix socket path
	Address string `yaml:"address" mapstructure:"address"` // host:port
	// MasterSocket is the master CLI, for reloads (optional).
	MasterSocket string `yaml:"master_socket" mapstructure:"master_socket"`
	// Dir is where this HAProxy reads its files (haproxy.cfg, the maps, server-state)
	// and where swap writes them (default haproxy.dir). Each instance has its own. One
	// reached over TCP without dir is another host's HAProxy whose files swap does not
	// write (see HAProxyConfig.WritesFiles).
	Dir string `yaml:"dir" mapstructure:"dir"`
}

// WritesFiles says whether swap writes instances[i]'s files. It does not for one
// reached over TCP without dir: an HAProxy on another host, which swap changes at
// runtime only, while the `swap serve` (or `swap watch`) running on that host writes
// its files from Consul KV (docs/hosts.md). Its maps are still named by their paths in
// haproxy.dir (their ids in the Runtime API): on its host its files are in that path.
func (h *HAProxyConfig) WritesFiles(i int) bool {
	in := h.Instances[i]
	return in.Address == "" || in.Dir != ""
}

// InstanceDir is the directory of instances[i]'s files: its dir, or haproxy.dir.
func (h *HAProxyConfig) InstanceDir(i int) string {
	if d := h.Instances[i].Dir; d != "" {
		return filepath.Clean(d)
	}
	return filepath.Clean(h.Dir)
}

// Listener is a frontend: its HAProxy name and bind address.
type Listener struct {
	Name string `yaml:"name" mapstructure:"name"`
	Bind string `yaml:"bind" mapstructure:"bind"` // 127.0.0.1:8080
}

// HAProxyTimeouts are the defaults section's timeouts (5s, 30s, 30s).
type HAProxyTimeouts struct {
	Connect time.Duration `yaml:"connect" mapstructure:"connect"`
	Client  time.Duration `yaml:"client" mapstructure:"client"`
	Server  time.Duration `yaml:"server" mapstructure:"server"`
}

// App is one application swap deploys. Its name is the key in Config.Apps.
type App struct {
	Name     string            `yaml:"-" mapstructure:"-"` // set from the map key
	Image    string            `yaml:"image" mapstructure:"image"`
	Replicas int               `yaml:"replicas" mapstructure:"replicas"`
	Port     int               `yaml:"port" mapstructure:"port"` // the container's app port
	Env      map[string]string `yaml:"env" mapstructure:"env"`
	EnvFile  string            `yaml:"env_file" mapstructure:"env_file"` // docker run --env-file syntax
	Labels   map[string]string `yaml:"labels" mapstructure:"labels"`
	Command  []string          `yaml:"command" mapstructure:"command"`
	// Placement says how the replicas are spread over docker.hosts.
	Placement Placement `yaml:"placement" mapstructure:"placement"`
	// Route is the routes map key: a Host header (routing: host) or a path prefix
	// starting with "/" (routing: path).
	Route       string      `yaml:"route" mapstructure:"route"`
	HealthCheck HealthCheck `yaml:"healthcheck" mapstructure:"healthcheck"`

	MinHealthyTime time.Duration `yaml:"min_healthy_time" mapstructure:"min_healthy_time"`
	DeployTimeout  time.Duration `yaml:"deploy_timeout" mapstructure:"deploy_timeout"`
	DrainTimeout   time.Duration `yaml:"drain_timeout" mapstructure:"drain_timeout"`
	StopTimeout    time.Duration `yaml:"stop_timeout" mapstructure:"stop_timeout"`
	ScaleDownDelay time.Duration `yaml:"scale_down_delay" mapstructure:"scale_down_delay"`
	Retain         int           `yaml:"retain" mapstructure:"retain"`             // previous images kept (default 2)
	AutoPromote    *bool         `yaml:"auto_promote" mapstructure:"auto_promote"` // nil means true; see Promotes
	Verify         Verify        `yaml:"verify" mapstructure:"verify"`
	Canary         []CanaryStep  `yaml:"canary" mapstructure:"canary"`
	Hooks          Hooks         `yaml:"hooks" mapstructure:"hooks"`
}

// HealthCheck is how an instance is probed: by swap, by Consul and by HAProxy alike.
type HealthCheck struct {
	Type   string `yaml:"type" mapstructure:"type"` // http or tcp
	Path   string `yaml:"path" mapstructure:"path"`
	Method string `yaml:"method" mapstructure:"method"` // default GET
	Host   string `yaml:"host" mapstructure:"host"`     // Host header, optional
	// ExpectStatus is a status or range list: "200", "200-399", "200,204", read once
	// when the config is loaded.
	ExpectStatus statuscode.List `yaml:"expect_status" mapstructure:"expect_status"`
	Body         string          `yaml:"body" mapstructure:"body"` // substring the body must contain
	Interval     time.Duration   `yaml:"interval" mapstructure:"interval"`
	Timeout      time.Duration   `yaml:"timeout" mapstructure:"timeout"`
	Rise         int             `yaml:"rise" mapstructure:"rise"`
	Fall         int             `yaml:"fall" mapstructure:"fall"`
	// DeregisterCriticalAfter removes a Consul instance critical this long.
	DeregisterCriticalAfter time.Duration `yaml:"deregister_critical_after" mapstructure:"deregister_critical_after"`
}

// Verify watches the new color after the shift.
type Verify struct {
	Window     time.Duration `yaml:"window" mapstructure:"window"`
	Max5xxRate float64       `yaml:"max_5xx_rate" mapstructure:"max_5xx_rate"` // 0..1
}

// CanaryStep sends Weight percent of traffic to the new color for Bake.
type CanaryStep struct {
	Weight int           `yaml:"weight" mapstructure:"weight"` // 1..100
	Bake   time.Duration `yaml:"bake" mapstructure:"bake"`
}

// Hooks are shell commands (run with /bin/sh -c) around a deploy. A hook runs in its own
// process group with an explicit environment, never swap's own: PATH and HOME (swap's),
// Env, then SWAP_APP, SWAP_COLOR, SWAP_IMAGE and SWAP_DEPLOY. It may take Timeout;
// then it is killed with everything it started.
type Hooks struct {
	PreDeploy  string `yaml:"pre_deploy" mapstructure:"pre_deploy"`
	PostShift  string `yaml:"post_shift" mapstructure:"post_shift"`
	PostDeploy string `yaml:"post_deploy" mapstructure:"post_deploy"`
	// Timeout bounds each hook's run (default 5m).
	Timeout time.Duration `yaml:"timeout" mapstructure:"timeout"`
	// Env is added to every hook's environment (secrets the hooks need go here, not in
	// swap's environment, which hooks do not see).
	Env map[string]string `yaml:"env" mapstructure:"env"`
}
