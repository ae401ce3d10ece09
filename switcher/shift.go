package switcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/lbconfig"
)

// The traffic's part of a swap: the shift (canary steps, then one route change on every
// HAProxy, with the mesh), the invariant every move of traffic checks first (a healthy
// server on every HAProxy, and in Consul), and the drain of the old color.

// shift moves the traffic, at the edge (HAProxy) and in the mesh together: canary steps
// first (each sets both weights, then is baked and watched for 5xx), then one atomic
// route change on every HAProxy and the mesh's route. When the mesh cannot follow,
// HAProxy is routed back to From and the step fails: both move, or neither.
func (r *run) shift(ctx context.Context) error {
	s := r.s
	if err := r.ensureInsts(ctx); err != nil {
		return err
	}
	if !r.j.Shifted {
		canary := r.plan.Canary
		if r.plan.From == "" && len(canary) > 0 {
			// Nothing is live: the rest of the traffic would get the fallback's 503.
			r.event(StepShift, EventSkip, "first deploy: no canary steps (nothing else serves the app)")
			canary = nil
		}
		if len(canary) > 0 {
			// The split names the resolver's subsets: the mesh starts from From,
			// whatever an earlier attempt left.
			if err := r.meshRoute(ctx, r.plan.From, StepShift); err != nil {
				return err
			}
		}
		for i, c := range canary {
			if err := r.requireHealthy(ctx); err != nil {
				return err
			}
			if err := r.meshSplit(ctx, c.Weight); err != nil {
				return err
			}
			if err := s.Balancer.Canary(ctx, r.plan.Route, r.plan.ToBackend(), c.Weight); err != nil {
				return err
			}
			r.event(StepShift, EventInfo, "canary %d/%d: %d%% to %s for %s", i+1, len(canary), c.Weight, r.plan.To, c.Bake)
			if err := r.watchColor(ctx, StepShift, c.Bake); err != nil {
				return err
			}
		}
		if err := r.requireHealthy(ctx); err != nil {
			return err
		}
	}
	if r.plan.From == "" {
		// First deploy: there is no From to route back to, so the mesh goes first and a
		// failure leaves HAProxy untouched.
		if err := r.meshRoute(ctx, r.plan.To, StepShift); err != nil {
			return err
		}
	}
	if err := s.Balancer.Route(ctx, r.plan.Route, r.plan.ToBackend()); err != nil {
		if errors.Is(err, lbconfig.ErrPersist) && !r.j.Shifted && r.plan.From != "" {
			// The route is live but HAProxy's files still say From: a reload or restart
			// would send the traffic back to a color this swap is about to drain. Flip
			// back at runtime (the files already say From) and fail the step.
			return r.routeBack(ctx, "HAProxy's files could not be written, so a reload would undo the shift", err)
		}
		return err
	}
	if r.plan.From != "" {
		if err := r.meshRoute(ctx, r.plan.To, StepShift); err != nil {
			if !r.j.Shifted {
				return r.routeBack(ctx, "the mesh could not follow HAProxy (they move together)", err)
			}
			return err
		}
	}
	r.j.Shifted = true
	if err := s.kv().saveJournal(ctx, r.j); err != nil {
		return err
	}
	r.event(StepShift, EventInfo, "%q now routes to %s", r.plan.Route, r.plan.ToBackend())
	if len(r.plan.Canary) > 0 {
		if err := s.Balancer.Canary(ctx, r.plan.Route, r.plan.ToBackend(), 0); err != nil {
			return err
		}
	}
	if err := r.hook(ctx, StepShift, "post_shift", r.app.Hooks.PostShift); err != nil {
		// The traffic has moved: a failing post_shift hook is reported, not undone.
		r.event(StepShift, EventFailed, "%v", err)
	}
	return nil
}

// routeBack routes HAProxy back to From at runtime when the shift's route change could
// not be completed (why), and fails the step with err.
func (r *run) routeBack(ctx context.Context, why string, err error) error {
	s := r.s
	if berr := s.Balancer.Route(ctx, r.plan.Route, r.plan.FromBackend()); berr != nil && !errors.Is(berr, lbconfig.ErrPersist) {
		return fmt.Errorf("%w; and routing %q back to %s failed: %v", err, r.plan.Route, r.plan.FromBackend(), berr)
	}
	return fmt.Errorf("%s; %q was routed back to %s: %w", why, r.plan.Route, r.plan.FromBackend(), err)
}

