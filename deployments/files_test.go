package deployments

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestResolvePathsMakesRelativePathsRelativeToTheConfigDir(t *testing.T) {
	c := &Config{
		Consul: ConsulConfig{TokenFile: "secrets/token", TLS: TLSConfig{CAFile: "/etc/ca.pem", CertFile: "c.pem", KeyFile: "k.pem"}},
		HAProxy: HAProxyConfig{
			Dir:    "haproxy",
			Binary: "haproxy",
			Instances: []HAProxyInstance{
				{Socket: "run/admin.sock", MasterSocket: "run/master.sock"},
				{Address: "127.0.0.1:9999", MasterSocket: "127.0.0.1:9998"},
			},
		},
		Apps: map[string]*App{"web": {EnvFile: "web.env"}, "api": {}, "nil": nil},
	}
	c.ResolvePaths("/etc/swap")
	checks := []struct{ what, got, want string }{
		{"consul.token_file", c.Consul.TokenFile, "/etc/swap/secrets/token"},
		{"consul.tls.ca_file", c.Consul.TLS.CAFile, "/etc/ca.pem"},
		{"consul.tls.cert_file", c.Consul.TLS.CertFile, "/etc/swap/c.pem"},
		{"consul.tls.key_file", c.Consul.TLS.KeyFile, "/etc/swap/k.pem"},
		{"haproxy.dir", c.HAProxy.Dir, "/etc/swap/haproxy"},
		{"haproxy.binary (looked up in PATH)", c.HAProxy.Binary, "haproxy"},
		{"instances[0].socket", c.HAProxy.Instances[0].Socket, "/etc/swap/run/admin.sock"},
		{"instances[0].master_socket", c.HAProxy.Instances[0].MasterSocket, "/etc/swap/run/master.sock"},
		{"instances[1].master_socket (an address)", c.HAProxy.Instances[1].MasterSocket, "127.0.0.1:9998"},
		{"web env_file", c.Apps["web"].EnvFile, "/etc/swap/web.env"},
		{"api env_file (unset)", c.Apps["api"].EnvFile, ""},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s = %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	inContainer := &Config{HAProxy: HAProxyConfig{Binary: "sbin/haproxy", CheckContainer: "lb"}}
	inContainer.ResolvePaths("/etc/swap")
	if got := inContainer.HAProxy.Binary; got != "sbin/haproxy" {
		t.Errorf("haproxy.binary of a check container = %q: it is a path in that container, not relative to the config", got)
	}
}

func TestCheckFilesReportsMissingUnreadableAndMalformedFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	c := &Config{
		Consul: ConsulConfig{
			TokenFile: write("token", " \n"),
			TLS:       TLSConfig{CAFile: write("ca.pem", "not a certificate"), CertFile: filepath.Join(dir, "missing.pem"), KeyFile: dir},
		},
		Apps: map[string]*App{
			"web": {EnvFile: write("web.env", "GOOD=1\nBAD KEY=2\n")},
			"api": {EnvFile: filepath.Join(dir, "api.env")},
			"ok":  {EnvFile: write("ok.env", "A=1\n")},
		},
	}
	err := c.CheckFiles()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("CheckFiles() = %v, want a *ValidationError", err)
	}
	want := []string{
		"apps.api.env_file: " + dir + "/api.env does not exist: create it or fix the path (relative paths are relative to the config file)",
		"apps.web.env_file: " + dir + `/web.env: line 2: variable name "BAD KEY" contains whitespace: write NAME=value with nothing around the '='`,
		"consul.tls.ca_file: " + dir + "/ca.pem is not PEM: give a PEM file (-----BEGIN ...)",
		"consul.tls.cert_file: " + dir + "/missing.pem does not exist: create it or fix the path (relative paths are relative to the config file)",
		"consul.tls.key_file: cannot read " + dir + ": is a directory",
		"consul.token_file: " + dir + "/token is empty: put the Consul ACL token in it",
	}
	if got := ve.Lines(); !slices.Equal(got, want) {
		t.Fatalf("CheckFiles:\n  got  %q\n  want %q", got, want)
	}
}

func TestCheckFilesPassesWhenNoFilesAreNamed(t *testing.T) {
	c := validConfig()
	c.SetDefaults()
	if err := c.CheckFiles(); err != nil {
		t.Fatalf("CheckFiles() = %v", err)
	}
}

func TestACLTokenReadsTheTokenFileTrimmed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("  abc-123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if tok, err := (ConsulConfig{TokenFile: p}).ACLToken(); err != nil || tok != "abc-123" {
		t.Fatalf("ACLToken() = %q, %v", tok, err)
	}
	if tok, err := (ConsulConfig{Token: "inline"}).ACLToken(); err != nil || tok != "inline" {
		t.Fatalf("ACLToken() = %q, %v", tok, err)
	}
	if _, err := (ConsulConfig{TokenFile: p + ".missing"}).ACLToken(); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ACLToken() of a missing file = %v, want ErrNotExist", err)
	}
}
