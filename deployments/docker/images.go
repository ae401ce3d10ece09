package docker

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// ImageInfo is what the engine says of one image: its ID (sha256:...), which names its
// content whatever tags move, and its repo digest (repo@sha256:...) when it came from a
// registry ("" for an image built or imported on the host).
type ImageInfo struct {
	ID     string
	Digest string
}

// InspectImage resolves ref (a reference or an image ID) on the Docker host without
// pulling. An image the host does not have is ErrImageNotFound.
func (d *Driver) InspectImage(ctx context.Context, ref string) (ImageInfo, error) {
	img, err := d.cli.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return ImageInfo{}, fmt.Errorf("%w: %s is not on the Docker host at %s", ErrImageNotFound, ref, d.host)
	}
	if err != nil {
		return ImageInfo{}, d.engineError("inspect image "+ref, err)
	}
	return ImageInfo{ID: img.ID, Digest: repoDigest(ref, img.RepoDigests)}, nil
}

// repoDigest picks, of an image's repo digests, the one of ref's repository (the first
// one when none is).
func repoDigest(ref string, digests []string) string {
	repo := ref
	if i := strings.Index(repo, "@"); i >= 0 {
		repo = repo[:i]
	} else if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	for _, dg := range digests {
		if strings.HasPrefix(dg, repo+"@") {
			return dg
		}
	}
	if len(digests) > 0 {
		return digests[0]
	}
	return ""
}

// imageRef is the image reference a container runs: the swap.image label when swap
// created it from an image ID, else the image it was created from.
func imageRef(c container.InspectResponse) string {
	if ref := c.Config.Labels[deployments.LabelImage]; ref != "" {
		return ref
	}
	return c.Config.Image
}

// EnsureImage makes sure ref is on the Docker host and says which image it is: a local
// image is used as it is, a missing one is pulled, with the credentials Docker's config
// file ($DOCKER_CONFIG/config.json or ~/.docker/config.json) holds for its registry. A
// pull holds the host's pull/prune lock shared. An image that is neither local nor
// pullable is ErrImageNotFound naming ref and the pull's error.
func (d *Driver) EnsureImage(ctx context.Context, ref string) (ImageInfo, error) {
	if info, err := d.InspectImage(ctx, ref); err == nil {
		return info, nil
	} else if !errors.Is(err, ErrImageNotFound) {
		return ImageInfo{}, err
	}
	if err := d.pullImage(ctx, ref); err != nil {
		return ImageInfo{}, err
	}
	info, err := d.InspectImage(ctx, ref)
	if err != nil {
		return ImageInfo{}, fmt.Errorf("pulled %s but the engine does not show it: %w", ref, err)
	}
	return info, nil
}

// pullImage pulls ref, holding the host's pull/prune lock shared.
func (d *Driver) pullImage(ctx context.Context, ref string) error {
	auth, err := registryAuthHeader(d.dockerConfig, ref)
	if errors.Is(err, errCredentialHelper) {
		d.log.Warn("pulling without credentials", zap.String("image", ref), zap.String("reason", err.Error()))
	} else if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}

	release, err := d.lock.acquire(ctx, false)
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer release()

	d.log.Info("pulling image", zap.String("image", ref))
	if err := pull(ctx, d.cli, ref, auth, d.log); err != nil {
		if client.IsErrConnectionFailed(err) {
			return d.engineError("pull "+ref, err)
		}
		return fmt.Errorf("%w: %s is not on the Docker host at %s and pulling it failed: %v; "+
			"build or load it on that host (docker build, docker load), or check the reference and the registry's credentials in %s",
			ErrImageNotFound, ref, d.host, err, d.dockerConfig)
	}
	d.log.Info("image pulled", zap.String("image", ref))
	return nil
}

