package testenv

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/stack/procs"
)

// DockerHost is a second Docker "host" on this machine: a network namespace joined to
// the root namespace by a veth pair with a private /24 (10.213.N.1 on the root side,
// 10.213.N.2 inside), and a dockerd of its own running in that namespace, with its own
// data-root, exec-root, socket, pidfile and bridge subnet (10.214.N.1/24), without
// iptables rules. Containers it runs publish their ports on Addr, which the root
// namespace (HAProxy, Consul, swap) reaches through the veth. The machine's own engine
// and its docker0 bridge are untouched: a second dockerd must never run in the root
// namespace.
type DockerHost struct {
	// Name is the network namespace's name, "swap-h<N>".
	Name string
	// Addr is the namespace's end of the veth, 10.213.N.2: where containers publish.
	Addr string
	// Gateway is the root namespace's end of the veth, 10.213.N.1.
	Gateway string
	// Engine is the engine's address, "unix://<dir>/docker.sock".
	Engine string
	// Client talks to the engine (API version negotiated).
	Client *client.Client

	n    int
	dir  string
	proc *procs.Proc // dockerd
	log  *procs.Buffer
}

// hostSubnets: 10.213.N.0/24 for the veth, 10.214.N.0/24 for the engine's bridge, N in
// [1, 254]. The namespace's name claims N: `ip netns add` fails when another test holds it.
const (
	vethNet   = "10.213"
	bridgeNet = "10.214"
	nsPrefix  = "swap-h"
)

// NewDockerHost makes a Docker host (namespace, veth, dockerd) and removes all of it in
// t.Cleanup, even when the test fails: the engine stopped by its pid (its containers
// with it), its mounts undone, its directories removed, the veth and the namespace
// deleted. It needs root, ip, nsenter and dockerd: without them it fails in CI and skips
// elsewhere.
func NewDockerHost(t testing.TB) *DockerHost {
	t.Helper()
	for _, bin := range []string{"ip", "nsenter", "dockerd"} {
		if _, err := exec.LookPath(bin); err != nil {
			Require(t, bin+" (for a second Docker host)", err)
		}
	}
	if os.Geteuid() != 0 {
		Require(t, "root (network namespaces for a second Docker host)", fmt.Errorf("running as uid %d", os.Geteuid()))
	}
	sweepDeadHosts(t)
	h := &DockerHost{log: &procs.Buffer{}}
	h.claim(t)
	h.Addr = fmt.Sprintf("%s.%d.2", vethNet, h.n)
	h.Gateway = fmt.Sprintf("%s.%d.1", vethNet, h.n)
	root, peer := fmt.Sprintf("swh%da", h.n), fmt.Sprintf("swh%db", h.n)
	run(t, "ip", "link", "add", root, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() {
		// Deleting one end deletes both (the peer may be gone with the namespace).
		if err := ipCmd("link", "del", root); err != nil && !strings.Contains(err.Error(), "Cannot find device") {
			t.Errorf("testenv: delete veth %s: %v", root, err)
		}
	})
	run(t, "ip", "link", "set", peer, "netns", h.Name)
	run(t, "ip", "addr", "add", h.Gateway+"/24", "dev", root)
	run(t, "ip", "link", "set", root, "up")
	h.inNS(t, "ip", "addr", "add", h.Addr+"/24", "dev", peer)
	h.inNS(t, "ip", "link", "set", peer, "up")
	h.inNS(t, "ip", "link", "set", "lo", "up")

	dir, err := os.MkdirTemp("", "swap-dockerhost-")
	if err != nil {
		t.Fatal(err)
	}
	h.dir = dir
	t.Cleanup(func() {
		if err := removeDir(dir); err != nil {
			t.Errorf("testenv: remove %s: %v", dir, err)
		}
	})
	h.own(t)
	h.start(t)
	return h
}

