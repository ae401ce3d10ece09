package deployments

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// DockerHost is one Docker engine of docker.hosts: an app's instances are spread over
// these (see Placement).
type DockerHost struct {
	// Name names the host in messages, `swap status` and placement; it must match
	// NamePattern and be unique.
	Name string `yaml:"name" mapstructure:"name"`
	// Engine is the engine's address: unix:///var/run/docker.sock, or tcp://host:2376
	// (with TLS for anything but a trusted network).
	Engine string `yaml:"engine" mapstructure:"engine"`
	// TLS are the client certificate files of a tcp:// engine (docker --tlsverify).
	TLS DockerTLS `yaml:"tls" mapstructure:"tls"`
	// Address is the host's IP address that container ports are published on and
	// that HAProxy and Consul reach the instances at.
	Address string `yaml:"address" mapstructure:"address"`
}

// DockerTLS are the PEM files of a TLS connection to a Docker engine.
type DockerTLS struct {
	CAFile   string `yaml:"ca_file" mapstructure:"ca_file"`
	CertFile string `yaml:"cert_file" mapstructure:"cert_file"`
	KeyFile  string `yaml:"key_file" mapstructure:"key_file"`
}

// On reports whether TLS is configured.
func (t DockerTLS) On() bool { return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" }

// DefaultDockerHostName names the one host of a config with docker.host (or nothing)
// instead of docker.hosts.
const DefaultDockerHostName = "default"

// HostList is the Docker hosts the apps run on: docker.hosts, or, without it, the one
// host docker.host names (empty: DOCKER_HOST or the local socket) publishing on
// docker.host_ip, named "default".
func (d DockerConfig) HostList() []DockerHost {
	if len(d.Hosts) > 0 {
		return d.Hosts
	}
	return []DockerHost{{Name: DefaultDockerHostName, Engine: d.Host, Address: d.HostIP}}
}

// Placement says how an app's replicas are placed on the Docker hosts: spread evenly
// (the default), or PerHost counts.
type Placement struct {
	// PerHost is how many replicas run on each host, by docker.hosts name; hosts it
	// leaves out run none. The counts add up to replicas.
	PerHost map[string]int `yaml:"per_host" mapstructure:"per_host"`
}

// HostsOf returns, for each replica index 0..replicas-1 of app a, the name of the Docker
// host it runs on. Spread puts index i on host i mod len(hosts), in docker.hosts order;
// per_host gives each host, in that order, consecutive indexes. It assumes a validated
// config.
func (c *Config) HostsOf(a *App) []string {
	hosts := c.Docker.HostList()
	out := make([]string, 0, a.Replicas)
	if len(a.Placement.PerHost) == 0 {
		for i := 0; i < a.Replicas; i++ {
			out = append(out, hosts[i%len(hosts)].Name)
		}
		return out
	}
	for _, h := range hosts {
		for range a.Placement.PerHost[h.Name] {
			out = append(out, h.Name)
		}
	}
	return out
}

// validateHosts checks docker.hosts (nothing when the single docker.host is used).
func (c *Config) validateHosts(ps *problems) {
	d := &c.Docker
	if len(d.Hosts) == 0 {
		return
	}
	p := Path("docker")
	if d.Host != "" {
		ps.add(p.Key("host"), "%q is set as well as docker.hosts: give the engine as one of docker.hosts (engine: %s) and remove docker.host", d.Host, d.Host)
	}
	names := map[string]int{}
	addrs := map[string]string{}
	for i, h := range d.Hosts {
		hp := p.Key("hosts").Index(i)
		switch {
		case h.Name == "":
			ps.add(hp.Key("name"), "set a name for this host, like docker-1 (it shows in swap status and placement)")
		case !NamePattern.MatchString(h.Name):
			ps.add(hp.Key("name"), "%q must match %s", h.Name, NamePattern)
		default:
			if j, dup := names[h.Name]; dup {
				ps.add(hp.Key("name"), "%q is also the name of docker.hosts[%d]: every host needs its own name", h.Name, j)
			}
			names[h.Name] = i
		}
		if h.Engine == "" {
			ps.add(hp.Key("engine"), "set the engine's address: unix:///var/run/docker.sock or tcp://host:2376")
		} else if msg := engineProblem(h.Engine); msg != "" {
			ps.add(hp.Key("engine"), "%s", msg)
		}
		if h.TLS.On() {
			if scheme, _, _ := strings.Cut(h.Engine, "://"); scheme != "tcp" && scheme != "https" {
				ps.add(hp.Key("tls"), "TLS is only for a tcp:// engine, not %q: remove tls or use tcp://host:2376", h.Engine)
			}
			if (h.TLS.CertFile == "") != (h.TLS.KeyFile == "") {
				ps.add(hp.Key("tls"), "cert_file and key_file go together: set both (the client certificate and its key) or neither")
			}
		}
		if _, err := netip.ParseAddr(h.Address); err != nil {
			ps.add(hp.Key("address"), "%q is not an IP address: give the host's address that its published ports are reached at, like 10.0.0.5", h.Address)
		} else if other, dup := addrs[h.Address]; dup {
			ps.add(hp.Key("address"), "%s is also the address of host %s: two hosts cannot publish on one address", h.Address, other)
		} else {
			addrs[h.Address] = h.Name
		}
	}
}

// engineProblem says what is wrong with a Docker engine URL, or returns "".
func engineProblem(h string) string {
	scheme, rest, ok := strings.Cut(h, "://")
	switch {
	case !ok:
		return fmt.Sprintf("%q is not a URL: use unix:///var/run/docker.sock or tcp://host:2375", h)
	case scheme == "unix" || scheme == "npipe":
		if rest == "" {
			return fmt.Sprintf("%q has no socket path: use %s:///var/run/docker.sock", h, scheme)
		}
	case scheme == "tcp" || scheme == "http" || scheme == "https":
		if msg := hostPortProblem(strings.TrimSuffix(rest, "/"), false); msg != "" {
			return fmt.Sprintf("%s: use %s://host:port", msg, scheme)
		}
	default:
		return fmt.Sprintf("scheme %q is not supported: use unix:///var/run/docker.sock or tcp://host:2375", scheme)
	}
	return ""
}

// validatePlacement checks an app's placement against docker.hosts.
func (c *Config) validatePlacement(ps *problems, p Path, a *App) {
	if len(a.Placement.PerHost) == 0 {
		return
	}
	p = p.Key("placement").Key("per_host")
	known := map[string]bool{}
	var names []string
	for _, h := range c.Docker.HostList() {
		known[h.Name] = true
		names = append(names, h.Name)
	}
	sum := 0
	for _, name := range slices.Sorted(maps.Keys(a.Placement.PerHost)) {
		n := a.Placement.PerHost[name]
		switch {
		case !known[name]:
			ps.add(p.Key(name), "%q is not one of docker.hosts (%s)", name, strings.Join(names, ", "))
		case n < 0:
			ps.add(p.Key(name), "must be 0 or more replicas, got %d", n)
		default:
			sum += n
		}
	}
	if sum != a.Replicas {
		ps.add(p, "the counts add up to %d but replicas is %d: make them agree (or leave replicas unset: it is then their sum)", sum, a.Replicas)
	}
}

// setPlacementDefaults makes replicas the sum of per_host when replicas is unset.
func (a *App) setPlacementDefaults() {
	if a.Replicas != 0 || len(a.Placement.PerHost) == 0 {
		return
	}
	for _, n := range a.Placement.PerHost {
		if n > 0 {
			a.Replicas += n
		}
	}
}
