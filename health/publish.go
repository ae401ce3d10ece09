package health

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// Publisher carries a Scheduler's view of its targets elsewhere, e.g. to
// Consul TTL checks so that Consul's view follows swap's probes.
//
// When: a target's status is published after its first result, after every
// transition, and otherwise at most once per Options.Republish while its state
// is unchanged (so a TTL of a few Republish intervals never expires while the
// target is probed). Publishing is asynchronous and never delays a probe: one
// goroutine publishes, and when it falls behind only the latest status of
// each target is kept. Statuses of removed targets are dropped; cancelled
// probes are never published. Publish gets the Run context; an error is
// logged (once when publishing starts failing, once when it recovers) and the
// status is not retried before that target's next publication.
type Publisher interface {
	Publish(ctx context.Context, s Status) error
}

// PublisherFunc adapts a function to a Publisher.
type PublisherFunc func(ctx context.Context, s Status) error

// Publish calls f.
func (f PublisherFunc) Publish(ctx context.Context, s Status) error { return f(ctx, s) }

// publishQueue coalesces statuses per target and feeds one publishing goroutine.
type publishQueue struct {
	p    Publisher
	log  *zap.Logger
	wake chan struct{}

	mu      sync.Mutex
	pending map[string]Status
	order   []string // first-come order of pending targets
}

func newPublishQueue(p Publisher, log *zap.Logger) *publishQueue {
	return &publishQueue{p: p, log: log, wake: make(chan struct{}, 1), pending: make(map[string]Status)}
}

func (q *publishQueue) put(s Status) {
	q.mu.Lock()
	if _, ok := q.pending[s.Target]; !ok {
		q.order = append(q.order, s.Target)
	}
	q.pending[s.Target] = s
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *publishQueue) drop(target string) {
	q.mu.Lock()
	delete(q.pending, target) // its entry in order is skipped when taken
	q.mu.Unlock()
}

// take removes and returns the next pending status.
func (q *publishQueue) take() (Status, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.order) > 0 {
		id := q.order[0]
		q.order[0] = ""
		q.order = q.order[1:]
		if s, ok := q.pending[id]; ok {
			delete(q.pending, id)
			return s, true
		}
	}
	q.order = nil // let the backing array go
	return Status{}, false
}

func (q *publishQueue) run(ctx context.Context) {
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		for {
			s, ok := q.take()
			if !ok || ctx.Err() != nil {
				break
			}
			err := q.p.Publish(ctx, s)
			switch {
			case err != nil && ctx.Err() != nil:
				return // shutting down: quietly
			case err != nil && !failing:
				failing = true
				q.log.Warn("publishing health failed; will keep trying with later results",
					zap.String("target", s.Target), zap.Error(err))
			case err == nil && failing:
				failing = false
				q.log.Info("publishing health works again", zap.String("target", s.Target))
			}
		}
	}
}