// pull pulls ref and reads the progress stream to its end: the engine reports a failed
// pull inside the stream, not as an HTTP status.
func pull(ctx context.Context, c client.ImageAPIClient, ref, auth string, log *zap.Logger) error {
	rc, err := c.ImagePull(ctx, ref, image.PullOptions{RegistryAuth: auth})
	if err != nil {
		return err
	}
	defer rc.Close()
	return ReadStream(rc, func(id, status string) {
		if id == "" {
			log.Debug("pull", zap.String("image", ref), zap.String("status", status))
		}
	})
}

// RemoveImage removes the image ref names (untags it, when it has other tags), and the
// untagged parents it leaves behind. It refuses with ErrImageInUse when any container
// (managed by swap or not, running or not) uses the image: it never forces. It holds the
// host's pull/prune lock exclusively, so it never runs during a pull. An image that is
// already gone is not an error.
func (d *Driver) RemoveImage(ctx context.Context, ref string) error {
	what := "remove image " + ref
	return d.removeUnused(ctx, what, ref, []zap.Field{zap.String("image", ref)},
		func(image.InspectResponse) error { return d.removeImage(ctx, what, ref, ref) })
}

// RemoveDeployed removes the image id that swap ran as ref. It works by ID, so an image
// whose tag has since moved to another image is still found, and that other image is
// never touched: ref is untagged only while it still names id. The image goes unless a
// tag other than ref names it (someone else's: then only ref is untagged, and the
// answer is ErrImageTagged), and with it the untagged parents it leaves behind. Like RemoveImage it never forces, refuses with
// ErrImageInUse when any container uses the image, and holds the host's pull/prune
// lock exclusively. An image already gone is not an error.
func (d *Driver) RemoveDeployed(ctx context.Context, id, ref string) error {
	what := fmt.Sprintf("remove image %s (%s)", deployments.ShortID(id), ref)
	return d.removeUnused(ctx, what, id, []zap.Field{zap.String("image", ref), zap.String("id", id)}, func(img image.InspectResponse) error {
		var others []string
		for _, tag := range img.RepoTags {
			if tag != ref && tag != "<none>:<none>" {
				others = append(others, tag)
			}
		}
		if len(others) > 0 {
			// Someone else's tags keep the image; swap takes back only its own tag.
			if slices.Contains(img.RepoTags, ref) {
				deleted, err := d.cli.ImageRemove(ctx, ref, image.RemoveOptions{Force: false, PruneChildren: true})
				if err != nil && !cerrdefs.IsNotFound(err) {
					return d.engineError(what+": untag", err)
				}
				d.logRemoved(ref, deleted)
			}
			return fmt.Errorf("%s: %w %s, which swap did not set: remove those tags to let swap's cleanup remove it",
				what, ErrImageTagged, strings.Join(others, ", "))
		}
		return d.removeImage(ctx, what, img.ID, ref)
	})
}

// removeUnused is what RemoveImage and RemoveDeployed share: under the host's pull/prune
// lock (held exclusively), it inspects target — gone already is not an error, logged
// with gone — refuses with ErrImageInUse when any container uses it, and then leaves the
// removal to remove. what starts every error.
func (d *Driver) removeUnused(ctx context.Context, what, target string, gone []zap.Field, remove func(image.InspectResponse) error) error {
	release, err := d.lock.acquire(ctx, true)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer release()

	img, err := d.cli.ImageInspect(ctx, target)
	if cerrdefs.IsNotFound(err) {
		d.log.Info("image already gone", gone...)
		return nil
	}
	if err != nil {
		return d.engineError(what, err)
	}
	users, err := imageUsers(ctx, d.cli, img.ID)
	if err != nil {
		return d.engineError(what+": list containers", err)
	}
	if len(users) > 0 {
		return fmt.Errorf("%s: %w by container(s) %s; swap never removes an image a container uses, running or not",
			what, ErrImageInUse, strings.Join(users, ", "))
	}
	return remove(img)
}

