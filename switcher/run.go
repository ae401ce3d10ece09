package switcher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// run is one swap in progress: its plan, journal and state.
type run struct {
	s *Switcher
	// log is the switcher's logger scoped once with the app and the deploy.
	log     *zap.Logger
	app     *deployments.App
	plan    Plan
	j       *storedJournal
	started time.Time
	// insts are To's instances once started (or found, on resume).
	insts []deployments.Instance
	// previous and failed are State.Previous and State.Failed as cleanup leaves them,
	// for commit, once cleaned (cleanup ran in this process).
	previous, failed []Image
	cleaned          bool
}

// errWaiting stops execute after the preview step when the app does not auto-promote.
var errWaiting = errors.New("waiting for promote")

type stepFunc struct {
	step Step
	fn   func(*run, context.Context) error
}

// swapSteps are the steps after lock and plan.
var swapSteps = []stepFunc{
	{StepStart, (*run).start},
	{StepRegister, (*run).register},
	{StepStage, (*run).stage},
	{StepGate, (*run).gate},
	{StepPreview, (*run).preview},
	{StepShift, (*run).shift},
	{StepVerify, (*run).verify},
	{StepDrain, (*run).drain},
	{StepRetire, (*run).retire},
	{StepCleanup, (*run).cleanup},
	{StepCommit, (*run).commit},
}

// newRun is a run of plan with app's spec, its journal (nil until the plan is
// journaled) and the time it started.
func (s *Switcher) newRun(app *deployments.App, plan Plan, j *storedJournal, started time.Time) *run {
	return &run{s: s, app: app, plan: plan, j: j, started: started,
		log: s.log().With(zap.String("app", plan.App), zap.String("deploy", plan.Deploy))}
}

// emit sends e, of this run's app and deploy, to the log and the switcher's OnEvent.
func (r *run) emit(e Event) {
	e.App, e.Deploy = r.plan.App, r.plan.Deploy
	r.s.emitTo(r.log, e)
}

func (r *run) event(step Step, kind EventKind, format string, args ...any) {
	r.emit(Event{Step: step, Kind: kind, Message: fmt.Sprintf(format, args...)})
}

// execute runs the steps from `from` on. Before the shift a failure rolls back; in
// verify a 5xx spike flips back and rolls back; after that a failure leaves the journal
// for `swap resume`, which goes forward.
func (r *run) execute(ctx context.Context, from Step) (*Result, error) {
	res := &Result{Plan: r.plan}
	for _, sf := range swapSteps {
		if sf.step.order() < from.order() {
			continue
		}
		err := r.runStep(ctx, sf)
		res.Steps = r.j.Steps
		res.Instances = r.insts
		if errors.Is(err, errWaiting) {
			res.Outcome = OutcomeWaiting
			res.Message = fmt.Sprintf("%s waits in preview; run `swap promote %s` or `swap abort %s`", r.plan.To, r.plan.App, r.plan.App)
			return res, nil
		}
		if err == nil {
			continue
		}
		err = cause(ctx, err)
		swapErr := &Error{App: r.plan.App, Color: r.plan.To, Step: sf.step, Err: err}
		// back is how this failure is rolled back, if it is.
		var back func(context.Context, error) error
		switch {
		case errors.Is(err, ErrLockLost):
			// Without the lock nothing is undone: another swap may own the app now.
		case !r.j.Shifted:
			back = r.undo
		case (sf.step == StepVerify || sf.step == StepDrain) && (errors.Is(err, ErrTooMany5xx) || errors.Is(err, ErrNotHealthy)):
			// The old color is still up and not yet drained: it takes the traffic back.
			back = r.flipBack
		default:
			swapErr.Err = fmt.Errorf("%w (traffic is on %s; run `swap resume %s` to finish)", err, r.plan.To, r.plan.App)
		}
		res.Outcome = OutcomeFailed
		if back != nil {
			if uerr := back(ctx, err); uerr != nil {
				swapErr.Err = fmt.Errorf("%w; and the rollback failed: %v (run `swap resume %s`)", err, uerr, r.plan.App)
				return res, swapErr
			}
			swapErr.RolledBack = true
			res.Outcome = OutcomeRolledBack
		}
		return res, swapErr
	}
	res.Outcome = OutcomeDone
	res.Steps = r.j.Steps
	if !r.j.RetireAt.IsZero() {
		res.Retiring, res.RetireAt = r.plan.From, r.j.RetireAt
	}
	return res, nil
}

