package switcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// One file holds the operations a user calls (deploy, switch, rollback, promote, abort,
// resume, unlock) and their plans: each is short, and they share operate and the journal's
// continuation.

// Switch moves app's traffic to color, starting that color (with the live color's
// image, or the spec's on the first run) when it is not running.
func (s *Switcher) Switch(ctx context.Context, app string, color deployments.Color, opts Options) (*Result, error) {
	return s.operate(ctx, app, opts, func(ctx context.Context, spec *deployments.App, st *storedState) (*Plan, error) {
		if st.Live == color {
			return nil, fmt.Errorf("%w: %s already serves from %s", ErrNothingToDo, app, color)
		}
		p := s.newPlan(spec, st, OpSwitch, color)
		img := Image{Ref: spec.Image}
		if cs, ok := st.Colors[st.Live]; ok && cs.Image != "" {
			img = cs.image()
		}
		p.Image = img.Ref
		if err := s.reuseIfRunning(ctx, spec, p); err != nil || p.Reuse {
			return p, err
		}
		return p, s.pinImage(ctx, p, img, "the image "+string(st.Live)+" runs")
	})
}

// Deploy starts image on the idle color, then switches to it.
func (s *Switcher) Deploy(ctx context.Context, app, image string, opts Options) (*Result, error) {
	return s.operate(ctx, app, opts, func(ctx context.Context, spec *deployments.App, st *storedState) (*Plan, error) {
		if image == "" {
			image = spec.Image
		}
		if err := deployments.CheckImageRef(image); err != nil {
			return nil, fmt.Errorf("%w: --image: %w", ErrBadInput, err)
		}
		to := deployments.Blue
		if st.Live != "" {
			to = st.Live.Other()
		}
		p := s.newPlan(spec, st, OpDeploy, to)
		p.Image = image
		return p, nil
	})
}

// Rollback flips app back to its previous color while that color is still up, and
// otherwise redeploys the previous image on the idle color: the very image that was
// live (by its ID), even when its tag has moved since. When the host no longer has it,
// the plan fails with ErrImageGone before anything changes.
func (s *Switcher) Rollback(ctx context.Context, app string, opts Options) (*Result, error) {
	return s.operate(ctx, app, opts, func(ctx context.Context, spec *deployments.App, st *storedState) (*Plan, error) {
		if st.Live == "" {
			return nil, fmt.Errorf("%w: %s has never been deployed", ErrNoPrevious, app)
		}
		p := s.newPlan(spec, st, OpRollback, st.Live.Other())
		if err := s.reuseIfRunning(ctx, spec, p); err != nil {
			return nil, err
		}
		if p.Reuse {
			return p, nil
		}
		if len(st.Previous) == 0 {
			return nil, fmt.Errorf("%w: %s has no earlier image on record (see `swap history %s`)", ErrNoPrevious, app, app)
		}
		// The exact image that was live, by ID: its tag may name another image by now.
		return p, s.pinImage(ctx, p, st.Previous[0], "the image live before "+string(st.Live))
	})
}

// reuseIfRunning marks the plan Reuse when all of To's replicas run and share an image.
func (s *Switcher) reuseIfRunning(ctx context.Context, spec *deployments.App, p *Plan) error {
	insts, err := s.colorInstances(ctx, spec.Name, p.To)
	if err != nil {
		return err
	}
	if len(insts) != spec.Replicas || len(insts) == 0 {
		return nil
	}
	for _, in := range insts {
		if in.State != "running" || in.Image != insts[0].Image || in.ImageID != insts[0].ImageID {
			return nil
		}
	}
	p.Reuse, p.Image, p.ImageID, p.ImageDigest = true, insts[0].Image, insts[0].ImageID, ""
	return nil
}

func (s *Switcher) newPlan(spec *deployments.App, st *storedState, op string, to deployments.Color) *Plan {
	p := &Plan{
		App: spec.Name, Deploy: newDeployID(s.now()), Op: op,
		From: st.Live, To: to, Replicas: spec.Replicas, Route: spec.Route,
		Canary: spec.Canary, Verify: spec.Verify, ScaleDownDelay: spec.ScaleDownDelay,
		Preview: s.Config.HAProxy.Preview.Bind != "", AutoPromote: spec.Promotes(),
		Created: s.now(), Spec: planSpec(spec),
	}
	if st.Live != "" {
		cs := st.Colors[st.Live]
		p.FromImage, p.FromImageID, p.FromImageDigest = cs.Image, cs.ImageID, cs.Digest
	}
	return p
}

