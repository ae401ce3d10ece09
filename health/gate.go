package health

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// ErrGateTimeout: the deadline passed before every target of a gate had been
// healthy for the minimum time. The error returned is a *GateError.
var ErrGateTimeout = errors.New("health: targets not healthy before the deadline")

// GateError lists the targets that kept a gate closed. It wraps ErrGateTimeout.
type GateError struct {
	MinHealthy time.Duration
	// Failing has one entry per target not healthy for MinHealthy, in the
	// order the targets were given.
	Failing []GateFailure
}

// GateFailure is one target that kept a gate closed.
type GateFailure struct {
	Target string
	// State at the deadline; HealthyFor how long it had been healthy without
	// a failed probe (0 unless healthy).
	State      State
	HealthyFor time.Duration
	// Last is its latest failed probe (zero if none failed); Reason and Err
	// come from it. Removed is set when the target was removed while waiting.
	Last    Result
	Probes  int
	Removed bool
}

// Err is the target's last error, or a description when it has none.
func (f GateFailure) Err() error {
	switch {
	case f.Removed:
		return errors.New("removed while the gate waited")
	case f.Last.Err != nil:
		return f.Last.Err
	case f.Probes == 0:
		return errors.New("no probe completed")
	}
	return nil
}

func (f GateFailure) String() string {
	var b strings.Builder
	b.WriteString(f.Target)
	switch {
	case f.Removed:
		b.WriteString(" was removed while the gate waited")
		return b.String()
	case f.State == StateHealthy:
		fmt.Fprintf(&b, " was healthy for only %s", f.HealthyFor.Round(time.Millisecond))
	default:
		fmt.Fprintf(&b, " is %s after %d probes", f.State, f.Probes)
	}
	if err := f.Err(); err != nil {
		fmt.Fprintf(&b, " (last error: %v)", err)
	}
	return b.String()
}

func (e *GateError) Error() string {
	parts := make([]string, len(e.Failing))
	for i, f := range e.Failing {
		parts[i] = f.String()
	}
	return fmt.Sprintf("health gate: %d target(s) not healthy for %s before the deadline: %s; check those targets' health endpoints, or allow more time",
		len(e.Failing), e.MinHealthy, strings.Join(parts, "; "))
}

// Unwrap returns ErrGateTimeout.
func (e *GateError) Unwrap() error { return ErrGateTimeout }

// gateWatch wakes a waiting gate when one of its targets has a new result.
type gateWatch struct {
	ids  map[string]bool
	wake chan struct{}
}

func (s *Scheduler) notifyGatesLocked(id string) {
	for g := range s.gates {
		if g.ids[id] {
			select {
			case g.wake <- struct{}{}:
			default:
			}
		}
	}
}

