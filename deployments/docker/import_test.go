package docker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/testenv"
)

func TestImportImage_MakesARunnableFromScratchImageWithItsChangesAndLabels(t *testing.T) {
	f := newFixture(t)
	ref := fmt.Sprintf("swap-test-import-%s:v7", f.env.RunID)
	files := map[string][]byte{"demoapp": mustRead(t, testenv.DemoBinary(t)), "etc/motd": []byte("hello\n")}
	changes := []string{"ENV VERSION=v7", `ENTRYPOINT ["/demoapp"]`, "EXPOSE 8080/tcp"}
	labels := f.env.Labels(map[string]string{"swap.demo": "run 1", "note": `a "quoted" \ value`})

	id, err := f.drv.ImportImage(ctx(t), ref, files, changes, labels)
	if err != nil {
		t.Fatalf("ImportImage: %v", err)
	}
	img, err := f.env.Client.ImageInspect(ctx(t), ref)
	if err != nil {
		t.Fatal(err)
	}
	if img.ID != id {
		t.Errorf("ImportImage returned %s, the engine says %s", id, img.ID)
	}
	if !slices.Contains(img.Config.Env, "VERSION=v7") || !slices.Equal(img.Config.Entrypoint, []string{"/demoapp"}) {
		t.Errorf("config env %v entrypoint %v, want VERSION=v7 and /demoapp", img.Config.Env, img.Config.Entrypoint)
	}
	for k, v := range labels {
		if img.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, img.Config.Labels[k], v)
		}
	}
	if len(img.RootFS.Layers) != 1 {
		t.Errorf("%d layers, want the one imported (FROM scratch)", len(img.RootFS.Layers))
	}

	// The image runs: swap starts it like any other and the binary answers.
	inst := f.start(t, f.spec(deployments.Blue, ref, 1))[0]
	testenv.WaitFor(t, 20*time.Second, "the imported demoapp answers", func() error {
		body, err := get(fmt.Sprintf("http://%s/", inst.Addr()))
		if err != nil {
			return err
		}
		if !strings.Contains(body, "version=v7") {
			return fmt.Errorf("GET / = %q, want version=v7", body)
		}
		return nil
	})
}

func TestImportImage_RefusesBadInputBeforeAskingTheEngine(t *testing.T) {
	// A driver on an engine that does not exist: every case must fail before any call.
	drv, err := docker.New(deployments.DockerConfig{Host: "unix://" + t.TempDir() + "/none.sock"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Close()
	bin := map[string][]byte{"app": []byte("x")}
	tests := []struct {
		name    string
		ref     string
		files   map[string][]byte
		changes []string
		labels  map[string]string
		want    string
	}{
		{"an empty reference", "", bin, nil, nil, "reference is empty"},
		{"no files", "x:1", nil, nil, nil, "no files"},
		{"an absolute file name", "x:1", map[string][]byte{"/app": nil}, nil, nil, `"/app"`},
		{"a file name leaving the image", "x:1", map[string][]byte{"../app": nil}, nil, nil, `"../app"`},
		{"an unclean file name", "x:1", map[string][]byte{"a//b": nil}, nil, nil, `"a//b"`},
		{"a change of two lines", "x:1", bin, []string{"ENV A=1\nRUN rm -rf /"}, nil, "one line"},
		{"a label key with a space", "x:1", bin, nil, map[string]string{"a b": "c"}, `"a b"`},
		{"a label value of two lines", "x:1", bin, nil, map[string]string{"a": "b\nc"}, "one line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := drv.ImportImage(context.Background(), tc.ref, tc.files, tc.changes, tc.labels)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ImportImage = %v, want an error mentioning %s", err, tc.want)
			}
			if errors.Is(err, docker.ErrUnreachable) {
				t.Fatalf("ImportImage asked the engine: %v", err)
			}
		})
	}
}

func TestRemoveLabelled_RemovesSwapsContainersAndUnusedImagesButNothingElse(t *testing.T) {
	f := newFixture(t)
	c := ctx(t)
	mark := "swap.demo=" + f.env.RunID
	bin := mustRead(t, testenv.DemoBinary(t))
	changes := []string{`ENTRYPOINT ["/demoapp"]`, "EXPOSE 8080"}
	importRef := func(tag string, labels map[string]string) string {
		t.Helper()
		ref := fmt.Sprintf("swap-test-labelled-%s:%s", f.env.RunID, tag)
		if _, err := f.drv.ImportImage(c, ref, map[string][]byte{"demoapp": bin}, changes, f.env.Labels(labels)); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	marked := map[string]string{"swap.demo": f.env.RunID}
	v1 := importRef("v1", marked)         // used by swap's marked containers only
	v2 := importRef("v2", marked)         // used by nothing
	shared := importRef("shared", marked) // used by a container swap does not manage
	other := importRef("other", nil)      // not marked

	spec := f.spec(deployments.Blue, v1, 2)
	spec.Labels = f.env.Labels(marked)
	ours := f.start(t, spec)
	notMarked := f.start(t, f.spec(deployments.Green, other, 1))[0]
	unmanaged := f.runUnmanaged(t, "swap-test-unmanaged-"+f.env.RunID, shared, true)

	got, err := f.drv.RemoveLabelled(c, mark, 5*time.Second)
	if !errors.Is(err, docker.ErrImageInUse) {
		t.Errorf("RemoveLabelled = %v, want ErrImageInUse for %s", err, shared)
	}
	wantContainers := []string{ours[0].ID(), ours[1].ID()}
	slices.Sort(got.Containers)
	if !slices.Equal(got.Containers, wantContainers) {
		t.Errorf("removed containers %v, want %v", got.Containers, wantContainers)
	}
	slices.Sort(got.Images)
	if want := []string{v1, v2}; !slices.Equal(got.Images, want) {
		t.Errorf("removed images %v, want %v", got.Images, want)
	}
	for _, in := range ours {
		if f.exists(t, in.ContainerID) {
			t.Errorf("%s is still there", in.ID())
		}
	}
	for name, id := range map[string]string{"unmarked": notMarked.ContainerID, "unmanaged": unmanaged} {
		if !f.exists(t, id) {
			t.Errorf("the %s container was removed", name)
		}
	}
	for ref, want := range map[string]bool{v1: false, v2: false, shared: true, other: true} {
		_, err := f.env.Client.ImageInspect(c, ref)
		if err != nil && !cerrdefs.IsNotFound(err) {
			t.Fatal(err)
		}
		if present := err == nil; present != want {
			t.Errorf("image %s present = %v, want %v", ref, present, want)
		}
	}

	// Again: nothing left to remove but the image still in use.
	again, err := f.drv.RemoveLabelled(c, mark, time.Second)
	if len(again.Containers)+len(again.Images) != 0 || !errors.Is(err, docker.ErrImageInUse) {
		t.Errorf("second RemoveLabelled = %+v, %v; want nothing removed and ErrImageInUse", again, err)
	}
}
