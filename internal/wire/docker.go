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
	// PruneLabels narrow PruneDangling to images carrying them (none: every dangling image).
	PruneLabels []string
}

var (
	_ switcher.Runtime     = (*Runtime)(nil)
	_ switcher.UsageReader = (*Runtime)(nil)
)

func (r *Runtime) EnsureImage(ctx context.Context, ref string) error {
	return r.Driver.EnsureImage(ctx, ref)
}

func (r *Runtime) Start(ctx context.Context, s switcher.StartSpec) ([]deployments.Instance, error) {
	labels := maps.Clone(s.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, r.Labels)
	spec := docker.StartSpec{
		App: s.App, Color: s.Color, Deploy: s.Deploy, Image: s.Image, Replicas: s.Replicas,
		Port: s.Port, Env: s.Env, Labels: labels, Command: s.Command, StopTimeout: s.StopTimeout,
	}
	return retryPortInUse(ctx, startAttempts, func() ([]deployments.Instance, error) { return r.Driver.Start(ctx, spec) })
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
	return r.Driver.List(ctx, app)
}

func (r *Runtime) Stop(ctx context.Context, inst deployments.Instance, timeout time.Duration) error {
	return r.Driver.Stop(ctx, inst, timeout)
}

func (r *Runtime) RemoveImage(ctx context.Context, ref string) error {
	err := r.Driver.RemoveImage(ctx, ref)
	if errors.Is(err, docker.ErrImageInUse) {
		return fmt.Errorf("%w: %v", switcher.ErrImageInUse, err)
	}
	if errors.Is(err, docker.ErrImageNotFound) {
		return nil // already gone
	}
	return err
}

func (r *Runtime) PruneDangling(ctx context.Context) (int, error) {
	removed, _, err := r.Driver.PruneDangling(ctx, r.PruneLabels...)
	return len(removed), err
}

func (r *Runtime) Usage(ctx context.Context, containerID string) (switcher.Usage, error) {
	st, err := r.Driver.Stats(ctx, containerID)
	if err != nil {
		return switcher.Usage{}, err
	}
	return switcher.Usage{CPUPercent: st.CPUPercent, MemBytes: st.MemoryUsage, MemLimit: st.MemoryLimit}, nil
}
