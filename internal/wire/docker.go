package wire

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/switcher"
)

// Runtime adapts the Docker driver to switcher.Runtime.
type Runtime struct {
	Driver *docker.Driver
	// Labels are added to every container swap starts (tests add their swap.test label).
	Labels map[string]string
	// Name is the Docker host's name (docker.hosts[].name) when it is one of several:
	// its instances carry it. Empty for the one engine of docker.host.
	Name string
}

var (
	_ switcher.Runtime     = (*Runtime)(nil)
	_ switcher.UsageReader = (*Runtime)(nil)
)

func (r *Runtime) EnsureImage(ctx context.Context, ref string) (switcher.Image, error) {
	info, err := r.Driver.EnsureImage(ctx, ref)
	return switcher.Image{Ref: ref, ID: info.ID, Digest: info.Digest}, err
}

func (r *Runtime) InspectImage(ctx context.Context, ref string) (switcher.Image, error) {
	info, err := r.Driver.InspectImage(ctx, ref)
	if errors.Is(err, docker.ErrImageNotFound) {
		return switcher.Image{}, fmt.Errorf("%w: %v", switcher.ErrImageNotFound, err)
	}
	return switcher.Image{Ref: ref, ID: info.ID, Digest: info.Digest}, err
}

func (r *Runtime) Start(ctx context.Context, s deployments.StartSpec) ([]deployments.Instance, error) {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, r.Labels)
	s.Labels = labels
	insts, err := retryPortInUse(ctx, startAttempts, func() ([]deployments.Instance, error) { return r.Driver.Start(ctx, s) })
	return r.named(insts), err
}

// named marks instances with the runtime's host name.
func (r *Runtime) named(insts []deployments.Instance) []deployments.Instance {
	for i := range insts {
		insts[i].DockerHost = r.Name
	}
	return insts
}

// startAttempts bounds the tries of Start when a container's host port turned out to be
// taken. The driver (docker.host_ports) or Docker (ephemeral) picks host ports from the
// kernel's ephemeral range, where outgoing connections take their local ports too: on a
// busy host a picked port can be held by a connection, and starting the container fails
// with "address already in use". Each try gets another port (the driver removes what a
// failed Start created), so trying again is the fix; a fixed host port is never asked
// for here.
const startAttempts = 3

// retryPortInUse calls start up to attempts times while it fails with
// docker.ErrPortInUse and ctx lasts.
func retryPortInUse(ctx context.Context, attempts int, start func() ([]deployments.Instance, error)) ([]deployments.Instance, error) {
	for i := 1; ; i++ {
		insts, err := start()
		if err == nil || !errors.Is(err, docker.ErrPortInUse) || i >= attempts || ctx.Err() != nil {
			return insts, err
		}
	}
}

func (r *Runtime) List(ctx context.Context, app string) ([]deployments.Instance, error) {
	insts, err := r.Driver.List(ctx, app)
	return r.named(insts), err
}

func (r *Runtime) Stop(ctx context.Context, inst deployments.Instance, timeout time.Duration) error {
	return r.Driver.Stop(ctx, inst, timeout)
}

func (r *Runtime) RemoveImage(ctx context.Context, img switcher.Image) error {
	var err error
	if img.ID != "" {
		err = r.Driver.RemoveDeployed(ctx, img.ID, img.Ref)
	} else {
		err = r.Driver.RemoveImage(ctx, img.Ref) // recorded by an older swap, without its ID
	}
	if errors.Is(err, docker.ErrImageInUse) || errors.Is(err, docker.ErrImageTagged) {
		return fmt.Errorf("%w: %v", switcher.ErrImageInUse, err)
	}
	if errors.Is(err, docker.ErrImageNotFound) {
		return nil // already gone
	}
	return err
}

func (r *Runtime) PruneDangling(ctx context.Context, until time.Duration, labels []string) (int, error) {
	removed, _, err := r.Driver.PruneDangling(ctx, until, labels...)
	return len(removed), err
}

func (r *Runtime) Usage(ctx context.Context, containerID string) (switcher.Usage, error) {
	st, err := r.Driver.Stats(ctx, containerID)
	if err != nil {
		return switcher.Usage{}, err
	}
	return switcher.Usage{CPUPercent: st.CPUPercent, MemBytes: st.MemoryUsage, MemLimit: st.MemoryLimit}, nil
}