type planner func(ctx context.Context, spec *deployments.App, st *storedState) (*Plan, error)

// operate is the shape of every swap: lock, repair a crashed swap, plan, run.
func (s *Switcher) operate(ctx context.Context, app string, opts Options, plan planner) (*Result, error) {
	spec, err := s.app(app)
	if err != nil {
		return nil, err
	}
	if opts.DryRun {
		st, err := s.kv().state(ctx, app)
		if err != nil {
			return nil, err
		}
		p, err := plan(ctx, spec, st)
		if err != nil {
			return nil, err
		}
		return &Result{Plan: *p, Outcome: OutcomeDryRun, Message: p.String()}, nil
	}
	lctx, release, err := s.lockChecked(ctx, app, opts.Wait)
	if err != nil {
		return nil, err
	}
	res, err := s.operateLocked(lctx, spec, plan)
	release()
	s.retireLater(ctx, spec, res, err)
	return res, err
}

// operateLocked is operate under the app's lock.
func (s *Switcher) operateLocked(ctx context.Context, spec *deployments.App, plan planner) (*Result, error) {
	app := spec.Name
	if j, ok, err := s.kv().journal(ctx, app); err != nil {
		return nil, err
	} else if ok {
		if j.Status == JournalWaiting {
			return nil, fmt.Errorf("%w: %s to %s (deploy %s); run `swap promote %s` or `swap abort %s` first",
				ErrPreviewPending, app, j.Plan.To, j.Plan.Deploy, app, app)
		}
		s.emit(Event{App: app, Deploy: j.Plan.Deploy, Step: StepResume, Kind: EventInfo,
			Message: fmt.Sprintf("an interrupted swap (deploy %s, at %s) is repaired first", j.Plan.Deploy, j.Step)})
		if _, err := s.resumeLocked(ctx, spec, j); err != nil {
			return nil, err
		}
	}
	// A color left retiring by a swap that is gone goes once its delay is over, before
	// the plan: a rollback then redeploys rather than flip back to it.
	s.retireDue(ctx, spec)
	// Containers that restarted on another host port get their traffic back first.
	if _, err := s.repairDrift(ctx, spec); err != nil {
		s.emit(Event{App: app, Step: StepResume, Kind: EventFailed, Message: err.Error()})
	}

	start := s.now()
	s.emit(Event{App: app, Step: StepPlan, Kind: EventStart, Message: "planning"})
	st, err := s.kv().state(ctx, app)
	if err != nil {
		return nil, err
	}
	p, err := plan(ctx, spec, st)
	if errors.Is(err, ErrNothingToDo) {
		s.emit(Event{App: app, Step: StepPlan, Kind: EventSkip, Message: err.Error()})
		return &Result{Outcome: OutcomeNothing, Message: err.Error()}, nil
	}
	if err != nil {
		s.emit(Event{App: app, Step: StepPlan, Kind: EventFailed, Message: err.Error()})
		return nil, err
	}
	s.emit(Event{App: app, Deploy: p.Deploy, Step: StepPlan, Kind: EventDone, Elapsed: s.now().Sub(start),
		Message: fmt.Sprintf("%s %s: %s -> %s (%s)", p.Op, app, liveName(p.From), p.To, p.Image)})
	r := s.newRun(p.specFor(spec), *p, &storedJournal{Journal: Journal{Plan: *p, Status: JournalRunning, Step: StepPlan, Done: true}}, start)
	return r.execute(ctx, StepStart)
}

// Promote continues a swap that waits in preview.
func (s *Switcher) Promote(ctx context.Context, app string, opts Options) (*Result, error) {
	return s.continueJournal(ctx, app, opts, func(ctx context.Context, r *run) (*Result, error) {
		if r.j.Status != JournalWaiting {
			return nil, fmt.Errorf("%s's swap (deploy %s) is not waiting in preview; it is at %s: use `swap resume %s`",
				app, r.plan.Deploy, r.j.Step, app)
		}
		if opts.DryRun {
			return dryRun(r, "would promote %s's swap to %s (deploy %s, waiting in preview): route %q to %s on every HAProxy, then %s",
				app, r.plan.To, r.plan.Deploy, r.plan.Route, r.plan.ToBackend(), stepsFrom(nextStep(StepShift)))
		}
		r.j.Status = JournalRunning
		return r.execute(ctx, StepShift)
	})
}

