package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// One file holds the scheduler: its timing wheel, the rise/fall state it feeds and its
// goroutine's lifecycle are one piece of concurrent code, best read in one place.

// Defaults, as HAProxy's: "inter 2s rise 2 fall 3".
const (
	DefaultInterval    = 2 * time.Second
	DefaultRise        = 2
	DefaultFall        = 3
	DefaultConcurrency = 1024
	DefaultResolution  = 10 * time.Millisecond
)

var (
	// ErrDuplicateTarget: Add was given an ID already scheduled.
	ErrDuplicateTarget = errors.New("health: target already scheduled")
	// ErrInvalidTarget: a Target lacks an ID or a Checker, or has a negative setting.
	ErrInvalidTarget = errors.New("health: invalid target")
	// ErrUnknownTarget: a target ID that is not scheduled.
	ErrUnknownTarget = errors.New("health: unknown target")
	// ErrAlreadyRunning: Run was called twice.
	ErrAlreadyRunning = errors.New("health: scheduler already running")
	// ErrStopped: the scheduler's Run has returned; it takes no more targets.
	ErrStopped = errors.New("health: scheduler stopped")
)

// Target is one thing to probe on a schedule.
type Target struct {
	// ID names the target in transitions, statuses and errors; unique per Scheduler.
	ID      string
	Checker Checker
	// Interval between probe starts; zero: Options.Interval.
	Interval time.Duration
	// Rise and Fall; zero: Options.Rise and Options.Fall.
	Rise, Fall int
}

// Options configure a Scheduler. The zero value is usable.
type Options struct {
	// Interval, Rise and Fall are the defaults for targets that set none
	// (DefaultInterval, DefaultRise, DefaultFall).
	Interval   time.Duration
	Rise, Fall int
	// Concurrency bounds the probes in flight (DefaultConcurrency). When it is
	// reached, due probes wait and the wait shows as scheduling lag.
	Concurrency int
	// Jitter spreads first probes: each new target's first probe runs after a
	// random delay in [0, Jitter), so thousands of targets added together do
	// not all fire in the same instant. Zero: the target's interval. Negative:
	// probe at once.
	Jitter time.Duration
	// Resolution batches probes in time: the scheduler wakes only on
	// multiples of it and starts every probe then due, so a probe starts up
	// to Resolution late, but probes share wake-ups, which halves the CPU
	// cost at thousands of targets (see docs/benchmarks.md). Zero:
	// DefaultResolution; negative: wake for every due time.
	Resolution time.Duration
	// OnResult, if set, is called after every probe with its result (for
	// metrics: Start-Due is the scheduling lag). It runs on the probing
	// goroutine and must be quick.
	OnResult func(target string, r Result)
}

// Scheduler probes many targets, each on its own interval, with one timer
// for all of them (a heap ordered by due time), a bounded number of probes in
// flight, and a rise/fall Tracker per target. Targets can be added and removed
// while it runs without disturbing the others. Run it once; it stops when its
// context ends. All methods are safe for concurrent use.
type Scheduler struct {
	opts  Options
	epoch time.Time // due times are offsets from it (monotonic)
	wake  chan struct{}

	// The worker pool: the dispatcher hands a due entry to the worker that
	// went idle last, or starts one while there are fewer than Concurrency.
	// Last-in first-out keeps the fewest workers busy, so the ones a burst
	// started sit idle and exit after workerIdle.
	poolMu  sync.Mutex
	idle    []*worker
	workers int
	freed   chan struct{} // a worker went idle
	// workerIdle is how long a worker waits for work before it exits.
	workerIdle time.Duration

	mu        sync.Mutex
	entries   map[string]*entry
	queue     entryHeap
	gates     map[*gateWatch]struct{}
	started   bool
	stopped   bool
	listeners []*listener // copy on write under mu
	wg        sync.WaitGroup
}

type entry struct {
	target  Target
	tracker *Tracker
	due     time.Duration // since Scheduler.epoch
	removed bool
	// ctx, made at the first probe from Run's context, is cancelled by Remove.
	ctx    context.Context
	cancel context.CancelFunc
}

type listener struct{ fn func(Transition) }

