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

// hookEnv is what every hook sees.
func (r *run) hookEnv() []string {
	return []string{"SWAP_APP=" + r.plan.App, "SWAP_COLOR=" + string(r.plan.To),
		"SWAP_IMAGE=" + r.plan.Image, "SWAP_DEPLOY=" + r.plan.Deploy}
}

func (r *run) hook(ctx context.Context, step Step, name, command string) error {
	s := r.s
	if command == "" {
		return nil
	}
	if s.Hooks == nil {
		return fmt.Errorf("hook %s is configured but no hook runner is wired", name)
	}
	r.event(step, EventInfo, "running hook %s", name)
	env := make([]string, 0, len(r.app.Hooks.Env)+4)
	for k, v := range r.app.Hooks.Env {
		env = append(env, k+"="+v)
	}
	slices.Sort(env)
	h := Hook{App: r.plan.App, Name: name, Command: command, Env: append(env, r.hookEnv()...), Timeout: r.app.Hooks.Timeout}
	if err := s.Hooks.Run(ctx, h); err != nil {
		return fmt.Errorf("hook %s: %w", name, err)
	}
	return nil
}

// start runs the pre_deploy hook, then starts To's containers (or finds them, when the
// plan reuses them or a resume finds them).
func (r *run) start(ctx context.Context) error {
	s := r.s
	if err := r.hook(ctx, StepStart, "pre_deploy", r.app.Hooks.PreDeploy); err != nil {
		return err
	}
	if r.plan.Reuse {
		insts, err := s.colorInstances(ctx, r.plan.App, r.plan.To)
		if err != nil {
			return err
		}
		r.insts = insts
		r.event(StepStart, EventInfo, "keeping %d running instance(s) of %s", len(insts), r.plan.To)
		return nil
	}
	// Leftovers of an earlier attempt on the idle color go first (never the live one).
	if err := r.removeColor(ctx, r.plan.To, StepStart); err != nil {
		return err
	}
	if err := r.ensureImage(ctx); err != nil {
		return err
	}
	lookup := s.LookupEnv
	if lookup == nil {
		lookup = func(string) (string, bool) { return "", false }
	}
	env, err := r.app.Environment(lookup)
	if err != nil {
		return err
	}
	// Every container knows what it is: the app sees its color, deploy and image.
	env = append(env, r.hookEnv()...)
	insts, err := s.Runtime.Start(ctx, deployments.StartSpec{
		App: r.plan.App, Color: r.plan.To, Deploy: r.plan.Deploy, Image: r.plan.Image, ImageID: r.plan.ImageID,
		Replicas: r.plan.Replicas, Port: r.app.Port, Env: env, Labels: r.app.Labels,
		Command: r.app.Command, StopTimeout: r.app.StopTimeout,
	})
	if err != nil {
		return err
	}
	r.insts = insts
	r.j.Hosts = byDockerHost(insts)
	for _, in := range insts {
		where := in.Addr()
		if in.DockerHost != "" {
			where = fmt.Sprintf("docker host %s (%s)", in.DockerHost, in.Addr())
		}
		r.emit(Event{Step: StepStart, Kind: EventInfo, Instance: in.ID(),
			Message: fmt.Sprintf("%s running on %s", in.ID(), where)})
	}
	return nil
}

// byDockerHost lists instance IDs by Docker host; nil when none has one (one engine).
func byDockerHost(insts []deployments.Instance) map[string][]string {
	var out map[string][]string
	for _, in := range insts {
		if in.DockerHost == "" {
			continue
		}
		if out == nil {
			out = map[string][]string{}
		}
		out[in.DockerHost] = append(out[in.DockerHost], in.ID())
	}
	return out
}

// ensureInsts reloads To's instances when a resumed run has none in memory.
func (r *run) ensureInsts(ctx context.Context) error {
	s := r.s
	if len(r.insts) > 0 {
		return nil
	}
	insts, err := s.colorInstances(ctx, r.plan.App, r.plan.To)
	if err != nil {
		return err
	}
	if len(insts) == 0 {
		return fmt.Errorf("%s has no %s instances (were they removed by hand?)", r.plan.App, r.plan.To)
	}
	r.insts = insts
	return nil
}

