package switcher

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swap-dev/swap/health"
)

// verify watches what the clients get from To for the verify window: its 5xx share
// (HAProxy's own 502/503/504 included) and its health in all three views. Over the
// budget, or with no healthy instance left, it fails and the swap flips back to From,
// which is still up: until then From's instances are backup servers of To's backend, so
// HAProxy already sends them the traffic the moment To has no server up.
func (r *run) verify(ctx context.Context) error {
	if r.plan.Verify.Window <= 0 {
		r.event(StepVerify, EventSkip, "no verify window configured")
		return nil
	}
	if r.plan.From == "" {
		r.event(StepVerify, EventSkip, "first deploy: no color to roll back to")
		return nil
	}
	return r.watchColor(ctx, StepVerify, r.plan.Verify.Window)
}

// min5xxSample is how many responses a 5xx rate needs before it is judged.
const min5xxSample = 20

// watchEvery is how often watchColor reads HAProxy's counters.
const watchEvery = 200 * time.Millisecond

// watchColor returns after d, or earlier with an error wrapping ErrTooMany5xx when To's
// 5xx share since the call, over at least min5xxSample answers, exceeds
// verify.max_5xx_rate, or wrapping ErrNotHealthy when none of To's instances is healthy
// in all three views (swap's probe, Consul, HAProxy).
func (r *run) watchColor(ctx context.Context, step Step, d time.Duration) error {
	s := r.s
	if err := r.ensureInsts(ctx); err != nil {
		return err
	}
	counts := newRespDelta()
	cur, err := s.Balancer.Counters(ctx, r.plan.ToBackend())
	if err != nil {
		return err
	}
	counts.observe(cur)
	mon, err := r.monitorColor(ctx, step)
	if err != nil {
		return err
	}
	defer mon.stop()
	end := time.NewTimer(d)
	defer end.Stop()
	tick := time.NewTicker(watchEvery)
	defer tick.Stop()
	check := func() error {
		cur, err := s.Balancer.Counters(ctx, r.plan.ToBackend())
		if err != nil {
			return err
		}
		total, errs := counts.observe(cur)
		if total >= min5xxSample && float64(errs)/float64(total) > r.plan.Verify.Max5xxRate {
			return fmt.Errorf("%w: %d of %d answers for %s were 5xx (%.1f%%, max %.1f%%)",
				ErrTooMany5xx, errs, total, r.plan.ToBackend(), 100*float64(errs)/float64(total), 100*r.plan.Verify.Max5xxRate)
		}
		return mon.anyHealthy()
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if err := check(); err != nil {
				return err
			}
		case <-end.C:
			return check()
		}
	}
}

// respDelta sums the answers and 5xx a backend sent since the first observation, per
// HAProxy instance: a counter that went back (that HAProxy reloaded) counts from zero
// again instead of wrapping into a huge difference.
type respDelta struct {
	last        map[string]BackendCounters
	total, errs uint64
}

func newRespDelta() *respDelta { return &respDelta{last: map[string]BackendCounters{}} }

// observe adds what each instance answered since its last observation and returns the
// sums. An instance seen for the first time is the baseline.
func (d *respDelta) observe(rows []BackendCounters) (total, errs uint64) {
	first := len(d.last) == 0
	for _, c := range rows {
		prev, seen := d.last[c.LB]
		d.last[c.LB] = c
		switch {
		case !seen && first:
			continue // the baseline
		case !seen || c.Responses < prev.Responses || c.Errors5xx < prev.Errors5xx:
			// New to us, or its counters started over (a reload): all it counts is new.
			d.total += c.Responses
			d.errs += c.Errors5xx
		default:
			d.total += c.Responses - prev.Responses
			d.errs += c.Errors5xx - prev.Errors5xx
		}
	}
	return d.total, d.errs
}

// colorMonitor probes To's instances in the three views while traffic is on them.
type colorMonitor struct {
	sched   *health.Scheduler
	color   string
	backend string
	// targets lists each instance's target IDs.
	targets map[string][]string
	stop    func()
}

// monitorColor starts probing To's instances in the three views, reporting transitions
// as events of step.
func (r *run) monitorColor(ctx context.Context, step Step) (*colorMonitor, error) {
	hc := r.app.HealthCheck
	sched, views, poll := r.newViews()
	m := &colorMonitor{sched: sched, color: string(r.plan.To), backend: r.plan.ToBackend(), targets: map[string][]string{}}
	for _, in := range r.insts {
		// Consul and HAProxy apply their own fall; two reads in a row must say so, so
		// that one failed read of their API is not taken for a dead instance.
		targets, err := instanceTargets(in, hc, views, poll, 2)
		if err != nil {
			return nil, err
		}
		for _, t := range targets {
			if err := sched.Add(t); err != nil {
				return nil, err
			}
			m.targets[in.ID()] = append(m.targets[in.ID()], t.ID)
		}
	}
	m.stop = r.runViews(ctx, sched, step)
	return m, nil
}

