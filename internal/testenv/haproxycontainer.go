package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/swap-dev/swap/internal/stack/procs"
)

// HAProxyImage makes the host's haproxy and the shared libraries `ldd` lists for it into
// a FROM-scratch image, "swap-test-haproxy-<run>:2", labelled with the run, and returns
// its reference: HAProxy in a container of its own, as the sidecar image expects it,
// with nothing pulled. The image is removed in t.Cleanup (by Docker's cleanup of this
// run's label).
func (d *DockerEnv) HAProxyImage(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		Require(t, "haproxy", err)
	}
	if bin, err = filepath.EvalSymlinks(bin); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ldd", bin).Output()
	if err != nil {
		Require(t, "ldd", err)
	}
	files := []string{bin}
	for _, line := range strings.Split(string(out), "\n") {
		// "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)", "/lib64/ld-linux-x86-64.so.2 (0x...)"
		f := strings.Fields(line)
		for i, w := range f {
			if strings.HasPrefix(w, "/") && (i == 0 || f[i-1] == "=>") {
				files = append(files, w)
			}
		}
	}
	image := map[string][]byte{}
	for _, path := range files {
		body, err := os.ReadFile(path) // through symlinks: each file at the path ldd names
		if err != nil {
			t.Fatalf("testenv: haproxy image: %v", err)
		}
		image[path] = body
	}
	ref := fmt.Sprintf("swap-test-haproxy-%s:2", d.RunID)
	d.importImage(t, ref, image, []string{`ENTRYPOINT ["` + bin + `"]`})
	return ref
}

// RunHAProxyContainer runs HAProxy (master-worker, `-W`) from img (HAProxyImage) in a
// container named name on the host's network, on cfgPath, whose directory is mounted at
// the same path: its admin socket adminSock, and the master socket master.sock next to
// the config, created with masterOpts (",mode,660,gid,65532"; "" for mode 600). It waits
// until both sockets answer; the container is removed with the run's label. The
// instance's Stop, Restart and Log do not apply.
func (d *DockerEnv) RunHAProxyContainer(t testing.TB, img, name, cfgPath, adminSock, masterOpts string) *HAProxyInstance {
	t.Helper()
	dir := filepath.Dir(cfgPath)
	h := &HAProxyInstance{Dir: dir, CfgPath: cfgPath, AdminSock: adminSock, MasterSock: filepath.Join(dir, "master.sock"),
		t: t, ports: map[string]int{}, log: &procs.Buffer{}}
	h.h = procs.HAProxyAt(cfgPath, adminSock, h.MasterSock)
	if masterOpts == "" {
		masterOpts = ",mode,600"
	}
	os.Remove(h.AdminSock)
	os.Remove(h.MasterSock)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	created, err := d.Client.ContainerCreate(ctx, &container.Config{
		Image:  img,
		Cmd:    []string{"-W", "-S", h.MasterSock + masterOpts, "-f", cfgPath},
		Labels: d.Labels(nil),
	}, &container.HostConfig{
		NetworkMode: "host",
		Binds:       []string{dir + ":" + dir},
	}, nil, nil, name)
	if err != nil {
		t.Fatalf("testenv: create haproxy container: %v", err)
	}
	if err := d.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("testenv: start haproxy container: %v", err)
	}
	err = h.h.WaitUp(ctx, time.Minute, func() error {
		info, err := d.Client.ContainerInspect(ctx, created.ID)
		if err != nil {
			return err
		}
		if !info.State.Running {
			return fmt.Errorf("the haproxy container exited (%d): %s", info.State.ExitCode, d.Logs(created.ID))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: haproxy in container %s never answered: %v", name, err)
	}
	return h
}

// Exec runs cmd in a running container and returns its exit code and output. It is the
// tests' own, independent of deployments/docker's.
func (d *DockerEnv) Exec(t testing.TB, id string, cmd ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := d.Client.ContainerExecCreate(ctx, id, container.ExecOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true})
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v", id, err)
	}
	att, err := d.Client.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v", id, err)
	}
	var out strings.Builder
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v", id, err)
	}
	var code int
	err = Poll(30*time.Second, func() error {
		info, err := d.Client.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return err
		}
		if info.Running {
			return fmt.Errorf("still running")
		}
		code = info.ExitCode
		return nil
	})
	if err != nil {
		t.Fatalf("testenv: exec in %s: %v", id, err)
	}
	return code, out.String()
}

// Logs returns a container's output, for failure messages.
func (d *DockerEnv) Logs(id string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rc, err := d.Client.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "logs: " + err.Error()
	}
	defer rc.Close()
	var b strings.Builder
	_, _ = stdcopy.StdCopy(&b, &b, rc)
	return b.String()
}
