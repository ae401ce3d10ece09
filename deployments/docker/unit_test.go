package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/registry"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/stdcopy"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
)

// helperEnv makes the test binary a helper process (see TestMain) instead of running
// tests: "hold-lock <path>" or "ping <docker host>".
const helperEnv = "SWAP_DOCKER_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(helperMain(mode))
	}
	os.Exit(m.Run())
}

func helperMain(mode string) int {
	verb, arg, _ := strings.Cut(mode, " ")
	switch verb {
	case "hold-lock": // hold the pull lock shared until stdin closes
		release, err := newHostLock(arg).acquire(context.Background(), false)
		if err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
		fmt.Println("locked")
		io.Copy(io.Discard, os.Stdin)
		release()
		return 0
	case "ping": // ping the engine at arg, print the error
		drv, err := New(deployments.DockerConfig{Host: arg}, nil)
		if err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
		err = drv.Ping(context.Background())
		fmt.Printf("permission=%v unreachable=%v\n%v\n", errors.Is(err, ErrPermissionDenied), errors.Is(err, ErrUnreachable), err)
		return 0
	}
	fmt.Println("unknown helper mode", mode)
	return 2
}

// Helpers take the narrowest SDK interface; fakes embed it and override what a test
// calls. Anything else panics on the nil embedded interface.
var (
	_ client.ContainerAPIClient = fakeContainers{}
	_ engine                    = (*fakeEngine)(nil)
)

type fakeContainers struct {
	client.ContainerAPIClient
	list []container.Summary
}

func (f fakeContainers) ContainerList(context.Context, container.ListOptions) ([]container.Summary, error) {
	return f.list, nil
}

// fakeEngine answers inspect and logs and records the calls that would change anything.
type fakeEngine struct {
	engine
	inspect  map[string]container.InspectResponse
	logs     string
	mutating []string
}

func (f *fakeEngine) DaemonHost() string { return "unix:///fake/docker.sock" }

func (f *fakeEngine) ContainerInspect(_ context.Context, id string) (container.InspectResponse, error) {
	c, ok := f.inspect[id]
	if !ok {
		return c, fmt.Errorf("No such container: %s: %w", id, cerrdefs.ErrNotFound)
	}
	return c, nil
}

func (f *fakeEngine) ContainerLogs(context.Context, string, container.LogsOptions) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	go func() {
		w := stdcopy.NewStdWriter(pw, stdcopy.Stderr)
		w.Write([]byte(f.logs))
		pw.Close()
	}()
	return pr, nil
}

func (f *fakeEngine) ContainerStop(_ context.Context, id string, _ container.StopOptions) error {
	f.mutating = append(f.mutating, "stop "+id)
	return nil
}

func (f *fakeEngine) ContainerRemove(_ context.Context, id string, _ container.RemoveOptions) error {
	f.mutating = append(f.mutating, "remove "+id)
	return nil
}

func inspected(id, name, status string, labels map[string]string) container.InspectResponse {
	return container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID: id, Name: "/" + name,
			State: &container.State{Status: status, Running: status == "running", ExitCode: 1},
		},
		Config: &container.Config{Labels: labels},
	}
}

func managedLabels(app string, c deployments.Color) map[string]string {
	return map[string]string{
		deployments.LabelApp: app, deployments.LabelColor: string(c), deployments.LabelIndex: "0",
		deployments.LabelDeploy: "d1", deployments.LabelManaged: "true",
	}
}

func TestStop_LeavesAContainerAloneUnlessSwapManagesItForThatAppAndColor(t *testing.T) {
	tests := []struct {
		name   string
		labels map[string]string
		inst   deployments.Instance
	}{
		{"no labels", nil, deployments.Instance{ContainerID: "c1"}},
		{"swap.managed is not exactly true", map[string]string{deployments.LabelManaged: "yes", deployments.LabelApp: "web"}, deployments.Instance{ContainerID: "c1"}},
		{"managed, but for another app", managedLabels("api", deployments.Blue), deployments.Instance{App: "web", Color: deployments.Blue, ContainerID: "c1"}},
		{"managed, but for the other color", managedLabels("web", deployments.Green), deployments.Instance{App: "web", Color: deployments.Blue, ContainerID: "c1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fake := &fakeEngine{inspect: map[string]container.InspectResponse{"c1": inspected("c1", "web-blue-0", "running", tc.labels)}}
			d := newDriver(fake, "", zaptest.NewLogger(t))
			err := d.Stop(context.Background(), tc.inst, time.Second)
			if !errors.Is(err, ErrNotManaged) {
				t.Errorf("Stop = %v, want ErrNotManaged", err)
			}
			if len(fake.mutating) != 0 {
				t.Errorf("Stop called %v on a container it must leave alone", fake.mutating)
			}
		})
	}
}