// Abort rolls back a swap that has not shifted yet (one waiting in preview, or an
// interrupted one).
func (s *Switcher) Abort(ctx context.Context, app string, opts Options) (*Result, error) {
	return s.continueJournal(ctx, app, opts, func(ctx context.Context, r *run) (*Result, error) {
		if r.j.Shifted {
			return nil, fmt.Errorf("%s's swap to %s has already shifted the traffic: use `swap resume %s` to finish it or `swap rollback %s` after",
				app, r.plan.To, app, app)
		}
		if opts.DryRun {
			return dryRun(r, "would abort %s's swap to %s (deploy %s, at %s): %s; %s keeps serving",
				app, r.plan.To, r.plan.Deploy, r.j.Step, undoWhat(r), liveName(r.plan.From))
		}
		if err := r.undo(ctx, errors.New("aborted by `swap abort`")); err != nil {
			return nil, err
		}
		return &Result{Plan: r.plan, Outcome: OutcomeRolledBack, Steps: r.j.Steps}, nil
	})
}

// Resume repairs an interrupted swap: it rolls back when the shift had not happened and
// goes forward when it had. First, with or without one, HAProxy and Consul are made to
// follow containers that restarted on another host port (see drift).
func (s *Switcher) Resume(ctx context.Context, app string, opts Options) (*Result, error) {
	none := func(ctx context.Context, spec *deployments.App) (*Result, error) {
		if opts.DryRun {
			return s.driftDryRun(ctx, app, "has no interrupted swap")
		}
		moved, err := s.repairDrift(ctx, spec)
		if err != nil {
			return nil, err
		}
		if moved > 0 {
			return &Result{Plan: Plan{App: app}, Outcome: OutcomeDone,
				Message: fmt.Sprintf("%s has no interrupted swap; %d instance(s) that restarted on another host port are served there again", app, moved)}, nil
		}
		return &Result{Outcome: OutcomeNothing, Message: fmt.Sprintf("%s has no interrupted swap", app)}, nil
	}
	return s.continueJournalOr(ctx, app, opts, none, func(ctx context.Context, r *run) (*Result, error) {
		if !opts.DryRun {
			if _, err := s.repairDrift(ctx, r.app); err != nil {
				s.emit(Event{App: app, Step: StepResume, Kind: EventFailed, Message: err.Error()})
			}
		}
		if r.j.Status == JournalWaiting {
			return &Result{Plan: r.plan, Outcome: OutcomeWaiting,
				Message: fmt.Sprintf("%s waits in preview; run `swap promote %s` or `swap abort %s`", r.plan.To, app, app)}, nil
		}
		if opts.DryRun {
			way, err := s.resumeWay(ctx, r.j)
			if err != nil {
				return nil, err
			}
			if !way.forward {
				return dryRun(r, "would resume %s's swap to %s (deploy %s), interrupted at %s %s: roll back: %s; %s keeps serving",
					app, r.plan.To, r.plan.Deploy, r.j.Step, way.why, undoWhat(r), liveName(r.plan.From))
			}
			return dryRun(r, "would resume %s's swap to %s (deploy %s), interrupted at %s after the shift: go forward: %s",
				app, r.plan.To, r.plan.Deploy, r.j.Step, stepsFrom(way.from))
		}
		return s.resumeLocked(ctx, r.app, r.j)
	})
}

// dryRun is the result of a --dry-run of promote, abort or resume: what it would do.
func dryRun(r *run, format string, args ...any) (*Result, error) {
	return &Result{Plan: r.plan, Outcome: OutcomeDryRun,
		Message: "dry run: " + fmt.Sprintf(format, args...) + ". Nothing was changed."}, nil
}

// undoWhat says what undo does to r's swap.
func undoWhat(r *run) string {
	var parts []string
	if r.s.Mesh != nil && r.plan.From != "" {
		parts = append(parts, fmt.Sprintf("route the mesh to %s", r.plan.From))
	}
	if r.plan.Preview {
		parts = append(parts, fmt.Sprintf("clear the preview route %q", r.plan.Route))
	}
	if len(r.plan.Canary) > 0 {
		parts = append(parts, fmt.Sprintf("end the canary to %s", r.plan.ToBackend()))
	}
	if r.plan.Reuse {
		parts = append(parts, fmt.Sprintf("keep %s's instances (they were running before the swap)", r.plan.To))
	} else {
		parts = append(parts, fmt.Sprintf("remove %s's HAProxy servers, Consul services and containers", r.plan.To))
	}
	return strings.Join(parts, ", ")
}

// stepsFrom lists the swap's steps from step on: "shift, verify, drain, ...".
func stepsFrom(step Step) string {
	var names []string
	for _, st := range Steps[step.order():] {
		names = append(names, string(st))
	}
	return strings.Join(names, ", ")
}

