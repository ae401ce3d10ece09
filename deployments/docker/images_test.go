package docker_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/image"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
)

// RemoveDeployed works by image ID: the image swap ran goes even after its tag moved to
// another image, and that other image, a tag swap did not set, and an image a container
// uses all stay.
func TestRemoveDeployed_RemovesTheImageSwapRanByIDAndNothingItsTagNamesNow(t *testing.T) {
	f := newFixture(t)
	c := ctx(t)
	inspect := func(ref string) (image.InspectResponse, bool) {
		t.Helper()
		img, err := f.env.Client.ImageInspect(c, ref)
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		return img, err == nil
	}
	// Deployed as ref, then the tag moved to a new image nobody deployed.
	ref := f.image(t, "moved", "v1")
	moved, err := f.drv.InspectImage(c, ref)
	if err != nil {
		t.Fatal(err)
	}
	f.image(t, "moved", "v1", "ENV NEW=1")
	now, _ := inspect(ref)
	if now.ID == moved.ID {
		t.Fatal("the tag did not move")
	}
	if err := f.drv.RemoveDeployed(c, moved.ID, ref); err != nil {
		t.Fatalf("RemoveDeployed(moved) = %v, want nil", err)
	}
	if _, ok := inspect(moved.ID); ok {
		t.Error("the deployed image whose tag moved is still there")
	}
	if img, ok := inspect(ref); !ok || img.ID != now.ID {
		t.Errorf("%s now names %s (present %v); want the new image %s kept", ref, img.ID, ok, now.ID)
	}

	// Also tagged by someone else: only swap's tag goes, and the error says why.
	shared := f.image(t, "shared", "v1")
	sharedInfo, _ := f.drv.InspectImage(c, shared)
	other := fmt.Sprintf("swap-test-other-%s:keep", f.env.RunID)
	if err := f.env.Client.ImageTag(c, shared, other); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = f.env.Client.ImageRemove(ctx(t), other, image.RemoveOptions{}) })
	err = f.drv.RemoveDeployed(c, sharedInfo.ID, shared)
	if !errors.Is(err, docker.ErrImageTagged) {
		t.Errorf("RemoveDeployed(shared) = %v, want ErrImageTagged", err)
	}
	if img, ok := inspect(sharedInfo.ID); !ok || len(img.RepoTags) != 1 || img.RepoTags[0] != other {
		t.Errorf("the shared image: present %v, tags %v; want it kept with only %s", ok, img.RepoTags, other)
	}

	// In use by a container: refused, kept.
	used := f.image(t, "used", "v1")
	usedInfo, _ := f.drv.InspectImage(c, used)
	f.start(t, f.spec(deployments.Blue, used, 1))
	if err := f.drv.RemoveDeployed(c, usedInfo.ID, used); !errors.Is(err, docker.ErrImageInUse) {
		t.Errorf("RemoveDeployed(used) = %v, want ErrImageInUse", err)
	}
	// Gone already: not an error.
	if err := f.drv.RemoveDeployed(c, moved.ID, ref); err != nil {
		t.Errorf("RemoveDeployed of a removed image = %v, want nil", err)
	}
}

// The prune's until spares dangling images younger than it: a build or pull of another
// tool is never broken.
func TestPruneDangling_SparesDanglingImagesYoungerThanUntil(t *testing.T) {
	f := newFixture(t)
	old := f.env.LoadImage(t, "old", "", time.Now().Add(-48*time.Hour), nil)
	young := f.env.LoadImage(t, "young", "", time.Now().Add(-time.Minute), nil)
	removed, _, err := f.drv.PruneDangling(ctx(t), time.Hour, f.env.Label)
	if err != nil {
		t.Fatalf("PruneDangling: %v", err)
	}
	if len(removed) != 1 || removed[0] != old {
		t.Errorf("PruneDangling(until 1h) removed %v, want exactly the 48h old dangling image %s", removed, old)
	}
	if _, err := f.env.Client.ImageInspect(ctx(t), young); err != nil {
		t.Errorf("the young dangling image %s: %v; want it kept", young, err)
	}
}

// A container created from an image ID, as swap creates them, is listed with the
// reference its swap.image label records, and the ID.
func TestList_ReportsTheReferenceOfAContainerCreatedFromAnImageID(t *testing.T) {
	f := newFixture(t)
	ref := f.image(t, "byid", "v1")
	info, err := f.drv.InspectImage(ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	spec := f.spec(deployments.Blue, info.ID, 1)
	spec.Labels[deployments.LabelImage] = ref
	f.start(t, spec)
	insts, err := f.drv.List(ctx(t), f.app)
	if err != nil {
		t.Fatal(err)
	}
	if len(insts) != 1 || insts[0].Image != ref || insts[0].ImageID != info.ID {
		t.Fatalf("List = %+v, want one instance with image %s and ID %s", insts, ref, info.ID)
	}
}