func TestStop_StopsThenRemovesAManagedContainer(t *testing.T) {
	fake := &fakeEngine{inspect: map[string]container.InspectResponse{
		"web-blue-0": inspected("c1", "web-blue-0", "running", managedLabels("web", deployments.Blue)),
	}}
	d := newDriver(fake, "", zaptest.NewLogger(t))
	if err := d.Stop(context.Background(), deployments.Instance{App: "web", Color: deployments.Blue}, time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if got := strings.Join(fake.mutating, ", "); got != "stop c1, remove c1" {
		t.Errorf("calls %q, want stop then remove of c1", got)
	}
}

func TestWaitRunning_ReportsAnExitedContainerWithItsLastLogLines(t *testing.T) {
	fake := &fakeEngine{
		inspect: map[string]container.InspectResponse{"c1": inspected("c1", "web-blue-0", "exited", managedLabels("web", deployments.Blue))},
		logs:    "starting\ndemoapp: START_DELAY=\"x\": invalid duration\n",
	}
	d := newDriver(fake, "", zaptest.NewLogger(t))
	_, err := d.waitRunning(context.Background(), "c1", "start web/blue")
	if !errors.Is(err, ErrExited) {
		t.Fatalf("waitRunning = %v, want ErrExited", err)
	}
	for _, want := range []string{"web-blue-0", "code 1", `START_DELAY="x": invalid duration`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestImageUsers_CountsEveryContainerOfTheImageManagedOrNotRunningOrNot(t *testing.T) {
	fake := fakeContainers{list: []container.Summary{
		{ID: "a", Names: []string{"/data-only"}, ImageID: "sha256:img", State: "created"},
		{ID: "b", Names: []string{"/web-blue-0"}, ImageID: "sha256:img", State: "running", Labels: managedLabels("web", deployments.Blue)},
		{ID: "c", Names: []string{"/other"}, ImageID: "sha256:other", State: "running"},
	}}
	users, err := imageUsers(context.Background(), fake, "sha256:img")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(users, "; "), "data-only (created); web-blue-0 (running)"; got != want {
		t.Errorf("imageUsers = %q, want %q", got, want)
	}
}

func TestClassify_SaysWhatToDoWhenTheSocketRefusesThisUser(t *testing.T) {
	// What the SDK returns when connect(2) on the socket fails with EACCES.
	sockErr := &url.Error{Op: "Get", URL: "http://%2Fvar%2Frun%2Fdocker.sock/_ping", Err: &net.OpError{
		Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}}
	err := classify("ping docker engine", "unix:///var/run/docker.sock", sockErr)
	if !errors.Is(err, ErrPermissionDenied) {
		t.Fatalf("classify = %v, want ErrPermissionDenied", err)
	}
	for _, want := range []string{"unix:///var/run/docker.sock", "docker group"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

// The real thing: a user outside the docker group pings the real engine. Switching to
// that user needs root.
func TestPing_SaysPermissionDeniedToAUserOutsideTheDockerGroup(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run a helper process as nobody; TestClassify covers the mapping")
	}
	d, err := New(deployments.DockerConfig{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := d.Ping(context.Background()); err != nil {
		t.Skipf("no Docker engine: %v", err) // the integration tests report this one
	}
	sock, ok := strings.CutPrefix(d.Host(), "unix://")
	if !ok {
		t.Skipf("docker host %s is not a unix socket", d.Host())
	}
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm()&0o006 != 0 {
		t.Skipf("socket %s is open to everyone (%v)", sock, err)
	}
	// The test binary, where nobody may run it.
	dir, err := os.MkdirTemp("", "swap-docker-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "docker.test")
	if err := copyFile(os.Args[0], bin); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, bin} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin)
	cmd.Dir = dir
	cmd.Env = []string{helperEnv + "=ping " + d.Host(), "HOME=" + dir, "TMPDIR=" + dir}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	first, msg, _ := strings.Cut(string(out), "\n")
	t.Logf("as nobody: %s", msg)
	if first != "permission=true unreachable=false" {
		t.Errorf("helper says %q, want a permission error and not 'unreachable'\n%s", first, msg)
	}
	for _, want := range []string{d.Host(), "docker group"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o755)
}

func TestRegistryAuthHeader_EncodesTheCredentialsOfTheImagesRegistry(t *testing.T) {
	const alice = "YWxpY2U6czNjcjN0OndpdGgtY29sb24=" // base64("alice:s3cr3t:with-colon")
	tests := []struct {
		name, config, ref string
		want              *registry.AuthConfig // nil: no header
		wantErr           string               // substring; errCredentialHelper is checked by Is
		helper            bool
	}{
		{name: "Docker Hub under its legacy key",
			config: `{"auths":{"https://index.docker.io/v1/":{"auth":"` + alice + `"}}}`, ref: "library/nginx:1.25",
			want: &registry.AuthConfig{Username: "alice", Password: "s3cr3t:with-colon", ServerAddress: "https://index.docker.io/v1/"}},
		{name: "a private registry with a port, bare key",
			config: `{"auths":{"registry.example.com:5000":{"auth":"` + alice + `"}}}`, ref: "registry.example.com:5000/team/app:v2",
			want: &registry.AuthConfig{Username: "alice", Password: "s3cr3t:with-colon", ServerAddress: "registry.example.com:5000"}},
		{name: "a private registry under a URL key",
			config: `{"auths":{"https://ghcr.io/v2/":{"username":"bob","password":"pw"}}}`, ref: "ghcr.io/acme/app@sha256:" + strings.Repeat("a", 64),
			want: &registry.AuthConfig{Username: "bob", Password: "pw", ServerAddress: "https://ghcr.io/v2/"}},
		{name: "an identity token",
			config: `{"auths":{"quay.io":{"identitytoken":"tok"}}}`, ref: "quay.io/acme/app:v1",
			want: &registry.AuthConfig{IdentityToken: "tok", ServerAddress: "quay.io"}},
		{name: "another registry's credentials are not sent",
			config: `{"auths":{"quay.io":{"auth":"` + alice + `"}}}`, ref: "registry.example.com/app:v1"},
		{name: "an image without a registry is a Docker Hub image",
			config: `{"auths":{"quay.io":{"auth":"` + alice + `"}}}`, ref: "swap-demo:v1"},
		{name: "a credential helper for the registry", helper: true,
			config: `{"credHelpers":{"123.dkr.ecr.eu-west-1.amazonaws.com":"ecr-login"}}`, ref: "123.dkr.ecr.eu-west-1.amazonaws.com/app:v1"},
		{name: "a credentials store", helper: true,
			config: `{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"}`, ref: "nginx"},
		{name: "auth that is not base64",
			config: `{"auths":{"quay.io":{"auth":"%%%"}}}`, ref: "quay.io/a/b", wantErr: "not base64"},
		{name: "auth without a colon",
			config: `{"auths":{"quay.io":{"auth":"YWxpY2U="}}}`, ref: "quay.io/a/b", wantErr: "not user:password"},
		{name: "a config that is not JSON",
			config: `{"auths":`, ref: "quay.io/a/b", wantErr: "not valid JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(tc.config), 0o600); err != nil {
				t.Fatal(err)
			}
			header, err := registryAuthHeader(path, tc.ref)
			switch {
			case tc.helper:
				if !errors.Is(err, errCredentialHelper) || header != "" {
					t.Fatalf("= %q, %v; want no header and errCredentialHelper", header, err)
				}
				return
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one mentioning %q", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if tc.want == nil {
				if header != "" {
					t.Fatalf("header %q, want none", header)
				}
				return
			}
			got, err := registry.DecodeAuthConfig(header)
			if err != nil {
				t.Fatalf("header %q does not decode: %v", header, err)
			}
			if *got != *tc.want {
				t.Errorf("header carries %+v, want %+v", *got, *tc.want)
			}
		})
	}
}

func TestRegistryAuthHeader_WithoutAConfigFilePullsAnonymously(t *testing.T) {
	header, err := registryAuthHeader(filepath.Join(t.TempDir(), "missing.json"), "quay.io/a/b:1")
	if header != "" || err != nil {
		t.Errorf("= %q, %v; want no header and no error", header, err)
	}
}

func TestCPUPercent_IsLikeDockerStats(t *testing.T) {
	stats := func(total, system uint64, online uint32, percpu int) container.CPUStats {
		return container.CPUStats{CPUUsage: container.CPUUsage{TotalUsage: total, PercpuUsage: make([]uint64, percpu)}, SystemUsage: system, OnlineCPUs: online}
	}
	tests := []struct {
		name     string
		pre, cur container.CPUStats
		want     float64
	}{
		{"a quarter of the host's time on 2 CPUs is half a CPU", stats(1000, 10_000, 2, 0), stats(1250, 11_000, 2, 0), 50},
		{"all of 4 CPUs", stats(0, 0, 4, 0), stats(4000, 4000, 4, 0), 400},
		{"online CPUs missing: per-CPU counters count them", stats(0, 0, 0, 2), stats(100, 1000, 0, 2), 20},
		{"no first sample yet (one-shot read)", container.CPUStats{}, stats(100, 0, 2, 0), 0},
		{"no CPU time used", stats(500, 1000, 2, 0), stats(500, 2000, 2, 0), 0},
		{"counters that went backwards", stats(500, 1000, 2, 0), stats(400, 2000, 2, 0), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := cpuPercent(tc.pre, tc.cur); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("cpuPercent = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMemoryUsage_LeavesOutInactivePageCache(t *testing.T) {
	tests := []struct {
		name string
		m    container.MemoryStats
		want uint64
	}{
		{"cgroup v1", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 30, "inactive_file": 10}}, 70},
		{"cgroup v2", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 10}}, 90},
		{"cache larger than usage", container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 300}}, 100},
		{"no breakdown", container.MemoryStats{Usage: 100}, 100},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := memoryUsage(tc.m); got != tc.want {
				t.Errorf("memoryUsage = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestStartSpec_ValidateNamesEveryProblem(t *testing.T) {
	ok := deployments.StartSpec{App: "web", Color: deployments.Blue, Deploy: "d1", Image: "web:1", Replicas: 2, Port: 8080}
	tests := []struct {
		name   string
		change func(*deployments.StartSpec)
		want   string // "" = valid
	}{
		{"a complete spec", func(*deployments.StartSpec) {}, ""},
		{"a fixed host port for one replica", func(s *deployments.StartSpec) { s.Replicas, s.HostPort = 1, 9000 }, ""},
		{"an app name HAProxy would not take", func(s *deployments.StartSpec) { s.App = "web app" }, `app "web app"`},
		{"a color that is not blue or green", func(s *deployments.StartSpec) { s.Color = "red" }, `color "red"`},
		{"no deploy ID", func(s *deployments.StartSpec) { s.Deploy = "" }, "deploy ID is empty"},
		{"no image", func(s *deployments.StartSpec) { s.Image = "" }, "image is empty"},
		{"no replicas", func(s *deployments.StartSpec) { s.Replicas = 0 }, "replicas 0"},
		{"no port", func(s *deployments.StartSpec) { s.Port = 0 }, "port 0"},
		{"a fixed host port shared by replicas", func(s *deployments.StartSpec) { s.HostPort = 9000 }, "cannot share a host port"},
		{"a negative stop timeout", func(s *deployments.StartSpec) { s.StopTimeout = -time.Second }, "stop timeout"},
		{"one host's share of the indexes", func(s *deployments.StartSpec) { s.Indexes = []int{1, 3} }, ""},
		{"fewer indexes than replicas", func(s *deployments.StartSpec) { s.Indexes = []int{1} }, "1 indexes for 2 replicas"},
		{"an index out of range", func(s *deployments.StartSpec) { s.Indexes = []int{1, 64} }, "index 64"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.change(&s)
			err := s.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("Validate = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}

func TestHostLock_SharedHoldersDoNotWaitForEachOther(t *testing.T) {
	l := newHostLock(filepath.Join(t.TempDir(), "lock"))
	l.onWait = func(bool) { t.Error("a shared acquisition waited for another shared one") }
	r1, err := l.acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := l.acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	r1()
	r2()
}

func TestHostLock_ExclusiveWaitsForSharedInTheSameProcess(t *testing.T) {
	l := newHostLock(filepath.Join(t.TempDir(), "lock"))
	waiting := make(chan bool, 1)
	l.onWait = func(exclusive bool) { waiting <- exclusive }
	release, err := l.acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.acquire(context.Background(), true)
		if err == nil {
			r()
		}
		got <- err
	}()
	if exclusive := <-waiting; !exclusive {
		t.Fatal("the waiter is not the exclusive acquisition")
	}
	select {
	case err := <-got:
		t.Fatalf("exclusive acquired while a shared holder held the lock (err %v)", err)
	default:
	}
	release()
	if err := <-got; err != nil {
		t.Fatalf("exclusive after release: %v", err)
	}
}

func TestHostLock_ExclusiveWaitsForAPullInAnotherProcess(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lock")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=hold-lock "+path)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("helper said %q, %v", line, err)
	}

	l := newHostLock(path)
	waiting := make(chan struct{})
	l.onWait = func(bool) { close(waiting) }
	got := make(chan error, 1)
	go func() {
		r, err := l.acquire(context.Background(), true)
		if err == nil {
			r()
		}
		got <- err
	}()
	<-waiting
	select {
	case err := <-got:
		t.Fatalf("exclusive acquired while another process held the lock shared (err %v)", err)
	default:
	}
	stdin.Close() // the helper releases and exits
	if err := <-got; err != nil {
		t.Fatalf("exclusive after the helper released: %v", err)
	}
}

func TestHostLock_StopsWaitingWhenTheContextEnds(t *testing.T) {
	l := newHostLock(filepath.Join(t.TempDir(), "lock"))
	release, err := l.acquire(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	ctx, cancel := context.WithCancel(context.Background())
	l.onWait = func(bool) { cancel() }
	_, err = l.acquire(ctx, true)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), l.path) {
		t.Errorf("acquire = %v, want context.Canceled naming %s", err, l.path)
	}
}

func TestLockPathFor_IsOnePerDockerHost(t *testing.T) {
	a, b := lockPathFor("unix:///var/run/docker.sock"), lockPathFor("tcp://10.0.0.1:2376")
	if a == b || a != lockPathFor("unix:///var/run/docker.sock") {
		t.Errorf("lock paths %s and %s: want one stable path per host", a, b)
	}
	if filepath.Dir(a) != filepath.Clean(os.TempDir()) {
		t.Errorf("lock path %s is not in %s, where every user of the host finds it", a, os.TempDir())
	}
}

func TestIsPruneRunningRecognisesTheEnginesConflict(t *testing.T) {
	// The engine's answer to a second prune while one runs (HTTP 409).
	busy := errors.New("Error response from daemon: a prune operation is already running")
	if !isPruneRunning(busy) || isPruneRunning(errors.New("Error response from daemon: conflict: unable to delete")) {
		t.Fatal("prune-running conflict misclassified")
	}
}

// A spec with an image ID runs that exact image and keeps the reference in the label.
func TestSpecLabels_KeepTheReferenceOfAnImageRunByID(t *testing.T) {
	s := deployments.StartSpec{App: "web", Color: deployments.Blue, Deploy: "d1", Image: "web:v1", ImageID: "sha256:abc",
		Labels: map[string]string{"team": "x", deployments.LabelApp: "spoofed"}}
	if s.Run() != "sha256:abc" {
		t.Fatalf("Run = %q", s.Run())
	}
	l := specLabels(s, "", 0, 0)
	if l[deployments.LabelImage] != "web:v1" || l[deployments.LabelApp] != "web" || l["team"] != "x" {
		t.Fatalf("labels %v", l)
	}
	s.ImageID = ""
	if _, ok := specLabels(s, "", 0, 0)[deployments.LabelImage]; ok || s.Run() != "web:v1" {
		t.Fatal("a spec without an image ID labels its image")
	}
}
