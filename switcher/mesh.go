package switcher

import (
	"context"
	"fmt"

	"github.com/swap-dev/swap/deployments"
)

// The mesh (Consul's service-resolver and service-splitter, with consul.mesh) moves
// with the edge: canary steps set both weights, the shift routes both, and whatever
// moves HAProxy back (undo, flip back, rollback, abort, resume) moves the mesh back.
// With Mesh nil every helper here does nothing.

// meshRoute sends all of the app's mesh traffic to c.
func (r *run) meshRoute(ctx context.Context, c deployments.Color, step Step) error {
	s := r.s
	if s.Mesh == nil {
		return nil
	}
	if err := s.Mesh.Route(ctx, r.plan.App, c); err != nil {
		return fmt.Errorf("mesh: route %s to %s: %w", r.plan.App, c, err)
	}
	r.event(step, EventInfo, "mesh: %s's traffic goes to %s", r.plan.App, c)
	return nil
}

// meshSplit sends weight percent of the app's mesh traffic to To (0 ends the split).
func (r *run) meshSplit(ctx context.Context, weight int) error {
	s := r.s
	if s.Mesh == nil {
		return nil
	}
	if err := s.Mesh.Split(ctx, r.plan.App, r.plan.To, weight); err != nil {
		return fmt.Errorf("mesh: split %d%% of %s to %s: %w", weight, r.plan.App, r.plan.To, err)
	}
	return nil
}

// ensureMesh reads the mesh's target before step and routes it to To again when it
// points elsewhere (a split left over, a change from outside): From is not drained or
// retired while mesh clients are still sent to it.
func (r *run) ensureMesh(ctx context.Context, step Step) error {
	s := r.s
	if s.Mesh == nil {
		return nil
	}
	t, err := s.Mesh.Target(ctx, r.plan.App)
	if err != nil {
		return fmt.Errorf("mesh: read where %s's traffic goes before %s: %w", r.plan.App, step, err)
	}
	if t.Live == r.plan.To && t.Weight == 0 {
		return nil
	}
	r.event(step, EventInfo, "mesh: %s's traffic goes to %s, not %s: restoring the planned route", r.plan.App, t, r.plan.To)
	return r.meshRoute(ctx, r.plan.To, step)
}

// meshStatus is the mesh's target for status (nil when the mesh is off).
func (s *Switcher) meshStatus(ctx context.Context, app string) *MeshTarget {
	if s.Mesh == nil {
		return nil
	}
	t, err := s.Mesh.Target(ctx, app)
	if err != nil {
		t.Problem = err.Error()
	}
	return &t
}