// resumeDecision is which way an interrupted swap goes: back (undo) or forward from a
// step.
type resumeDecision struct {
	forward bool
	from    Step   // forward: the step to go on from
	why     string // back: when it was interrupted ("before the shift", ...)
}

// resumeWay decides which way the interrupted swap j goes. It reads the routes and
// changes nothing.
func (s *Switcher) resumeWay(ctx context.Context, j *storedJournal) (resumeDecision, error) {
	// Where the traffic is decides, not only the journal: the process may have died
	// between a route change and the journal write recording it.
	routes, err := s.Balancer.Routes(ctx, j.Plan.Route)
	if err != nil {
		return resumeDecision{}, err
	}
	atTo, atFrom, allTo := false, false, len(routes) > 0
	for _, be := range routes {
		switch be {
		case j.Plan.ToBackend():
			atTo = true
		case j.Plan.FromBackend():
			atFrom = j.Plan.From != ""
			allTo = false
		default:
			allTo = false
		}
	}
	shifted := j.Shifted
	why := "before the shift"
	switch {
	case !shifted && j.Step == StepShift && atTo:
		shifted = true // the route change reached at least one HAProxy
	case shifted && j.Step == StepVerify && atFrom && !atTo:
		// The routes point back at From: verify's flip-back was cut short before it
		// recorded itself. Finish it; going forward would drain the live color.
		shifted = false
		why = "while flipping back to " + string(j.Plan.From)
	}
	if !shifted {
		return resumeDecision{why: why}, nil
	}
	from := j.Step
	if j.Done {
		from = nextStep(j.Step)
	}
	if from.order() < StepShift.order() || !allTo {
		from = StepShift // (again): every HAProxy must route to To before From is drained
	}
	return resumeDecision{forward: true, from: from}, nil
}

// resumeLocked decides, under the lock, which way an interrupted swap goes, and goes.
func (s *Switcher) resumeLocked(ctx context.Context, spec *deployments.App, j *storedJournal) (*Result, error) {
	r := s.newRun(j.Plan.specFor(spec), j.Plan, j, j.Plan.Created)
	way, err := s.resumeWay(ctx, j)
	if err != nil {
		return nil, err
	}
	if !way.forward {
		s.emit(Event{App: j.Plan.App, Deploy: j.Plan.Deploy, Step: StepResume, Kind: EventInfo,
			Message: fmt.Sprintf("interrupted at %s %s: rolling back", j.Step, way.why)})
		if err := r.undo(ctx, fmt.Errorf("interrupted at %s", j.Step)); err != nil {
			return nil, err
		}
		return &Result{Plan: j.Plan, Outcome: OutcomeRolledBack, Steps: j.Steps}, nil
	}
	r.j.Shifted = true
	from := way.from
	s.emit(Event{App: j.Plan.App, Deploy: j.Plan.Deploy, Step: StepResume, Kind: EventInfo,
		Message: fmt.Sprintf("interrupted at %s after the shift: going forward from %s", j.Step, from)})
	return r.execute(ctx, from)
}

func nextStep(s Step) Step {
	i := s.order()
	if i+1 < len(Steps) {
		return Steps[i+1]
	}
	return StepCommit
}

// driftDryRun says, changing nothing, which instances resume would make HAProxy and
// Consul follow.
func (s *Switcher) driftDryRun(ctx context.Context, app, what string) (*Result, error) {
	ds, err := s.drifts(ctx, app)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("dry run: %s %s", app, what)
	if len(ds) > 0 {
		var parts []string
		for _, d := range ds {
			parts = append(parts, d.String())
		}
		msg += "; would make HAProxy and Consul follow " + strings.Join(parts, "; ")
	}
	return &Result{Plan: Plan{App: app}, Outcome: OutcomeDryRun, Message: msg + ". Nothing was changed."}, nil
}

// continueJournal locks the app and hands its journaled swap to fn; without one it is
// ErrNothingToDo.
func (s *Switcher) continueJournal(ctx context.Context, app string, opts Options, fn func(context.Context, *run) (*Result, error)) (*Result, error) {
	none := func(context.Context, *deployments.App) (*Result, error) {
		return nil, fmt.Errorf("%w: %s has no swap in progress", ErrNothingToDo, app)
	}
	return s.continueJournalOr(ctx, app, opts, none, fn)
}

