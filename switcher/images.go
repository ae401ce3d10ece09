package switcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/swap-dev/swap/deployments"
)

// Image is one image a deploy ran: the reference it was asked for, the engine's ID of
// the image that reference named then (sha256:..., which names the content whatever
// tags move later) and its repo digest (repo@sha256:...) when it came from a registry.
// Rollback runs the ID; cleanup removes by ID.
type Image struct {
	Ref    string `json:"ref"`
	ID     string `json:"id,omitempty"`
	Digest string `json:"digest,omitempty"`
}

// UnmarshalJSON also reads the plain reference string older states recorded.
func (i *Image) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		*i = Image{}
		return json.Unmarshal(b, &i.Ref)
	}
	type plain Image
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*i = Image(p)
	return nil
}

// Same reports whether i and o are the same image: the same ID when both are known,
// else the same reference.
func (i Image) Same(o Image) bool {
	if i.ID != "" && o.ID != "" {
		return i.ID == o.ID
	}
	return i.Ref == o.Ref
}

// String is "web:v1 (1a2b3c4d5e6f)", or the reference alone when the ID is unknown.
func (i Image) String() string {
	if i.ID == "" {
		return i.Ref
	}
	return fmt.Sprintf("%s (%s)", i.Ref, deployments.ShortID(i.ID))
}

var (
	// ErrImageNotFound is what Runtime.InspectImage answers for an image the host lacks.
	ErrImageNotFound = errors.New("image not found")
	// ErrImageGone says the exact image a swap must run (a rollback's, a switch's) is no
	// longer on the Docker host and cannot be pulled by its digest.
	ErrImageGone = errors.New("the recorded image is no longer on the Docker host")
)

// image and fromImage are the plan's target and live images.
func (p Plan) image() Image { return Image{Ref: p.Image, ID: p.ImageID, Digest: p.ImageDigest} }
func (p Plan) fromImage() Image {
	return Image{Ref: p.FromImage, ID: p.FromImageID, Digest: p.FromImageDigest}
}

// pinImage gives the plan the recorded image img to run, and checks, before anything
// changes, that the host still has it by ID (or can pull it by its repo digest). An
// image recorded without an ID (by an older swap) is resolved by its reference at start.
func (s *Switcher) pinImage(ctx context.Context, p *Plan, img Image, what string) error {
	p.Image, p.ImageID, p.ImageDigest = img.Ref, img.ID, img.Digest
	if img.ID == "" || img.Digest != "" {
		return nil
	}
	if _, err := s.Runtime.InspectImage(ctx, img.ID); err != nil {
		if errors.Is(err, ErrImageNotFound) {
			return imageGone(p.App, img, what)
		}
		return fmt.Errorf("%s: look up %s: %w", p.App, img, err)
	}
	return nil
}

// imageGone is the error of a recorded image the host no longer has; what says which
// image it is ("the image live before green").
func imageGone(app string, img Image, what string) error {
	return fmt.Errorf("%w: %s needs %s (image ID %s), %s, which is not on the Docker host any more and has no repo digest to pull it by; "+
		"swap runs it by ID, not by its tag, which may name another image by now. Nothing was changed. "+
		"Load or rebuild that exact image on the Docker host (docker load), or deploy the version you want with `swap deploy %s --image REF`",
		ErrImageGone, app, img.Ref, deployments.ShortID(img.ID), what, app)
}

// ensureImage makes the plan's image present on the host and pins the plan to its ID,
// in the start step. A deploy resolves its reference once (pulling it when missing) and
// journals the ID, so a resume, the commit and the history record that very image. A
// plan that names an ID already (a rollback, a switch, a resumed deploy) runs exactly
// that image: present, or pulled by its repo digest, else ErrImageGone.
func (r *run) ensureImage(ctx context.Context) error {
	s := r.s
	want := r.plan.image()
	if want.ID == "" {
		img, err := s.Runtime.EnsureImage(ctx, want.Ref)
		if err != nil {
			return err
		}
		r.plan.ImageID, r.plan.ImageDigest = img.ID, img.Digest
		r.j.Plan.ImageID, r.j.Plan.ImageDigest = img.ID, img.Digest
		r.event(StepStart, EventInfo, "%s is image %s", want.Ref, deployments.ShortID(img.ID))
		return s.kv().saveJournal(ctx, r.j)
	}
	if _, err := s.Runtime.InspectImage(ctx, want.ID); err == nil {
		return nil
	} else if !errors.Is(err, ErrImageNotFound) {
		return err
	}
	if want.Digest == "" {
		return imageGone(r.plan.App, want, "the image this swap's plan recorded")
	}
	got, err := s.Runtime.EnsureImage(ctx, want.Digest)
	if err != nil {
		return fmt.Errorf("%w: %s (%s) was removed from the host and pulling it by its digest %s failed: %w",
			ErrImageGone, want.Ref, deployments.ShortID(want.ID), want.Digest, err)
	}
	if got.ID != want.ID {
		return fmt.Errorf("%w: %s pulled by its digest is image %s, not the recorded %s", ErrImageGone, want.Digest, deployments.ShortID(got.ID), deployments.ShortID(want.ID))
	}
	return nil
}

// pruneDangling runs the host-wide prune of dangling images when docker.cleanup asks
// for it (prune_dangling), sparing images younger than prune_until. ran is false when
// it is off, the default.
func (s *Switcher) pruneDangling(ctx context.Context) (n int, ran bool, err error) {
	if s.Config == nil || !s.Config.Docker.Cleanup.PruneDangling {
		return 0, false, nil
	}
	c := s.Config.Docker.Cleanup
	n, err = s.Runtime.PruneDangling(ctx, c.PruneUntil, c.PruneLabels)
	if err != nil {
		return n, true, fmt.Errorf("prune dangling images older than %s: %w", c.PruneUntil, err)
	}
	return n, true, nil
}
