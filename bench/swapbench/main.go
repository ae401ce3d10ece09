// Command swapbench measures swap's own overhead: the time a swap takes beyond what it
// waits on — Docker starting the new containers, their health checks rising, the old
// color draining, Docker stopping the old containers, and scale_down_delay.
//
//	make build && go run ./bench/swapbench -n 10
//
// It starts the demo's world (internal/stack: a Consul dev agent, HAProxy, two
// FROM-scratch demoapp images), deploys v1, then runs n real swaps through the CLI —
// `bin/swap deploy <app> --image v2`, then v1, and so on — under a light load on
// HAProxy's frontend, each with --output json (the step events) and --log-level debug
// (the log lines that time the container stops inside retire). For every swap:
//
//	overhead = total - (start + gate + drain + container stop in retire + scale_down_delay)
//
// with total measured two ways: the swap process's wall time (exec to exit: what a
// user waits for, including process start, config load and unlock) and the span from
// its first event to its last. The container stop is the time from the last Consul
// deregistration of the old color to its last container removed (Docker's stop and
// rm, with the container list in between). It prints per-step medians and the
// overhead's median and p95 as Markdown. Everything it started is removed at the end.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

// imgDir is -img: where the plots go (make bench's suite passes docs/img); "" is img/
// beside -doc.
var imgDir = flag.String("img", "", "with -doc: the `directory` of the plots (default: img/ beside -doc)")

