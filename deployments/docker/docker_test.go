package docker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
	"go.uber.org/zap/zaptest"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/testenv"
)

// fixture is one test's Docker: testenv's client and label, and a Driver on the same
// engine.
type fixture struct {
	env *testenv.DockerEnv
	drv *docker.Driver
	app string // an app name no other test uses, so container names never collide
}

// newFixture also marks the test parallel: the tests share nothing on the engine (names,
// labels and apps are per test), and they spend their time waiting for it.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	t.Parallel()
	env := testenv.Docker(t)
	drv, err := docker.New(deployments.DockerConfig{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("docker.New: %v", err)
	}
	t.Cleanup(func() { drv.Close() })
	return &fixture{env: env, drv: drv, app: "swaptest-" + env.RunID}
}

// image makes a FROM-scratch image of examples/demoapp tagged
// "swap-test-<name>-<run>:<version>", with VERSION=<version> and the test's label, and
// returns the reference. It imports the binary as a one-layer image (docker import),
// which takes a tenth of a second where a build takes seconds; tests that need several
// distinct images stay quick. changes are extra Dockerfile instructions (VOLUME /data).
func (f *fixture) image(t *testing.T, name, version string, changes ...string) string {
	t.Helper()
	changes = append([]string{"ENV VERSION=" + version, `ENTRYPOINT ["/demoapp"]`, "EXPOSE 8080"}, changes...)
	return f.importImage(t, name, version, "demoapp", mustRead(t, testenv.DemoBinary(t)), changes...)
}

// importImage makes a one-file image "swap-test-<name>-<run>:<tag>" carrying the test's
// label, with the driver's ImportImage.
func (f *fixture) importImage(t *testing.T, name, tag, file string, body []byte, changes ...string) string {
	t.Helper()
	ref := fmt.Sprintf("swap-test-%s-%s:%s", name, f.env.RunID, tag)
	if _, err := f.drv.ImportImage(ctx(t), ref, map[string][]byte{file: body}, changes, f.env.Labels(nil)); err != nil {
		t.Fatalf("import %s: %v", ref, err)
	}
	return ref
}

func (f *fixture) spec(color deployments.Color, image string, replicas int) deployments.StartSpec {
	return deployments.StartSpec{
		App: f.app, Color: color, Deploy: "d-" + f.env.RunID, Image: image,
		Replicas: replicas, Port: 8080,
		Env:    []string{"COLOR=" + string(color)},
		Labels: f.env.Labels(nil),
	}
}

// start runs spec and fails the test on error.
func (f *fixture) start(t *testing.T, spec deployments.StartSpec) []deployments.Instance {
	t.Helper()
	insts, err := f.drv.Start(ctx(t), spec)
	if err != nil {
		t.Fatalf("Start %s/%s: %v", spec.App, spec.Color, err)
	}
	return insts
}

// runUnmanaged creates (and, when start, starts) a container without swap's labels.
func (f *fixture) runUnmanaged(t *testing.T, name, image string, start bool, cmd ...string) string {
	t.Helper()
	cfg := &container.Config{Image: image, Labels: f.env.Labels(nil), Cmd: cmd}
	c, err := f.env.Client.ContainerCreate(ctx(t), cfg, nil, nil, nil, name)
	if err != nil {
		t.Fatalf("create unmanaged %s: %v", name, err)
	}
	if start {
		if err := f.env.Client.ContainerStart(ctx(t), c.ID, container.StartOptions{}); err != nil {
			t.Fatalf("start unmanaged %s: %v", name, err)
		}
	}
	return c.ID
}

// containerIDs lists the IDs of the containers (any state) carrying label.
func (f *fixture) containerIDs(t *testing.T, label string) []string {
	t.Helper()
	cs, err := f.env.Client.ContainerList(ctx(t), container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

func (f *fixture) exists(t *testing.T, containerID string) bool {
	t.Helper()
	_, err := f.env.Client.ContainerInspect(ctx(t), containerID)
	if err != nil && !cerrdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	return err == nil
}

// ctx bounds one test's engine calls. It is a ceiling against a hung engine, not a
// speed check: under a loaded CI machine a stop, an image list or a wait for the
// pull/prune lock can take tens of seconds.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return c
}

func get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b), err
}

