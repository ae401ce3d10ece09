package switcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/swap-dev/swap/deployments"
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
	// deploy_timeout bounds the start too (it is counted from the swap's start, as the
	// gate's is): many replicas on a busy engine take longer than the driver's default.
	sctx, cancel := ctx, context.CancelFunc(func() {})
	if r.app.DeployTimeout > 0 {
		sctx, cancel = context.WithDeadline(ctx, r.started.Add(r.app.DeployTimeout))
	}
	defer cancel()
	insts, err := s.Runtime.Start(sctx, deployments.StartSpec{
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

// cleanup removes the images of earlier deploys beyond retain, and those of deploys
// rolled back since the last cleanup (State.Failed), that no container uses, by image
// ID (an image whose tag moved is still found; whatever the tag names now is not
// touched), then, only when docker.cleanup.prune_dangling asks for it, the host's
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
	r.previous = r.removeImages(ctx, prev, retained(r.app.Retain))
	// The images of deploys rolled back since: all of them go, but for this run's (live
	// now), a color's (From may stay up for scale_down_delay) and the rollback targets
	// kept, which are forgotten here: Previous and the colors look after those.
	st.Previous = r.previous
	r.failed = r.removeImages(ctx, slices.DeleteFunc(st.unkeptFailed(), r.plan.image().Same), never)
	r.cleaned = true
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

// never keeps no image: removeImages removes every image it is given.
func never(int, Image) bool { return false }

// retained keeps the first n images of a list (newest first): removeImages' keep for
// State.Previous and `retain`.
func retained(n int) func(int, Image) bool {
	return func(i int, _ Image) bool { return i < n }
}

// removeImages removes the images of imgs that keep does not keep, unless a container
// still uses them, and returns the images still there.
func (r *run) removeImages(ctx context.Context, imgs []Image, keep func(i int, img Image) bool) (left []Image) {
	s := r.s
	for i, img := range imgs {
		if keep(i, img) {
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
	if r.cleaned {
		st.Previous, st.Failed = r.previous, r.failed
	} else { // cleanup ran in an earlier process (resume): its result is in st
		st.pushPrevious(r.plan.fromImage())
		st.Previous = slices.DeleteFunc(st.Previous, r.plan.image().Same)
	}
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