// removeImage removes target (an image reference or ID, swap ran it as ref) and the
// untagged parents it leaves behind, never forcing. A container created from it since
// the check is ErrImageInUse; an image gone since is not an error.
func (d *Driver) removeImage(ctx context.Context, what, target, ref string) error {
	deleted, err := d.cli.ImageRemove(ctx, target, image.RemoveOptions{Force: false, PruneChildren: true})
	if err != nil {
		if cerrdefs.IsConflict(err) && strings.Contains(err.Error(), "container") {
			return fmt.Errorf("%s: %w: %v", what, ErrImageInUse, err)
		}
		if cerrdefs.IsNotFound(err) {
			return nil
		}
		return d.engineError(what, err)
	}
	d.logRemoved(ref, deleted)
	return nil
}

func (d *Driver) logRemoved(ref string, deleted []image.DeleteResponse) {
	for _, r := range deleted {
		if r.Deleted != "" {
			d.log.Info("image removed", zap.String("image", ref), zap.String("id", r.Deleted))
		} else if r.Untagged != "" {
			d.log.Info("image untagged", zap.String("image", ref), zap.String("tag", r.Untagged))
		}
	}
}

// imageUsers names the containers, of any kind and in any state, whose image is id.
func imageUsers(ctx context.Context, c client.ContainerAPIClient, id string) ([]string, error) {
	cs, err := c.ContainerList(ctx, container.ListOptions{All: true})
	if err != nil {
		return nil, err
	}
	var users []string
	for _, s := range cs {
		if s.ImageID == id {
			name := s.ID
			if len(s.Names) > 0 {
				name = strings.TrimPrefix(s.Names[0], "/")
			}
			users = append(users, fmt.Sprintf("%s (%s)", name, s.State))
		}
	}
	return users, nil
}

// PruneDangling removes dangling images (untagged, not parents of other images) that no
// container uses, like `docker image prune`; it never removes tagged images and never
// touches volumes. until > 0 spares images created less than until ago (the engine's
// `until` filter: a build in progress makes young untagged images); labels ("key" or
// "key=value") narrow it to images carrying them all. It holds the host's pull/prune
// lock exclusively, waiting for pulls in progress. It returns the IDs of the removed
// images (untagged parents included, layers not) and the bytes reclaimed.
func (d *Driver) PruneDangling(ctx context.Context, until time.Duration, labels ...string) (removed []string, reclaimed uint64, err error) {
	release, err := d.lock.acquire(ctx, true)
	if err != nil {
		return nil, 0, fmt.Errorf("prune dangling images: %w", err)
	}
	defer release()

	f := filters.NewArgs(filters.Arg("dangling", "true"))
	if until > 0 {
		f.Add("until", until.String())
	}
	for _, l := range labels {
		f.Add("label", l)
	}
	// The engine reports deleted layers among deleted images; the images known before
	// the prune tell them apart.
	before, err := d.cli.ImageList(ctx, image.ListOptions{All: true})
	if err != nil {
		return nil, 0, d.engineError("prune dangling images: list images", err)
	}
	known := make(map[string]bool, len(before))
	for _, img := range before {
		known[img.ID] = true
	}
	rep, err := d.cli.ImagesPrune(ctx, f)
	// The engine runs one prune at a time and refuses a second (409) while one runs
	// (another swap's cleanup, a `docker image prune`): wait for it, within ctx.
	for attempt := 0; err != nil && isPruneRunning(err) && attempt < 50; attempt++ {
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("prune dangling images: another prune is running: %w", ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
		rep, err = d.cli.ImagesPrune(ctx, f)
	}
	if err != nil {
		return nil, 0, d.engineError("prune dangling images", err)
	}
	for _, r := range rep.ImagesDeleted {
		if r.Deleted != "" && known[r.Deleted] {
			removed = append(removed, r.Deleted)
		}
	}
	d.log.Info("dangling images pruned", zap.Int("images", len(removed)), zap.Uint64("bytes", rep.SpaceReclaimed))
	return removed, rep.SpaceReclaimed, nil
}

// isPruneRunning tells the engine's refusal of a prune while another one runs.
func isPruneRunning(err error) bool {
	return strings.Contains(err.Error(), "prune operation is already running")
}