// register puts To's instances in Consul with their check.
func (r *run) register(ctx context.Context) error {
	s := r.s
	if err := r.ensureInsts(ctx); err != nil {
		return err
	}
	for _, in := range r.insts {
		if err := s.Registry.Register(ctx, in, r.app.HealthCheck, imageVersion(r.plan.Image)); err != nil {
			return fmt.Errorf("register %s: %w", in.ID(), err)
		}
	}
	return nil
}

// imageVersion is the tag of an image reference ("latest" without one).
func imageVersion(ref string) string {
	if i := strings.Index(ref, "@"); i >= 0 {
		return ref[i+1:]
	}
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		return ref[i+1:]
	}
	return "latest"
}

// stage adds To's instances to its HAProxy backend, DOWN until HAProxy's checks pass.
func (r *run) stage(ctx context.Context) error {
	s := r.s
	if err := r.ensureInsts(ctx); err != nil {
		return err
	}
	backend := r.plan.ToBackend()
	existing, err := s.Balancer.Servers(ctx, backend)
	if err != nil {
		return err
	}
	var stale []string
	var add []Server
	for _, in := range r.insts {
		// A server of the same name from an earlier attempt may point elsewhere.
		if slices.ContainsFunc(existing, func(st ServerStat) bool { return st.Name == in.ID() }) {
			stale = append(stale, in.ID())
		}
		add = append(add, Server{Name: in.ID(), Host: in.Host, Port: in.Port})
	}
	// The live color's instances join as backup servers: from the shift until the drain
	// starts, HAProxy itself sends the traffic back to them the moment the new color
	// has no server up, without waiting for swap to notice and flip back.
	backups, err := r.backupServers(ctx)
	if err != nil {
		return err
	}
	for _, b := range backups {
		if slices.ContainsFunc(existing, func(st ServerStat) bool { return st.Name == b.Name }) {
			stale = append(stale, b.Name)
		}
	}
	if err := s.Balancer.RemoveServers(ctx, backend, stale); err != nil {
		return err
	}
	// One change, so HAProxy's files are written (and checked) once.
	if err := s.Balancer.AddServers(ctx, backend, append(add, backups...)); err != nil {
		return fmt.Errorf("add %s to %s: %w", instanceIDs(r.insts), backend, err)
	}
	if len(backups) > 0 {
		r.event(StepStage, EventInfo, "%s's %d instance(s) are backup servers of %s until the drain", r.plan.From, len(backups), backend)
	}
	return nil
}

// preview routes the preview frontend to To; without auto_promote the swap then waits.
func (r *run) preview(ctx context.Context) error {
	s := r.s
	if !r.plan.Preview {
		r.event(StepPreview, EventSkip, "no preview frontend configured")
		return nil
	}
	if err := s.Balancer.Preview(ctx, r.plan.Route, r.plan.ToBackend()); err != nil {
		return err
	}
	r.event(StepPreview, EventInfo, "preview frontend routes %q to %s", r.plan.Route, r.plan.ToBackend())
	if !r.plan.AutoPromote {
		return errWaiting
	}
	return nil
}

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

// retire removes From: out of HAProxy and Consul first, then the containers are
// stopped (SIGTERM, stop_timeout) and removed. With a scale_down_delay it only sets
// the time: commit records From as retiring, the lock is released, and retireLater
// removes it when the delay is over unless a rollback brought it back.
func (r *run) retire(ctx context.Context) error {
	s := r.s
	if r.plan.From == "" {
		r.event(StepRetire, EventSkip, "first deploy: nothing to retire")
		return nil
	}
	// The new color must still serve before its predecessor goes: kept (drained), the
	// old color is what `swap rollback` flips back to at once.
	if err := r.requireHealthy(ctx); err != nil {
		return fmt.Errorf("%w; %s is kept (drained): `swap rollback %s` flips back to it", err, r.plan.From, r.plan.App)
	}
	if err := r.ensureRoute(ctx, StepRetire); err != nil {
		return err
	}
	if d := r.plan.ScaleDownDelay; d > 0 {
		r.j.RetireAt = s.now().Add(d).Round(0)
		r.event(StepRetire, EventInfo, "%s stays up for scale_down_delay %s, until %s: `swap rollback %s` flips back to it until then", r.plan.From, d, r.j.RetireAt.Format(time.TimeOnly), r.plan.App)
		return nil
	}
	r.j.RetireAt = time.Time{}
	return r.removeColor(ctx, r.plan.From, StepRetire)
}