// anyHealthy fails with ErrNotHealthy when every instance is unhealthy in at least one
// view (an instance not yet judged again counts as healthy: it passed the gate).
func (m *colorMonitor) anyHealthy() error {
	var why []string
	ids := make([]string, 0, len(m.targets))
	for id := range m.targets {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		down := ""
		for _, tid := range m.targets[id] {
			st, ok := m.sched.Status(tid)
			if ok && st.State == health.StateUnhealthy {
				down = tid
				if st.LastFailure.Err != nil {
					down += ": " + st.LastFailure.Err.Error()
				}
				break
			}
		}
		if down == "" {
			return nil
		}
		why = append(why, down)
	}
	if len(ids) == 0 {
		return fmt.Errorf("%w: %s has no instances", ErrNotHealthy, m.color)
	}
	return fmt.Errorf("%w: none of %s's instances is healthy (%s)", ErrNotHealthy, m.color, strings.Join(why, "; "))
}

// backupServers are From's running instances as backup servers of To's backend.
func (r *run) backupServers(ctx context.Context) ([]Server, error) {
	s := r.s
	if r.plan.From == "" {
		return nil, nil
	}
	from, err := s.colorInstances(ctx, r.plan.App, r.plan.From)
	if err != nil {
		return nil, err
	}
	var out []Server
	for _, in := range from {
		if in.State == "running" && in.Port > 0 {
			out = append(out, Server{Name: in.ID(), Host: in.Host, Port: in.Port, Backup: true})
		}
	}
	return out, nil
}

// removeBackups takes From's backup servers out of To's backend: the drain starts, and
// From will not be there to fall back on.
func (r *run) removeBackups(ctx context.Context) error {
	s := r.s
	backend := r.plan.ToBackend()
	stats, err := s.Balancer.Servers(ctx, backend)
	if err != nil {
		return err
	}
	var names []string
	for _, st := range stats {
		if st.Backup && !slices.Contains(names, st.Name) {
			names = append(names, st.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if err := s.Balancer.RemoveServers(ctx, backend, names); err != nil {
		return fmt.Errorf("remove the backup servers %s from %s: %w", strings.Join(names, ", "), backend, err)
	}
	r.event(StepDrain, EventInfo, "removed %s's backup servers from %s", r.plan.From, backend)
	return nil
}

// ensureRoute reads the live route back from every HAProxy before step: one that does
// not route to To (reloaded from files that lag, changed from outside) gets the planned
// route again, so that the step never drains or retires the color that serves. The
// mesh's route is read and restored the same way (ensureMesh).
func (r *run) ensureRoute(ctx context.Context, step Step) error {
	s := r.s
	wrong := func() ([]string, error) {
		routes, err := s.Balancer.Routes(ctx, r.plan.Route)
		if err != nil {
			return nil, fmt.Errorf("read the live route of %q before %s: %w", r.plan.Route, step, err)
		}
		var out []string
		for lb, be := range routes {
			if be != r.plan.ToBackend() {
				out = append(out, fmt.Sprintf("HAProxy %s routes %q to %q", lb, r.plan.Route, be))
			}
		}
		slices.Sort(out)
		return out, nil
	}
	bad, err := wrong()
	if err != nil {
		return err
	}
	if len(bad) == 0 {
		return r.ensureMesh(ctx, step)
	}
	r.event(step, EventInfo, "%s, not %s (reloaded from old files, or changed from outside?): restoring the planned route", strings.Join(bad, "; "), r.plan.ToBackend())
	if err := r.requireHealthy(ctx); err != nil {
		return fmt.Errorf("%s: %w; not restoring the route to an unhealthy %s", strings.Join(bad, "; "), err, r.plan.To)
	}
	if err := s.Balancer.Route(ctx, r.plan.Route, r.plan.ToBackend()); err != nil {
		return fmt.Errorf("restore the route of %q to %s before %s: %w (stopped: %s is not drained)", r.plan.Route, r.plan.ToBackend(), step, err, r.plan.From)
	}
	if bad, err = wrong(); err != nil {
		return err
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s after restoring it; stopped before %s so that the live color is not drained", ErrLiveColor, strings.Join(bad, "; "), step)
	}
	return r.ensureMesh(ctx, step)
}