// Wait blocks until every target in ids has been healthy, without a single
// failed probe, for minHealthy (a failure restarts that target's clock; with
// minHealthy 0 being healthy is enough). It returns nil then; a *GateError
// wrapping ErrGateTimeout when deadline passes first, naming each failing
// target and its last error; ctx.Err() when ctx ends first; ErrUnknownTarget
// if an id is not scheduled. A zero deadline means none: only ctx bounds the
// wait. The scheduler must be running (Run) for the targets to be probed.
//
// A failing target that has no probe result yet at the deadline (the deadline
// came before its first probe ended, or had passed already) gets up to two of its
// intervals more for one, so the error says why it fails instead of "no probe
// completed". That overtime never opens a gate a result would not: it ends as
// soon as every failing target has a result.
func (s *Scheduler) Wait(ctx context.Context, ids []string, minHealthy time.Duration, deadline time.Time) error {
	g := &gateWatch{ids: make(map[string]bool, len(ids)), wake: make(chan struct{}, 1)}
	s.mu.Lock()
	for _, id := range ids {
		if _, ok := s.entries[id]; !ok {
			s.mu.Unlock()
			return fmt.Errorf("%w: %q: add it to the scheduler before waiting for it", ErrUnknownTarget, id)
		}
		g.ids[id] = true
	}
	s.gates[g] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.gates, g)
		s.mu.Unlock()
	}()

	var dl *time.Timer
	var dlC <-chan time.Time
	if !deadline.IsZero() {
		dl = time.NewTimer(time.Until(deadline))
		defer dl.Stop()
		dlC = dl.C
	}
	overtime := false // past the deadline, waiting for first results
	ripe := time.NewTimer(time.Hour)
	defer ripe.Stop()
	for {
		ok, next, failing := s.gateState(ids, minHealthy, time.Now())
		if ok {
			return nil
		}
		if overtime && s.firstProbeGrace(failing) == 0 {
			return &GateError{MinHealthy: minHealthy, Failing: failing}
		}
		var ripeC <-chan time.Time
		if !next.IsZero() {
			ripe.Reset(time.Until(next))
			ripeC = ripe.C
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-dlC:
			ok, _, failing := s.gateState(ids, minHealthy, time.Now())
			if ok {
				return nil
			}
			grace := s.firstProbeGrace(failing)
			if overtime || grace == 0 {
				return &GateError{MinHealthy: minHealthy, Failing: failing}
			}
			overtime = true
			dl.Reset(grace)
		case <-g.wake:
		case <-ripeC:
		}
	}
}

// firstProbeGrace is how much longer a gate past its deadline waits for the
// failing targets that have no probe result yet: two of the longest interval among
// them (the first probe starts within one, and a probe's timeout is normally
// shorter than its interval); zero when every failing target has a result.
func (s *Scheduler) firstProbeGrace(failing []GateFailure) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var grace time.Duration
	for _, f := range failing {
		if f.Removed || f.Probes > 0 {
			continue
		}
		if e, ok := s.entries[f.Target]; ok {
			grace = max(grace, 2*e.target.Interval)
		}
	}
	return grace
}

// gateState reports whether the gate is open at now; if not, the earliest
// time a currently healthy target's clock ripens (zero if none) and the
// failing targets.
func (s *Scheduler) gateState(ids []string, minHealthy time.Duration, now time.Time) (ok bool, next time.Time, failing []GateFailure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		e, found := s.entries[id]
		if !found {
			failing = append(failing, GateFailure{Target: id, Removed: true})
			continue
		}
		st := e.tracker.Status()
		hf := st.HealthyFor(now)
		if st.Healthy() && hf >= minHealthy {
			continue
		}
		if st.Healthy() {
			if at := st.HealthySince.Add(minHealthy); next.IsZero() || at.Before(next) {
				next = at
			}
		}
		failing = append(failing, GateFailure{
			Target: id, State: st.State, HealthyFor: hf, Last: st.LastFailure, Probes: st.Probes,
		})
	}
	return len(failing) == 0, next, failing
}

// Wait probes targets with a scheduler of their own (opts) and waits as
// Scheduler.Wait does; the scheduler stops before Wait returns.
func Wait(ctx context.Context, targets []Target, minHealthy time.Duration, deadline time.Time, opts Options) error {
	s := NewScheduler(opts)
	ids := make([]string, len(targets))
	for i, t := range targets {
		if err := s.Add(t); err != nil {
			return err
		}
		ids[i] = t.ID
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Run(rctx) // returns nil on cancellation, its only way to stop
	}()
	err := s.Wait(ctx, ids, minHealthy, deadline)
	cancel()
	<-done
	return err
}

// Watch probes targets until ctx ends and calls fn with every transition
// (see Scheduler.Subscribe). It returns nil when ctx ends, or an error when a
// target is invalid. It is what `swap health watch` needs.
func Watch(ctx context.Context, targets []Target, opts Options, fn func(Transition)) error {
	s := NewScheduler(opts)
	for _, t := range targets {
		if err := s.Add(t); err != nil {
			return err
		}
	}
	s.Subscribe(fn)
	return s.Run(ctx)
}
