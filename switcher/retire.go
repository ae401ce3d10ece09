package switcher

import (
	"context"
	"fmt"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// retireLockWait bounds how long a swap that waited out scale_down_delay waits for
// the app's lock to retire its old color (another swap, a rollback say, holds it).
const retireLockWait = 30 * time.Minute

// retireLater finishes a done swap that kept its old color up for scale_down_delay.
// It waits without the lock (so `swap rollback` can flip back meanwhile), then, under
// the lock, removes the color unless another swap took it back. When it cannot (ctx
// ended, lock busy, an engine error) the color stays recorded as retiring and the next
// operation on the app removes it: res.Message says so.
func (s *Switcher) retireLater(ctx context.Context, spec *deployments.App, res *Result, err error) {
	if err != nil || res == nil || res.Outcome != OutcomeDone || res.Retiring == "" {
		return
	}
	app, deploy, c := spec.Name, res.Plan.Deploy, res.Retiring
	ev := func(kind EventKind, elapsed time.Duration, format string, args ...any) {
		s.emit(Event{App: app, Deploy: deploy, Step: StepRetire, Kind: kind, Elapsed: elapsed, Message: fmt.Sprintf(format, args...)})
	}
	pending := fmt.Sprintf("%s is still up; after %s the next swap, `swap resume %s` or `swap cleanup %s` removes it",
		c, res.RetireAt.Format(time.TimeOnly), app, app)
	start := s.now()
	ev(EventStart, 0, "waiting until %s to retire %s (scale_down_delay; the lock is free for `swap rollback %s`)",
		res.RetireAt.Format(time.TimeOnly), c, app)
	t := time.NewTimer(res.RetireAt.Sub(s.now()))
	defer t.Stop()
	select {
	case <-ctx.Done():
		ev(EventFailed, s.now().Sub(start), "stopped waiting (%v): %s", context.Cause(ctx), pending)
		res.Message = pending
		return
	case <-t.C:
	}
	lctx, release, err := s.lock(ctx, app, retireLockWait)
	if err != nil {
		ev(EventFailed, s.now().Sub(start), "%v: %s", err, pending)
		res.Message = pending
		return
	}
	defer release()
	retired, err := s.retireColors(lctx, spec, func(_ deployments.Color, cs ColorState) bool { return cs.RetiredBy == deploy })
	switch {
	case err != nil:
		ev(EventFailed, s.now().Sub(start), "%v: %s", err, pending)
		res.Message = pending
	case len(retired) == 0:
		res.Message = fmt.Sprintf("%s was not retired: another swap took it back", c)
		ev(EventSkip, s.now().Sub(start), "%s", res.Message)
	default:
		res.Retired = true
		ev(EventDone, s.now().Sub(start), "retired %s", c)
	}
}

// retireDue removes the app's retiring colors whose scale_down_delay is over: the
// swap that was to retire them is gone. Errors are reported as events; the colors
// stay recorded and the next operation tries again.
func (s *Switcher) retireDue(ctx context.Context, spec *deployments.App) {
	now := s.now()
	retired, err := s.retireColors(ctx, spec, func(_ deployments.Color, cs ColorState) bool { return !now.Before(cs.RetireAt) })
	for _, c := range retired {
		s.emit(Event{App: spec.Name, Step: StepRetire, Kind: EventInfo, Message: fmt.Sprintf("retired %s: its scale_down_delay is over", c)})
	}
	if err != nil {
		s.emit(Event{App: spec.Name, Step: StepRetire, Kind: EventFailed, Message: fmt.Sprintf("retire a color whose scale_down_delay is over: %v", err)})
	}
}

// retireColors removes, under the app's lock, each retiring color that pick chooses,
// never the live color nor the target of a journaled swap, and forgets it in the state.
func (s *Switcher) retireColors(ctx context.Context, spec *deployments.App, pick func(deployments.Color, ColorState) bool) ([]deployments.Color, error) {
	st, err := s.kv().state(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	j, inFlight, err := s.kv().journal(ctx, spec.Name)
	if err != nil {
		return nil, err
	}
	var retired []deployments.Color
	for _, c := range deployments.Colors {
		cs, ok := st.Colors[c]
		if !ok || !cs.Retiring() || c == st.Live || (inFlight && c == j.Plan.To) || !pick(c, cs) {
			continue
		}
		r := s.newRun(spec, Plan{App: spec.Name, Deploy: cs.RetiredBy, Route: spec.Route}, nil, time.Time{})
		if err := r.removeColor(ctx, c, StepRetire); err != nil {
			return retired, err
		}
		delete(st.Colors, c)
		if err := s.kv().saveState(ctx, st); err != nil {
			return retired, err
		}
		retired = append(retired, c)
	}
	return retired, nil
}
