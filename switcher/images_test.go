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
