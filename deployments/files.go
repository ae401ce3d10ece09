package deployments

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ResolvePaths makes the config's relative file paths absolute, relative to baseDir
// (the config file's directory): haproxy.dir, haproxy.binary when it contains a '/' (and is not a path in
// haproxy.check_container),
// haproxy.instances[].socket, dir and master_socket (when not host:port),
// consul.token_file, consul.tls.*_file, docker.hosts[].tls.*_file and apps.*.env_file. Empty paths stay empty.
func (c *Config) ResolvePaths(baseDir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(baseDir, *p)
		}
	}
	h := &c.HAProxy
	abs(&h.Dir)
	if strings.Contains(h.Binary, "/") && h.CheckContainer == "" { // else a path in that container
		abs(&h.Binary)
	}
	for i := range h.Instances {
		in := &h.Instances[i]
		abs(&in.Socket)
		abs(&in.Dir)
		if in.MasterSocket != "" && hostPortProblem(in.MasterSocket, false) != "" {
			abs(&in.MasterSocket)
		}
	}
	cs := &c.Consul
	abs(&cs.TokenFile)
	abs(&cs.TLS.CAFile)
	abs(&cs.TLS.CertFile)
	abs(&cs.TLS.KeyFile)
	for i := range c.Docker.Hosts {
		t := &c.Docker.Hosts[i].TLS
		abs(&t.CAFile)
		abs(&t.CertFile)
		abs(&t.KeyFile)
	}
	for _, a := range c.Apps {
		if a != nil {
			abs(&a.EnvFile)
		}
	}
}

// checkPEM checks that the TLS files under p (ca_file, cert_file, key_file; "" when
// unset) are readable PEM files.
func checkPEM(ps *problems, p Path, ca, cert, key string) {
	for _, f := range []struct {
		key, path string
	}{{"ca_file", ca}, {"cert_file", cert}, {"key_file", key}} {
		if f.path == "" {
			continue
		}
		if b, err := os.ReadFile(f.path); err != nil {
			ps.add(p.Key(f.key), "%s", fileProblem(f.path, err))
		} else if !strings.Contains(string(b), "-----BEGIN ") {
			ps.add(p.Key(f.key), "%s is not PEM: give a PEM file (-----BEGIN ...)", f.path)
		}
	}
}

// CheckFiles checks the files the config names and swap reads: that the Consul token
// and TLS files and docker.hosts[].tls files are readable, and that every app's env_file is readable and parses. It
// reports problems like Validate does (a *ValidationError), with the same paths.
func (c *Config) CheckFiles() error {
	var ps problems
	cs := &c.Consul
	if cs.TokenFile != "" {
		if b, err := os.ReadFile(cs.TokenFile); err != nil {
			ps.add("consul.token_file", "%s", fileProblem(cs.TokenFile, err))
		} else if strings.TrimSpace(string(b)) == "" {
			ps.add("consul.token_file", "%s is empty: put the Consul ACL token in it", cs.TokenFile)
		}
	}
	checkPEM(&ps, "consul.tls", cs.TLS.CAFile, cs.TLS.CertFile, cs.TLS.KeyFile)
	for i, h := range c.Docker.Hosts {
		checkPEM(&ps, Path("docker.hosts").Index(i).Key("tls"), h.TLS.CAFile, h.TLS.CertFile, h.TLS.KeyFile)
	}
	for _, name := range c.AppNames() {
		a := c.Apps[name]
		if a == nil || a.EnvFile == "" {
			continue
		}
		p := Path("apps").Key(name).Key("env_file")
		f, err := os.Open(a.EnvFile)
		if err != nil {
			ps.add(p, "%s", fileProblem(a.EnvFile, err))
			continue
		}
		_, err = ParseEnvFileWith(f, nil)
		f.Close()
		if err != nil {
			ps.add(p, "%s: %v", a.EnvFile, err)
		}
	}
	return ps.err()
}

func fileProblem(path string, err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist: create it or fix the path (relative paths are relative to the config file)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s is not readable by this user: fix its permissions", path)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Sprintf("cannot read %s: %v", path, err)
}

// ACLToken is the Consul ACL token: token, or the trimmed contents of token_file, or "".
func (cs ConsulConfig) ACLToken() (string, error) {
	if cs.Token != "" || cs.TokenFile == "" {
		return cs.Token, nil
	}
	b, err := os.ReadFile(cs.TokenFile)
	if err != nil {
		return "", fmt.Errorf("consul.token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