// cleanup removes the images of earlier deploys beyond retain that no container uses,
// by image ID (an image whose tag moved is still found; whatever the tag names now is
// not touched), then, only when docker.cleanup.prune_dangling asks for it, the host's
// dangling images older than prune_until. Failures here are reported but do not fail
// the swap.
func (r *run) cleanup(ctx context.Context) error {
	s := r.s
	st, err := s.kv().state(ctx, r.plan.App)
	if err != nil {
		return err
	}
	st.pushPrevious(r.plan.fromImage())
	prev := slices.DeleteFunc(slices.Clone(st.Previous), r.plan.image().Same)
	r.previous = r.removeImages(ctx, prev, r.app.Retain)
	msg := fmt.Sprintf("%d previous image(s) kept", len(r.previous))
	n, ran, err := s.pruneDangling(ctx)
	if err != nil {
		r.event(StepCleanup, EventInfo, "%v", err)
	}
	if ran {
		msg += fmt.Sprintf(", %d dangling pruned", n)
	}
	r.event(StepCleanup, EventInfo, "%s", msg)
	return nil
}

// removeImages removes the images of previous beyond the first retain, unless a
// container still uses them, and returns the images still there.
func (r *run) removeImages(ctx context.Context, previous []Image, retain int) (left []Image) {
	s := r.s
	for i, img := range previous {
		if i < retain {
			left = append(left, img)
			continue
		}
		err := s.Runtime.RemoveImage(ctx, img)
		switch {
		case err == nil:
			r.event(StepCleanup, EventInfo, "removed image %s", img)
		case errors.Is(err, ErrImageInUse):
			left = append(left, img)
			r.event(StepCleanup, EventInfo, "kept image %s: %v", img, err)
		default:
			left = append(left, img)
			r.event(StepCleanup, EventInfo, "could not remove image %s: %v", img, err)
		}
	}
	return left
}

// commit records To live, appends the history and drops the journal.
func (r *run) commit(ctx context.Context) error {
	s := r.s
	st, err := s.kv().state(ctx, r.plan.App)
	if err != nil {
		return err
	}
	if r.previous == nil {
		st.pushPrevious(r.plan.fromImage())
		r.previous = slices.DeleteFunc(slices.Clone(st.Previous), r.plan.image().Same)
	}
	st.Previous = r.previous
	st.Live = r.plan.To
	if r.plan.From != "" {
		if r.j.RetireAt.IsZero() {
			delete(st.Colors, r.plan.From)
		} else {
			cs, ok := st.Colors[r.plan.From]
			if !ok {
				cs = ColorState{Image: r.plan.FromImage, ImageID: r.plan.FromImageID, Digest: r.plan.FromImageDigest}
			}
			cs.RetireAt, cs.RetiredBy = r.j.RetireAt, r.plan.Deploy
			st.Colors[r.plan.From] = cs
		}
	}
	st.Colors[r.plan.To] = ColorState{Image: r.plan.Image, ImageID: r.plan.ImageID, Digest: r.plan.ImageDigest,
		Deploy: r.plan.Deploy, Since: s.now()}
	steps := append(slices.Clone(r.j.Steps), StepTime{Step: StepCommit})
	st.addHistory(r.record(OutcomeDone, nil, steps))
	if err := s.kv().saveState(ctx, st); err != nil {
		return err
	}
	if r.plan.Preview {
		if err := s.Balancer.Preview(ctx, r.plan.Route, ""); err != nil {
			r.event(StepCommit, EventInfo, "clear preview route: %v", err)
		}
	}
	if err := s.kv().dropJournal(ctx, r.j); err != nil {
		return err
	}
	if err := r.hook(ctx, StepCommit, "post_deploy", r.app.Hooks.PostDeploy); err != nil {
		r.event(StepCommit, EventInfo, "%v (the swap itself is done)", err)
	}
	return nil
}

// instanceIDs lists instances for messages: "web-green-0, web-green-1".
func instanceIDs(insts []deployments.Instance) string {
	ids := make([]string, 0, len(insts))
	for _, in := range insts {
		ids = append(ids, in.ID())
	}
	return strings.Join(ids, ", ")
}
