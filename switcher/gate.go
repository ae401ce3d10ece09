package switcher

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/health"
)

// The three views of an instance's health the gate waits on.
const (
	viewProbe   = "probe"   // swap's own HTTP/TCP probe with rise/fall
	viewConsul  = "consul"  // Consul's checks passing
	viewHAProxy = "haproxy" // HAProxy's check L7OK and the server UP on every instance
)

// gate waits until every new instance is healthy in all three views, continuously for
// min_healthy_time, before deploy_timeout (counted from the swap's start).
func (r *run) gate(ctx context.Context) error {
	s := r.s
	if err := r.ensureInsts(ctx); err != nil {
		return err
	}
	hc := r.app.HealthCheck
	sched, views, poll := r.newViews()
	var ids []string
	for _, in := range r.insts {
		targets, err := instanceTargets(in, hc, views, poll, 1)
		if err != nil {
			return err
		}
		for _, t := range targets {
			if err := sched.Add(t); err != nil {
				return err
			}
			ids = append(ids, t.ID)
		}
	}
	stop := r.runViews(ctx, sched, StepGate)
	deadline := r.started.Add(r.app.DeployTimeout)
	left := deadline.Sub(s.now())
	err := sched.Wait(ctx, ids, r.app.MinHealthyTime, deadline)
	stop()
	if err != nil {
		var ge *health.GateError
		if errors.As(err, &ge) {
			return fmt.Errorf("%w within deploy_timeout %s: %v%s", ErrNotHealthy, r.app.DeployTimeout, ge, r.gateTimeHint(left))
		}
		return err
	}
	return nil
}

// newViews returns a scheduler with the app's check timing and the Consul and HAProxy
// views of To's backend, read every poll (the app's interval, at most 500ms, or
// ProbeInterval): the gate's and verify's probes.
func (r *run) newViews() (*health.Scheduler, *viewCache, time.Duration) {
	s := r.s
	hc := r.app.HealthCheck
	poll := s.ProbeInterval
	if poll <= 0 {
		poll = min(hc.Interval, 500*time.Millisecond)
	}
	views := &viewCache{s: s, app: r.plan.App, backend: r.plan.ToBackend(), ttl: poll / 2}
	return health.NewScheduler(health.Options{Interval: hc.Interval, Rise: hc.Rise, Fall: hc.Fall, Jitter: -1}), views, poll
}

// gateTimeHint explains a gate that failed because the steps before it used up
// deploy_timeout (it counts from the swap's start): its targets may never have been
// probed, and their errors alone would not say so.
func (r *run) gateTimeHint(left time.Duration) string {
	hc := r.app.HealthCheck
	need := time.Duration(hc.Rise)*hc.Interval + r.app.MinHealthyTime
	if left >= need {
		return ""
	}
	return fmt.Sprintf(" (the gate had only %s of deploy_timeout %s left after start, register and stage, and passing takes at least %s: "+
		"raise deploy_timeout, which counts from the swap's start)", max(left, 0).Round(time.Millisecond), r.app.DeployTimeout, need)
}

// instanceTargets are the three views of one instance as health targets: swap's probe
// with the app's rise and fall, and Consul's and HAProxy's verdicts (which apply their
// own rise and fall) read every poll, judged after fall reads in a row.
func instanceTargets(in deployments.Instance, hc deployments.HealthCheck, views *viewCache, poll time.Duration, fall int) ([]health.Target, error) {
	probe, err := probeFor(in, hc)
	if err != nil {
		return nil, err
	}
	id := in.ID()
	return []health.Target{
		{ID: id + " " + viewProbe, Checker: probe},
		{ID: id + " " + viewConsul, Checker: health.CheckFunc(func(ctx context.Context) error { return views.consul(ctx, id) }), Interval: poll, Rise: 1, Fall: fall},
		{ID: id + " " + viewHAProxy, Checker: health.CheckFunc(func(ctx context.Context) error { return views.haproxy(ctx, id) }), Interval: poll, Rise: 1, Fall: fall},
	}, nil
}

// probeFor builds swap's own probe of an instance from the app's healthcheck.
func probeFor(in deployments.Instance, hc deployments.HealthCheck) (health.Checker, error) {
	if hc.Type == "tcp" {
		return health.NewTCPChecker(health.TCPConfig{Addr: in.Addr(), Timeout: hc.Timeout})
	}
	return health.NewHTTPChecker(health.HTTPConfig{
		URL: "http://" + in.Addr() + hc.Path, Method: hc.Method, Host: hc.Host,
		Expect: hc.ExpectStatus, Body: hc.Body, Timeout: hc.Timeout,
	})
}

// runViews runs sched until the returned stop is called, reporting its transitions as
// events of step.
func (r *run) runViews(ctx context.Context, sched *health.Scheduler, step Step) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { _ = sched.Run(ctx) })
	unsub := sched.Subscribe(func(t health.Transition) {
		r.emit(Event{Step: step, Kind: EventInfo, Instance: strings.Fields(t.Target)[0], Message: t.String()})
	})
	return func() { unsub(); cancel(); wg.Wait() }
}

// viewCache answers the Consul and HAProxy views for every instance from one read of
// each per ttl, so N instances cost one call per view, not N.
type viewCache struct {
	s       *Switcher
	app     string
	backend string
	ttl     time.Duration

	mu        sync.Mutex
	consulAt  time.Time
	regs      map[string]RegisteredInstance
	consulErr error
	lbAt      time.Time
	stats     []ServerStat
	lbErr     error
}

func (v *viewCache) consul(ctx context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if time.Since(v.consulAt) > v.ttl {
		regs, err := v.s.Registry.Instances(ctx, v.app)
		v.consulAt, v.consulErr, v.regs = time.Now(), err, map[string]RegisteredInstance{}
		for _, r := range regs {
			v.regs[r.ID] = r
		}
	}
	if v.consulErr != nil {
		return fmt.Errorf("consul: %w", v.consulErr)
	}
	reg, ok := v.regs[id]
	switch {
	case !ok:
		return fmt.Errorf("consul: %s is not registered", id)
	case !reg.Passing:
		return fmt.Errorf("consul: %s not passing: %s", id, reg.Why)
	}
	return nil
}

func (v *viewCache) haproxy(ctx context.Context, id string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if time.Since(v.lbAt) > v.ttl {
		v.stats, v.lbErr = v.s.Balancer.Servers(ctx, v.backend)
		v.lbAt = time.Now()
	}
	if v.lbErr != nil {
		return fmt.Errorf("haproxy: %w", v.lbErr)
	}
	found := false
	for _, st := range v.stats {
		if st.Name != id {
			continue
		}
		found = true
		if !st.Healthy() {
			return fmt.Errorf("haproxy %s: %s/%s is %s, check %s", st.LB, v.backend, id, st.Status, orNone(st.CheckStatus))
		}
	}
	if !found {
		return fmt.Errorf("haproxy: %s has no server %s", v.backend, id)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "not run yet"
	}
	return s
}
