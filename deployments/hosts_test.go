package deployments

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func twoHosts() []DockerHost {
	return []DockerHost{
		{Name: "a", Engine: "unix:///run/a.sock", Address: "10.0.0.1"},
		{Name: "b", Engine: "tcp://10.0.0.2:2376", Address: "10.0.0.2",
			TLS: DockerTLS{CAFile: "/etc/swap/ca.pem", CertFile: "/etc/swap/cert.pem", KeyFile: "/etc/swap/key.pem"}},
	}
}

func TestTheSingleDockerHostIsAOneHostList(t *testing.T) {
	c := validConfig()
	c.Docker.Host = "tcp://10.0.0.9:2375"
	c.SetDefaults()
	want := []DockerHost{{Name: "default", Engine: "tcp://10.0.0.9:2375", Address: "127.0.0.1"}}
	if got := c.Docker.HostList(); !reflect.DeepEqual(got, want) {
		t.Fatalf("HostList = %+v, want %+v", got, want)
	}
	if got := c.HostsOf(c.Apps["web"]); !reflect.DeepEqual(got, []string{"default"}) {
		t.Fatalf("HostsOf = %v", got)
	}
}

func TestPlacementSpreadsEvenlyOrCountsPerHost(t *testing.T) {
	cases := []struct {
		name     string
		replicas int
		perHost  map[string]int
		want     []string
	}{
		{"spread 4 over 2", 4, nil, []string{"a", "b", "a", "b"}},
		{"spread 3 over 2", 3, nil, []string{"a", "b", "a"}},
		{"spread 1 over 2", 1, nil, []string{"a"}},
		{"3 on a, 1 on b", 4, map[string]int{"a": 3, "b": 1}, []string{"a", "a", "a", "b"}},
		{"all on b", 2, map[string]int{"b": 2}, []string{"b", "b"}},
		{"replicas unset: the sum", 0, map[string]int{"a": 1, "b": 2}, []string{"a", "b", "b"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Docker.Hosts = twoHosts()
			web := c.Apps["web"]
			web.Replicas, web.Placement.PerHost = tc.replicas, tc.perHost
			c.SetDefaults()
			if err := c.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := c.HostsOf(web); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("HostsOf = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryDockerHostsProblemWithItsPath(t *testing.T) {
	cases := []struct {
		name   string
		break_ func(c *Config)
		want   []string
	}{
		{"docker.host as well", func(c *Config) { c.Docker.Host = "unix:///var/run/docker.sock" },
			[]string{`docker.host: "unix:///var/run/docker.sock" is set as well as docker.hosts: give the engine as one of docker.hosts (engine: unix:///var/run/docker.sock) and remove docker.host`}},
		{"a missing name", func(c *Config) { c.Docker.Hosts[1].Name = "" },
			[]string{"docker.hosts[1].name: set a name for this host, like docker-1 (it shows in swap status and placement)"}},
		{"a bad name", func(c *Config) { c.Docker.Hosts[1].Name = "b b" },
			[]string{`docker.hosts[1].name: "b b" must match ^[A-Za-z0-9._-]{1,64}$`}},
		{"a duplicate name", func(c *Config) { c.Docker.Hosts[1].Name = "a" },
			[]string{`docker.hosts[1].name: "a" is also the name of docker.hosts[0]: every host needs its own name`}},
		{"a missing engine", func(c *Config) { c.Docker.Hosts[0].Engine = "" },
			[]string{"docker.hosts[0].engine: set the engine's address: unix:///var/run/docker.sock or tcp://host:2376"}},
		{"an ssh engine", func(c *Config) { c.Docker.Hosts[0].Engine = "ssh://me@a" },
			[]string{`docker.hosts[0].engine: scheme "ssh" is not supported: use unix:///var/run/docker.sock or tcp://host:2375`}},
		{"TLS on a socket", func(c *Config) { c.Docker.Hosts[0].TLS.CAFile = "/ca.pem" },
			[]string{`docker.hosts[0].tls: TLS is only for a tcp:// engine, not "unix:///run/a.sock": remove tls or use tcp://host:2376`}},
		{"a cert without its key", func(c *Config) { c.Docker.Hosts[1].TLS.KeyFile = "" },
			[]string{"docker.hosts[1].tls: cert_file and key_file go together: set both (the client certificate and its key) or neither"}},
		{"a host name as address", func(c *Config) { c.Docker.Hosts[0].Address = "docker-a" },
			[]string{`docker.hosts[0].address: "docker-a" is not an IP address: give the host's address that its published ports are reached at, like 10.0.0.5`}},
		{"a shared address", func(c *Config) { c.Docker.Hosts[1].Address = "10.0.0.1" },
			[]string{"docker.hosts[1].address: 10.0.0.1 is also the address of host a: two hosts cannot publish on one address"}},
		{"placement on an unknown host", func(c *Config) { c.Apps["web"].Placement.PerHost = map[string]int{"a": 1, "c": 1} },
			[]string{`apps.web.placement.per_host.c: "c" is not one of docker.hosts (a, b)`,
				"apps.web.placement.per_host: the counts add up to 1 but replicas is 2: make them agree (or leave replicas unset: it is then their sum)"}},
		{"a negative count", func(c *Config) { c.Apps["web"].Placement.PerHost = map[string]int{"a": 3, "b": -1} },
			[]string{"apps.web.placement.per_host.b: must be 0 or more replicas, got -1",
				"apps.web.placement.per_host: the counts add up to 3 but replicas is 2: make them agree (or leave replicas unset: it is then their sum)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Docker.Hosts = twoHosts()
			c.Apps["web"].Replicas = 2
			tc.break_(c)
			c.SetDefaults()
			var ve *ValidationError
			if err := c.Validate(); !errors.As(err, &ve) {
				t.Fatalf("Validate() = %v, want a *ValidationError", err)
			}
			got := slices.Sorted(slices.Values(ve.Lines()))
			want := slices.Sorted(slices.Values(tc.want))
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}
