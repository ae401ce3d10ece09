package switcher

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

func TestRollbackRunsTheImageThatWasLiveEvenAfterItsTagMoved(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	v1 := h.state(t).Colors[deployments.Blue].ImageID
	h.deploy(t, "web:v2")
	if moved := h.rt.tag("web:v1"); moved == v1 {
		t.Fatal("the tag did not move")
	}
	if _, err := h.s.Rollback(context.Background(), "web", Options{}); err != nil {
		t.Fatalf("rollback: %v", err)
	}
	st := h.state(t)
	if cs := st.Colors[deployments.Blue]; cs.Image != "web:v1" || cs.ImageID != v1 {
		t.Fatalf("blue after rollback runs %s %s, want web:v1 %s", cs.Image, cs.ImageID, v1)
	}
	insts, _ := h.rt.List(context.Background(), "web")
	for _, in := range insts {
		if in.Color == deployments.Blue && in.ImageID != v1 {
			t.Errorf("%s runs image %s, want the original web:v1 %s", in.ID(), in.ImageID, v1)
		}
	}
	if last := st.History[len(st.History)-1]; last.Op != OpRollback || last.ImageID != v1 {
		t.Errorf("history's last record %+v, want the rollback with image %s", last, v1)
	}
}

func TestRollbackFailsBeforeChangingAnythingWhenTheImageIsGone(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	v1 := h.state(t).Colors[deployments.Blue].ImageID
	h.deploy(t, "web:v2")
	h.rt.dropImage(v1)
	before := h.state(t)
	_, err := h.s.Rollback(context.Background(), "web", Options{})
	if !errors.Is(err, ErrImageGone) {
		t.Fatalf("rollback = %v, want ErrImageGone", err)
	}
	for _, want := range []string{"web:v1", deployments.ShortID(v1), "Nothing was changed", "swap deploy web --image"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	after := h.state(t)
	if after.Live != deployments.Green || len(after.History) != len(before.History) || h.rt.colors()[deployments.Blue] != 0 {
		t.Fatalf("something changed: live %s, %d history records (was %d), containers %v", after.Live, len(after.History), len(before.History), h.rt.colors())
	}
	if h.store.has(JournalKey("web")) {
		t.Fatal("a journal was written")
	}
}

func TestCleanupRemovesByIDAnImageWhoseTagMovedAndNotWhatTheTagNamesNow(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Retain = 1 })
	h.deploy(t, "web:v1")
	v1 := h.state(t).Colors[deployments.Blue].ImageID
	newer := h.rt.tag("web:v1") // web:v1 now names an image no deploy ran
	h.deploy(t, "web:v2")
	h.deploy(t, "web:v3")
	if _, err := h.rt.InspectImage(context.Background(), v1); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("the deployed web:v1 %s is still there (%v); cleanup should have removed it by ID", v1, err)
	}
	if img, err := h.rt.InspectImage(context.Background(), "web:v1"); err != nil || img.ID != newer {
		t.Errorf("web:v1 = %+v, %v; want the newer image %s kept", img, err, newer)
	}
	if prev := h.state(t).Previous; len(prev) != 1 || prev[0].Ref != "web:v2" {
		t.Errorf("previous %v, want [web:v2]", prev)
	}
}

func TestStateReadsPreviousImagesRecordedAsPlainReferences(t *testing.T) {
	var st State
	if err := json.Unmarshal([]byte(`{"app":"web","previous":["web:v1",{"ref":"web:v2","id":"sha256:ab"}]}`), &st); err != nil {
		t.Fatal(err)
	}
	want := []Image{{Ref: "web:v1"}, {Ref: "web:v2", ID: "sha256:ab"}}
	if !slices.Equal(st.Previous, want) {
		t.Fatalf("previous %+v, want %+v", st.Previous, want)
	}
}

func TestCleanupPrunesDanglingImagesOnlyWhenConfiguredWithItsUntilAndLabels(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	if _, err := h.s.Cleanup(context.Background(), "web", Options{}); err != nil {
		t.Fatal(err)
	}
	if len(h.rt.prunes) != 0 {
		t.Fatalf("pruned %v with prune_dangling off (the default)", h.rt.prunes)
	}
	h.s.Config.Docker.Cleanup = deployments.CleanupConfig{PruneDangling: true, PruneUntil: 2 * time.Hour, PruneLabels: []string{"team=web"}}
	h.deploy(t, "web:v2")
	res, err := h.s.Cleanup(context.Background(), "web", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"2h0m0s [team=web]", "2h0m0s [team=web]"} // the deploy's cleanup step, then swap cleanup
	if !slices.Equal(h.rt.prunes, want) || !strings.Contains(res.Message, "pruned 0 dangling") {
		t.Fatalf("prunes %v (want %v), message %q", h.rt.prunes, want, res.Message)
	}
}