// runStep journals, fault-injects and times one step.
func (r *run) runStep(ctx context.Context, sf stepFunc) error {
	s := r.s
	start := s.now()
	r.event(sf.step, EventStart, "%s", sf.step)
	r.j.Step, r.j.Done = sf.step, false
	if err := s.kv().saveJournal(ctx, r.j); err != nil {
		r.event(sf.step, EventFailed, "%v", err)
		return err
	}
	s.fault(sf.step, "before")
	err := sf.fn(r, ctx)
	elapsed := s.now().Sub(start)
	if err != nil && !errors.Is(err, errWaiting) {
		r.emit(Event{Step: sf.step, Kind: EventFailed, Message: cause(ctx, err).Error(), Elapsed: elapsed})
		return err
	}
	r.j.Done = true
	r.j.Steps = append(r.j.Steps, StepTime{Step: sf.step, Duration: elapsed})
	if errors.Is(err, errWaiting) {
		r.j.Status = JournalWaiting
	}
	if sf.step == StepCommit {
		// commit dropped the journal: the swap is over.
		r.emit(Event{Step: sf.step, Kind: EventDone, Message: "commit done", Elapsed: elapsed})
		return nil
	}
	if serr := s.kv().saveJournal(ctx, r.j); serr != nil {
		return serr
	}
	s.fault(sf.step, "after")
	r.emit(Event{Step: sf.step, Kind: EventDone, Message: string(sf.step) + " done", Elapsed: elapsed})
	return err
}

// cleanupCtx is a context for repairs that must finish even when ctx was cancelled
// (Ctrl-C): they still end when the app's lock is lost, since a repair without the lock
// could undo what the swap that took the lock over does.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Minute)
	lost := lockLost(ctx)
	if lost == nil {
		return cctx, cancel
	}
	cctx, cancelCause := context.WithCancelCause(cctx)
	why := fmt.Errorf("%w: the repair stopped before its next change; run `swap resume`", ErrLockLost)
	select {
	case <-lost:
		cancelCause(why)
		return cctx, func() { cancelCause(nil); cancel() }
	default:
	}
	go func() {
		select {
		case <-lost:
			cancelCause(why)
		case <-cctx.Done():
		}
	}()
	return cctx, func() { cancelCause(nil); cancel() }
}

// undo rolls a swap back before its shift: the mesh routes to From again, the preview
// and canary are cleared and To's new instances removed. The live color is never
// touched.
func (r *run) undo(ctx context.Context, why error) error {
	s := r.s
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	start := s.now()
	r.event(StepRollback, EventStart, "rolling back %s: %v", r.plan.To, why)
	if r.plan.From != "" {
		// The mesh back on From (and its split ended) before To goes: mesh clients must
		// not be sent to instances being removed.
		if err := r.meshRoute(ctx, r.plan.From, StepRollback); err != nil {
			r.event(StepRollback, EventFailed, "%v", err)
			return fmt.Errorf("%w; %s's instances are kept while the mesh may still send them traffic", err, r.plan.To)
		}
	}
	var errs []error
	if r.plan.Preview {
		errs = append(errs, s.Balancer.Preview(ctx, r.plan.Route, ""))
	}
	if len(r.plan.Canary) > 0 {
		errs = append(errs, s.Balancer.Canary(ctx, r.plan.Route, r.plan.ToBackend(), 0))
	}
	if !r.plan.Reuse {
		errs = append(errs, r.removeColor(ctx, r.plan.To, StepRollback))
	}
	if err := errors.Join(errs...); err != nil {
		r.event(StepRollback, EventFailed, "%v", err)
		return err
	}
	if err := r.finish(ctx, OutcomeRolledBack, why); err != nil {
		return err
	}
	r.emit(Event{Step: StepRollback, Kind: EventDone,
		Message: fmt.Sprintf("rolled back; %s keeps serving", liveName(r.plan.From)), Elapsed: s.now().Sub(start)})
	return nil
}