// continueJournalOr is continueJournal with none answering when no swap is journaled.
// With opts.DryRun it takes no lock and fn must only say what it would do.
func (s *Switcher) continueJournalOr(ctx context.Context, app string, opts Options, none func(context.Context, *deployments.App) (*Result, error), fn func(context.Context, *run) (*Result, error)) (*Result, error) {
	spec, err := s.app(app)
	if err != nil {
		return nil, err
	}
	// journaled hands the journaled swap to fn, or says none.
	journaled := func(ctx context.Context) (*Result, error) {
		j, ok, err := s.kv().journal(ctx, app)
		if err != nil {
			return nil, err
		}
		if !ok {
			return none(ctx, spec)
		}
		return fn(ctx, s.newRun(j.Plan.specFor(spec), j.Plan, j, j.Plan.Created))
	}
	if opts.DryRun {
		return journaled(ctx)
	}
	lctx, release, err := s.lockChecked(ctx, app, opts.Wait)
	if err != nil {
		return nil, err
	}
	res, err := journaled(lctx)
	if lctx.Err() == nil {
		s.retireDue(lctx, spec)
	}
	release()
	s.retireLater(ctx, spec, res, err)
	return res, err
}

// Cleanup removes the images of app's earlier deploys beyond retain, and those of
// deploys rolled back (State.Failed), that no container uses, by image ID, and, when
// docker.cleanup.prune_dangling is set, the host's dangling images older than
// prune_until. It removes nothing else.
func (s *Switcher) Cleanup(ctx context.Context, app string, opts Options) (*Result, error) {
	spec, st, err := s.appState(ctx, app)
	if err != nil {
		return nil, err
	}
	res := &Result{Plan: Plan{App: app}}
	if opts.DryRun {
		var drop []string
		if len(st.Previous) > spec.Retain {
			for _, img := range st.Previous[spec.Retain:] {
				drop = append(drop, img.String())
			}
			st.Previous = st.Previous[:spec.Retain]
		}
		for _, img := range st.unkeptFailed() {
			drop = append(drop, img.String()+" (of a deploy rolled back)")
		}
		res.Outcome, res.Message = OutcomeDryRun, fmt.Sprintf("would remove %d image(s) unless in use: %v", len(drop), drop)
		if c := s.Config.Docker.Cleanup; c.PruneDangling {
			res.Message += fmt.Sprintf("; then prune dangling images older than %s", c.PruneUntil)
		}
		return res, nil
	}
	ctx, release, err := s.lockChecked(ctx, app, opts.Wait)
	if err != nil {
		return nil, err
	}
	defer release()
	r := s.newRun(spec, Plan{App: app, Deploy: newDeployID(s.now())}, nil, time.Time{})
	s.retireDue(ctx, spec)
	if st, err = s.kv().state(ctx, app); err != nil { // re-read under the lock
		return nil, err
	}
	before := len(st.Previous) + len(st.Failed)
	st.Previous = r.removeImages(ctx, st.Previous, retained(spec.Retain))
	st.Failed = r.removeImages(ctx, st.unkeptFailed(), never)
	removed := before - len(st.Previous) - len(st.Failed)
	if err := s.kv().saveState(ctx, st); err != nil {
		return nil, err
	}
	res.Outcome = OutcomeDone
	res.Message = fmt.Sprintf("removed %d image(s), kept %d", removed, len(st.Previous)+len(st.Failed))
	n, ran, err := s.pruneDangling(ctx)
	if err != nil {
		return nil, err
	}
	if ran {
		res.Message += fmt.Sprintf(", pruned %d dangling", n)
	}
	return res, nil
}

// ErrCannotUnlock says the Locker cannot break locks.
var ErrCannotUnlock = errors.New("this lock cannot be broken by swap")

// Unlock breaks app's lock, whoever holds it, and says who did. Use it only when the
// holder is known to be dead; then run `swap resume` to repair its swap.
func (s *Switcher) Unlock(ctx context.Context, app string) (*Result, error) {
	if _, err := s.app(app); err != nil {
		return nil, err
	}
	lb, ok := s.Locker.(LockBreaker)
	if !ok {
		return nil, ErrCannotUnlock
	}
	holder, err := lb.ForceRelease(ctx, app)
	if err != nil {
		return nil, err
	}
	msg := fmt.Sprintf("%s was not locked", app)
	if holder != "" {
		msg = fmt.Sprintf("released %s's lock held by %s; run `swap resume %s` to repair its swap", app, holder, app)
	}
	return &Result{Plan: Plan{App: app}, Outcome: OutcomeDone, Message: msg}, nil
}
