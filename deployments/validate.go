package deployments

import (
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Validate checks the whole config and reports every problem at once as a
// *ValidationError (matching ErrInvalidConfig), each with its path and what to do:
//
//	apps.web.healthcheck.interval: must be > 0 (like 1s), got -1s
//
// Call it after SetDefaults: zero values that have a default are reported as missing.
// Validate reads no files; CheckFiles does that.
func (c *Config) Validate() error {
	var ps problems
	c.validateDocker(&ps)
	c.validateConsul(&ps)
	c.validateHAProxy(&ps)
	c.validateServe(&ps)
	c.validateApps(&ps)
	return ps.err()
}

func (c *Config) validateServe(ps *problems) {
	p := Path("serve")
	if l := c.Serve.Listen; l != "" {
		if msg := ListenProblem(l); msg != "" {
			ps.add(p.Key("listen"), "%s", msg)
		}
	}
	if c.Serve.ShutdownTimeout <= 0 {
		ps.add(p.Key("shutdown_timeout"), "%v must be positive, like 5m", c.Serve.ShutdownTimeout)
	}
}

// ListenProblem says what is wrong with a `swap serve` listen address ("" when
// nothing): host:port, or unix:///absolute/path.
func ListenProblem(l string) string {
	if path, ok := strings.CutPrefix(l, "unix://"); ok {
		if !strings.HasPrefix(path, "/") {
			return fmt.Sprintf("%q: a unix socket needs an absolute path, like unix:///run/swap/swap.sock", l)
		}
		return ""
	}
	if msg := hostPortProblem(l, false); msg != "" {
		return fmt.Sprintf("%s: use host:port (127.0.0.1:7070) or unix:///path/swap.sock", msg)
	}
	return ""
}

func (c *Config) validateDocker(ps *problems) {
	p := Path("docker")
	if h := c.Docker.Host; h != "" {
		if msg := engineProblem(h); msg != "" {
			ps.add(p.Key("host"), "%s", msg)
		}
	}
	c.validateHosts(ps)
	if _, err := netip.ParseAddr(c.Docker.HostIP); err != nil {
		ps.add(p.Key("host_ip"), "%q is not an IP address: use the address container ports are published on, like 127.0.0.1", c.Docker.HostIP)
	}
	c.Docker.Cleanup.validate(ps, p.Key("cleanup"))
	if _, _, err := c.Docker.RestartPolicyName(); err != nil {
		ps.add(p.Key("restart_policy"), "%v", err)
	}
	if _, _, _, err := c.Docker.HostPortRange(); err != nil {
		ps.add(p.Key("host_ports"), "%v", err)
	}
}

var (
	datacenterPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
	kvPrefixPattern   = regexp.MustCompile(`^[A-Za-z0-9._-]+(?:/[A-Za-z0-9._-]+)*$`)
)

func (c *Config) validateConsul(ps *problems) {
	cs := &c.Consul
	p := Path("consul")
	if a := cs.Address; strings.HasPrefix(a, "unix://") {
		if len(a) == len("unix://") {
			ps.add(p.Key("address"), "%q has no socket path: use unix:///path/to/consul.sock", a)
		}
	} else if scheme, rest, ok := strings.Cut(a, "://"); ok {
		ps.add(p.Key("address"), "drop %q: write host:port here (%s) and the scheme in consul.scheme", scheme+"://", rest)
	} else if msg := hostPortProblem(a, false); msg != "" {
		ps.add(p.Key("address"), "%s: use host:port like 127.0.0.1:8500", msg)
	}
	switch cs.Scheme {
	case "http":
		if cs.TLS != (TLSConfig{}) {
			ps.add(p.Key("scheme"), "is http but consul.tls is set: use scheme: https, or remove tls")
		}
	case "https":
	default:
		ps.add(p.Key("scheme"), "%q must be http or https", cs.Scheme)
	}
	if cs.Token != "" && cs.TokenFile != "" {
		ps.add(p.Key("token"), "token_file is set too: keep only one of token and token_file")
	}
	if hasSpaceOrControl(cs.Token) {
		ps.add(p.Key("token"), "must not contain whitespace or control characters")
	}
	if cs.Datacenter != "" && !datacenterPattern.MatchString(cs.Datacenter) {
		ps.add(p.Key("datacenter"), "%q must be letters, digits, '_' and '-', or empty for the agent's datacenter", cs.Datacenter)
	}
	switch kv := cs.KVPrefix; {
	case strings.HasPrefix(kv, "/") || strings.HasSuffix(kv, "/"):
		ps.add(p.Key("kv_prefix"), "%q: remove the leading and trailing '/', like %s", kv, strings.Trim(kv, "/"))
	case !kvPrefixPattern.MatchString(kv):
		ps.add(p.Key("kv_prefix"), "%q must be '/'-separated segments of letters, digits, '.', '_' and '-', like swap or team/swap", kv)
	case slices.ContainsFunc(strings.Split(kv, "/"), func(seg string) bool { return seg == "." || seg == ".." }):
		ps.add(p.Key("kv_prefix"), "%q has a '.' or '..' segment, which Consul's HTTP paths resolve away (swap's keys would land elsewhere): use plain names, like swap or team/swap", kv)
	}
	tls := p.Key("tls")
	if cs.TLS.CertFile != "" && cs.TLS.KeyFile == "" {
		ps.add(tls.Key("key_file"), "cert_file is set without key_file: set both to use a client certificate")
	}
	if cs.TLS.KeyFile != "" && cs.TLS.CertFile == "" {
		ps.add(tls.Key("cert_file"), "key_file is set without cert_file: set both to use a client certificate")
	}
	if hasSpaceOrControl(cs.TLS.ServerName) {
		ps.add(tls.Key("server_name"), "must be a host name, without whitespace")
	}
}

// validateInstanceDir checks instances[i].dir: a path haproxy.cfg can hold, and no
// other instance's (an instance reached over TCP without dir has no files here: see
// HAProxyConfig.WritesFiles) (the files of one HAProxy — its admin socket, maps and server
// state — are its own; two sharing them would overwrite each other's).
func (c *Config) validateInstanceDir(ps *problems, ip Path, i int, dirs map[string]int) {
	h := &c.HAProxy
	in := h.Instances[i]
	if (in.Socket == "") == (in.Address == "") {
		return // neither or both: reported already
	}
	if in.Dir != "" {
		if strings.ContainsAny(in.Dir, " \t\"'#$\\") || hasControl(in.Dir) {
			ps.add(ip.Key("dir"), "%q must not contain spaces, quotes, '#', '$', '\\' or control characters: it is written into haproxy.cfg", in.Dir)
		}
		if n := len(in.Dir) + len("/admin.sock"); n > MaxSocketPath {
			ps.add(ip.Key("dir"), "%q is too long: the admin socket %s/admin.sock would be %d bytes and HAProxy takes at most %d; use a shorter directory", in.Dir, in.Dir, n, MaxSocketPath)
		}
	} else if !h.WritesFiles(i) {
		return // another host's HAProxy: its own swap serve writes its files there
	}
	dir := h.InstanceDir(i)
	if j, dup := dirs[dir]; dup {
		ps.add(ip.Key("dir"), "%q is also where haproxy.instances[%d] has its files: each HAProxy needs a directory of its own (its admin socket, maps and server state are in it); set dir on one of them", dir, j)
		return
	}
	dirs[dir] = i
}

// containerName is what Docker accepts as a container name (or an ID).
var containerName = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// maxID is the largest user or group id.
const maxID = 1<<31 - 2

// MaxSocketPath is the longest unix socket path HAProxy 2.6 accepts in `stats socket`.
const MaxSocketPath = 97

func (c *Config) validateHAProxy(ps *problems) {
	h := &c.HAProxy
	p := Path("haproxy")
	if strings.ContainsAny(h.Dir, " \t\"'#$\\,()[]") || hasControl(h.Dir) {
		ps.add(p.Key("dir"), "%q must not contain spaces, quotes, '#', '$', '\\', ',', '(', ')', '[', ']' or control characters: it is written into haproxy.cfg, inside the map() of the routing rule", h.Dir)
	}
	if n := len(h.Dir) + len("/admin.sock"); n > MaxSocketPath {
		ps.add(p.Key("dir"), "%q is too long: the admin socket %s/admin.sock would be %d bytes and HAProxy takes at most %d; use a shorter directory", h.Dir, h.Dir, n, MaxSocketPath)
	}
	if h.Binary == "" {
		ps.add(p.Key("binary"), "set the haproxy executable, like haproxy or /usr/sbin/haproxy")
	}
	if h.CheckContainer != "" {
		if !containerName.MatchString(h.CheckContainer) {
			ps.add(p.Key("check_container"), "%q is not a container name or ID (letters, digits, '_', '.', '-', starting with a letter or digit): name the container HAProxy runs in", h.CheckContainer)
		}
		if strings.Contains(h.Binary, "/") && !filepath.IsAbs(h.Binary) {
			ps.add(p.Key("binary"), "%q is relative: with check_container it is a path inside that container; use an absolute path like /usr/local/sbin/haproxy, or a name its PATH finds", h.Binary)
		}
	}
	if h.SocketGID < 0 || h.SocketGID > maxID {
		ps.add(p.Key("socket_gid"), "%d is not a group id: use 1 to %d (the group of the user swap runs as), or 0 to keep the admin socket HAProxy's user's only", h.SocketGID, maxID)
	}
	if h.Routing != RoutingHost && h.Routing != RoutingPath {
		ps.add(p.Key("routing"), "%q must be host (route by Host header) or path (route by path prefix)", h.Routing)
	}

	if len(h.Instances) == 0 {
		ps.add(p.Key("instances"), "add at least one HAProxy instance: its admin socket (socket: /path/admin.sock) or address (address: host:port)")
	}
	names := map[string]int{}
	endpoints := map[string]int{}
	dirs := map[string]int{}
	for i, in := range h.Instances {
		ip := p.Key("instances").Index(i)
		c.validateInstanceDir(ps, ip, i, dirs)
		if err := CheckName(in.Name); err != nil {
			ps.add(ip.Key("name"), "%v", err)
		} else if j, dup := names[in.Name]; dup {
			ps.add(ip.Key("name"), "%q is also the name of haproxy.instances[%d]: names must be unique", in.Name, j)
		} else {
			names[in.Name] = i
		}
		switch {
		case in.Socket != "" && in.Address != "":
			ps.add(ip, "set one of socket and address, not both")
		case in.Socket == "" && in.Address == "":
			ps.add(ip, "set socket (the admin socket's path) or address (its host:port)")
		case in.Address != "":
			if msg := hostPortProblem(in.Address, false); msg != "" {
				ps.add(ip.Key("address"), "%s: use the host:port of HAProxy's admin socket, like 127.0.0.1:9999", msg)
			}
		}
		if hasControl(in.Socket) {
			ps.add(ip.Key("socket"), "must not contain control characters")
		}
		for _, ep := range []struct{ key, v string }{{"socket", in.Socket}, {"address", in.Address}} {
			if ep.v == "" {
				continue
			}
			if j, dup := endpoints[ep.v]; dup {
				ps.add(ip.Key(ep.key), "%q is also used by haproxy.instances[%d]: list each HAProxy once", ep.v, j)
			} else {
				endpoints[ep.v] = i
			}
		}
		if ms := in.MasterSocket; ms != "" && hasControl(ms) {
			ps.add(ip.Key("master_socket"), "must not contain control characters")
		}
	}

	fe, pv := p.Key("frontend"), p.Key("preview")
	if err := CheckName(h.Frontend.Name); err != nil {
		ps.add(fe.Key("name"), "%v", err)
	}
	if h.Frontend.Bind == "" {
		ps.add(fe.Key("bind"), "set the address HAProxy serves the apps on, like 127.0.0.1:8080 or :80")
	} else if msg := bindProblem(h.Frontend.Bind); msg != "" {
		ps.add(fe.Key("bind"), "%s: use an address like 127.0.0.1:8080 or :80", msg)
	}
	if h.Preview.Bind == "" {
		if h.Preview.Name != "" {
			ps.add(pv.Key("name"), "is set but preview.bind is empty: set bind to enable the preview frontend, or remove name")
		}
	} else {
		if err := CheckName(h.Preview.Name); err != nil {
			ps.add(pv.Key("name"), "%v", err)
		} else if h.Preview.Name == h.Frontend.Name {
			ps.add(pv.Key("name"), "%q is also haproxy.frontend.name: the preview frontend needs its own name", h.Preview.Name)
		}
		if msg := bindProblem(h.Preview.Bind); msg != "" {
			ps.add(pv.Key("bind"), "%s: use an address like 127.0.0.1:8081", msg)
		} else if h.Preview.Bind == h.Frontend.Bind {
			ps.add(pv.Key("bind"), "%q is also haproxy.frontend.bind: the preview frontend needs its own address", h.Preview.Bind)
		}
	}
	for _, l := range []struct {
		p    Path
		name string
	}{{fe, h.Frontend.Name}, {pv, h.Preview.Name}} {
		if l.name == fallbackBackend {
			ps.add(l.p.Key("name"), "%q is the name of swap's fallback backend: choose another name", l.name)
		}
		for app := range c.Apps {
			for _, col := range Colors {
				if l.name != "" && l.name == BackendName(app, col) {
					ps.add(l.p.Key("name"), "%q is the name of app %s's %s backend: choose another name", l.name, app, col)
				}
			}
		}
	}

	t := p.Key("timeouts")
	positive(ps, t.Key("connect"), h.Timeouts.Connect, "5s")
	positive(ps, t.Key("client"), h.Timeouts.Client, "30s")
	positive(ps, t.Key("server"), h.Timeouts.Server, "30s")
}

// fallbackBackend is the backend lbconfig renders for requests no route matches.
const fallbackBackend = "swap_fallback"

// bindProblem says what is wrong with a bind address (":80", "*:80", "127.0.0.1:80"),
// or returns "".
func bindProblem(s string) string {
	if msg := hostPortProblem(s, true); msg != "" {
		return msg
	}
	if host, _, _ := net.SplitHostPort(s); host != "" && host != "*" {
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Sprintf("%q: the host must be an IP address (HAProxy binds addresses, not names)", s)
		}
	}
	return ""
}