// flipBack rolls a swap back after its shift, while From is still up: HAProxy's routes
// go back to From, then undo moves the mesh back and removes To.
func (r *run) flipBack(ctx context.Context, why error) error {
	s := r.s
	ctx, cancel := cleanupCtx(ctx)
	defer cancel()
	r.event(StepRollback, EventStart, "flipping %q back to %s: %v", r.plan.Route, r.plan.FromBackend(), why)
	if err := s.Balancer.Route(ctx, r.plan.Route, r.plan.FromBackend()); err != nil {
		r.event(StepRollback, EventFailed, "%v", err)
		return fmt.Errorf("route %q back to %s: %w", r.plan.Route, r.plan.FromBackend(), err)
	}
	r.j.Shifted = false
	if err := s.kv().saveJournal(ctx, r.j); err != nil {
		return err
	}
	return r.undo(ctx, why)
}

func liveName(c deployments.Color) string {
	if c == "" {
		return "nothing"
	}
	return string(c)
}

// finish records the outcome in the state's history and drops the journal.
func (r *run) finish(ctx context.Context, outcome string, why error) error {
	s := r.s
	st, err := s.kv().state(ctx, r.plan.App)
	if err != nil {
		return err
	}
	st.addHistory(r.record(outcome, why, r.j.Steps))
	if outcome == OutcomeRolledBack {
		st.pushFailed(r.plan.image()) // for the next cleanup: its containers are gone
	}
	if err := s.kv().saveState(ctx, st); err != nil {
		return err
	}
	return s.kv().dropJournal(ctx, r.j)
}

// record is the history record of r as it ends now with outcome (why: the error that
// ended it, if any) after steps.
func (r *run) record(outcome string, why error, steps []StepTime) Record {
	s := r.s
	rec := Record{Deploy: r.plan.Deploy, Op: r.plan.Op, From: r.plan.From, To: r.plan.To, Image: r.plan.Image, ImageID: r.plan.ImageID,
		Started: r.started, Finished: s.now(), Result: outcome, Steps: steps}
	if why != nil {
		rec.Error = why.Error()
	}
	return rec
}

// removeColor removes every trace of an app's color: HAProxy servers, Consul entries
// and containers. It refuses when any HAProxy routes the app to that color.
func (r *run) removeColor(ctx context.Context, c deployments.Color, step Step) error {
	s := r.s
	app := r.plan.App
	backend := deployments.BackendName(app, c)
	routes, err := s.Balancer.Routes(ctx, r.plan.Route)
	if err != nil {
		return err
	}
	for lb, be := range routes {
		if be == backend {
			return fmt.Errorf("%w: HAProxy %s routes %q to %s", ErrLiveColor, lb, r.plan.Route, backend)
		}
	}
	var errs []error
	servers, err := s.Balancer.Servers(ctx, backend)
	errs = append(errs, err)
	errs = append(errs, s.Balancer.RemoveServers(ctx, backend, serverNames(servers)))
	regs, err := s.Registry.Instances(ctx, app)
	errs = append(errs, err)
	for _, reg := range regs {
		if reg.Color == c {
			errs = append(errs, s.Registry.Deregister(ctx, reg.ID))
		}
	}
	insts, err := s.Runtime.List(ctx, app)
	errs = append(errs, err)
	// Stop the containers side by side: each may take up to stop_timeout.
	stopErrs := make([]error, len(insts))
	var wg sync.WaitGroup
	for i, in := range insts {
		if in.Color != c {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			stopErrs[i] = s.Runtime.Stop(ctx, in, r.app.StopTimeout)
		}()
	}
	wg.Wait()
	errs = append(errs, stopErrs...)
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove %s %s: %w", app, c, err)
	}
	r.event(step, EventInfo, "removed %s's servers, Consul entries and containers", c)
	return nil
}

// serverNames lists the distinct server names of stats (one row per HAProxy instance).
func serverNames(stats []ServerStat) []string {
	var out []string
	for _, st := range stats {
		if !slices.Contains(out, st.Name) {
			out = append(out, st.Name)
		}
	}
	return out
}

// colorInstances lists the app's containers of color c.
func (s *Switcher) colorInstances(ctx context.Context, app string, c deployments.Color) ([]deployments.Instance, error) {
	all, err := s.Runtime.List(ctx, app)
	if err != nil {
		return nil, err
	}
	var out []deployments.Instance
	for _, in := range all {
		if in.Color == c {
			out = append(out, in)
		}
	}
	return out, nil
}
