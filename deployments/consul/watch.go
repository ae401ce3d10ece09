package consul

import (
	"context"
	"math/rand/v2"
	"reflect"
	"time"

	"go.uber.org/zap"
)

// Watch defaults.
const (
	// DefaultWatchMinInterval is the least time between the starts of two queries.
	DefaultWatchMinInterval = 100 * time.Millisecond
	// DefaultWatchMaxBackoff caps the wait after consecutive errors.
	DefaultWatchMaxBackoff = 30 * time.Second
	// DefaultWatchWait is how long one blocking query may wait on the server.
	DefaultWatchWait = 5 * time.Minute
	// firstBackoff is the wait after the first error.
	firstBackoff = 250 * time.Millisecond
)

// WatchOptions tune Watch. Zero fields take the defaults.
type WatchOptions struct {
	MinInterval time.Duration // default DefaultWatchMinInterval; jitter of up to half of it is added
	MaxBackoff  time.Duration // default DefaultWatchMaxBackoff
	Log         *zap.Logger   // errors and recoveries; default none
	// OnError, if set, hears every failed query, on Watch's goroutine, before its
	// backoff: a follower can tell that Consul stopped answering (nothing else says so,
	// onChange is not called).
	OnError func(error)
}

// Fetch is one blocking query: it returns the data and Consul's index (X-Consul-Index)
// once the index passes waitIndex or the server's wait time ends; waitIndex 0 answers
// at once.
type Fetch[T any] func(ctx context.Context, waitIndex uint64) (T, uint64, error)

// Watch runs fetch in a loop of blocking queries and calls onChange, on Watch's own
// goroutine, with the first result and with every later result that differs from the
// one before. The rules:
//
//   - each query passes the last index as waitIndex;
//   - an answer with an unchanged index is ignored (the wait timed out);
//   - an index that went backwards (a snapshot restore, a new leader) resets the next
//     waitIndex to 0, and an index of 0 is treated as 1, so no query spins;
//   - data deep-equal to the last delivered is dropped, whatever the index did;
//   - queries start at least MinInterval (plus jitter) apart;
//   - errors back off exponentially with jitter, from 250ms up to MaxBackoff.
//
// Watch returns ctx.Err() when ctx ends; it never returns otherwise.
func Watch[T any](ctx context.Context, opts WatchOptions, fetch Fetch[T], onChange func(T)) error {
	minGap := opts.MinInterval
	if minGap <= 0 {
		minGap = DefaultWatchMinInterval
	}
	maxBackoff := opts.MaxBackoff
	if maxBackoff <= 0 {
		maxBackoff = DefaultWatchMaxBackoff
	}
	log := opts.Log
	if log == nil {
		log = zap.NewNop()
	}

	var (
		index    uint64
		last     T
		have     bool
		backoff  time.Duration
		failures int
		started  time.Time
	)
	for {
		wait := time.Until(started.Add(minGap + jitter(minGap/2)))
		if backoff > 0 {
			wait = max(wait, backoff/2+jitter(backoff/2))
		}
		if wait > 0 {
			if err := sleepCtx(ctx, wait); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		started = time.Now()
		v, newIndex, err := fetch(ctx, index)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			failures++
			backoff = min(max(2*backoff, firstBackoff), maxBackoff)
			if failures == 1 {
				log.Warn("watch query failed; retrying with backoff", zap.Error(err))
			} else {
				log.Debug("watch query failed again", zap.Int("failures", failures), zap.Duration("backoff", backoff), zap.Error(err))
			}
			if opts.OnError != nil {
				opts.OnError(err)
			}
			continue
		}
		if failures > 0 {
			log.Info("watch query works again", zap.Int("failures", failures))
			failures, backoff = 0, 0
		}
		switch {
		case newIndex == 0:
			index = 1 // never wait on 0: that query would not block
		case newIndex < index:
			index = 0 // went backwards: start over, compare the data below
		case newIndex == index && have:
			continue // the wait timed out: nothing changed
		default:
			index = newIndex
		}
		if have && reflect.DeepEqual(v, last) {
			continue
		}
		last, have = v, true
		onChange(v)
	}
}

// jitter is a random duration in [0, d).
func jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d)
}

// WatchService calls onChange with app's instances (as Instances lists them, with
// check outputs left out so that only changes of membership, address, tags, meta or
// check status count) first and on every change, until ctx ends. It returns ctx.Err().
// onError, when not nil, hears each failed query (WatchOptions.OnError).
func (r *Registry) WatchService(ctx context.Context, app string, onChange func([]ServiceInstance), onError func(error)) error {
	return Watch(ctx, WatchOptions{Log: r.log.With(zap.String("watch", "service"), zap.String("app", app)), OnError: onError},
		r.serviceFetch(app), onChange)
}

// serviceFetch is WatchService's query.
func (r *Registry) serviceFetch(app string) Fetch[[]ServiceInstance] {
	return func(ctx context.Context, waitIndex uint64) ([]ServiceInstance, uint64, error) {
		return r.instances(ctx, app, waitIndex, DefaultWatchWait, false)
	}
}