func TestPing_NamesTheAddressAndWhatToCheckWhenTheEngineIsUnreachable(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		host string
	}{
		{"a socket that does not exist", "unix://" + dir + "/docker.sock"},
		{"a TCP port nobody listens on", fmt.Sprintf("tcp://127.0.0.1:%d", testenv.FreePort(t))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			drv, err := docker.New(deployments.DockerConfig{Host: tc.host}, zaptest.NewLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer drv.Close()
			err = drv.Ping(ctx(t))
			if !errors.Is(err, docker.ErrUnreachable) {
				t.Fatalf("Ping = %v, want ErrUnreachable", err)
			}
			for _, want := range []string{tc.host, "DOCKER_HOST", "daemon running"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestPing_SucceedsAgainstTheRunningEngine(t *testing.T) {
	f := newFixture(t)
	if err := f.drv.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestStart_RunsReplicasWithSwapLabelsOnEphemeralLoopbackPorts(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")
	spec := f.spec(deployments.Blue, img, 2)
	spec.StopTimeout = 1500 * time.Millisecond
	insts := f.start(t, spec)

	if len(insts) != 2 {
		t.Fatalf("Start returned %d instances, want 2", len(insts))
	}
	info, err := f.drv.InspectImage(ctx(t), img)
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range insts {
		want := deployments.Instance{
			App: f.app, Color: deployments.Blue, Index: i, Deploy: spec.Deploy, Image: img, ImageID: info.ID,
			ContainerID: in.ContainerID, Host: "127.0.0.1", Port: in.Port, State: "running",
		}
		if in != want {
			t.Errorf("instance %d = %+v, want %+v", i, in, want)
		}
		if in.Port <= 0 {
			t.Errorf("instance %d has no published port", i)
		}
		c, err := f.env.Client.ContainerInspect(ctx(t), in.ContainerID)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := c.Name, "/"+deployments.InstanceID(f.app, deployments.Blue, i); got != want {
			t.Errorf("container name %q, want %q", got, want)
		}
		wantLabels := map[string]string{
			deployments.LabelApp: f.app, deployments.LabelColor: "blue", deployments.LabelDeploy: spec.Deploy,
			deployments.LabelIndex: fmt.Sprint(i), deployments.LabelManaged: "true", testenv.LabelKey: f.env.RunID,
		}
		for k, v := range wantLabels {
			if c.Config.Labels[k] != v {
				t.Errorf("label %s=%q, want %q", k, c.Config.Labels[k], v)
			}
		}
		if c.Config.StopTimeout == nil || *c.Config.StopTimeout != 2 || c.Config.StopSignal != "SIGTERM" {
			t.Errorf("stop signal %q timeout %v, want SIGTERM and 2s (1.5s rounded up)", c.Config.StopSignal, c.Config.StopTimeout)
		}
		url := fmt.Sprintf("http://%s/", in.Addr())
		testenv.WaitFor(t, 10*time.Second, "GET "+url, func() error {
			body, err := get(url)
			if err != nil {
				return err
			}
			if body != "color=blue version=v1\n" {
				return fmt.Errorf("body %q", body)
			}
			return nil
		})
	}
	if insts[0].Port == insts[1].Port {
		t.Errorf("both replicas published on port %d", insts[0].Port)
	}
}

func TestList_RecoversInstancesFromLabelsInAnyState(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")
	blue := f.start(t, f.spec(deployments.Blue, img, 2))
	green := f.start(t, f.spec(deployments.Green, img, 1))
	other := f.spec(deployments.Blue, img, 1)
	other.App = f.app + "-other"
	f.start(t, other)

	// Stop one behind swap's back: List still reports it, as exited, with no port.
	if err := f.env.Client.ContainerStop(ctx(t), blue[1].ContainerID, container.StopOptions{}); err != nil {
		t.Fatal(err)
	}
	exited := blue[1]
	exited.State, exited.Port = "exited", 0
	want := []deployments.Instance{blue[0], exited, green[0]}

	// A fresh driver knows nothing but what the engine says.
	fresh, err := docker.New(deployments.DockerConfig{}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	got, err := fresh.List(ctx(t), f.app)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("List(%s) =\n%+v\nwant\n%+v", f.app, got, want)
	}
}

func TestStart_RefusesNamesThatAreTaken(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")

	t.Run("by swap's own containers of the color: ErrExists, untouched", func(t *testing.T) {
		first := f.start(t, f.spec(deployments.Blue, img, 1))
		_, err := f.drv.Start(ctx(t), f.spec(deployments.Blue, img, 2))
		if !errors.Is(err, docker.ErrExists) {
			t.Fatalf("Start = %v, want ErrExists", err)
		}
		got, err := f.drv.List(ctx(t), f.app)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, first) {
			t.Errorf("after the refused start, List = %+v, want only %+v", got, first)
		}
	})

	t.Run("by swap's own containers, with Replace: they are replaced", func(t *testing.T) {
		before, err := f.drv.List(ctx(t), f.app)
		if err != nil || len(before) != 1 {
			t.Fatalf("List = %v, %v; want the one blue container", before, err)
		}
		spec := f.spec(deployments.Blue, img, 2)
		spec.Deploy, spec.Replace = "d2", true
		insts := f.start(t, spec)
		if f.exists(t, before[0].ContainerID) {
			t.Errorf("replaced container %s still exists", before[0].ContainerID)
		}
		if len(insts) != 2 || insts[0].Deploy != "d2" || insts[1].Deploy != "d2" {
			t.Errorf("Start = %+v, want two instances of deploy d2", insts)
		}
	})

	t.Run("by a container swap does not manage: ErrNameTaken, untouched", func(t *testing.T) {
		name := deployments.InstanceID(f.app, deployments.Green, 1)
		id := f.runUnmanaged(t, name, img, true)
		spec := f.spec(deployments.Green, img, 2)
		spec.Replace = true // even so
		_, err := f.drv.Start(ctx(t), spec)
		if !errors.Is(err, docker.ErrNameTaken) {
			t.Fatalf("Start = %v, want ErrNameTaken", err)
		}
		c, err := f.env.Client.ContainerInspect(ctx(t), id)
		if err != nil || !c.State.Running {
			t.Errorf("the unmanaged container: %v, running=%v; want it untouched", err, err == nil && c.State.Running)
		}
		if _, err := f.env.Client.ContainerInspect(ctx(t), deployments.InstanceID(f.app, deployments.Green, 0)); !cerrdefs.IsNotFound(err) {
			t.Errorf("%s-green-0 was created (inspect: %v); a refused start creates nothing", f.app, err)
		}
	})
}

func TestStart_RemovesWhatItCreatedWhenAContainerCannotStart(t *testing.T) {
	f := newFixture(t)
	// No ENTRYPOINT, so the command is what runs.
	ref := f.importImage(t, "noentry", "v1", "gen", []byte("not a program"))
	spec := f.spec(deployments.Blue, ref, 3)
	spec.Command = []string{"/no-such-binary"}
	_, err := f.drv.Start(ctx(t), spec)
	if err == nil {
		t.Fatal("Start succeeded with a command that does not exist")
	}
	if !strings.Contains(err.Error(), "no-such-binary") {
		t.Errorf("error %q does not name the missing command", err)
	}
	if ids := f.containerIDs(t, deployments.LabelApp+"="+f.app); len(ids) != 0 {
		t.Errorf("%d container(s) of %s left after a failed start", len(ids), f.app)
	}
}

func TestStart_SaysWhichPortIsInUse(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	spec := f.spec(deployments.Blue, img, 1)
	spec.HostPort = port
	_, err = f.drv.Start(ctx(t), spec)
	if !errors.Is(err, docker.ErrPortInUse) {
		t.Fatalf("Start = %v, want ErrPortInUse", err)
	}
	if want := fmt.Sprintf("127.0.0.1:%d", port); !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	if ids := f.containerIDs(t, deployments.LabelApp+"="+f.app); len(ids) != 0 {
		t.Errorf("%d container(s) left after a failed start", len(ids))
	}
}

func TestStart_SaysWhichImageIsMissing(t *testing.T) {
	f := newFixture(t)
	ref := "swap-test-missing-" + f.env.RunID + ":v1"
	_, err := f.drv.Start(ctx(t), f.spec(deployments.Blue, ref, 1))
	if !errors.Is(err, docker.ErrImageNotFound) || !strings.Contains(err.Error(), ref) {
		t.Fatalf("Start = %v, want ErrImageNotFound naming %s", err, ref)
	}
}

func TestStop_SendsSIGTERMThenRemovesTheContainerButKeepsItsVolumes(t *testing.T) {
	f := newFixture(t)
	// The demo app with a volume: Stop must leave the volume behind.
	ref := f.image(t, "volume", "v1", "VOLUME /data")
	inst := f.start(t, f.spec(deployments.Green, ref, 1))[0]
	c, err := f.env.Client.ContainerInspect(ctx(t), inst.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Mounts) != 1 || c.Mounts[0].Type != "volume" {
		t.Fatalf("mounts %+v, want the one anonymous volume", c.Mounts)
	}
	vol := c.Mounts[0].Name
	t.Cleanup(func() { f.env.Client.VolumeRemove(context.Background(), vol, true) })
	// As PID 1 the app ignores SIGTERM until its handler is installed: wait until it
	// serves, or a loaded machine turns this into a SIGKILL after the timeout.
	// (An HTTP answer, not a connect: Docker's proxy accepts before the app listens.)
	testenv.WaitFor(t, 20*time.Second, "the app answers", func() error {
		resp, err := (&http.Client{Timeout: time.Second}).Get("http://" + inst.Addr() + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	// Events since before the stop: the engine replays what the stream would have missed.
	since := strconv.FormatInt(time.Now().Add(-time.Second).Unix(), 10)
	if err := f.drv.Stop(ctx(t), inst, 10*time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	evCtx, cancel := context.WithCancel(ctx(t))
	defer cancel()
	msgs, errs := f.env.Client.Events(evCtx, events.ListOptions{Since: since, Filters: filters.NewArgs(
		filters.Arg("type", "container"), filters.Arg("container", inst.ContainerID))})

	got := map[string]map[string]string{} // action -> attributes
	for got["destroy"] == nil {
		select {
		case m := <-msgs:
			got[string(m.Action)] = m.Actor.Attributes
		case err := <-errs:
			t.Fatalf("events: %v (so far %v)", err, got)
		}
	}
	if sig := got["kill"]["signal"]; sig != "15" {
		t.Errorf("kill signal %q, want 15 (SIGTERM)", sig)
	}
	if code := got["die"]["exitCode"]; code != "0" {
		t.Errorf("exit code %q, want 0: the app stopped on SIGTERM, not SIGKILL", code)
	}
	if f.exists(t, inst.ContainerID) {
		t.Error("container still exists after Stop")
	}
	if _, err := f.env.Client.VolumeInspect(ctx(t), vol); err != nil {
		t.Errorf("volume %s is gone after Stop: %v", vol, err)
	}
	// Stopping what is gone already is fine: retire is retried after a crash.
	if err := f.drv.Stop(ctx(t), inst, time.Second); err != nil {
		t.Errorf("Stop of a removed container = %v, want nil", err)
	}
}

func TestStop_RefusesContainersSwapDoesNotManage(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")
	name := deployments.InstanceID(f.app, deployments.Blue, 0)
	id := f.runUnmanaged(t, name, img, true)

	for _, inst := range []deployments.Instance{
		{ContainerID: id},
		{App: f.app, Color: deployments.Blue, Index: 0}, // found by name
	} {
		err := f.drv.Stop(ctx(t), inst, time.Second)
		if !errors.Is(err, docker.ErrNotManaged) {
			t.Errorf("Stop(%+v) = %v, want ErrNotManaged", inst, err)
		}
	}
	c, err := f.env.Client.ContainerInspect(ctx(t), id)
	if err != nil || !c.State.Running {
		t.Fatalf("unmanaged container after Stop: %v; want it running", err)
	}
}

func TestEnsureImage_UsesALocalImageAndNamesAMissingOne(t *testing.T) {
	f := newFixture(t)
	local := f.image(t, "demoapp", "v1")
	missing := "swap-test-missing-" + f.env.RunID + ":v1"

	// There is no registry here: success for the local image shows nothing was pulled.
	info, err := f.drv.EnsureImage(ctx(t), local)
	if err != nil {
		t.Errorf("EnsureImage(%s) = %v, want nil", local, err)
	}
	if img, ierr := f.env.Client.ImageInspect(ctx(t), local); ierr != nil || info.ID != img.ID || info.Digest != "" {
		t.Errorf("EnsureImage(%s) = %+v, want ID %s (inspect: %v) and no digest (nothing was pulled)", local, info, img.ID, ierr)
	}
	_, err = f.drv.EnsureImage(ctx(t), missing)
	if !errors.Is(err, docker.ErrImageNotFound) {
		t.Fatalf("EnsureImage(%s) = %v, want ErrImageNotFound", missing, err)
	}
	for _, want := range []string{missing, "docker build", "config.json"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}

func TestStats_ReadsCPUAndMemoryLikeDockerStats(t *testing.T) {
	f := newFixture(t)
	img := f.image(t, "demoapp", "v1")
	const limit = 64 << 20
	c, err := f.env.Client.ContainerCreate(ctx(t), &container.Config{Image: img, Labels: f.env.Labels(nil)},
		&container.HostConfig{Resources: container.Resources{Memory: limit}}, nil, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.env.Client.ContainerStart(ctx(t), c.ID, container.StartOptions{}); err != nil {
		t.Fatal(err)
	}
	s, err := f.drv.Stats(ctx(t), c.ID)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if s.MemoryLimit != limit {
		t.Errorf("memory limit %d, want %d", s.MemoryLimit, limit)
	}
	if s.MemoryUsage == 0 || s.MemoryUsage >= limit {
		t.Errorf("memory usage %d, want within (0, %d)", s.MemoryUsage, limit)
	}
	if want := float64(s.MemoryUsage) / limit * 100; s.MemoryPercent != want {
		t.Errorf("memory percent %v, want %v", s.MemoryPercent, want)
	}
	if s.CPUPercent < 0 || math.IsNaN(s.CPUPercent) || math.IsInf(s.CPUPercent, 0) {
		t.Errorf("cpu percent %v", s.CPUPercent)
	}
	if s.PIDs == 0 || s.Read.IsZero() {
		t.Errorf("pids %d read %v, want the demo app's process and a sample time", s.PIDs, s.Read)
	}
}

// The cleanup safety test of issue 4: image removal and the dangling prune take exactly
// the images swap retired and the dangling ones, and nothing a container uses.
func TestCleanup_RemovesRetiredAndDanglingImagesButNothingAContainerUses(t *testing.T) {
	f := newFixture(t)
	c := ctx(t)
	imageID := func(ref string) string {
		t.Helper()
		img, err := f.env.Client.ImageInspect(c, ref)
		if err != nil {
			t.Fatal(err)
		}
		return img.ID
	}
	build := func(name, gen string) string {
		t.Helper()
		return imageID(f.importImage(t, name, "latest", "gen", []byte(gen)))
	}

	// The live color: managed, running.
	live := f.image(t, "live", "v1")
	liveInst := f.start(t, f.spec(deployments.Blue, live, 1))[0]
	// A retired color: managed, stopped and removed by swap; its image is unused now.
	retired := f.image(t, "retired", "v1")
	retiredID := imageID(retired)
	for _, in := range f.start(t, f.spec(deployments.Green, retired, 1)) {
		if err := f.drv.Stop(c, in, time.Second); err != nil {
			t.Fatal(err)
		}
	}
	// Not swap's: a running container and its image.
	unmanaged := f.image(t, "unmanaged", "v1")
	unmanagedCtr := f.runUnmanaged(t, "swap-test-unmanaged-"+f.env.RunID, unmanaged, true)
	// Not swap's: a data-only container, created and never started, whose image then
	// became dangling when its tag moved on.
	dataID := build("data", "data 1")
	dataCtr := f.runUnmanaged(t, "swap-test-data-"+f.env.RunID, "swap-test-data-"+f.env.RunID+":latest", false, "/gen")
	dataNewID := build("data", "data 2")
	if img, err := f.env.Client.ImageInspect(c, dataID); err != nil || len(img.RepoTags) != 0 {
		t.Fatalf("the data-only container's image: %v, tags %v; want it dangling", err, img.RepoTags)
	}
	// A dangling image nothing uses: built, then its tag moved on.
	junkID := build("junk", "junk 1")
	junkNewID := build("junk", "junk 2")

	// Image removal: the retired image goes; every image a container uses stays.
	if err := f.drv.RemoveImage(c, retired); err != nil {
		t.Errorf("RemoveImage(retired) = %v, want nil", err)
	}
	for _, ref := range []string{live, unmanaged, dataID} {
		if err := f.drv.RemoveImage(c, ref); !errors.Is(err, docker.ErrImageInUse) {
			t.Errorf("RemoveImage(%s) = %v, want ErrImageInUse", ref, err)
		}
	}

	// The prune is narrowed to this test's label so that it cannot race other tests'
	// builds on this host; everything this test made carries that label, so every
	// survivor below was a candidate.
	removed, reclaimed, err := f.drv.PruneDangling(c, 0, f.env.Label)
	if err != nil {
		t.Fatalf("PruneDangling: %v", err)
	}
	if !reflect.DeepEqual(removed, []string{junkID}) {
		t.Errorf("PruneDangling removed %v, want exactly the dangling unused image %s", removed, junkID)
	}
	if reclaimed == 0 {
		t.Error("PruneDangling reclaimed 0 bytes; the junk image held a file")
	}

	imgs := map[string]bool{}
	for _, id := range []string{imageID(live), imageID(unmanaged), dataID, dataNewID, junkNewID, retiredID, junkID} {
		_, err := f.env.Client.ImageInspect(c, id)
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		imgs[id] = err == nil
	}
	wantImgs := map[string]bool{
		imageID(live): true, imageID(unmanaged): true, dataID: true, dataNewID: true, junkNewID: true,
		retiredID: false, junkID: false,
	}
	if !reflect.DeepEqual(imgs, wantImgs) {
		t.Errorf("images present %v, want %v", imgs, wantImgs)
	}
	for name, id := range map[string]string{"live": liveInst.ContainerID, "unmanaged": unmanagedCtr, "data-only": dataCtr} {
		if !f.exists(t, id) {
			t.Errorf("the %s container is gone", name)
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPruneDangling_WaitsWhileAPullHoldsTheLock(t *testing.T) {
	f := newFixture(t)
	f.importImage(t, "junk", "1", "gen", []byte("junk 1"))
	f.importImage(t, "junk", "1", "gen", []byte("junk 2")) // the tag moves on; the first is dangling
	waiting := make(chan bool, 1)
	f.drv.UseTestLock(filepath.Join(t.TempDir(), "lock"), func(exclusive bool) { waiting <- exclusive })

	release, err := f.drv.HoldLock(ctx(t), false) // a pull in progress
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		removed []string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		removed, _, err := f.drv.PruneDangling(ctx(t), 0, f.env.Label)
		done <- result{removed, err}
	}()
	if exclusive := <-waiting; !exclusive {
		t.Fatal("the prune waited for a shared lock; it must take it exclusively")
	}
	select {
	case r := <-done:
		t.Fatalf("the prune ran during a pull: removed %v, err %v", r.removed, r.err)
	default:
	}
	release() // the pull ends
	r := <-done
	if r.err != nil || len(r.removed) != 1 {
		t.Errorf("prune after the pull: removed %v, err %v; want the one dangling image", r.removed, r.err)
	}
}

func TestEnsureImage_PullsOnlyWhenMissingAndWaitsWhileAPruneRuns(t *testing.T) {
	f := newFixture(t)
	local := f.image(t, "demoapp", "v1")
	missing := "swap-test-missing-" + f.env.RunID + ":v1"
	waiting := make(chan bool, 1)
	f.drv.UseTestLock(filepath.Join(t.TempDir(), "lock"), func(exclusive bool) { waiting <- exclusive })

	release, err := f.drv.HoldLock(ctx(t), true) // a prune in progress
	if err != nil {
		t.Fatal(err)
	}
	// A local image needs no pull, and so no lock.
	if _, err := f.drv.EnsureImage(ctx(t), local); err != nil {
		t.Fatalf("EnsureImage(local) during a prune = %v, want nil", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.drv.EnsureImage(ctx(t), missing)
		done <- err
	}()
	if exclusive := <-waiting; exclusive {
		t.Fatal("the pull waited for an exclusive lock; pulls share it")
	}
	select {
	case err := <-done:
		t.Fatalf("the pull ran during a prune: %v", err)
	default:
	}
	release()
	if err := <-done; !errors.Is(err, docker.ErrImageNotFound) {
		t.Errorf("EnsureImage(missing) = %v, want ErrImageNotFound (there is no registry here)", err)
	}
}
