// Package health probes targets over HTTP and TCP, judges them with
// HAProxy's rise/fall rule, schedules probes for thousands of targets, and
// gates deploys on "every target healthy for min_healthy_time before the
// deadline". It knows nothing of Docker, Consul or HAProxy.
//
// # Probing one target once
//
// A Checker probes once: NewHTTPChecker (method, URL, Host header, expected
// status ranges, optional body substring, timeout) or NewTCPChecker (connect).
// CheckerFor builds either from a command-line string (a URL or host:port),
// CheckFunc adapts any func(ctx) error. Each probe is bounded by its own
// timeout under the caller's context, and its Result says why it failed:
// ReasonStatus, ReasonBody, ReasonTimeout, ReasonRefused, ReasonReset or
// ReasonError, with a descriptive Err. A probe whose caller's context ends
// reports ReasonCanceled, which is never counted as a failure. HTTP checkers
// do not follow redirects, and share one keep-alive Transport
// (SharedTransport) unless given their own: a small HTTP/1.1 client that runs
// each probe on the caller's goroutine over pooled connections, bounded by
// connection deadlines, and parses answers with net/http. Holding no
// goroutine and a 1 KiB buffer per idle connection, it probes 5,000 targets
// every second for about 60% of the CPU and a quarter of the memory of
// net/http's client (docs/benchmarks.md).
//
//	c, err := health.NewHTTPChecker(health.HTTPConfig{URL: "http://127.0.0.1:32768/healthz", Timeout: time.Second})
//	r := c.Check(ctx) // r.OK, r.Reason, r.Err
//
// CheckRise probes up to rise times in a row for one-shot command-line use.
//
// # Rise and fall
//
// A Tracker turns results into a State. A target starts StateUnknown, which
// is not healthy. rise consecutive successes make it StateHealthy; fall
// consecutive failures make it StateUnhealthy (from unknown or healthy); a
// failure resets the success count and a success the failure count. Only
// changes of state are transitions.
//
// # Many targets
//
// A Scheduler runs any number of Targets (ID, Checker, interval, rise,
// fall). One goroutine keeps a heap of due times and starts probes, at most
// Options.Concurrency at a time on a pool of workers; first probes are spread
// over a random delay (Options.Jitter) so targets added together do not fire
// together; probes then repeat at a fixed rate, started on ticks of
// Options.Resolution (10ms) so that they share wake-ups. Add and Remove work
// while it runs. Subscribe
// registers a listener that hears of transitions only, outside the
// scheduler's locks. Run stops when its context ends: the probes in flight
// are cancelled and awaited, nothing is reported for them, and Run returns
// nil. Watch wraps all of this for `swap health watch`.
//
//	s := health.NewScheduler(health.Options{Interval: time.Second, Rise: 2, Fall: 3})
//	s.Subscribe(func(t health.Transition) { fmt.Println(t) })
//	_ = s.Add(health.Target{ID: "web-green-1", Checker: c})
//	go s.Run(ctx)
//
// # Gates
//
// Scheduler.Wait(ctx, ids, minHealthy, deadline) returns nil once every
// target has been healthy, without one failed probe, for minHealthy; a failed
// probe restarts that target's clock even if it is too short to make it
// unhealthy. At the deadline it returns a *GateError (errors.Is
// ErrGateTimeout, errors.As *GateError) naming each failing target with its
// state and last error. A failing target with no result yet at the deadline
// gets up to two of its intervals more for its first one, so that the error
// says why it fails. The package-level Wait runs a scheduler of its own for
// the duration of the gate.

package health