// requireHealthy holds the invariant: traffic never points at a backend without a
// healthy server on every HAProxy. A HAProxy reloaded since the gate starts the new
// servers again from its state file, DOWN until rise checks pass: that is waited for,
// a few check intervals, before it fails.
func (r *run) requireHealthy(ctx context.Context) error {
	s := r.s
	hc := r.app.HealthCheck
	wait := riseWait(hc)
	deadline := s.now().Add(wait)
	for {
		err := r.healthyOnEveryLB(ctx)
		if err == nil || !errors.Is(err, ErrNotHealthy) || !s.now().Before(deadline) {
			if err != nil && errors.Is(err, ErrNotHealthy) {
				err = fmt.Errorf("%w (waited %s)", err, wait)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(min(hc.Interval, 100*time.Millisecond)):
		}
	}
}

// riseWait is how long traffic waits for a backend's servers to rise on every HAProxy
// (a HAProxy that just got them, or was reloaded, starts them DOWN until rise checks
// pass): a few check intervals.
func riseWait(hc deployments.HealthCheck) time.Duration {
	return max(2*time.Second, time.Duration(hc.Rise+2)*hc.Interval)
}

// everyLBServes says whether every HAProxy instance of stats (backend's server rows) has
// a healthy server in backend that is not a backup; the error wraps ErrNotHealthy.
func everyLBServes(stats []ServerStat, backend string) error {
	up := map[string]bool{}
	lbs := map[string]bool{}
	for _, st := range stats {
		lbs[st.LB] = true
		if st.Healthy() && !st.Backup {
			up[st.LB] = true
		}
	}
	for _, lb := range slices.Sorted(maps.Keys(lbs)) {
		if !up[lb] {
			return fmt.Errorf("%w: HAProxy %s has no healthy server in %s", ErrNotHealthy, lb, backend)
		}
	}
	if len(lbs) == 0 {
		return fmt.Errorf("%w: %s has no servers", ErrNotHealthy, backend)
	}
	return nil
}

func (r *run) healthyOnEveryLB(ctx context.Context) error {
	s := r.s
	stats, err := s.Balancer.Servers(ctx, r.plan.ToBackend())
	if err != nil {
		return err
	}
	if err := everyLBServes(stats, r.plan.ToBackend()); err != nil {
		return err
	}
	regs, err := s.Registry.Instances(ctx, r.plan.App)
	if err != nil {
		return err
	}
	var why []string
	for _, reg := range regs {
		if reg.Color != r.plan.To {
			continue
		}
		if reg.Passing {
			return nil
		}
		why = append(why, reg.ID+": "+reg.Why)
	}
	if len(why) == 0 {
		return fmt.Errorf("%w: Consul has no instance of %s %s", ErrNotHealthy, r.plan.App, r.plan.To)
	}
	return fmt.Errorf("%w: none of %s's instances passes in Consul (%s)", ErrNotHealthy, r.plan.To, strings.Join(why, "; "))
}

// drain stops new sessions to From's servers and waits until they are empty, or
// drain_timeout, then shuts the remaining sessions.
func (r *run) drain(ctx context.Context) error {
	s := r.s
	if r.plan.From == "" {
		r.event(StepDrain, EventSkip, "first deploy: nothing to drain")
		return nil
	}
	// Last look before the old color stops taking traffic: the new color must serve on
	// every HAProxy (else the swap flips back: From is still up) and every HAProxy must
	// route to it (a reload from old files or an outside change may have put From back).
	if err := r.requireHealthy(ctx); err != nil {
		return err
	}
	if err := r.ensureRoute(ctx, StepDrain); err != nil {
		return err
	}
	if err := r.removeBackups(ctx); err != nil {
		return err
	}
	backend := r.plan.FromBackend()
	stats, err := s.Balancer.Servers(ctx, backend)
	if err != nil {
		return err
	}
	if err := s.Balancer.Drain(ctx, backend, serverNames(stats)); err != nil {
		return err
	}
	deadline := time.NewTimer(r.app.DrainTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		busy, err := s.busyServers(ctx, backend)
		if err != nil {
			return err
		}
		if len(busy) == 0 {
			r.event(StepDrain, EventInfo, "%s is empty", backend)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		case <-deadline.C:
			r.event(StepDrain, EventInfo, "drain_timeout %s reached with sessions on %s: shutting them", r.app.DrainTimeout, strings.Join(busy, ", "))
			for _, name := range busy {
				if err := s.Balancer.ShutdownSessions(ctx, backend, name); err != nil {
					return err
				}
			}
			return nil
		}
	}
}

func (s *Switcher) busyServers(ctx context.Context, backend string) ([]string, error) {
	stats, err := s.Balancer.Servers(ctx, backend)
	if err != nil {
		return nil, err
	}
	var busy []string
	for _, st := range stats {
		if !st.Empty() && !slices.Contains(busy, st.Name) {
			busy = append(busy, st.Name)
		}
	}
	return busy, nil
}
