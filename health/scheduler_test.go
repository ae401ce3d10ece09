package health

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const tick = 2 * time.Millisecond // probe interval in scheduler tests

func TestScheduler_TargetRisesAndFallsWithItsServer(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 3})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "web-1", a, time.Second)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)

	want := func(from, to State, reason Reason) {
		t.Helper()
		tr := rec.next(t)
		if tr.Target != "web-1" || tr.From != from || tr.To != to || tr.Result.Reason != reason {
			t.Fatalf("got %v, want web-1: %s -> %s (%s)", tr, from, to, reason)
		}
	}
	want(StateUnknown, StateHealthy, ReasonOK)
	a.status.Store(http.StatusServiceUnavailable)
	want(StateHealthy, StateUnhealthy, ReasonStatus)
	if st, _ := s.Status("web-1"); st.Failures < 3 || st.LastFailure.Status != 503 {
		t.Errorf("status %+v, want at least 3 failures, the last a 503", st)
	}
	a.status.Store(http.StatusOK)
	want(StateUnhealthy, StateHealthy, ReasonOK)
}

func TestScheduler_SlowStartGoesUnhealthyThenHealthy(t *testing.T) {
	noLeaks(t)
	var n atomic.Int64
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 5 { // still booting
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 2})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "slow", a, time.Second)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)

	if tr := rec.next(t); tr.From != StateUnknown || tr.To != StateUnhealthy {
		t.Fatalf("got %v, want unknown -> unhealthy while booting", tr)
	}
	if tr := rec.next(t); tr.From != StateUnhealthy || tr.To != StateHealthy {
		t.Fatalf("got %v, want unhealthy -> healthy once up", tr)
	}
}

func TestScheduler_FlappingTargetNeverTransitions(t *testing.T) {
	noLeaks(t)
	var n atomic.Int64
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	})
	var results atomic.Int64
	s := NewScheduler(Options{Interval: tick, Rise: 2, Fall: 2,
		OnResult: func(string, Result) { results.Add(1) }})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "flappy", a, time.Second)); err != nil {
		t.Fatal(err)
	}
	stop := runScheduler(t, s)
	eventually(t, "30 probes", func() bool { return results.Load() >= 30 })
	stop()

	if got := rec.all(); len(got) != 0 {
		t.Errorf("got transitions %v from a target alternating ok/fail with rise=fall=2", got)
	}
	if st, _ := s.Status("flappy"); st.State != StateUnknown || st.Probes < 30 {
		t.Errorf("status %+v, want unknown after at least 30 probes", st)
	}
}

func TestScheduler_TimeoutsAndRefusalsMakeTargetsUnhealthy(t *testing.T) {
	noLeaks(t)
	slow := newApp(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	refusing, err := NewTCPChecker(TCPConfig{Addr: closedAddr(t)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewScheduler(Options{Interval: tick, Rise: 1, Fall: 2})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "slow", slow, 5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(Target{ID: "refusing", Checker: refusing}); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)

	got := map[string]Reason{}
	for range 2 {
		tr := rec.next(t)
		if tr.To != StateUnhealthy {
			t.Fatalf("got %v, want unhealthy", tr)
		}
		got[tr.Target] = tr.Result.Reason
	}
	if got["slow"] != ReasonTimeout || got["refusing"] != ReasonRefused {
		t.Errorf("reasons %v, want slow: timeout, refusing: refused", got)
	}
}

func TestScheduler_AddAndRemoveWhileRunningLeaveOthersAlone(t *testing.T) {
	noLeaks(t)
	a := newApp(t, nil)
	var mu sync.Mutex
	counts := map[string]int{}
	s := NewScheduler(Options{Interval: tick, Rise: 1, Fall: 1, OnResult: func(id string, r Result) {
		mu.Lock()
		counts[id]++
		mu.Unlock()
	}})
	count := func(id string) int { mu.Lock(); defer mu.Unlock(); return counts[id] }
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "stays", a, time.Second)); err != nil {
		t.Fatal(err)
	}
	runScheduler(t, s)
	if tr := rec.next(t); tr.Target != "stays" || tr.To != StateHealthy {
		t.Fatalf("got %v", tr)
	}

	if err := s.Add(httpTarget(t, "visits", a, time.Second)); err != nil {
		t.Fatal(err)
	}
	if tr := rec.next(t); tr.Target != "visits" || tr.To != StateHealthy {
		t.Fatalf("got %v, want the added target to become healthy", tr)
	}
	if err := s.Add(httpTarget(t, "visits", a, time.Second)); !errors.Is(err, ErrDuplicateTarget) {
		t.Fatalf("adding a duplicate: %v, want ErrDuplicateTarget", err)
	}
	if !s.Remove("visits") || s.Remove("visits") {
		t.Fatal("Remove should report true once, then false")
	}
	if _, ok := s.Status("visits"); ok || s.Len() != 1 {
		t.Fatalf("removed target still has a status; %d targets", s.Len())
	}
	removedAt := count("visits")
	before := count("stays")
	eventually(t, "20 more probes of the remaining target", func() bool { return count("stays") >= before+20 })
	// A result already in hand when Remove ran may still be reported; no more.
	if got := count("visits"); got > removedAt+1 {
		t.Errorf("removed target was probed %d more times", got-removedAt)
	}
	if st, _ := s.Status("stays"); st.State != StateHealthy || st.Failures != 0 {
		t.Errorf("remaining target disturbed: %+v", st)
	}
	if got := rec.all(); len(got) != 2 {
		t.Errorf("transitions %v, want just the two rises", got)
	}
}