// NewScheduler returns a Scheduler with opts; start it with Run.
func NewScheduler(opts Options) *Scheduler {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Rise <= 0 {
		opts.Rise = DefaultRise
	}
	if opts.Fall <= 0 {
		opts.Fall = DefaultFall
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Resolution == 0 {
		opts.Resolution = DefaultResolution
	}
	s := &Scheduler{
		opts:       opts,
		epoch:      time.Now(),
		wake:       make(chan struct{}, 1),
		freed:      make(chan struct{}, 1),
		workerIdle: defaultWorkerIdle,
		entries:    make(map[string]*entry),
		gates:      make(map[*gateWatch]struct{}),
	}
	return s
}

// Add schedules t. Before Run, its first probe is jittered from Run's start;
// during Run, from now. Errors wrap ErrInvalidTarget, ErrDuplicateTarget or
// ErrStopped.
func (s *Scheduler) Add(t Target) error {
	switch {
	case t.ID == "":
		return fmt.Errorf("%w: empty ID", ErrInvalidTarget)
	case t.Checker == nil:
		return fmt.Errorf("%w %q: no checker", ErrInvalidTarget, t.ID)
	case t.Interval < 0 || t.Rise < 0 || t.Fall < 0:
		return fmt.Errorf("%w %q: negative interval, rise or fall", ErrInvalidTarget, t.ID)
	}
	if t.Interval == 0 {
		t.Interval = s.opts.Interval
	}
	if t.Rise == 0 {
		t.Rise = s.opts.Rise
	}
	if t.Fall == 0 {
		t.Fall = s.opts.Fall
	}
	e := &entry{target: t, tracker: NewTracker(t.ID, t.Rise, t.Fall)}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return fmt.Errorf("%w: cannot add %q", ErrStopped, t.ID)
	}
	if _, ok := s.entries[t.ID]; ok {
		return fmt.Errorf("%w: %q", ErrDuplicateTarget, t.ID)
	}
	s.entries[t.ID] = e
	if s.started {
		s.pushLocked(e, s.now()+s.jitter(t.Interval))
	}
	return nil
}

// Remove stops probing id, cancelling its probe in flight; the target's
// pending results, transitions and publications are dropped (a result whose
// reporting had already begun may still reach OnResult and listeners). It
// reports whether id was scheduled.
func (s *Scheduler) Remove(id string) bool {
	s.mu.Lock()
	e, ok := s.entries[id]
	if !ok {
		s.mu.Unlock()
		return false
	}
	delete(s.entries, id)
	e.removed = true // the dispatcher drops it from the queue when it is due
	cancel := e.cancel
	s.notifyGatesLocked(id)
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return true
}

// Subscribe registers fn to hear of every transition of every target. fn is
// called outside the scheduler's locks on the goroutine that probed; calls for
// one target are never concurrent and come in order, calls for different
// targets may be concurrent. A slow fn delays that target's next probe.
// The returned func unsubscribes.
func (s *Scheduler) Subscribe(fn func(Transition)) (unsubscribe func()) {
	l := &listener{fn: fn}
	s.mu.Lock()
	s.listeners = append(slices.Clip(s.listeners), l)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		i := slices.Index(s.listeners, l)
		if i >= 0 {
			s.listeners = slices.Delete(slices.Clone(s.listeners), i, i+1)
		}
	}
}

// Status returns the status of target id.
func (s *Scheduler) Status(id string) (Status, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[id]
	if !ok {
		return Status{}, false
	}
	return e.tracker.Status(), true
}

// Snapshot returns the status of every target, sorted by ID.
func (s *Scheduler) Snapshot() []Status {
	s.mu.Lock()
	out := make([]Status, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, e.tracker.Status())
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return strings.Compare(a.Target, b.Target) })
	return out
}

// Len is the number of scheduled targets.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.entries)
}

// Run probes until ctx ends, then cancels the probes in flight, waits for
// them and returns nil: stopping is not an error. Results of cancelled probes
// are dropped (no transition, no publication). Run may be called only once.
func (s *Scheduler) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return ErrAlreadyRunning
	}
	s.started = true
	now := s.now()
	for _, e := range s.entries {
		s.pushLocked(e, now+s.jitter(e.target.Interval))
	}
	s.mu.Unlock()

	s.dispatch(ctx)
	s.wg.Wait()

	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
	return nil
}

// dispatch pops due targets and hands them to workers until ctx ends.
func (s *Scheduler) dispatch(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	var batch []*entry
	for {
		s.mu.Lock()
		now := s.now()
		batch = batch[:0]
		for len(s.queue) > 0 && s.queue[0].due <= now {
			if e := s.queue.pop(); !e.removed {
				batch = append(batch, e)
			}
		}
		wait := time.Duration(-1)
		if len(batch) == 0 && len(s.queue) > 0 {
			wait = s.queue[0].due - now
			if res := s.opts.Resolution; res > 0 {
				wait = (s.queue[0].due+res-1)/res*res - now
			}
		}
		s.mu.Unlock()

		for i, e := range batch {
			if !s.handOver(ctx, e) {
				clear(batch[i:])
				return
			}
			batch[i] = nil
		}
		if len(batch) > 0 {
			continue // time has passed; look again before sleeping
		}

		var tick <-chan time.Time
		if wait >= 0 {
			timer.Reset(wait)
			tick = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-tick:
		}
	}
}

// handOver gives e to the worker that went idle last, or to a new one while
// there are fewer than Concurrency, or waits for one to be free. It reports
// false when ctx ended.
func (s *Scheduler) handOver(ctx context.Context, e *entry) bool {
	for {
		s.poolMu.Lock()
		if n := len(s.idle); n > 0 {
			w := s.idle[n-1]
			s.idle[n-1] = nil
			s.idle = s.idle[:n-1]
			s.poolMu.Unlock()
			w.work <- e // buffered: never blocks
			return true
		}
		if s.workers < s.opts.Concurrency {
			s.workers++
			s.poolMu.Unlock()
			w := &worker{work: make(chan *entry, 1)}
			s.wg.Add(1)
			go s.runWorker(ctx, w, e)
			return true
		}
		s.poolMu.Unlock()
		select {
		case <-s.freed: // look again
		case <-ctx.Done():
			return false
		}
	}
}

