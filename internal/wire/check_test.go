package wire

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/lbconfig"
)

// With haproxy.check_container, a rendered config is checked by the haproxy of HAProxy's
// own container (Docker exec), and one it rejects never replaces the live file.
func TestWriteOptions_CheckContainerChecksEachConfigWithHAProxysContainerBeforeItIsInstalled(t *testing.T) {
	d, dir, name, live := haproxyInContainer(t)
	cfg := &deployments.Config{HAProxy: deployments.HAProxyConfig{Binary: "haproxy", CheckContainer: name}}
	write, err := WriteOptions(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	good := live + "    server a 127.0.0.1:1\n"
	if _, err := lbconfig.WriteFiles(ctx, dir, []lbconfig.File{{Name: lbconfig.ConfigFile, Data: []byte(good)}}, write); err != nil {
		t.Fatalf("a valid config, checked in the container: %v", err)
	}
	bad := good + "    balance nonsense\n"
	_, err = lbconfig.WriteFiles(ctx, dir, []lbconfig.File{{Name: lbconfig.ConfigFile, Data: []byte(bad)}}, write)
	if !errors.Is(err, lbconfig.ErrConfigRejected) || !strings.Contains(err.Error(), "balance") {
		t.Fatalf("an invalid config: %v, want ErrConfigRejected quoting HAProxy", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, lbconfig.ConfigFile)); string(b) != good {
		t.Fatalf("the rejected config replaced the live one:\n%s", b)
	}

	// A binary the container lacks, no such container, or a directory it does not
	// mount: errors that say what to set, not a rejected config.
	other := t.TempDir()
	for _, tc := range []struct {
		binary, container, dir, want string
	}{
		{"/nonexistent/haproxy", name, dir, "haproxy.binary"},
		{"haproxy", "swap-test-nothing-" + d.RunID, dir, "haproxy.check_container"},
		{"haproxy", name, other, "mounted at the same path"},
	} {
		cfg := &deployments.Config{HAProxy: deployments.HAProxyConfig{Binary: tc.binary, CheckContainer: tc.container}}
		w, err := WriteOptions(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = lbconfig.WriteFiles(ctx, tc.dir, []lbconfig.File{{Name: lbconfig.ConfigFile, Data: []byte(good + "\n")}}, w)
		t.Logf("binary %s in container %s: %v", tc.binary, tc.container, err)
		if err == nil || errors.Is(err, lbconfig.ErrConfigRejected) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("binary %s in container %s: %v; want an error naming %s", tc.binary, tc.container, err, tc.want)
		}
	}
}

// A swap's preflight, and serve's /readyz, see whether the check container is there.
func TestBalancerPing_FailsWhileTheCheckContainerIsMissing(t *testing.T) {
	d, dir, name, _ := haproxyInContainer(t)
	c, err := lbconfig.New("unix", filepath.Join(dir, "admin.sock"))
	if err != nil {
		t.Fatal(err)
	}
	layout := &lbconfig.Layout{Dir: dir, Frontend: lbconfig.Listener{Name: "www", Bind: "127.0.0.1:1"}, Routing: lbconfig.RouteByHost}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, tc := range []struct {
		container string
		ready     bool
	}{{name, true}, {"swap-test-nothing-" + d.RunID, false}} {
		write, err := WriteOptions(&deployments.Config{HAProxy: deployments.HAProxyConfig{Binary: "haproxy", CheckContainer: tc.container}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		fleet, err := lbconfig.NewFleet(layout, write, lbconfig.Instance{Client: c})
		if err != nil {
			t.Fatal(err)
		}
		err = (&Balancer{F: fleet}).Ping(ctx)
		if tc.ready != (err == nil) || (err != nil && !strings.Contains(err.Error(), "haproxy.check_container")) {
			t.Errorf("check container %s: ping says %v", tc.container, err)
		}
	}
}

// haproxyInContainer runs HAProxy in a container on a small config in a directory of its
// own, mounted at the same path; it returns the directory, the container's name and the
// config.
func haproxyInContainer(t testing.TB) (d *testenv.DockerEnv, dir, name, live string) {
	d = testenv.Docker(t)
	dir, err := os.MkdirTemp("", "swap-check-") // short: the admin socket path
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	live = fmt.Sprintf(`global
    stats socket %s/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 1s
    timeout client 1s
    timeout server 1s
frontend www
    bind 127.0.0.1:%d
    default_backend app
backend app
`, dir, testenv.FreePort(t))
	cfgPath := filepath.Join(dir, lbconfig.ConfigFile)
	if err := os.WriteFile(cfgPath, []byte(live), 0o644); err != nil {
		t.Fatal(err)
	}
	name = "swap-test-haproxy-" + d.RunID
	d.RunHAProxyContainer(t, d.HAProxyImage(t), name, cfgPath, filepath.Join(dir, "admin.sock"), "")
	return d, dir, name, live
}

// One `haproxy -c` of a small config: as a local process, and in HAProxy's container
// through Docker exec (what haproxy.check_container adds to each check).
func BenchmarkHAProxyCheck(b *testing.B) {
	_, dir, name, _ := haproxyInContainer(b)
	path := filepath.Join(dir, lbconfig.ConfigFile)
	inContainer, err := WriteOptions(&deployments.Config{HAProxy: deployments.HAProxyConfig{CheckContainer: name}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"local", func() error { return exec.Command("haproxy", "-c", "-f", path).Run() }},
		{"container", func() error {
			if _, code, err := inContainer.Checker.Run(context.Background(), "haproxy", path); err != nil || code != 0 {
				return fmt.Errorf("exit %d, %v", code, err)
			}
			return nil
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
