package benchkit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// ConsulTemplateVersion is the consul-template the comparisons run against.
const ConsulTemplateVersion = "v0.41.1"

// ConsulTemplate returns the path of consul-template ConsulTemplateVersion in cacheDir
// (bin/, which git ignores), building it first when missing: `go install
// github.com/hashicorp/consul-template@<version>` from the module proxy into a
// temporary GOBIN, then moved into the cache, so a second run does not build again. It
// is never committed.
func ConsulTemplate(ctx context.Context, cacheDir string) (string, error) {
	dst, err := filepath.Abs(filepath.Join(cacheDir, "consul-template-"+ConsulTemplateVersion))
	if err != nil {
		return "", err
	}
	if st, err := os.Stat(dst); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return dst, nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dst), ".consul-template-build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	fmt.Fprintf(os.Stderr, "building consul-template %s into %s (once; the module proxy must be reachable)\n", ConsulTemplateVersion, dst)
	cmd := exec.CommandContext(ctx, "go", "install", "github.com/hashicorp/consul-template@"+ConsulTemplateVersion)
	cmd.Dir = tmp // outside any module: go install pkg@version ignores the current one
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "CGO_ENABLED=0", "GOFLAGS=-trimpath")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go install github.com/hashicorp/consul-template@%s: %v\n%s", ConsulTemplateVersion, err, strings.TrimSpace(string(out)))
	}
	if err := os.Rename(filepath.Join(tmp, "consul-template"), dst); err != nil {
		return "", err
	}
	return dst, nil
}

// TemplatedHAProxy is an HAProxy whose haproxy.cfg consul-template renders from Consul,
// reloading it (SIGUSR2 to the master, what `systemctl reload haproxy` does) after every
// render, with no wait.
type TemplatedHAProxy struct {
	*HAProxy
	CT *procs.Proc
}

// StartTemplatedHAProxy writes tmpl as consul-template's template in dir, starts
// consul-template (ctBin) on the Consul agent at consulAddr rendering dir/haproxy.cfg,
// waits until rendered reports the file ready, then starts HAProxy on it.
func StartTemplatedHAProxy(ctx context.Context, ctBin, consulAddr, dir, tmpl string, rendered func(cfg string) bool) (*TemplatedHAProxy, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	src, cfg, pidFile := filepath.Join(dir, "haproxy.cfg.ctmpl"), filepath.Join(dir, "haproxy.cfg"), filepath.Join(dir, "haproxy.pid")
	if err := os.WriteFile(src, []byte(tmpl), 0o600); err != nil {
		return nil, err
	}
	hcl := fmt.Sprintf(`consul { address = %q }
log_level = "warn"
template {
  source      = %q
  destination = %q
  # No wait: render and reload at once; nothing to reload until HAProxy runs.
  command     = "test -s %s && kill -USR2 $(cat %s) || true"
}
`, consulAddr, src, cfg, pidFile, pidFile)
	conf := filepath.Join(dir, "consul-template.hcl")
	if err := os.WriteFile(conf, []byte(hcl), 0o600); err != nil {
		return nil, err
	}
	ct, err := procs.Start(procs.Options{Name: "consul-template", Bin: ctBin, Args: []string{"-config", conf},
		Dir: dir, LogFile: filepath.Join(dir, "consul-template.log"), DieWithParent: true})
	if err != nil {
		return nil, err
	}
	t := &TemplatedHAProxy{CT: ct}
	err = ct.Poll(ctx, 30*time.Second, func() error {
		if b, _ := os.ReadFile(cfg); len(b) == 0 || !rendered(string(b)) {
			return fmt.Errorf("%s not rendered yet", cfg)
		}
		return nil
	})
	if err != nil {
		_ = ct.Stop()
		return nil, fmt.Errorf("consul-template: %w (see %s)", err, ct.LogFile())
	}
	if t.HAProxy, err = StartHAProxy(ctx, dir, "haproxy", cfg); err != nil {
		_ = ct.Stop()
		return nil, err
	}
	if err := os.WriteFile(pidFile, fmt.Appendf(nil, "%d\n", t.Proc().Pid()), 0o600); err != nil {
		_ = t.Stop()
		return nil, err
	}
	return t, nil
}

// Stop stops consul-template, then HAProxy.
func (t *TemplatedHAProxy) Stop() error {
	if t == nil {
		return nil
	}
	err := t.CT.Stop()
	if t.HAProxy != nil {
		err = errors.Join(err, t.HAProxy.Stop())
	}
	return err
}
