package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	dockerevents "github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/serve"
	"github.com/swap-dev/swap/switcher"
)

// The sidecar image, built from the repo's Dockerfile as `make image` builds it, runs
// `swap serve` as its non-root user next to HAProxy in a container of its own: the Docker
// socket (reached through --group-add of its group), HAProxy's files and sockets
// directory (mounted at the same path in both) and Consul's address are all it gets.

func TestE2E_SidecarImageRunsServeAsNonRootAndSwapsUnderLoadCheckingFilesInHAProxysContainer(t *testing.T) {
	t.Parallel()
	app := e2eApp("sidecar")
	host := app + ".test"
	s := newStackWith(t, appConfig(app, oneReplica), stackOptions{sidecar: true})
	started := time.Now()
	img := s.sidecarImage()
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	id := s.runSidecar(img, listen)

	// It runs as the image's user, with the Docker socket's group added.
	info, err := s.docker.Client.ContainerInspect(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	uid, groups := procIDs(t, info.State.Pid)
	if uid != strconv.Itoa(sidecarUID) || !strings.Contains(" "+groups+" ", " "+strconv.Itoa(dockerSocketGID(t, s))+" ") {
		t.Fatalf("swap serve in the sidecar runs as uid %s with groups %q; want %d with the docker socket's group", uid, groups, sidecarUID)
	}

	c, err := serve.NewClient("http://"+listen, e2eToken)
	if err != nil {
		t.Fatal(err)
	}
	run := func(op string, body map[string]string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		var b any
		if body != nil {
			b = body
		}
		a, err := c.Start(ctx, app, op, b, "")
		if err != nil {
			t.Fatalf("%s through the sidecar: %v\nsidecar log:\n%s", op, err, s.docker.Logs(id))
		}
		final, err := c.Follow(ctx, a.Deploy, nil)
		if err != nil || final.Outcome != switcher.OutcomeDone || final.ExitCode == nil || *final.ExitCode != 0 {
			t.Fatalf("%s through the sidecar ended %+v, %v\nsidecar log:\n%s", op, final, err, s.docker.Logs(id))
		}
	}
	run("deploy", map[string]string{"image": s.v1})
	s.waitAnswer(host, "color=blue version=v1")
	l := s.startLoad(host, "/", 2)
	run("deploy", map[string]string{"image": s.v2})
	s.waitAnswer(host, "color=green version=v2")
	run("rollback", nil)
	s.waitAnswer(host, "color=blue version=v1")
	l.requireNoFailures(t)

	// The files HAProxy restarts from are the sidecar's, each config checked by
	// `haproxy -c` in HAProxy's container before it replaced the live one.
	cfgPath := filepath.Join(s.haproxy.Dir, "haproxy.cfg")
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if owner := fi.Sys().(*syscall.Stat_t).Uid; owner != sidecarUID {
		t.Fatalf("haproxy.cfg is owned by uid %d: the sidecar (uid %d) did not write it", owner, sidecarUID)
	}
	cfg, _ := os.ReadFile(cfgPath)
	if !strings.Contains(string(cfg), "server "+app+"-blue-0 ") {
		t.Fatalf("haproxy.cfg lacks the live blue server:\n%s", cfg)
	}
	checks := s.execs(s.haproxyContainer, started)
	if !containsPrefix(checks, "exec_start: haproxy -c -f "+filepath.Join(s.haproxy.Dir, ".haproxy.cfg.tmp-")) {
		t.Fatalf("no haproxy -c of a rendered config ran in HAProxy's container; its execs: %q", checks)
	}
	t.Logf("serve ran as uid %s, groups %s; %d execs in HAProxy's container, like %q", uid, groups, len(checks), checks[0])

	if status, body := callAPI(t, "GET", "http://"+listen+"/readyz", "", ""); status != 200 {
		t.Errorf("readyz = %d %v", status, body)
	}
	// `swap lb render` in the sidecar checks in HAProxy's container too.
	if code, out := s.docker.Exec(t, id, "/usr/local/bin/swap", "lb", "render"); code != 0 {
		t.Fatalf("swap lb render in the sidecar: exit %d\n%s", code, out)
	}

	// SIGTERM (docker stop): serve exits 0.
	stop := 60
	if err := s.docker.Client.ContainerStop(context.Background(), id, container.StopOptions{Timeout: &stop}); err != nil {
		t.Fatal(err)
	}
	if info, err := s.docker.Client.ContainerInspect(context.Background(), id); err != nil || info.State.ExitCode != 0 {
		t.Fatalf("the sidecar after docker stop: %v, exit %d\n%s", err, info.State.ExitCode, s.docker.Logs(id))
	}
}

// sidecarImage builds the repo's Dockerfile, from the context its .dockerignore lets
// through with bin/swap a static build of this package, with the classic builder
// (nothing pulled), labelled for cleanup.
func (s *stack) sidecarImage() string {
	t := s.t
	root := testenv.RepoRoot(t)
	bin := testenv.Binary(t, "./cmd/swap")
	dockerfile, err := os.ReadFile(filepath.Join(root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"Dockerfile": dockerfile}
	ignore, err := os.ReadFile(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		p, ok := strings.CutPrefix(strings.TrimSpace(line), "!")
		if !ok {
			continue
		}
		p = strings.TrimSuffix(p, "/")
		src := filepath.Join(root, p)
		if p == "bin/swap" {
			src = bin
		}
		err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			rel, _ := filepath.Rel(src, path)
			files[filepath.ToSlash(filepath.Join(p, rel))] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	ref := "swap-test-sidecar-" + s.docker.RunID + ":dev"
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := testenv.BuildImage(ctx, s.docker.Client, ref, s.docker.Labels(nil), files); err != nil {
		t.Fatalf("build the sidecar image from the Dockerfile: %v", err)
	}
	info, _, err := s.docker.Client.ImageInspectWithRaw(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.User != fmt.Sprintf("%d:%d", sidecarUID, sidecarUID) {
		t.Fatalf("the image's user is %q, want %d:%d", info.Config.User, sidecarUID, sidecarUID)
	}
	return ref
}

// runSidecar runs img as the sidecar: `swap serve` on listen (the host's network), with
// the Docker socket and its group, HAProxy's directory at the same path, swap.yaml at
// /etc/swap/swap.yaml; the image's user. It waits until /healthz answers.
func (s *stack) runSidecar(img, listen string) string {
	t := s.t
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sock := dockerSocket(t, s)
	created, err := s.docker.Client.ContainerCreate(ctx, &container.Config{
		Image: img,
		Cmd:   []string{"serve", "--listen", listen},
		Env: []string{"SWAP_SERVE_TOKEN=" + e2eToken, "SWAP_CONTAINER_LABELS=" + s.docker.Label,
			"SWAP_CONSUL_ADDRESS=" + s.consul.Addr},
		Labels: s.docker.Labels(nil),
	}, &container.HostConfig{
		NetworkMode: "host",
		GroupAdd:    []string{strconv.Itoa(dockerSocketGID(t, s))},
		Binds: []string{sock + ":/var/run/docker.sock", s.haproxy.Dir + ":" + s.haproxy.Dir,
			s.cfgPath + ":/etc/swap/swap.yaml:ro"},
	}, nil, nil, "swap-test-sidecar-"+s.docker.RunID)
	if err != nil {
		t.Fatalf("create the sidecar: %v", err)
	}
	if err := s.docker.Client.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		t.Fatalf("start the sidecar: %v", err)
	}
	testenv.WaitFor(t, time.Minute, "the sidecar's /healthz", func() error {
		info, err := s.docker.Client.ContainerInspect(ctx, created.ID)
		if err != nil {
			return err
		}
		if !info.State.Running {
			t.Fatalf("the sidecar exited (%d):\n%s", info.State.ExitCode, s.docker.Logs(created.ID))
		}
		resp, err := http.Get("http://" + listen + "/healthz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("healthz %d", resp.StatusCode)
		}
		return nil
	})
	return created.ID
}

// dockerSocket is the unix socket of the test's Docker engine.
func dockerSocket(t testing.TB, s *stack) string {
	sock, ok := strings.CutPrefix(s.docker.Client.DaemonHost(), "unix://")
	if !ok {
		t.Fatalf("the sidecar test needs the engine on a unix socket, not %s", s.docker.Client.DaemonHost())
	}
	return sock
}

// dockerSocketGID is the group of the Docker socket: the group the sidecar is added to.
func dockerSocketGID(t testing.TB, s *stack) int {
	fi, err := os.Stat(dockerSocket(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return int(fi.Sys().(*syscall.Stat_t).Gid)
}

// procIDs reads a process's effective uid and its supplementary groups from /proc.
func procIDs(t *testing.T, pid int) (uid, groups string) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Uid:"); ok {
			if f := strings.Fields(v); len(f) > 1 {
				uid = f[1]
			}
		}
		if v, ok := strings.CutPrefix(sc.Text(), "Groups:"); ok {
			groups = strings.TrimSpace(v)
		}
	}
	return uid, groups
}

// execs lists the exec_start events of container since since ("exec_start: <command>").
func (s *stack) execs(name string, since time.Time) []string {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	msgs, errs := s.docker.Client.Events(ctx, dockerevents.ListOptions{
		Since:   strconv.FormatInt(since.Unix()-1, 10),
		Until:   strconv.FormatInt(time.Now().Unix()+1, 10),
		Filters: filters.NewArgs(filters.Arg("container", name), filters.Arg("event", "exec_start")),
	})
	var out []string
	for {
		select {
		case m := <-msgs:
			out = append(out, string(m.Action))
		case err := <-errs:
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, io.EOF) {
				s.t.Fatalf("docker events: %v", err)
			}
			return out
		}
	}
}

func containsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
