package switcher

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// StepPreflight is the check, right after the lock, that every service a mutating
// operation needs answers, before it runs a hook or writes a journal. It is not a step
// of the journal.
const StepPreflight Step = "preflight"

// Pinger is implemented by an adapter (Runtime, Registry, Balancer) that can say
// whether the service behind it answers: Docker, Consul, every HAProxy instance.
type Pinger interface {
	Ping(ctx context.Context) error
}

// preflightTimeout bounds the whole preflight when ctx has no earlier deadline.
const preflightTimeout = 15 * time.Second

// preflight pings Docker, Consul and HAProxy (each adapter that is a Pinger) and
// fails, naming every one that does not answer, before anything is changed.
func (s *Switcher) preflight(ctx context.Context, app string) error {
	if len(s.pingers()) == 0 {
		return nil // adapters that cannot tell (test fakes)
	}
	start := s.now()
	s.emit(Event{App: app, Step: StepPreflight, Kind: EventStart, Message: "checking Docker, Consul and HAProxy"})
	if err := s.Ping(ctx); err != nil {
		err = fmt.Errorf("%s: preflight: not every service answers, so nothing was changed (no hook ran, no journal was written); fix it and run the command again: %w", app, err)
		s.emit(Event{App: app, Step: StepPreflight, Kind: EventFailed, Message: err.Error(), Elapsed: s.now().Sub(start)})
		return err
	}
	s.emit(Event{App: app, Step: StepPreflight, Kind: EventDone, Message: "Docker, Consul and HAProxy answer", Elapsed: s.now().Sub(start)})
	return nil
}

type pinger struct {
	name string
	p    Pinger
}

// pingers are the adapters that can say whether their service answers.
func (s *Switcher) pingers() []pinger {
	var out []pinger
	for _, d := range []struct {
		name    string
		adapter any
	}{{"Docker", s.Runtime}, {"Consul", s.Registry}, {"HAProxy", s.Balancer}} {
		if p, ok := d.adapter.(Pinger); ok {
			out = append(out, pinger{d.name, p})
		}
	}
	return out
}

// Ping checks that Docker, Consul and every HAProxy instance answer (within
// preflightTimeout), naming every one that does not. It emits nothing: `swap serve`'s
// /readyz asks it.
func (s *Switcher) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	var errs []error
	for _, d := range s.pingers() {
		if err := d.p.Ping(ctx); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", d.name, err))
		}
	}
	return errors.Join(errs...)
}
