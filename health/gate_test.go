package health

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestGate_OpensWhenEveryTargetIsHealthyLongEnough(t *testing.T) {
	noLeaks(t)
	a, b := newApp(t, nil), newApp(t, nil)
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 2})
	for id, app := range map[string]*app{"web-1": a, "web-2": b} {
		if err := s.Add(httpTarget(t, id, app, time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	runScheduler(t, s)

	if err := s.Wait(context.Background(), []string{"web-1", "web-2"}, 20*time.Millisecond, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("gate: %v", err)
	}
	for _, st := range s.Snapshot() {
		if st.HealthyFor(time.Now()) < 20*time.Millisecond {
			t.Errorf("%s opened the gate after only %s healthy", st.Target, st.HealthyFor(time.Now()))
		}
	}
}

func TestGate_FailsAtTheDeadlineNamingEachFailingTargetAndWhy(t *testing.T) {
	noLeaks(t)
	good := newApp(t, nil)
	bad := newApp(t, nil)
	bad.status.Store(http.StatusServiceUnavailable)
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 2})
	for _, tg := range []Target{
		httpTarget(t, "web-1", good, time.Second),
		httpTarget(t, "web-2", bad, time.Second),
		{ID: "web-3", Checker: &script{}}, // never answers
	} {
		if err := s.Add(tg); err != nil {
			t.Fatal(err)
		}
	}
	runScheduler(t, s)
	eventually(t, "web-2 unhealthy", func() bool { st, _ := s.Status("web-2"); return st.State == StateUnhealthy })

	err := s.Wait(context.Background(), []string{"web-1", "web-2", "web-3"}, 0, time.Now().Add(50*time.Millisecond))
	if !errors.Is(err, ErrGateTimeout) {
		t.Fatalf("got %v, want ErrGateTimeout", err)
	}
	var ge *GateError
	if !errors.As(err, &ge) {
		t.Fatalf("got %T, want *GateError", err)
	}
	if len(ge.Failing) != 2 || ge.Failing[0].Target != "web-2" || ge.Failing[1].Target != "web-3" {
		t.Fatalf("failing %+v, want web-2 and web-3", ge.Failing)
	}
	f := ge.Failing[0]
	if f.State != StateUnhealthy || f.Last.Reason != ReasonStatus || f.Last.Status != 503 {
		t.Errorf("web-2: %+v, want unhealthy with a 503", f)
	}
	if f := ge.Failing[1]; f.State != StateUnknown || f.Probes != 0 || f.Err() == nil {
		t.Errorf("web-3: %+v, want unknown with no probe", f)
	}
	for _, want := range []string{"web-2 is unhealthy", "status 503", "web-3 is unknown after 0 probes (last error: no probe completed)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "web-1") {
		t.Errorf("error %q names the healthy web-1", err)
	}
}

func TestGate_PastItsDeadlineWaitsForFirstResultsSoTheErrorSaysWhy(t *testing.T) {
	noLeaks(t)
	bad := newApp(t, nil)
	bad.status.Store(http.StatusServiceUnavailable)
	good := newApp(t, nil)
	// The steps before a gate can use up its deadline: it starts when the deadline has
	// already passed and nothing was probed yet.
	s := NewScheduler(Options{Interval: time.Second, Rise: 1, Fall: 1, Jitter: -1})
	for _, tg := range []Target{httpTarget(t, "web-1", bad, time.Second), httpTarget(t, "web-2", good, time.Second)} {
		if err := s.Add(tg); err != nil {
			t.Fatal(err)
		}
	}
	runScheduler(t, s)
	start := time.Now()
	err := s.Wait(context.Background(), []string{"web-1", "web-2"}, 0, start.Add(-time.Second))
	took := time.Since(start)
	var ge *GateError
	if !errors.As(err, &ge) {
		t.Fatalf("got %v, want a *GateError", err)
	}
	// web-1 is named with its probe's result, not "no probe completed"; web-2, healthy
	// at its first probe, is not named at all.
	if len(ge.Failing) != 1 || ge.Failing[0].Target != "web-1" || ge.Failing[0].Probes == 0 || ge.Failing[0].Last.Status != 503 {
		t.Fatalf("failing %+v, want web-1 alone, with its 503", ge.Failing)
	}
	if !strings.Contains(err.Error(), "status 503") || strings.Contains(err.Error(), "no probe completed") {
		t.Errorf("error %q: want web-1's 503", err)
	}
	t.Logf("the gate waited %s past its deadline for first results (grace: 2 intervals, 2s)", took)
}