// claim picks a free N and creates the namespace swap-h<N>, deleted in t.Cleanup.
func (h *DockerHost) claim(t testing.TB) {
	t.Helper()
	used := usedSubnets()
	for range 100 {
		n := 1 + rand.IntN(254)
		if used[n] {
			continue
		}
		name := nsPrefix + strconv.Itoa(n)
		if err := ipCmd("netns", "add", name); err != nil {
			if strings.Contains(err.Error(), "File exists") {
				continue // another test's
			}
			Require(t, "ip netns add (network namespaces)", err)
		}
		h.n, h.Name = n, name
		h.own(t)
		t.Cleanup(func() {
			if err := ipCmd("netns", "del", name); err != nil && !strings.Contains(err.Error(), "No such file") {
				t.Errorf("testenv: delete network namespace %s: %v", name, err)
			}
			os.Remove(ownerFile(name))
		})
		return
	}
	t.Fatalf("testenv: no free 10.213.N.0/24 for a Docker host after 100 tries")
}

// ownerFile records which test process made a host (its pid) and its directory, so that
// a later fixture can remove a host whose process was killed before its cleanup ran.
func ownerFile(name string) string {
	return filepath.Join(os.TempDir(), "swap-dockerhost-owners", name)
}

// own writes the host's owner file: this process's pid and the host's directory.
func (h *DockerHost) own(t testing.TB) {
	t.Helper()
	f := ownerFile(h.Name)
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(fmt.Sprintf("%d\n%s\n", os.Getpid(), h.dir)), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sweepDeadHosts removes the hosts (veth, namespace, directory) of test processes that
// died before their cleanup ran (a killed test binary: its engines got SIGTERM with it).
// A host without an owner file is being made by a live process and is left alone.
func sweepDeadHosts(t testing.TB) { sweepDead(t, nsPrefix, "swh%da") }

// sweepDead removes the namespaces named prefix<N> (with the root end of their veth,
// rootVeth formatted with N, and their directory) whose owner file names a dead process.
func sweepDead(t testing.TB, prefix, rootVeth string) {
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		name := e.Name()
		n, err := strconv.Atoi(strings.TrimPrefix(name, prefix))
		if !strings.HasPrefix(name, prefix) || err != nil {
			continue
		}
		b, err := os.ReadFile(ownerFile(name))
		if err != nil {
			continue
		}
		pidS, dir, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
		pid, err := strconv.Atoi(pidS)
		if err != nil || pid <= 0 || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue // alive (or not ours to judge)
		}
		t.Logf("testenv: removing %s, left by test process %d that died before its cleanup", name, pid)
		_ = ipCmd("link", "del", fmt.Sprintf(rootVeth, n))
		_ = ipCmd("netns", "del", name)
		if dir != "" && strings.HasPrefix(filepath.Base(dir), "swap-dockerhost-") {
			_ = removeDir(dir)
		}
		os.Remove(ownerFile(name))
	}
}

// usedSubnets are the N of 10.213.N.x and 10.214.N.x addresses the root namespace has.
func usedSubnets() map[int]bool {
	used := map[int]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ip, _, err := net.ParseCIDR(a.String())
		if ip4 := ip.To4(); err == nil && ip4 != nil && ip4[0] == 10 && (ip4[1] == 213 || ip4[1] == 214) {
			used[int(ip4[2])] = true
		}
	}
	return used
}

