package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
)

// LabelKey marks every container and image a test creates; its value is the run ID.
const LabelKey = "swap.test"

// DockerEnv is a Docker client for one test and the label its fixtures carry.
type DockerEnv struct {
	Client *client.Client
	RunID  string // unique to this DockerEnv
	Label  string // "swap.test=<RunID>", for filters
}

// Labels returns the labels a test puts on what it creates, plus extra.
func (d *DockerEnv) Labels(extra map[string]string) map[string]string {
	l := map[string]string{LabelKey: d.RunID}
	for k, v := range extra {
		l[k] = v
	}
	return l
}

// Docker connects to the Docker engine (DOCKER_HOST or the default socket, API version
// negotiated) and, in t.Cleanup, removes every container and image labelled with this
// run.
func Docker(t testing.TB) *DockerEnv {
	t.Helper()
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		Require(t, "docker", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx); err != nil {
		cli.Close()
		Require(t, "docker engine", err)
	}
	d := &DockerEnv{Client: cli, RunID: newRunID()}
	d.Label = LabelKey + "=" + d.RunID
	t.Cleanup(func() {
		if err := d.RemoveAll(context.Background()); err != nil {
			t.Errorf("testenv: docker cleanup of %s: %v", d.Label, err)
		}
		cli.Close()
	})
	return d
}

// RemoveAll force-removes the containers, then the images, labelled with this run.
func (d *DockerEnv) RemoveAll(ctx context.Context) error {
	f := filters.NewArgs(filters.Arg("label", d.Label))
	cs, err := d.Client.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if err := d.Client.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true}); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	imgs, err := d.Client.ImageList(ctx, image.ListOptions{All: true, Filters: f})
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, img := range imgs {
		if _, err := d.Client.ImageRemove(ctx, img.ID, image.RemoveOptions{Force: true, PruneChildren: true}); err != nil && !isNotFound(err) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isNotFound(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "No such") || strings.Contains(err.Error(), "not found") ||
		strings.Contains(err.Error(), "unrecognized image ID"))
}

// DemoBinary builds examples/demoapp as a static binary once per test process.
func DemoBinary(t testing.TB) string {
	t.Helper()
	return Binary(t, "./examples/demoapp")
}

var binaries struct {
	sync.Mutex
	built map[string]*binary // by package
}

type binary struct {
	once sync.Once
	path string
	err  error
}

// Binary builds the repository's package pkg ("./cmd/swap") as a static binary
// (CGO_ENABLED=0, -trimpath) once per test process and returns its path.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	root := RepoRoot(t)
	binaries.Lock()
	if binaries.built == nil {
		binaries.built = map[string]*binary{}
	}
	b := binaries.built[pkg]
	if b == nil {
		b = &binary{}
		binaries.built[pkg] = b
	}
	binaries.Unlock()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "swap-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.Command("go", "build", "-trimpath", "-o", b.path, pkg)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	})
	if b.err != nil {
		t.Fatalf("testenv: %v", b.err)
	}
	return b.path
}

// DemoImage makes examples/demoapp into a FROM-scratch image tagged
// "swap-test-demoapp-<run>:<version>", with VERSION=<version> in its environment, and
// returns the reference. Nothing is pulled. The image is removed in t.Cleanup (by Docker's
// cleanup of this run's label).
func (d *DockerEnv) DemoImage(t testing.TB, version string) string {
	return d.DemoImageEnv(t, version, nil)
}

// DemoImageEnv is DemoImage with more environment baked in (HEALTH_FAIL=1, ERROR_PCT=50,
// START_DELAY=5s...). The image is imported as one layer holding the static binary
// (`docker import` with Dockerfile changes): the same FROM-scratch image a build makes,
// in a fraction of the time.
func (d *DockerEnv) DemoImageEnv(t testing.TB, version string, env map[string]string) string {
	t.Helper()
	ref := fmt.Sprintf("swap-test-demoapp-%s:%s", d.RunID, version)
	bin, err := os.ReadFile(DemoBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	changes := []string{"ENV VERSION=" + version, `ENTRYPOINT ["/demoapp"]`, "EXPOSE 8080/tcp"}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		changes = append(changes, "ENV "+k+"="+env[k])
	}
	d.importImage(t, ref, map[string][]byte{"demoapp": bin}, changes)
	return ref
}

// importImage imports files (path in the image -> contents, each executable) as the
// one-layer image ref, with Dockerfile changes and this run's label: through
// deployments/docker's ImportImage, the import swap itself does, on d's engine.
func (d *DockerEnv) importImage(t testing.TB, ref string, files map[string][]byte, changes []string) {
	t.Helper()
	drv, err := docker.New(deployments.DockerConfig{Host: d.Client.DaemonHost()}, nil)
	if err != nil {
		t.Fatalf("testenv: import %s: %v", ref, err)
	}
	defer drv.Close()
	rel := make(map[string][]byte, len(files))
	for name, body := range files {
		rel[strings.TrimPrefix(name, "/")] = body
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := drv.ImportImage(ctx, ref, rel, changes, map[string]string{LabelKey: d.RunID}); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// BuildImage builds an image from the files given (a build context held in memory) with
// the classic builder, which needs no network for FROM scratch.
func BuildImage(ctx context.Context, cli *client.Client, ref string, labels map[string]string, files map[string][]byte) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range files {
		mode := int64(0o644)
		if name != "Dockerfile" {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(body))}); err != nil {
			return err
		}
		if _, err := tw.Write(body); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	resp, err := cli.ImageBuild(ctx, &buf, build.ImageBuildOptions{
		Tags: []string{ref}, Labels: labels, Remove: true, ForceRemove: true,
		Version: build.BuilderV1,
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The build's output, to say where a failed one stopped.
	var log strings.Builder
	if err := docker.ReadStream(resp.Body, func(_, out string) { log.WriteString(out) }); err != nil {
		return fmt.Errorf("%w\n%s", err, log.String())
	}
	return nil
}
