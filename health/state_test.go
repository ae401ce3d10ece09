package health

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestTracker_FollowsRiseAndFall(t *testing.T) {
	// Results: '+' success, '-' failure, 'c' cancelled. Want: the state after
	// each result (U unknown, D unhealthy, H healthy).
	tests := []struct {
		name       string
		rise, fall int
		results    string
		want       string
	}{
		{"a new target is unknown until rise successes", 3, 2, "+++", "UUH"},
		{"fall failures from unknown make it unhealthy", 2, 2, "--", "UD"},
		{"a failure while rising resets the success count", 2, 3, "+-++", "UUUH"},
		{"a success while falling resets the failure count", 2, 3, "++--+---", "UHHHHHHD"},
		{"an unhealthy target needs rise successes again", 2, 1, "++-+-++", "UHDDDDH"},
		{"flapping never settles", 2, 2, "+-+-+-+-", "UUUUUUUU"},
		{"rise and fall of 1 follow every result", 1, 1, "+-+", "HDH"},
		{"cancelled probes count for nothing", 2, 2, "+c+-c-", "UUHHHD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker("web-1", tt.rise, tt.fall)
			at := time.Now()
			var got strings.Builder
			var transitions int
			for _, c := range tt.results {
				at = at.Add(time.Second)
				r := ok(at)
				switch c {
				case '-':
					r = fail(at, ReasonStatus)
				case 'c':
					r = Result{Reason: ReasonCanceled, Start: at}
				}
				before := tr.Status().State
				trn, changed := tr.Observe(r)
				after := tr.Status().State
				got.WriteByte("UDH"[after])
				if changed != (before != after) {
					t.Fatalf("changed=%v but state went %s -> %s", changed, before, after)
				}
				if changed {
					transitions++
					if trn.From != before || trn.To != after || trn.Target != "web-1" || !trn.At.Equal(at) {
						t.Errorf("transition %+v, want web-1 %s -> %s at %v", trn, before, after, at)
					}
				}
			}
			if got.String() != tt.want {
				t.Errorf("states %s, want %s", got.String(), tt.want)
			}
		})
	}
}

func TestTracker_AFailureRestartsTheHealthyClock(t *testing.T) {
	t0 := time.Now()
	tr := NewTracker("web-1", 2, 3)
	tr.Observe(ok(t0))
	tr.Observe(ok(t0.Add(1 * time.Second)))
	if got := tr.Status().HealthySince; !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("healthy since %v, want the second success", got)
	}
	tr.Observe(ok(t0.Add(2 * time.Second)))
	if got := tr.Status().HealthySince; !got.Equal(t0.Add(time.Second)) {
		t.Fatalf("another success moved the clock to %v", got)
	}
	tr.Observe(fail(t0.Add(3*time.Second), ReasonTimeout))
	st := tr.Status()
	if st.State != StateHealthy || !st.HealthySince.IsZero() || st.HealthyFor(t0.Add(4*time.Second)) != 0 {
		t.Fatalf("after one failure: %s since %v, want still healthy with the clock stopped", st.State, st.HealthySince)
	}
	tr.Observe(ok(t0.Add(4 * time.Second)))
	st = tr.Status()
	if !st.HealthySince.Equal(t0.Add(4*time.Second)) || st.HealthyFor(t0.Add(6*time.Second)) != 2*time.Second {
		t.Fatalf("after recovering: healthy since %v, want the clock restarted at the success", st.HealthySince)
	}
	if st.LastFailure.Reason != ReasonTimeout {
		t.Errorf("last failure %v, want the timeout", st.LastFailure)
	}
}

func TestStatesAndReasons_HaveNames(t *testing.T) {
	for _, tt := range []struct{ got, want string }{
		{StateUnknown.String(), "unknown"},
		{StateUnhealthy.String(), "unhealthy"},
		{StateHealthy.String(), "healthy"},
		{State(9).String(), "state(9)"},
		{ReasonTimeout.String(), "timeout"},
		{ReasonCanceled.String(), "canceled"},
		{Reason(42).String(), "reason(42)"},
		{fmt.Sprint(Transition{Target: "a", From: StateUnknown, To: StateHealthy, Result: Result{OK: true}}), "a: unknown -> healthy (ok in 0s)"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