// start runs dockerd in the namespace for the first time: stopped in t.Cleanup.
func (h *DockerHost) start(t testing.TB) {
	t.Helper()
	for _, d := range []string{"data", "exec"} {
		if err := os.MkdirAll(filepath.Join(h.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(h.dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h.Engine = "unix://" + filepath.Join(h.dir, "docker.sock")
	cli, err := client.NewClientWithOpts(client.WithHost(h.Engine), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	h.Client = cli
	t.Cleanup(func() { cli.Close() })
	h.launch(t)
	t.Cleanup(func() { h.stop(t) })
}

// launch starts dockerd and waits until it answers.
func (h *DockerHost) launch(t testing.TB) {
	t.Helper()
	p, err := procs.Start(procs.Options{
		// nsenter joins the namespace and execs dockerd: the process's pid is dockerd's.
		Wrap: []string{"nsenter", "--net=/var/run/netns/" + h.Name},
		Bin:  "dockerd",
		Args: []string{
			"--config-file", filepath.Join(h.dir, "daemon.json"),
			"--data-root", filepath.Join(h.dir, "data"),
			"--exec-root", filepath.Join(h.dir, "exec"),
			"-H", h.Engine,
			"--pidfile", filepath.Join(h.dir, "docker.pid"),
			"--bip", fmt.Sprintf("%s.%d.1/24", bridgeNet, h.n),
			"--iptables=false", "--ip-masq=false", "--ip6tables=false",
			"--shutdown-timeout", "2",
		},
		Output:      h.log,
		StopTimeout: 20 * time.Second,
		// The engine dies with the test process even when the test binary is killed.
		DieWithParent: true,
	})
	if err != nil {
		Require(t, "dockerd in a network namespace", err)
	}
	h.proc = p
	err = p.Poll(context.Background(), 60*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := h.Client.Ping(ctx)
		return err
	})
	if err != nil {
		t.Fatalf("testenv: dockerd of %s does not answer on %s: %v\n%s", h.Name, h.Engine, err, h.Log())
	}
}

// Restart starts the engine again after Stop, with its data: its images, and its
// containers (those with a restart policy start again, as after a host's reboot).
func (h *DockerHost) Restart(t testing.TB) {
	t.Helper()
	if !h.proc.Exited() {
		t.Fatalf("testenv: Restart of %s while its engine runs: Stop it first", h.Name)
	}
	h.launch(t)
}

// Stop stops the engine (SIGTERM by its pid, SIGKILL to its process group after 20s)
// and waits until it has exited; its containers stop with it. The namespace stays: the
// host is down, its address unreachable. Stop is safe to call again; cleanup calls it too.
func (h *DockerHost) Stop(t testing.TB) {
	t.Helper()
	h.stop(t)
}

func (h *DockerHost) stop(t testing.TB) {
	if h.proc == nil || h.proc.Exited() {
		return
	}
	_ = h.proc.Stop()
	if h.proc.Killed() {
		t.Errorf("testenv: dockerd of %s (pid %d) ignored SIGTERM for 20s; killed it", h.Name, h.proc.Pid())
	}
	// A managed containerd outlives a killed dockerd: stop it by its pidfile.
	if b, err := os.ReadFile(filepath.Join(h.dir, "exec", "containerd", "containerd.pid")); err == nil {
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			if syscall.Kill(pid, 0) == nil {
				_ = syscall.Kill(pid, syscall.SIGTERM)
			}
		}
	}
}

// Pid is dockerd's pid.
func (h *DockerHost) Pid() int { return h.proc.Pid() }

// Log is what dockerd printed.
func (h *DockerHost) Log() string { return h.log.String() }

// CopyImages saves refs from the engine src and loads them into this host's engine, so
// each has the same image ID here as there (as a pull of the same image from a registry
// gives on every host).
func (h *DockerHost) CopyImages(t testing.TB, src *client.Client, refs ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rc, err := src.ImageSave(ctx, refs)
	if err != nil {
		t.Fatalf("testenv: save %v: %v", refs, err)
	}
	defer rc.Close()
	resp, err := h.Client.ImageLoad(ctx, rc, client.ImageLoadWithQuiet(true))
	if err != nil {
		t.Fatalf("testenv: load %v into %s: %v", refs, h.Name, err)
	}
	defer resp.Body.Close()
	if err := docker.ReadStream(resp.Body, nil); err != nil {
		t.Fatalf("testenv: load %v into %s: %v", refs, h.Name, err)
	}
	for _, ref := range refs {
		if _, err := h.Client.ImageInspect(ctx, ref); err != nil {
			t.Fatalf("testenv: %s is not on %s after the load: %v", ref, h.Name, err)
		}
	}
}

// Images lists the references of the images on this host.
func (h *DockerHost) Images(t testing.TB) []string {
	t.Helper()
	imgs, err := h.Client.ImageList(context.Background(), image.ListOptions{})
	if err != nil {
		t.Fatalf("testenv: images of %s: %v", h.Name, err)
	}
	var refs []string
	for _, img := range imgs {
		refs = append(refs, img.RepoTags...)
	}
	sort.Strings(refs)
	return refs
}

// inNS runs a command in the host's namespace.
func (h *DockerHost) inNS(t testing.TB, args ...string) {
	t.Helper()
	run(t, append([]string{"nsenter", "--net=/var/run/netns/" + h.Name}, args...)...)
}

func run(t testing.TB, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func ipCmd(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// removeDir undoes the mounts an engine left under dir (deepest first, lazily), then
// removes dir.
func removeDir(dir string) error {
	var errs []error
	for _, m := range mountsUnder(dir) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", m, err))
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// mountsUnder lists the mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		// Field 5 is the mount point, with spaces and the like octal-escaped.
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
