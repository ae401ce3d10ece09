package health

import (
	"fmt"
	"time"
)

// State is a target's health as judged by rise/fall.
type State uint8

const (
	// StateUnknown: not yet rise successes nor fall failures in a row since the
	// target was added. Not healthy: gates and callers treat it like unhealthy.
	StateUnknown State = iota
	// StateUnhealthy: fall consecutive failures, and not rise successes since.
	StateUnhealthy
	// StateHealthy: rise consecutive successes, and not fall failures since.
	StateHealthy
)

func (s State) String() string {
	switch s {
	case StateUnknown:
		return "unknown"
	case StateUnhealthy:
		return "unhealthy"
	case StateHealthy:
		return "healthy"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Transition is a change of a target's State and the probe that caused it.
type Transition struct {
	Target   string
	From, To State
	At       time.Time
	Result   Result
}

func (t Transition) String() string {
	return fmt.Sprintf("%s: %s -> %s (%s)", t.Target, t.From, t.To, t.Result)
}

// Status is a snapshot of one target.
type Status struct {
	Target string
	State  State
	// Since is when State began (for StateUnknown: when tracking began).
	Since time.Time
	// HealthySince is when the current unbroken healthy stretch began: the
	// later of becoming healthy and the first success after the latest failed
	// probe. Zero unless healthy and the latest probe succeeded. A single
	// failure resets it even when it is too short to make the target unhealthy.
	HealthySince time.Time
	// Successes and Failures count the current run of consecutive results;
	// one of them is zero.
	Successes, Failures int
	// Probes counts the results observed (cancelled probes are not counted).
	Probes int
	// Last is the latest result; LastFailure the latest failed one (zero if none).
	Last, LastFailure Result
}

// Healthy reports State == StateHealthy.
func (s Status) Healthy() bool { return s.State == StateHealthy }

// HealthyFor is how long the target has been healthy without a failed probe
// at time now; 0 when it is not.
func (s Status) HealthyFor(now time.Time) time.Duration {
	if s.State != StateHealthy || s.HealthySince.IsZero() {
		return 0
	}
	return max(now.Sub(s.HealthySince), 0)
}

// Tracker applies HAProxy's rise/fall rule to a stream of results: rise
// consecutive successes make a target healthy, fall consecutive failures make
// it unhealthy, and each success resets the failure count and each failure
// the success count. A target starts in StateUnknown. A Tracker is not safe
// for concurrent use; the Scheduler owns one per target.
type Tracker struct {
	rise, fall int
	st         Status
}

// NewTracker starts tracking target in StateUnknown. rise and fall below 1
// count as 1.
func NewTracker(target string, rise, fall int) *Tracker {
	return &Tracker{
		rise: max(rise, 1),
		fall: max(fall, 1),
		st:   Status{Target: target, State: StateUnknown, Since: time.Now()},
	}
}

// Observe applies r and reports the transition it caused, if any. Cancelled
// results (ReasonCanceled) are ignored: cancellation is not a failure.
func (t *Tracker) Observe(r Result) (tr Transition, changed bool) {
	if r.Reason == ReasonCanceled {
		return Transition{}, false
	}
	at := r.End()
	if r.Start.IsZero() {
		at = time.Now()
	}
	st := &t.st
	st.Probes++
	st.Last = r
	if r.OK {
		st.Successes++
		st.Failures = 0
	} else {
		st.Failures++
		st.Successes = 0
		st.LastFailure = r
		st.HealthySince = time.Time{}
	}
	from := st.State
	switch {
	case r.OK && st.State != StateHealthy && st.Successes >= t.rise:
		st.State = StateHealthy
	case !r.OK && st.State != StateUnhealthy && st.Failures >= t.fall:
		st.State = StateUnhealthy
	}
	if st.State != from {
		st.Since = at
	}
	if r.OK && st.State == StateHealthy && st.HealthySince.IsZero() {
		st.HealthySince = at
	}
	if st.State == from {
		return Transition{}, false
	}
	return Transition{Target: st.Target, From: from, To: st.State, At: at, Result: r}, true
}

// Status returns the current snapshot.
func (t *Tracker) Status() Status { return t.st }