func TestGate_AFailureDuringMinHealthyTimeRestartsTheClock(t *testing.T) {
	noLeaks(t)
	// Scripted results with made-up times: healthy for an hour, then (or not)
	// a failure a minute ago followed by a success. The gate wants 30 minutes.
	long := time.Now().Add(-time.Hour)
	recent := time.Now().Add(-time.Minute)
	steady := &script{results: []Result{ok(long), ok(long), ok(recent)}}
	blip := &script{results: []Result{ok(long), ok(long), fail(recent, ReasonTimeout), ok(recent.Add(time.Second))}}
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 3})
	for _, tg := range []Target{{ID: "steady", Checker: steady}, {ID: "blip", Checker: blip}} {
		if err := s.Add(tg); err != nil {
			t.Fatal(err)
		}
	}
	runScheduler(t, s)
	eventually(t, "every scripted result observed", func() bool {
		a, _ := s.Status("steady")
		b, _ := s.Status("blip")
		return a.Probes == 3 && b.Probes == 4
	})
	if st, _ := s.Status("blip"); st.State != StateHealthy {
		t.Fatalf("blip is %s; one failure with fall=3 should leave it healthy", st.State)
	}

	if err := s.Wait(context.Background(), []string{"steady"}, 30*time.Minute, time.Now().Add(time.Minute)); err != nil {
		t.Fatalf("steady target: %v", err)
	}
	err := s.Wait(context.Background(), []string{"steady", "blip"}, 30*time.Minute, time.Now().Add(20*time.Millisecond))
	var ge *GateError
	if !errors.As(err, &ge) || len(ge.Failing) != 1 {
		t.Fatalf("got %v, want a gate error for blip alone", err)
	}
	f := ge.Failing[0]
	if f.Target != "blip" || f.State != StateHealthy || f.HealthyFor > 2*time.Minute || f.Last.Reason != ReasonTimeout {
		t.Errorf("got %+v, want blip healthy for about a minute, last failure a timeout", f)
	}
	if !strings.Contains(err.Error(), "blip was healthy for only") {
		t.Errorf("error %q does not explain the restarted clock", err)
	}
}

func TestGate_StopsQuietlyWithItsContextAndRefusesUnknownTargets(t *testing.T) {
	noLeaks(t)
	s := NewScheduler(Options{Interval: tick})
	if err := s.Add(Target{ID: "never", Checker: &script{}}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)
	if err := s.Wait(context.Background(), []string{"never", "ghost"}, 0, time.Now().Add(time.Minute)); !errors.Is(err, ErrUnknownTarget) {
		t.Fatalf("got %v, want ErrUnknownTarget", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the gate is waiting.
		eventually(t, "the gate to wait", func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.gates) == 1 })
		cancel()
	}()
	if err := s.Wait(ctx, []string{"never"}, 0, time.Time{}); !errors.Is(err, context.Canceled) { // no deadline: ctx alone
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestGate_NamesATargetRemovedWhileWaiting(t *testing.T) {
	noLeaks(t)
	s := NewScheduler(Options{Interval: tick})
	if err := s.Add(Target{ID: "gone", Checker: &script{}}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)
	s.Remove("gone")
	ok, _, failing := s.gateState([]string{"gone"}, 0, time.Now())
	if ok || len(failing) != 1 || !failing[0].Removed || !strings.Contains(failing[0].String(), "removed") {
		t.Fatalf("got %v %+v, want gone reported as removed", ok, failing)
	}
}

func TestWait_RunsItsOwnSchedulerForTheGate(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	targets := []Target{httpTarget(t, "web-1", a, time.Second)}
	if err := Wait(context.Background(), targets, 10*time.Millisecond, time.Now().Add(time.Minute), Options{Interval: tick}); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	a.status.Store(http.StatusInternalServerError)
	err := Wait(context.Background(), targets, 0, time.Now().Add(30*time.Millisecond), Options{Interval: tick})
	if !errors.Is(err, ErrGateTimeout) || !strings.Contains(err.Error(), "web-1") {
		t.Fatalf("got %v, want a gate timeout naming web-1", err)
	}
}

func TestWatch_ReportsTransitionsUntilCancelled(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	rec := newRecorder()
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, []Target{httpTarget(t, "web-1", a, time.Second)}, Options{Interval: tick, Rise: 1, Fall: 1}, rec.listen)
	}()
	if tr := rec.next(t); tr.To != StateHealthy {
		t.Fatalf("got %v", tr)
	}
	a.status.Store(http.StatusInternalServerError)
	if tr := rec.next(t); tr.To != StateUnhealthy {
		t.Fatalf("got %v", tr)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch returned %v after cancellation, want nil", err)
	}
	if err := Watch(context.Background(), []Target{{ID: "x"}}, Options{}, rec.listen); !errors.Is(err, ErrInvalidTarget) {
		t.Fatalf("got %v, want ErrInvalidTarget", err)
	}
}