func TestScheduler_RemoveCancelsTheProbeInFlight(t *testing.T) {
	noLeaks(t)
	arrived := make(chan struct{}, 1)
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	})
	s := NewScheduler(Options{Interval: tick, Rise: 1, Fall: 1})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	if err := s.Add(httpTarget(t, "hung", a, time.Minute)); err != nil {
		t.Fatal(err)
	}
	stop := runScheduler(t, s)
	<-arrived
	s.Remove("hung")
	stop() // returns only once the cancelled probe has finished
	if got := rec.all(); len(got) != 0 {
		t.Errorf("got transitions %v for a removed target", got)
	}
}

func TestScheduler_CancellationIsQuiet(t *testing.T) {
	noLeaks(t)
	var inFlight sync.WaitGroup
	inFlight.Add(10)
	var arrived atomic.Int64
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) <= 10 {
			inFlight.Done()
		}
		<-r.Context().Done()
	})
	var results atomic.Int64
	s := NewScheduler(Options{Interval: tick, Rise: 1, Fall: 1,
		OnResult: func(string, Result) { results.Add(1) }})
	rec := newRecorder()
	s.Subscribe(rec.listen)
	for i := range 10 {
		if err := s.Add(httpTarget(t, "t"+string(rune('a'+i)), a, time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	stop := runScheduler(t, s)
	inFlight.Wait() // all ten probes are blocked in the server
	stop()          // Run returns nil (checked by stop)

	if got := rec.all(); len(got) != 0 {
		t.Errorf("cancellation produced transitions %v", got)
	}
	if results.Load() != 0 {
		t.Errorf("cancellation reported %d results", results.Load())
	}
	for _, st := range s.Snapshot() {
		if st.Probes != 0 || st.State != StateUnknown {
			t.Errorf("cancelled probe counted: %+v", st)
		}
	}
	if err := s.Add(httpTarget(t, "late", a, time.Second)); !errors.Is(err, ErrStopped) {
		t.Errorf("Add after Run returned: %v, want ErrStopped", err)
	}
	if err := s.Run(context.Background()); !errors.Is(err, ErrAlreadyRunning) {
		t.Errorf("second Run: %v, want ErrAlreadyRunning", err)
	}
}

func TestScheduler_BoundsProbesInFlight(t *testing.T) {
	noLeaks(t)
	var cur, peak atomic.Int64
	var total atomic.Int64
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(time.Millisecond) // hold the probe open so probes overlap
		cur.Add(-1)
		total.Add(1)
	})
	s := NewScheduler(Options{Interval: tick, Concurrency: 3, Jitter: -1})
	for i := range 20 {
		if err := s.Add(httpTarget(t, "t"+string(rune('a'+i)), a, time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	stop := runScheduler(t, s)
	eventually(t, "100 probes", func() bool { return total.Load() >= 100 })
	stop()
	if p := peak.Load(); p > 3 || p < 2 {
		t.Errorf("peak %d probes in flight, want at most the limit of 3 (and some overlap)", p)
	}
}

func TestScheduler_RejectsInvalidTargets(t *testing.T) {
	c := CheckFunc(func(context.Context) error { return nil })
	s := NewScheduler(Options{})
	for _, tt := range []struct {
		name string
		t    Target
	}{
		{"no ID", Target{Checker: c}},
		{"no checker", Target{ID: "a"}},
		{"negative interval", Target{ID: "a", Checker: c, Interval: -time.Second}},
		{"negative rise", Target{ID: "a", Checker: c, Rise: -1}},
	} {
		if err := s.Add(tt.t); !errors.Is(err, ErrInvalidTarget) {
			t.Errorf("%s: got %v, want ErrInvalidTarget", tt.name, err)
		}
	}
}

func TestScheduler_WorkersStartedByABurstExitWhenIdle(t *testing.T) {
	noLeaks(t)
	// Twenty probes held in the server at once need twenty workers.
	var held sync.WaitGroup
	held.Add(20)
	release := make(chan struct{})
	var arrived atomic.Int64
	a := newApp(t, func(w http.ResponseWriter, r *http.Request) {
		if arrived.Add(1) <= 20 {
			held.Done()
			<-release
		}
	})
	var results atomic.Int64
	s := NewScheduler(Options{Interval: tick, Jitter: -1, OnResult: func(string, Result) { results.Add(1) }})
	s.workerIdle = 5 * time.Millisecond
	for i := range 20 {
		if err := s.Add(httpTarget(t, "t"+string(rune('a'+i)), a, time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	workers := func() int { s.poolMu.Lock(); defer s.poolMu.Unlock(); return s.workers }
	runScheduler(t, s)
	held.Wait()
	if n := workers(); n != 20 {
		t.Fatalf("%d workers for 20 probes in flight", n)
	}
	close(release)
	for i := range 19 {
		s.Remove("t" + string(rune('a'+i)))
	}
	eventually(t, "idle workers to exit", func() bool { return workers() <= 2 })
	before := results.Load()
	eventually(t, "the last target to keep being probed", func() bool { return results.Load() >= before+10 })
}

func TestEntryHeap_PopsInDueOrder(t *testing.T) {
	var h entryHeap
	rng := rand.New(rand.NewPCG(1, 2))
	var want []time.Duration
	for range 1000 {
		d := time.Duration(rng.IntN(500)) * time.Millisecond
		h.push(&entry{due: d})
		want = append(want, d)
		if rng.IntN(3) == 0 { // interleave pops with pushes
			slices.Sort(want)
			if got := h.pop().due; got != want[0] {
				t.Fatalf("popped %s, want %s", got, want[0])
			}
			want = want[1:]
		}
	}
	slices.Sort(want)
	for _, w := range want {
		if got := h.pop().due; got != w {
			t.Fatalf("popped %s, want %s", got, w)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d left", len(h))
	}
}