func main() {
	var (
		n        = flag.Int("n", 10, "swaps to measure")
		replicas = flag.Int("replicas", 2, "instances per color")
		workers  = flag.Int("load", 2, "load workers on the frontend during the swaps (0: none)")
		delay    = flag.Duration("scale-down-delay", 0, "the app's scale_down_delay")
		dir      = flag.String("dir", ".swapbench", "working `directory` (short: HAProxy's sockets live there)")
		app      = flag.String("app", "swapbench", "the app's `name` (no other swap app of this name may run on this Docker)")
		swapBin  = flag.String("swap", "bin/swap", "the swap `binary`")
		consul   = flag.String("consul", "bin/consul", "the consul `binary`")
		demoapp  = flag.String("demoapp", "bin/demoapp", "the static demoapp `binary`")
		maxLoad  = flag.Float64("max-load", 0, "before the swaps, wait until the 1-minute load average is below this (0: do not wait)")
		quietFor = flag.Duration("quiet-wait", 20*time.Minute, "how long -max-load may wait")
		check    = flag.String("check-binary", "", "haproxy.binary in swap.yaml, which checks each rendered config (`<binary> -c`); /bin/true measures swap without those checks (an experiment only)")
		sweep    = flag.Bool("sweep", false, "measure how a swap's steps grow with the replicas per color (1, 4, 16, 64) and the HAProxy instances (1, 3, 9), and the swap CLI's peak memory")
		short    = flag.Bool("short", false, "with -sweep: a smaller sweep (1 and 4 replicas on 1 HAProxy, 3 HAProxys at 1 replica, 1 swap each)")
		doc      = flag.String("doc", "", "with -sweep: splice the tables into this Markdown `file` (docs/benchmarks.md) and write the plots to img/ beside it")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *sweep || *short || *doc != "" {
		err := runSweep(ctx, sweepConfig{short: *short, doc: *doc, dir: *dir, app: *app, swapBin: *swapBin, consul: *consul,
			demoapp: *demoapp, workers: *workers, log: os.Stderr})
		if err != nil {
			fmt.Fprintf(os.Stderr, "swapbench: %v\n", err)
			os.Exit(1)
		}
		return
	}
	waitQuiet(ctx, *maxLoad, *quietFor)
	if err := run(ctx, *n, *replicas, *workers, *delay, *dir, *app, *swapBin, *consul, *demoapp, *check); err != nil {
		fmt.Fprintf(os.Stderr, "swapbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, n, replicas, workers int, delay time.Duration, dir, app, swapBin, consul, demoapp, check string) error {
	bin, err := os.ReadFile(demoapp)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	v1, _ := imageRefs(app)
	opts := stack.Options{Dir: dir, Swap: swapBin, Consul: consul, Log: os.Stderr, CheckBinary: check, HostPorts: benchkit.HostPorts,
		Apps: stack.App{Name: app, Image: v1, Replicas: replicas, ScaleDownDelay: delay}.YAML()}
	return withImages(ctx, opts, app, bin, func(st *stack.Stack) error {
		return measureSwaps(ctx, st, n, replicas, workers, delay, app, check)
	})
}

// measureSwaps is run's part on the stack: the first deploy, then n swaps measured.
func measureSwaps(ctx context.Context, st *stack.Stack, n, replicas, workers int, delay time.Duration, app, check string) (err error) {
	v1, v2 := imageRefs(app)
	if _, err := st.SwapJSON(ctx, "", nil, "deploy", app, "--image", v1); err != nil {
		return err
	}
	var load *stack.Load
	if workers > 0 {
		if load, err = startLoad(st.Frontend, app+".bench", workers, time.Duration(n+1)*2*time.Minute); err != nil {
			return err
		}
		defer load.Stop()
	}

	loadBefore := loadavg()
	var swaps []measure
	for i := range n {
		image := v2
		if i%2 == 1 {
			image = v1
		}
		t0 := time.Now()
		r, err := st.SwapJSON(ctx, "debug", nil, "deploy", app, "--image", image)
		wall := time.Since(t0)
		if err != nil {
			return fmt.Errorf("swap %d: %w", i+1, err)
		}
		m, err := measureRun(r, wall, delay)
		if err != nil {
			return fmt.Errorf("swap %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "swap %2d/%d  %-5s -> %-5s  process %7s  events %7s  overhead %5s (process) %5s (events)\n", i+1, n,
			r.Result.Plan.From, r.Result.Plan.To, ms(m.wall), ms(m.span), ms(m.overheadWall()), ms(m.overheadSpan()))
		swaps = append(swaps, m)
	}
	failed, total := 0, 0
	if load != nil {
		load.Stop()
		ok, bad := load.Counts()
		total, failed = int(ok+bad), int(bad)
	}
	report(os.Stdout, swaps, n, replicas, workers, total, failed, delay)
	if check != "" {
		fmt.Fprintf(os.Stdout, "haproxy.binary: %s (configs checked with `%s -c`).\n", check, check)
	}
	fmt.Fprintf(os.Stdout, "Machine: %d CPUs, load average (1m 5m 15m) %s before the swaps, %s after.\n", runtime.NumCPU(), loadBefore, loadavg())
	return nil
}

// startLoad starts workers on the frontend (half on keep-alive connections, half with a
// new connection per request), each pausing 5 ms between requests, for at most maxTime;
// it keeps only the counts.
func startLoad(frontend, host string, workers int, maxTime time.Duration) (*stack.Load, error) {
	keepAlive, close := stack.Split(workers)
	l := &stack.Load{Addr: frontend, Host: host, KeepAlive: keepAlive, Close: close, Pause: 5 * time.Millisecond, MaxTime: maxTime}
	if err := l.Start(); err != nil {
		return nil, err
	}
	return l, nil
}

// imageRefs are the benchmark's two images of app.
func imageRefs(app string) (v1, v2 string) {
	return "swap-bench/" + app + ":v1", "swap-bench/" + app + ":v2"
}

// withImages runs fn on a stack (stack.With: what a killed run left in its directory is
// removed first, and the stack is removed after fn) once it has checked that Docker runs
// no containers of app and made app's two images.
func withImages(ctx context.Context, opts stack.Options, app string, bin []byte, fn func(*stack.Stack) error) error {
	return stack.With(ctx, opts, func(st *stack.Stack) error {
		if insts, err := st.Docker.List(ctx, app); err != nil || len(insts) > 0 {
			return fmt.Errorf("docker already runs swap containers of app %s (%d, %v): pick another -app", app, len(insts), err)
		}
		v1, v2 := imageRefs(app)
		for _, v := range []struct{ ref, version string }{{v1, "v1"}, {v2, "v2"}} {
			if err := st.DemoImage(ctx, v.ref, v.version, bin); err != nil {
				return err
			}
		}
		return fn(st)
	})
}

// waitQuiet waits until the 1-minute load average is below max, at most for wait.
func waitQuiet(ctx context.Context, max float64, wait time.Duration) {
	if max <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for said := false; ; said = true {
		var l1 float64
		if _, err := fmt.Sscan(loadavg(), &l1); err != nil || l1 < max {
			return
		}
		if !said {
			fmt.Fprintf(os.Stderr, "load average %.2f: waiting up to %s for it to drop below %.2f\n", l1, wait, max)
		}
		select {
		case <-ctx.Done():
			fmt.Fprintf(os.Stderr, "the load stayed above %.2f for %s: measuring anyway\n", max, wait)
			return
		case <-tick.C:
		}
	}
}

// loadavg is the first three fields of /proc/loadavg: how busy the machine was.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// measure is one swap's times.
type measure struct {
	wall, span    time.Duration
	cpu           time.Duration // user+sys of the swap process and its haproxy -c children
	steps         map[switcher.Step]time.Duration
	containerStop time.Duration // inside retire
	delay         time.Duration // scale_down_delay
	// peakRSS is the swap process's own peak (VmHWM), maxRSS wait4's (with children).
	peakRSS, maxRSS stack.Bytes
}

func (m measure) waited() time.Duration {
	return m.steps[switcher.StepStart] + m.steps[switcher.StepGate] + m.steps[switcher.StepDrain] + m.containerStop + m.delay
}
func (m measure) stepSum() time.Duration {
	var sum time.Duration
	for _, d := range m.steps {
		sum += d
	}
	return sum
}
func (m measure) overheadWall() time.Duration { return m.wall - m.waited() }
func (m measure) overheadSpan() time.Duration { return m.span - m.waited() }

func measureRun(r *stack.Run, wall, delay time.Duration) (measure, error) {
	m := measure{wall: wall, cpu: r.CPU, steps: map[switcher.Step]time.Duration{}, peakRSS: r.PeakRSS, maxRSS: r.MaxRSS}
	if r.Result.Plan.From != "" {
		m.delay = delay
	}
	start, end := r.Span()
	m.span = end.Sub(start)
	for _, s := range r.Steps() {
		m.steps[s.Step] = s.Took
	}
	stop, err := containerStop(r.Stderr, r.Result.Plan.App, string(r.Result.Plan.From))
	if err != nil {
		return m, err
	}
	m.containerStop = stop
	return m, nil
}

// containerStop reads swap's debug log: from the last "deregistered" of the old color's
// services to the last of its containers "stopped and removed".
func containerStop(logs, app, from string) (time.Duration, error) {
	prefix := app + "-" + from + "-"
	var dereg, removed time.Time
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			TS        string `json:"ts"`
			Msg       string `json:"msg"`
			Service   string `json:"service"`
			Container string `json:"container"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		ts, err := time.Parse("2006-01-02T15:04:05.000Z0700", l.TS)
		if err != nil {
			continue
		}
		switch {
		case l.Msg == "deregistered" && strings.HasPrefix(l.Service, prefix):
			dereg = ts
		case l.Msg == "container stopped and removed" && strings.HasPrefix(l.Container, prefix):
			removed = ts
		}
	}
	if dereg.IsZero() || removed.IsZero() || removed.Before(dereg) {
		return 0, fmt.Errorf("swap's debug log does not time the container stops of %s* (deregistered %v, removed %v); has a log message changed?", prefix, dereg, removed)
	}
	return removed.Sub(dereg), nil
}

func report(w io.Writer, swaps []measure, n, replicas, workers, requests, failed int, delay time.Duration) {
	col := func(f func(measure) time.Duration) []time.Duration {
		out := make([]time.Duration, len(swaps))
		for i, m := range swaps {
			out[i] = f(m)
		}
		return out
	}
	fmt.Fprintf(w, "%d swaps (deploy, alternating v2/v1), %d replicas per color, load %d workers: %d requests, %d failed; scale_down_delay %s\n\n",
		n, replicas, workers, requests, failed, delay)
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', tabwriter.Debug)
	fmt.Fprintln(tw, "| part\t median\t p95\t min\t max\t")
	fmt.Fprintln(tw, "|---\t---:\t---:\t---:\t---:\t")
	row := func(name string, ds []time.Duration) {
		fmt.Fprintf(tw, "| %s\t %s\t %s\t %s\t %s\t\n", name, ms(quantile(ds, 0.5)), ms(quantile(ds, 0.95)), ms(slices.Min(ds)), ms(slices.Max(ds)))
	}
	for _, s := range switcher.Steps {
		ds := col(func(m measure) time.Duration { return m.steps[s] })
		if s == switcher.StepRetire {
			row("retire", ds)
			row("  of which container stop (waited)", col(func(m measure) time.Duration { return m.containerStop }))
			row("  of which swap (del server, deregister)", col(func(m measure) time.Duration { return m.steps[s] - m.containerStop }))
			continue
		}
		name := string(s)
		switch s {
		case switcher.StepStart, switcher.StepGate, switcher.StepDrain:
			name += " (waited)"
		}
		row(name, ds)
	}
	row("between steps (journal writes to Consul)", col(func(m measure) time.Duration { return m.span - m.stepSum() }))
	row("process start and exit (config, clients, unlock)", col(func(m measure) time.Duration { return m.wall - m.span }))
	row("total: swap process, exec to exit", col(func(m measure) time.Duration { return m.wall }))
	row("total: first event to last", col(func(m measure) time.Duration { return m.span }))
	row("waited: start+gate+drain+container stop+delay", col(measure.waited))
	row("**overhead** (process total - waited)", col(measure.overheadWall))
	row("**overhead** (event span - waited)", col(measure.overheadSpan))
	row("CPU of swap and its haproxy -c children", col(func(m measure) time.Duration { return m.cpu }))
	tw.Flush()
	fmt.Fprintf(w, "\np95 is the nearest rank: with %d swaps, the %s.\n", len(swaps), ordinal(int(math.Ceil(0.95*float64(len(swaps))))))
}

// quantile is the nearest-rank q-quantile.
func quantile(ds []time.Duration, q float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return benchkit.Quantile(s, q)
}

func ordinal(k int) string {
	switch {
	case k%100 >= 11 && k%100 <= 13:
		return fmt.Sprintf("%dth", k)
	case k%10 == 1:
		return fmt.Sprintf("%dst", k)
	case k%10 == 2:
		return fmt.Sprintf("%dnd", k)
	case k%10 == 3:
		return fmt.Sprintf("%drd", k)
	}
	return fmt.Sprintf("%dth", k)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%d ms", d.Round(time.Millisecond).Milliseconds())
}
