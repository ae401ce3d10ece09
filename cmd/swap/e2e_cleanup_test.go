package main

import (
	"context"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/image"

	"github.com/swap-dev/swap/deployments"
)

// Four deploys with retain 1, then a rollback: cleanup keeps the live image, retain
// previous ones, whatever a container uses (swap's or not), unmanaged containers and
// dangling images swap did not run; it removes older images of swap's deploys.
func TestE2E_CleanupRemovesOnlyOldImagesSwapRanAndRollbackRedeploysThePrevious(t *testing.T) {
	t.Parallel()
	app := e2eApp("tidy")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    retain: 1\n"))
	v3 := s.docker.DemoImage(t, "v3")
	v4 := s.docker.DemoImage(t, "v4")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// An unmanaged container (a data container: swap's app label, no swap.managed) on v1,
	// a dangling image swap never ran (another tool's), and a dangling image an unmanaged
	// container uses.
	data := app + "-data"
	if _, err := s.docker.Client.ContainerCreate(ctx, &container.Config{Image: s.v1,
		Labels: s.docker.Labels(map[string]string{"swap.app": app, "swap.color": "blue"})}, nil, nil, nil, data); err != nil {
		t.Fatalf("create %s: %v", data, err)
	}
	junk := s.imageID(s.docker.DemoImageEnv(t, "junk", map[string]string{"JUNK": "1"}))
	s.docker.DemoImageEnv(t, "junk", map[string]string{"JUNK": "2"}) // takes the tag: junk is dangling
	keptRef := s.docker.DemoImageEnv(t, "kept", map[string]string{"KEPT": "1"})
	kept := s.imageID(keptRef)
	keeper := app + "-keeper"
	if _, err := s.docker.Client.ContainerCreate(ctx, &container.Config{Image: keptRef,
		Labels: s.docker.Labels(nil)}, nil, nil, nil, keeper); err != nil {
		t.Fatalf("create %s: %v", keeper, err)
	}
	s.docker.DemoImageEnv(t, "kept", map[string]string{"KEPT": "2"}) // kept is dangling, and used
	t.Cleanup(func() {
		// Removed here, before the run's own cleanup lists its images: once its container
		// is gone, a dangling image is any concurrent swap's to prune, and may vanish
		// between that listing and its removal.
		ctx := context.Background()
		_ = s.docker.Client.ContainerRemove(ctx, keeper, container.RemoveOptions{Force: true})
		_, _ = s.docker.Client.ImageRemove(ctx, kept, image.RemoveOptions{Force: true})
		_, _ = s.docker.Client.ImageRemove(ctx, junk, image.RemoveOptions{Force: true})
	})

	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	l := s.startLoad(host, "/", 2)
	for _, img := range []string{s.v2, v3, v4} {
		s.mustSwap("deploy", app, "--image", img)
	}
	s.waitAnswer(host, "color=green version=v4")

	want := map[string]bool{
		v4:   true,  // live
		v3:   true,  // retain 1
		s.v2: false, // beyond retain, unused
		s.v1: true,  // beyond retain, but the unmanaged container uses it
		junk: true,  // dangling, but not swap's: prune_dangling is off (the default)
		kept: true,  // dangling, but a container uses it
	}
	s.requireImages(want)
	for _, c := range []string{data, keeper} {
		if !s.hasContainer(c) {
			t.Fatalf("the unmanaged container %s is gone", c)
		}
	}
	r := s.mustSwap("cleanup", app)
	if !strings.Contains(r.stdout, "removed 0 image(s)") {
		t.Fatalf("cleanup after the deploys' own cleanups: want nothing left to remove:\n%s", r)
	}
	s.requireImages(want)

	// Right after the deploy, rollback redeploys the previous image on the idle color.
	r = s.mustSwap("rollback", app)
	if !strings.Contains(r.stdout, "blue live with "+v3) {
		t.Fatalf("rollback did not put v3 live on blue:\n%s", r)
	}
	s.waitAnswer(host, "color=blue version=v3")
	l.requireNoFailures(t)
	if l.byColor["blue"] == 0 || l.byColor["green"] == 0 {
		t.Fatalf("answers by color %v: want both", l.byColor)
	}
	s.requireImages(map[string]bool{v3: true, v4: true, s.v1: true, s.v2: false, kept: true, junk: true})
	if hist := s.mustSwap("history", app).stdout; !strings.Contains(hist, "rollback") {
		t.Fatalf("history does not show the rollback:\n%s", hist)
	}
}

// imageID is the ID of image ref.
func (s *stack) imageID(ref string) string {
	s.t.Helper()
	img, err := s.docker.Client.ImageInspect(context.Background(), ref)
	if err != nil {
		s.t.Fatalf("inspect %s: %v", ref, err)
	}
	return img.ID
}

// requireImages fails the test unless each image (reference or ID) exists or not as want
// says.
func (s *stack) requireImages(want map[string]bool) {
	s.t.Helper()
	for ref, exists := range want {
		_, err := s.docker.Client.ImageInspect(context.Background(), ref)
		switch {
		case err != nil && !cerrdefs.IsNotFound(err):
			s.t.Fatalf("inspect %s: %v", ref, err)
		case exists && err != nil:
			s.t.Errorf("image %s was removed; it should be kept", ref)
		case !exists && err == nil:
			s.t.Errorf("image %s is still there; cleanup should have removed it", ref)
		}
	}
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// hasContainer reports whether the container named name exists.
func (s *stack) hasContainer(name string) bool {
	s.t.Helper()
	_, err := s.docker.Client.ContainerInspect(context.Background(), name)
	if err != nil && !cerrdefs.IsNotFound(err) {
		s.t.Fatalf("inspect %s: %v", name, err)
	}
	return err == nil
}

// A deploy rolled back (here: an image without a command, so Docker refuses to create
// its container) leaves its image on the host until the next cleanup, which removes it
// by ID — `swap cleanup --dry-run` names it first — and keeps the live image and the
// rollback target.
func TestE2E_TheImageOfADeployRolledBackGoesWithTheNextCleanup(t *testing.T) {
	t.Parallel()
	app := e2eApp("failimg")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    retain: 1\n"))
	brokenRef := "swap-e2e/" + app + ":broken"
	broken := s.docker.LoadImage(t, app+"-broken", brokenRef, time.Now(), nil) // no command

	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	l := s.startLoad(host, "/", 2)
	r := s.swap(nil, "deploy", app, "--image", brokenRef)
	if r.code == 0 || !strings.Contains(r.stdout+r.stderr, "rolled back") {
		t.Fatalf("a deploy of an image without a command: want it rolled back, got %s", r)
	}
	s.requireImages(map[string]bool{broken: true}) // kept until the next cleanup

	dry := s.mustSwap("cleanup", app, "--dry-run")
	if !strings.Contains(dry.stdout, brokenRef+" ("+deployments.ShortID(broken)+") (of a deploy rolled back)") {
		t.Fatalf("cleanup --dry-run does not name the image of the deploy rolled back:\n%s", dry)
	}
	s.requireImages(map[string]bool{broken: true})

	s.mustSwap("deploy", app, "--image", s.v2)
	s.waitAnswer(host, "color=green version=v2")
	l.requireNoFailures(t)
	s.requireImages(map[string]bool{broken: false, s.v1: true, s.v2: true})
	if st := s.mustSwap("cleanup", app); !strings.Contains(st.stdout, "removed 0 image(s)") {
		t.Fatalf("cleanup after the deploy's own: want nothing left to remove:\n%s", st)
	}
}
