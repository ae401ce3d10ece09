package deployments

import (
	"strings"
	"testing"
)

func TestInstallation_IsTheKVPrefixAndNamesObjectsOutsideTheDefaultOne(t *testing.T) {
	tests := []struct {
		kvPrefix, installation, object string
	}{
		{"", "swap", "web-blue-0"},
		{"swap", "swap", "web-blue-0"},
		{"/swap/", "swap", "web-blue-0"},
		{"staging", "staging", "staging.web-blue-0"},
		{"team/swap/", "team/swap", "team.swap.web-blue-0"},
	}
	for _, tc := range tests {
		got := Installation(tc.kvPrefix)
		if got != tc.installation {
			t.Errorf("Installation(%q) = %q, want %q", tc.kvPrefix, got, tc.installation)
		}
		if o := ObjectName(got, "web-blue-0"); o != tc.object {
			t.Errorf("ObjectName(%q, web-blue-0) = %q, want %q", got, o, tc.object)
		}
	}
}

func TestOwnedBy_GivesUnlabelledObjectsToTheDefaultInstallationOnly(t *testing.T) {
	tests := []struct {
		want, got string
		owned     bool
	}{
		{"swap", "swap", true},
		{"swap", "", true},
		{"swap", "team", false},
		{"team", "team", true},
		{"team", "", false},
		{"team", "swap", false},
	}
	for _, tc := range tests {
		if OwnedBy(tc.want, tc.got) != tc.owned {
			t.Errorf("OwnedBy(%q, %q) = %v, want %v", tc.want, tc.got, !tc.owned, tc.owned)
		}
	}
}

func TestDockerConfig_DefaultsAndValidatesRestartPolicyAndHostPorts(t *testing.T) {
	c := validConfig()
	c.Consul.KVPrefix = "team/swap"
	c.SetDefaults()
	if c.Docker.RestartPolicy != "unless-stopped" || c.Docker.HostPorts != "32768-60999" || c.Docker.Installation != "team/swap" {
		t.Fatalf("defaults: restart_policy %q, host_ports %q, installation %q", c.Docker.RestartPolicy, c.Docker.HostPorts, c.Docker.Installation)
	}
	for _, ok := range []DockerConfig{
		{RestartPolicy: "no", HostPorts: "ephemeral"},
		{RestartPolicy: "always", HostPorts: "40000-40000"},
		{RestartPolicy: "on-failure:5", HostPorts: "1-65535"},
		{RestartPolicy: "on-failure", HostPorts: "32768-60999"},
	} {
		c := validConfig()
		c.Docker = ok
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Errorf("docker %+v rejected: %v", ok, err)
		}
	}
	tests := []struct {
		docker DockerConfig
		want   string
	}{
		{DockerConfig{RestartPolicy: "sometimes"}, `docker.restart_policy: "sometimes" must be no, always, unless-stopped or on-failure[:N]`},
		{DockerConfig{RestartPolicy: "always:3"}, `docker.restart_policy: "always:3": only on-failure takes a retry count`},
		{DockerConfig{RestartPolicy: "on-failure:x"}, `docker.restart_policy: "on-failure:x": the retry count after on-failure: must be a number >= 0`},
		{DockerConfig{HostPorts: "40000-30000"}, `docker.host_ports: "40000-30000" is neither a port range like 32768-60999 (1 to 65535, low first) nor "ephemeral"`},
		{DockerConfig{HostPorts: "0-100"}, `docker.host_ports: "0-100" is neither`},
		{DockerConfig{HostPorts: "40000"}, `docker.host_ports: "40000" is neither`},
	}
	for _, tc := range tests {
		c := validConfig()
		c.Docker = tc.docker
		c.SetDefaults()
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("docker %+v: Validate = %v, want %q", tc.docker, err, tc.want)
		}
	}
}
