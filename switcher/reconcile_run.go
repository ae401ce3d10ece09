package switcher

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"
)

// ChangeFeed tells the reconcile loop when an app's desired state may have changed: its
// instances' Consul health, its state, journal or lock in KV.
type ChangeFeed interface {
	// WatchApp calls changed on every such change (it may call it more often) until ctx
	// ends, retrying Consul failures itself and calling failed on each (so the loop runs
	// a pass that finds Consul away, and says so); it returns ctx.Err().
	WatchApp(ctx context.Context, app string, changed func(), failed func(error)) error
}

// Loop defaults.
const (
	// DefaultResync is how often a pass runs without any change seen: a backstop for
	// changes no watch reports (an HAProxy restarted from old files).
	DefaultResync = time.Minute
	// maxPassBackoff caps the wait between failed passes.
	maxPassBackoff   = 30 * time.Second
	firstPassBackoff = 250 * time.Millisecond
)

// Run keeps every app of the config in step until ctx ends: one goroutine per app, each
// running a pass (Settle) at start, on every change feed reports, and every resync
// (DefaultResync when 0). A failed pass is logged and retried with capped exponential
// backoff; when one works again, that is logged too. Run returns ctx.Err() once every
// goroutine has stopped.
func (r *Reconciler) Run(ctx context.Context, feed ChangeFeed, resync time.Duration) error {
	if resync <= 0 {
		resync = DefaultResync
	}
	var wg sync.WaitGroup
	for _, app := range r.Config.AppNames() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.runApp(ctx, feed, app, resync)
		}()
	}
	wg.Wait()
	return ctx.Err()
}

// runApp is one app's loop: a one-slot channel merges bursts of changes into one pass.
// Each pass is recorded (Status, OnPass), with its lag when a change reported by feed
// led to it: from the first change seen that the pass covers to its end.
func (r *Reconciler) runApp(ctx context.Context, feed ChangeFeed, app string, resync time.Duration) {
	log := r.log().With(zap.String("app", app))
	kick := make(chan struct{}, 1)
	var seenMu sync.Mutex
	var seen time.Time // the first change not yet covered by a pass that worked
	poke := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	changed := func() {
		seenMu.Lock()
		if seen.IsZero() {
			seen = time.Now()
		}
		seenMu.Unlock()
		poke()
	}
	failed := func(error) { poke() } // not a change seen: no lag starts
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = feed.WatchApp(ctx, app, changed, failed)
	}()
	timer := time.NewTimer(0) // the first pass at once
	defer timer.Stop()
	var backoff time.Duration
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-kick:
			if failures > 0 {
				continue // the backoff timer runs the next pass
			}
		case <-timer.C:
		}
		// The pass covers the changes seen so far; those seen during it lead to the next.
		seenMu.Lock()
		covers := seen
		seen = time.Time{}
		seenMu.Unlock()
		start := time.Now()
		res, err := r.Settle(ctx, app)
		if ctx.Err() != nil {
			return
		}
		end := time.Now()
		rep := PassReport{App: app, Result: res, Err: err, Took: end.Sub(start)}
		if err == nil && !covers.IsZero() {
			rep.Lag = end.Sub(covers)
		}
		if err != nil && !covers.IsZero() {
			seenMu.Lock() // not in line yet: the next pass covers it still
			if seen.IsZero() || covers.Before(seen) {
				seen = covers
			}
			seenMu.Unlock()
		}
		r.recordPass(rep, end)
		next := resync
		switch {
		case err != nil:
			failures++
			backoff = min(max(2*backoff, firstPassBackoff), maxPassBackoff)
			next = backoff
			log.Warn("reconcile pass failed; retrying", zap.Int("failures", failures), zap.Duration("backoff", backoff), zap.Error(err))
		case failures > 0:
			log.Info("reconcile works again", zap.Int("failures", failures))
			failures, backoff = 0, 0
		}
		if res.Skipped != "" {
			log.Debug("reconcile left the app alone", zap.String("why", res.Skipped))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}
