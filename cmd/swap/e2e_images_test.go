package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/image"

	"github.com/swap-dev/swap/deployments"
)

// An image swap deployed whose tag then moved to another image is removed by its ID
// once it falls beyond retain; the image the tag names now, which no deploy ran, stays,
// and so does a dangling image swap never ran.
func TestE2E_CleanupRemovesADeployedImageByIDAfterItsTagMovedAndNothingElse(t *testing.T) {
	t.Parallel()
	app := e2eApp("moved")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+"    retain: 1\n"))
	v3 := s.docker.DemoImage(t, "v3")
	// Another tool's dangling image: built, then its tag moved on.
	foreign := s.imageID(s.docker.DemoImageEnv(t, "foreign", map[string]string{"GEN": "1"}))
	s.docker.DemoImageEnv(t, "foreign", map[string]string{"GEN": "2"})

	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")
	deployed := s.imageID(s.v1)
	// The tag moves to an image no deploy ran: swap's image is now untagged, still live.
	s.docker.DemoImageEnv(t, "v1", map[string]string{"REBUILT": "1"})
	retagged := s.imageID(s.v1)
	if retagged == deployed {
		t.Fatal("the tag did not move")
	}
	s.mustSwap("deploy", app, "--image", s.v2)
	s.requireImages(map[string]bool{deployed: true, retagged: true}) // retain 1 keeps it
	s.mustSwap("deploy", app, "--image", v3)
	s.waitAnswer(host, "color=blue version=v3")

	s.requireImages(map[string]bool{
		deployed: false, // beyond retain: removed by ID
		retagged: true,  // what the tag names now: never deployed, not swap's
		foreign:  true,  // dangling, not swap's
		s.v2:     true,  // retain 1
		v3:       true,  // live
	})
	if r := s.mustSwap("cleanup", app); !strings.Contains(r.stdout, "removed 0 image(s), kept 1") || strings.Contains(r.stdout, "dangling") {
		t.Fatalf("cleanup after the deploys' own: want nothing left to remove and no prune:\n%s", r)
	}
	s.requireImages(map[string]bool{retagged: true, foreign: true, s.v2: true})
}

// docker.cleanup.prune_dangling is opt-in; with it, the prune removes dangling images
// older than prune_until and spares younger ones (a build or pull in progress). The
// prune is narrowed by prune_labels to this test's own images: the engine is shared.
func TestE2E_OptInPruneRemovesOldDanglingImagesButNotYoungOnes(t *testing.T) {
	t.Parallel()
	app := e2eApp("prune")
	s := newStack(t, appConfig(app, oneReplica))
	old := s.docker.LoadImage(t, "old", "", time.Now().Add(-48*time.Hour), nil)
	young := s.docker.LoadImage(t, "young", "", time.Now().Add(-5*time.Minute), nil)
	oldTagged := s.docker.LoadImage(t, "old-tagged", "swap-test-old-"+s.docker.RunID+":keep", time.Now().Add(-48*time.Hour), nil)

	// Off by default: nothing goes.
	if r := s.mustSwap("cleanup", app); strings.Contains(r.stdout, "pruned") {
		t.Fatalf("cleanup pruned without prune_dangling:\n%s", r)
	}
	s.requireImages(map[string]bool{old: true, young: true, oldTagged: true})

	s.setDockerYAML(fmt.Sprintf("docker:\n  cleanup:\n    prune_dangling: true\n    prune_until: 1h\n    prune_labels: [%q]\n", s.docker.Label))
	r := s.mustSwap("cleanup", app)
	if !strings.Contains(r.stdout, "pruned 1 dangling") {
		t.Fatalf("cleanup with prune_dangling: want one image pruned:\n%s", r)
	}
	s.requireImages(map[string]bool{old: false, young: true, oldTagged: true})
}

// A rollback runs the exact image that was live, by ID, though its tag now names other
// content; and when that image is gone it fails before changing anything, naming it.
func TestE2E_RollbackRunsTheExactImageThatWasLiveAndSaysWhenItIsGone(t *testing.T) {
	t.Parallel()
	app := e2eApp("exact")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))
	v3 := s.docker.DemoImage(t, "v3")
	s.mustSwap("deploy", app, "--image", s.v1)
	v1 := s.imageID(s.v1)
	s.mustSwap("deploy", app, "--image", s.v2)
	s.waitAnswer(host, "color=green version=v2")
	// v1's tag now names v3's content.
	if err := s.docker.Client.ImageTag(context.Background(), v3, s.v1); err != nil {
		t.Fatal(err)
	}

	l := s.startLoad(host, "/", 2)
	s.mustSwap("rollback", app)
	s.waitAnswer(host, "color=blue version=v1")
	l.requireNoFailures(t)
	if bodies := strings.Join(mapKeys(l.bodies), " "); strings.Contains(bodies, "version=v3") {
		t.Fatalf("answers by body %v: the moved tag's content was served", l.bodies)
	}
	blue := s.containerList("swap.app="+app, "swap.color=blue")
	if len(blue) != 1 || blue[0].ImageID != v1 {
		t.Fatalf("blue's containers %+v: want one running v1's image %s", blue, v1)
	}
	if st := s.mustSwap("status", app).stdout; !strings.Contains(st, deployments.ShortID(v1)) || !strings.Contains(st, s.v1) {
		t.Fatalf("status does not show %s with its image ID %s:\n%s", s.v1, deployments.ShortID(v1), st)
	}
	if hist := s.mustSwap("history", app).stdout; !strings.Contains(hist, deployments.ShortID(v1)) {
		t.Fatalf("history does not show the image ID %s:\n%s", deployments.ShortID(v1), hist)
	}

	// The image a rollback needs now (v2's, green retired) is removed by hand.
	v2 := s.imageID(s.v2)
	if _, err := s.docker.Client.ImageRemove(context.Background(), s.v2, image.RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	before := s.containerIDs("swap.app=" + app)
	histBefore := s.mustSwap("history", app).stdout
	r := s.swap(nil, "rollback", app)
	if r.code != 2 {
		t.Fatalf("rollback to a removed image: want exit 2 (bad input: not found):\n%s", r)
	}
	for _, want := range []string{s.v2, deployments.ShortID(v2), "Nothing was changed", "docker load", "swap deploy " + app + " --image"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("rollback's error does not say %q:\n%s", want, r)
		}
	}
	if got := s.route(host); got != app+"_blue" {
		t.Errorf("route %q after the refused rollback, want %s_blue", got, app)
	}
	if after := s.containerIDs("swap.app=" + app); !slices.Equal(after, before) {
		t.Errorf("containers %v after the refused rollback, want %v untouched", after, before)
	}
	if hist := s.mustSwap("history", app).stdout; hist != histBefore {
		t.Errorf("history changed by the refused rollback:\n%s\nwas:\n%s", hist, histBefore)
	}
	s.waitAnswer(host, "color=blue version=v1")
}

// setDockerYAML replaces the stack config's `docker: {}` line with section.
func (s *stack) setDockerYAML(section string) {
	s.t.Helper()
	b, err := os.ReadFile(s.cfgPath)
	if err != nil {
		s.t.Fatal(err)
	}
	cfg := strings.Replace(string(b), "docker: {}\n", section, 1)
	if cfg == string(b) {
		s.t.Fatal("the stack config has no `docker: {}` line to replace")
	}
	if err := os.WriteFile(s.cfgPath, []byte(cfg), 0o600); err != nil {
		s.t.Fatal(err)
	}
}

func mapKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