// defaultWorkerIdle is how long a worker waits for work before it exits.
const defaultWorkerIdle = 10 * time.Second

type worker struct{ work chan *entry }

// runWorker probes e, then whatever the dispatcher hands it, until it has
// been idle for s.workerIdle or ctx ends. Workers keep their grown stacks
// between probes, which a goroutine per probe would not.
func (s *Scheduler) runWorker(ctx context.Context, w *worker, e *entry) {
	defer s.wg.Done()
	// The idle timer is not reset for every probe: when it fires, it is
	// re-armed for the rest of the idle time if the worker has worked since.
	idle := time.NewTimer(s.workerIdle)
	defer idle.Stop()
	for {
		s.probe(ctx, e)
		lastWork := time.Now()
		s.poolMu.Lock()
		s.idle = append(s.idle, w)
		s.poolMu.Unlock()
		select {
		case s.freed <- struct{}{}:
		default:
		}
		var ok bool
		if e, ok = s.awaitWork(ctx, w, idle, lastWork); ok {
			continue
		}
		// Leave the pool, unless the dispatcher has just taken this worker:
		// then its work is in w.work already.
		s.poolMu.Lock()
		i := slices.Index(s.idle, w)
		if i < 0 {
			s.poolMu.Unlock()
			e = <-w.work
			continue
		}
		s.idle = slices.Delete(s.idle, i, i+1)
		s.workers--
		s.poolMu.Unlock()
		return
	}
}

// awaitWork waits for w's next entry. It reports false once the worker has
// been idle for s.workerIdle since lastWork, or when ctx ends.
func (s *Scheduler) awaitWork(ctx context.Context, w *worker, idle *time.Timer, lastWork time.Time) (*entry, bool) {
	for {
		select {
		case e := <-w.work:
			return e, true
		case <-idle.C:
			if rest := s.workerIdle - time.Since(lastWork); rest > 0 {
				idle.Reset(rest)
				continue
			}
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// probe runs one check of e and applies its result.
func (s *Scheduler) probe(runCtx context.Context, e *entry) {
	s.mu.Lock()
	if e.removed {
		s.mu.Unlock()
		return
	}
	if e.ctx == nil {
		e.ctx, e.cancel = context.WithCancel(runCtx)
	}
	ctx, due := e.ctx, e.due
	s.mu.Unlock()

	r := e.target.Checker.Check(ctx)
	r.Due = s.epoch.Add(due)
	if ctx.Err() != nil {
		return // shutting down or removed: quietly
	}

	s.mu.Lock()
	if e.removed {
		s.mu.Unlock()
		return
	}
	tr, changed := e.tracker.Observe(r)
	listeners := s.listeners
	s.notifyGatesLocked(e.target.ID)
	s.mu.Unlock()

	if s.opts.OnResult != nil {
		s.opts.OnResult(e.target.ID, r)
	}
	if changed {
		for _, l := range listeners {
			l.fn(tr)
		}
	}

	// Reschedule only now, so the next probe of e cannot overtake this one's
	// listeners. Fixed rate: the next probe is due one interval after this
	// one was due, or at once if that has passed already.
	s.mu.Lock()
	if !e.removed {
		s.pushLocked(e, max(due+e.target.Interval, s.now()))
	}
	s.mu.Unlock()
}

func (s *Scheduler) now() time.Duration { return time.Since(s.epoch) }

func (s *Scheduler) pushLocked(e *entry, due time.Duration) {
	e.due = due
	first := len(s.queue) == 0 || due < s.queue[0].due
	s.queue.push(e)
	if first {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *Scheduler) jitter(interval time.Duration) time.Duration {
	j := s.opts.Jitter
	if j < 0 {
		return 0
	}
	if j == 0 {
		j = interval
	}
	return rand.N(j)
}

// entryHeap is a 4-ary min-heap of entries by due time. Due times are stored
// inline and entries do not track their position, so sifting touches only
// the heap's own array, not thousands of entries; four children per node
// halve the depth of a binary heap. Removed entries stay until they are due.
type entryHeap []heapSlot

type heapSlot struct {
	due time.Duration
	e   *entry
}

const heapArity = 4

func (h *entryHeap) push(e *entry) {
	*h = append(*h, heapSlot{e.due, e})
	h.up(len(*h) - 1)
}

func (h *entryHeap) pop() *entry {
	old := *h
	e := old[0].e
	last := len(old) - 1
	old[0] = old[last]
	old[last] = heapSlot{}
	*h = old[:last]
	h.down(0)
	return e
}

func (h entryHeap) up(i int) {
	for i > 0 {
		parent := (i - 1) / heapArity
		if h[parent].due <= h[i].due {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (h entryHeap) down(i int) {
	for {
		least := i
		first := heapArity*i + 1
		for c := first; c < first+heapArity && c < len(h); c++ {
			if h[c].due < h[least].due {
				least = c
			}
		}
		if least == i {
			return
		}
		h[i], h[least] = h[least], h[i]
		i = least
	}
}
