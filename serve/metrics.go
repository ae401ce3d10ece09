package serve

import (
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/swap-dev/swap/switcher"
)

// Metrics are what GET /metrics shows, on a registry of their own: fed by the
// switcher's events and the operations' results (the Server does that), by HAProxy's
// commands (HAProxyCommand, an lbconfig.Observer) and by the reconcile loop's passes
// (ReconcilePass, a Reconciler's OnPass).
type Metrics struct {
	reg         *prometheus.Registry
	swaps       *prometheus.CounterVec
	opSeconds   *prometheus.HistogramVec
	stepSeconds *prometheus.HistogramVec
	cutover     prometheus.Histogram
	lockWait    prometheus.Histogram
	transitions *prometheus.CounterVec
	stepErrors  *prometheus.CounterVec
	haproxy     *prometheus.CounterVec
	passes      *prometheus.CounterVec
	passErrors  *prometheus.CounterVec
	lag         prometheus.Histogram
}

// NewMetrics makes the metrics, registered with the Go runtime's and the process's.
func NewMetrics() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.swaps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_operations_total",
		Help: "Operations run by swap serve, by app, operation and outcome (done, rolled back, failed, ...)."},
		[]string{"app", "op", "outcome"})
	m.opSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swap_operation_duration_seconds",
		Help: "How long operations took, by app and operation.", Buckets: prometheus.ExponentialBuckets(0.5, 2, 12)},
		[]string{"app", "op"})
	m.stepSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swap_step_duration_seconds",
		Help: "How long each step of a swap took, by step and result (done or failed).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)},
		[]string{"step", "result"})
	m.cutover = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swap_cutover_seconds",
		Help: "The shift step: the route change on every HAProxy and its journal write.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)})
	m.lockWait = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swap_lock_wait_seconds",
		Help: "How long taking an app's lock took.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)})
	m.transitions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_health_transitions_total",
		Help: "Health transitions of instances seen by the gate and verify, by view (probe, consul, haproxy) and new state."},
		[]string{"view", "state"})
	m.stepErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_step_failures_total",
		Help: "Steps that failed, by step (HAProxy, Consul and Docker errors surface here)."},
		[]string{"step"})
	m.haproxy = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_haproxy_commands_total",
		Help: "Runtime API commands sent to HAProxy instances, by verb (\"set server\", \"add map\", ...) and result (ok or error)."},
		[]string{"verb", "result"})
	m.passes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_reconcile_passes_total",
		Help: "Passes of the reconcile loop, by app (failed ones included)."},
		[]string{"app"})
	m.passErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swap_reconcile_pass_failures_total",
		Help: "Passes of the reconcile loop that failed (Consul or HAProxy unreachable, a change refused), by app."},
		[]string{"app"})
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swap_reconcile_lag_seconds",
		Help:    "From a change seen by the loop's Consul blocking query to HAProxy in line after the pass that covered it.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)})
	m.reg.MustRegister(m.swaps, m.opSeconds, m.stepSeconds, m.cutover, m.lockWait, m.transitions, m.stepErrors,
		m.haproxy, m.passes, m.passErrors, m.lag,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *Metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// event counts what one switcher event says.
func (m *Metrics) event(e switcher.Event) {
	switch e.Kind {
	case switcher.EventDone, switcher.EventFailed:
		result := "done"
		if e.Kind == switcher.EventFailed {
			result = "failed"
			m.stepErrors.WithLabelValues(string(e.Step)).Inc()
		}
		if e.Elapsed > 0 {
			m.stepSeconds.WithLabelValues(string(e.Step), result).Observe(e.Elapsed.Seconds())
		}
		if e.Kind == switcher.EventDone {
			switch e.Step {
			case switcher.StepShift:
				m.cutover.Observe(e.Elapsed.Seconds())
			case switcher.StepLock:
				m.lockWait.Observe(e.Elapsed.Seconds())
			}
		}
	case switcher.EventInfo:
		// "web-green-0 probe: unknown -> healthy (ok in 1ms)"
		if e.Instance == "" {
			return
		}
		view, rest, ok := strings.Cut(strings.TrimPrefix(e.Message, e.Instance+" "), ": ")
		if !ok || !strings.Contains(rest, " -> ") {
			return
		}
		_, to, _ := strings.Cut(rest, " -> ")
		state, _, _ := strings.Cut(to, " ")
		m.transitions.WithLabelValues(view, state).Inc()
	}
}

// finished counts one operation's end.
func (m *Metrics) finished(app, op string, res *switcher.Result, err error, took time.Duration) {
	outcome := switcher.OutcomeFailed
	if res != nil && res.Outcome != "" {
		outcome = res.Outcome
	}
	if err != nil && (res == nil || res.Outcome == "") {
		outcome = switcher.OutcomeFailed
	}
	m.swaps.WithLabelValues(app, op, outcome).Inc()
	m.opSeconds.WithLabelValues(app, op).Observe(took.Seconds())
}

// HAProxyCommand counts one Runtime API command (an lbconfig.Observer).
func (m *Metrics) HAProxyCommand(_, verb string, err error) {
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.haproxy.WithLabelValues(verb, result).Inc()
}

// loopApps makes the reconcile loop's counters of apps show 0 before any pass.
func (m *Metrics) loopApps(apps []string) {
	for _, app := range apps {
		m.passes.WithLabelValues(app)
		m.passErrors.WithLabelValues(app)
	}
}

// ReconcilePass counts one pass of the reconcile loop and its lag (a Reconciler's
// OnPass).
func (m *Metrics) ReconcilePass(p switcher.PassReport) {
	m.passes.WithLabelValues(p.App).Inc()
	if p.Err != nil {
		m.passErrors.WithLabelValues(p.App).Inc()
	}
	if p.Lag > 0 {
		m.lag.Observe(p.Lag.Seconds())
	}
}