// A deploy journals the image ID its reference resolved to: a resume after the shift
// records that image, though the tag has moved meanwhile.
func TestResumeRecordsTheImageTheDeployStartedThoughItsTagMoved(t *testing.T) {
	h := newHarness(t, nil)
	h.deploy(t, "web:v1")
	h.deployCrashing(t, "web:v2", StepShift, "after")
	j, ok, err := h.s.kv().journal(context.Background(), "web")
	if err != nil || !ok || j.Plan.ImageID == "" {
		t.Fatalf("journal %+v (found %v, %v): want the plan's image ID recorded", j, ok, err)
	}
	started := j.Plan.ImageID
	h.rt.tag("web:v2")
	if _, err := h.s.Resume(context.Background(), "web", Options{}); err != nil {
		t.Fatalf("resume: %v", err)
	}
	if cs := h.state(t).Colors[deployments.Green]; cs.ImageID != started {
		t.Fatalf("green recorded with image %s, want the one it started, %s", cs.ImageID, started)
	}
}

func TestCleanupRemovesTheImageOfADeployRolledBackButNotOneLiveOrKeptSince(t *testing.T) {
	h := newHarness(t, func(a *deployments.App) { a.Retain = 1 })
	ctx := context.Background()
	h.deploy(t, "web:v1")
	v1 := h.state(t).Colors[deployments.Blue].ImageID

	// web:v2 fails to start: rolled back, its image recorded for the next cleanup.
	h.rt.startErr = errors.New("no space left on device")
	if _, err := h.s.Deploy(ctx, "web", "web:v2", Options{}); err == nil {
		t.Fatal("the deploy of web:v2 did not fail")
	}
	h.rt.startErr = nil
	bad, err := h.rt.InspectImage(ctx, "web:v2")
	if err != nil {
		t.Fatal(err)
	}
	if failed := h.state(t).Failed; len(failed) != 1 || failed[0].ID != bad.ID || failed[0].Ref != "web:v2" {
		t.Fatalf("failed images %+v, want web:v2 %s", failed, bad.ID)
	}
	// A dry run of swap cleanup names it and removes nothing.
	res, err := h.s.Cleanup(ctx, "web", Options{DryRun: true})
	if err != nil || !strings.Contains(res.Message, "web:v2 ("+deployments.ShortID(bad.ID)+") (of a deploy rolled back)") {
		t.Fatalf("dry run: %v, %q", err, res.Message)
	}
	if _, err := h.rt.InspectImage(ctx, bad.ID); err != nil {
		t.Fatalf("the dry run removed web:v2: %v", err)
	}

	// web:v3 is built and deployed: its cleanup removes web:v2 by ID, keeps v1 (retain 1).
	h.deploy(t, "web:v3")
	if _, err := h.rt.InspectImage(ctx, bad.ID); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("web:v2 %s of the deploy rolled back is still there (%v)", bad.ID, err)
	}
	if _, err := h.rt.InspectImage(ctx, v1); err != nil {
		t.Errorf("web:v1, the rollback target, was removed: %v", err)
	}
	if st := h.state(t); len(st.Failed) != 0 {
		t.Errorf("failed images after the cleanup: %+v", st.Failed)
	}

	// web:v4 fails, then is deployed again unchanged and works: it is live, not removed,
	// and no longer recorded as failed.
	h.rt.startErr = errors.New("port in use")
	if _, err := h.s.Deploy(ctx, "web", "web:v4", Options{}); err == nil {
		t.Fatal("the deploy of web:v4 did not fail")
	}
	h.rt.startErr = nil
	h.deploy(t, "web:v4")
	st := h.state(t)
	v4 := st.Colors[st.Live].ImageID
	if _, err := h.rt.InspectImage(ctx, v4); err != nil || st.Colors[st.Live].Image != "web:v4" {
		t.Fatalf("live %+v; web:v4 %s: %v", st.Colors[st.Live], v4, err)
	}
	if len(st.Failed) != 0 {
		t.Errorf("failed images %+v: web:v4 is live now", st.Failed)
	}

	// swap cleanup removes a failed image too.
	h.rt.startErr = errors.New("oom")
	if _, err := h.s.Deploy(ctx, "web", "web:v5", Options{}); err == nil {
		t.Fatal("the deploy of web:v5 did not fail")
	}
	h.rt.startErr = nil
	v5, _ := h.rt.InspectImage(ctx, "web:v5")
	if res, err := h.s.Cleanup(ctx, "web", Options{}); err != nil || !strings.Contains(res.Message, "removed 1 image(s)") {
		t.Fatalf("cleanup: %v, %+v", err, res)
	}
	if _, err := h.rt.InspectImage(ctx, v5.ID); !errors.Is(err, ErrImageNotFound) {
		t.Errorf("swap cleanup left web:v5 of the deploy rolled back (%v)", err)
	}
	if _, err := h.rt.InspectImage(ctx, v4); err != nil {
		t.Errorf("swap cleanup removed the live web:v4: %v", err)
	}
}