// BackendName is the HAProxy backend of an app's color: "<app>_<color>".
func BackendName(app string, c Color) string { return app + "_" + string(c) }

func positive(ps *problems, p Path, d time.Duration, example string) {
	if d <= 0 {
		ps.add(p, "must be > 0 (like %s), got %v", example, d)
	}
}

func nonNegative(ps *problems, p Path, d time.Duration) {
	if d < 0 {
		ps.add(p, "must not be negative, got %v", d)
	}
}

// AppNames lists the configured apps, sorted.
func (c *Config) AppNames() []string {
	names := make([]string, 0, len(c.Apps))
	for n := range c.Apps {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// App returns the app called name, or an error wrapping ErrUnknownApp that lists the
// configured apps.
func (c *Config) App(name string) (*App, error) {
	if a, ok := c.Apps[name]; ok && a != nil {
		return a, nil
	}
	names := c.AppNames()
	if len(names) == 0 {
		return nil, fmt.Errorf("%w %q: no apps are configured; add one under apps: in the config file", ErrUnknownApp, name)
	}
	hint := ""
	if s := suggest(name, names); s != "" {
		hint = fmt.Sprintf("; did you mean %s?", s)
	}
	return nil, fmt.Errorf("%w %q%s (configured: %s); check the name or add the app under apps: in the config file",
		ErrUnknownApp, name, hint, strings.Join(names, ", "))
}
