// Command healthbench measures the health scheduler at scale and, side by
// side in the same run, a Consul dev agent running the same HTTP checks.
//
//	go run ./bench/healthbench -targets 5000 -duration 60s
//
// Layout: a child process (this program, re-executed) serves every target on
// its own loopback listener (one port per target, like one container each),
// GET /health -> 200 "ok". This process runs health.Scheduler over all of them
// with the shared keep-alive client; the Consul agent (bin/consul, started
// here on free ports and stopped at the end) gets one service per target with
// an HTTP check at the same interval, registered through its API. Once every
// target is healthy in both, and after a warm-up, CPU (utime+stime from
// /proc/<pid>/stat) of each process is measured over the same window, with
// RSS, and the scheduler's lag (probe start - due time).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync/atomic"
	"time"

	"github.com/swap-dev/swap/health"
)

// A benchmark program in one file, like the others: the flags, the run with its two
// probers, the measurement window and the report are read top to bottom together
// (the targets' server, the agent and /proc sampling have files of their own).

// imgDir is -img: where the plots go (make bench's suite passes docs/img); "" is img/
// beside -doc.
var imgDir = flag.String("img", "", "with -doc: the `directory` of the plots (default: img/ beside -doc)")

func main() {
	var (
		targets  = flag.Int("targets", 5000, "number of HTTP targets")
		duration = flag.Duration("duration", 60*time.Second, "measurement window")
		interval = flag.Duration("interval", time.Second, "probe interval")
		timeout  = flag.Duration("timeout", 2*time.Second, "probe timeout")
		warmup   = flag.Duration("warmup", 10*time.Second, "wait after every target is healthy before measuring")
		consul   = flag.String("consul", "bin/consul", `consul binary, or "none" to skip the comparison`)
		profile  = flag.String("cpuprofile", "", "write a CPU profile of this process over the window to this file")
		client   = flag.String("client", "health", "HTTP client of the probes: health (health.Transport) or nethttp (net/http, for comparison)")
		quiet    = flag.Float64("max-other-cpu", 0, "before measuring, wait until other processes use less than this share of one core (e.g. 0.3; 0: do not wait)")
		quietFor = flag.Duration("quiet-wait", 30*time.Minute, "how long -max-other-cpu may wait")
		res      = flag.Duration("resolution", 0, "scheduler resolution (health.Options.Resolution; 0: the default, negative: exact)")
		serve    = flag.Int("serve-targets", 0, "internal: serve this many targets (the child process)")
		sweep    = flag.Bool("sweep", false, "the scaling curve: 1,000, 5,000 and 10,000 targets, swap's scheduler and the Consul agent side by side at each, 20 s windows")
		short    = flag.Bool("short", false, "with -sweep: 250 and 1,000 targets, 10 s windows")
		doc      = flag.String("doc", "", "with -sweep: splice the table into this Markdown `file` (docs/benchmarks.md) and write the plot to img/ beside it")
	)
	flag.Parse()
	if *serve > 0 {
		if err := serveTargets(*serve); err != nil {
			fmt.Fprintln(os.Stderr, "healthbench: serve:", err)
			os.Exit(1)
		}
		return
	}
	resolution, clientKind = *res, *client
	maxOtherCPU, quietWait = *quiet, *quietFor
	if resolution == 0 {
		resolution = health.DefaultResolution
	}
	if *sweep || *short || *doc != "" {
		if err := runSweep(*short, *doc, *interval, *timeout, *consul); err != nil {
			fmt.Fprintln(os.Stderr, "healthbench:", err)
			os.Exit(1)
		}
		return
	}
	if _, err := run(*targets, *duration, *interval, *timeout, *warmup, *consul, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "healthbench:", err)
		os.Exit(1)
	}
}

// result is what one run measured.
type result struct {
	targets                 int
	swapShare, consulShare  float64 // CPU, share of one core
	swapRate, consulRate    float64 // probes per second the targets saw
	swapLag                 time.Duration
	swapGap99, consulGap99  time.Duration // p99 of the gap between one target's probes, minus the interval
	swapRSS, consulRSS      int64         // KiB
	consulPassing, failures int64
	load0, load1            string
	err                     error // the size could not be measured (sweep)
	consulErr               error // the agent could not be started (sweep): swap measured alone
}

func run(n int, duration, interval, timeout, warmup time.Duration, consulBin, profile string) (res result, err error) {
	res.targets = n
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logf("machine: %s", machine())
	logf("starting %d targets in a child process", n)
	ts, err := startTargets(n)
	if err != nil {
		return res, err
	}
	defer ts.stop()

	var agent *consulAgent
	t0 := time.Now()
	if consulBin != "none" {
		logf("starting consul dev agent %s with %d services", consulBin, n)
		agent, err = startConsul(consulBin, ts.ports, interval, timeout)
		switch {
		case err != nil && sweeping:
			// The sweep still measures swap's scheduler at this size, and says why the
			// agent is missing.
			logf("consul: %v: measuring swap's scheduler alone", err)
			res.consulErr, err = err, nil
		case err != nil:
			return res, err
		}
	}
	if agent != nil {
		defer func() {
			agent.stop()
			if err != nil {
				err = fmt.Errorf("%w; the consul agent's log ended with:\n%s", err, logTail(agent.logPath, 5))
			}
			agent.cleanup()
		}()
		logf("consul agent up with %d services with HTTP checks in %s", n, time.Since(t0).Round(time.Millisecond))
	}
	// Registration garbage is not the scheduler's: give it back first.
	runtime.GC()
	debug.FreeOSMemory()
	rssBase, _, _ := memKB("self")

	var measuring atomic.Bool
	var windowStart atomic.Int64
	lag := newHistogram(100*time.Microsecond, 20000) // exact to 0.1 ms up to 2 s
	var results, failures atomic.Int64
	s := health.NewScheduler(health.Options{
		Interval:   interval,
		Resolution: resolution,
		OnResult: func(_ string, r health.Result) {
			if !measuring.Load() || r.Start.UnixNano() < windowStart.Load() {
				return
			}
			results.Add(1)
			if !r.OK {
				failures.Add(1)
			}
			lag.add(r.Start.Sub(r.Due))
		},
	})
	ids := make([]string, n)
	nethttp := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64, IdleConnTimeout: 90 * time.Second, DisableCompression: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for i, port := range ts.ports {
		url := fmt.Sprintf("http://127.0.0.1:%d/health", port)
		var c health.Checker
		switch clientKind {
		case "health":
			if c, err = health.NewHTTPChecker(health.HTTPConfig{URL: url, Timeout: timeout}); err != nil {
				return res, err
			}
		case "nethttp":
			c = netHTTPChecker(nethttp, url, timeout)
		default:
			return res, fmt.Errorf("-client %q: use health or nethttp", clientKind)
		}
		ids[i] = fmt.Sprintf("bench-%d", i)
		if err := s.Add(health.Target{ID: ids[i], Checker: c}); err != nil {
			return res, err
		}
	}
	runDone := make(chan error, 1)
	go func() { runDone <- s.Run(ctx) }()
	defer func() { cancel(); <-runDone }()

	t0 = time.Now()
	if err := s.Wait(ctx, ids, 0, time.Now().Add(2*time.Minute)); err != nil {
		return res, fmt.Errorf("scheduler targets: %w", err)
	}
	logf("swap: all %d targets healthy after %s", n, time.Since(t0).Round(time.Millisecond))
	if agent != nil {
		passing, err := agent.waitPassing(n, time.Now().Add(passingWait))
		switch {
		case err != nil && sweeping:
			logf("consul: %v: measuring all the same", err) // at 10,000 it may never keep up
		case err != nil:
			return res, fmt.Errorf("%w (consul log: %s)", err, agent.logPath)
		default:
			logf("consul: %d checks passing", passing)
		}
	}
	logf("warming up for %s", warmup)
	time.Sleep(warmup)
	if maxOtherCPU > 0 {
		pids := append([]string{"self"}, ts.pids()...)
		if agent != nil {
			pids = append(pids, agent.pid())
		}
		for waitUntil := time.Now().Add(quietWait); ; {
			other, err := otherCPU(5*time.Second, pids...)
			if err != nil {
				return res, err
			}
			if other < maxOtherCPU {
				logf("other processes use %.0f%% of a core: measuring", 100*other)
				break
			}
			if time.Now().After(waitUntil) {
				logf("other processes still use %.0f%% of a core after %s: measuring anyway", 100*other, quietWait)
				break
			}
			logf("other processes use %.0f%% of a core: waiting for a quieter machine", 100*other)
		}
	}

	// The window.
	logf("measuring for %s", duration)
	self, err := startCPU("self")
	if err != nil {
		return res, err
	}
	var srvCPU []*cpuMeter
	for _, pid := range ts.pids() {
		m, err := startCPU(pid)
		if err != nil {
			return res, err
		}
		srvCPU = append(srvCPU, m)
	}
	var agentCPU *cpuMeter
	if agent != nil {
		if agentCPU, err = startCPU(agent.pid()); err != nil {
			return res, err
		}
	}
	if err := ts.resetGaps(); err != nil {
		return res, err
	}
	stats0, _, _, err := ts.stats()
	if err != nil {
		return res, err
	}
	busy0, soft0, err := machineBusy()
	if err != nil {
		return res, err
	}
	load0 := loadavg()
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return res, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return res, err
		}
	}
	windowStart.Store(time.Now().UnixNano())
	measuring.Store(true)
	for left := duration; left > 0; left -= 10 * time.Second {
		time.Sleep(min(left, 10*time.Second))
		logf("  %s left", (left - min(left, 10*time.Second)).Round(time.Second))
	}
	measuring.Store(false)
	if profile != "" {
		pprof.StopCPUProfile()
	}
	wall := time.Since(time.Unix(0, windowStart.Load()))
	selfShare, selfUsed, err := self.share()
	if err != nil {
		return res, err
	}
	var srvShare float64
	var srvUsed time.Duration
	for _, m := range srvCPU {
		sh, used, err := m.share()
		if err != nil {
			return res, err
		}
		srvShare, srvUsed = srvShare+sh, srvUsed+used
	}
	busy1, soft1, err := machineBusy()
	if err != nil {
		return res, err
	}
	load1 := loadavg()
	stats1, swapGaps, consulGaps, err := ts.stats()
	if err != nil {
		return res, err
	}
	rss, hwm, _ := memKB("self")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	goroutines := runtime.NumGoroutine()

	// Report.
	probes := results.Load()
	swapRate := float64(stats1.Swap-stats0.Swap) / wall.Seconds()
	fmt.Printf("\n## healthbench: %d targets, interval %s, resolution %s, client %s, window %s\n\n", n, interval, resolution, clientKind, wall.Round(time.Millisecond))
	fmt.Printf("machine: %s\n\n", machine())
	fmt.Println("| process | CPU (share of one core) | CPU time in window | checks/s done | CPU per 1,000 checks | RSS |")
	fmt.Println("|---|---|---|---|---|---|")
	fmt.Printf("| swap health.Scheduler | **%.1f%%** | %s | %.0f | %s | %d MiB (peak %d MiB; %d MiB before the scheduler) |\n",
		100*selfShare, selfUsed.Round(time.Millisecond), swapRate, perK(selfUsed, stats1.Swap-stats0.Swap),
		rss>>10, hwm>>10, rssBase>>10)
	var agentShare float64
	if agent != nil {
		var agentUsed time.Duration
		agentShare, agentUsed, err = agentCPU.share()
		if err != nil {
			return res, err
		}
		arss, ahwm, _ := memKB(agent.pid())
		res.consulShare, res.consulRate, res.consulRSS = agentShare, float64(stats1.Consul-stats0.Consul)/wall.Seconds(), arss
		fmt.Printf("| consul agent -dev | **%.1f%%** | %s | %.0f | %s | %d MiB (peak %d MiB) |\n",
			100*agentShare, agentUsed.Round(time.Millisecond), float64(stats1.Consul-stats0.Consul)/wall.Seconds(),
			perK(agentUsed, stats1.Consul-stats0.Consul), arss>>10, ahwm>>10)
	}
	fmt.Printf("| target server (serves both) | %.1f%% | %s | %.0f served | | |\n", 100*srvShare, srvUsed.Round(time.Millisecond),
		float64(stats1.Swap-stats0.Swap+stats1.Consul-stats0.Consul)/wall.Seconds())
	fmt.Printf("| whole machine, all processes and kernel (softirq %.1f%%) | %.1f%% | %s | | | |\n",
		100*float64(soft1-soft0)/float64(wall), 100*float64(busy1-busy0)/float64(wall), (busy1 - busy0).Round(time.Millisecond))
	fmt.Println()
	if agent != nil {
		fmt.Printf("- swap / consul CPU: **%.2f**\n", selfShare/agentShare)
		status, reasons, err := agent.checkSummary()
		if err != nil {
			return res, err
		}
		res.consulPassing = int64(status["passing"])
		fmt.Printf("- consul checks at the end: %d passing, %d critical, %d warning of %d\n",
			status["passing"], status["critical"], status["warning"], n)
		for i, r := range reasons {
			if i == 3 {
				break
			}
			fmt.Printf("  - %s\n", r)
		}
	}
	fmt.Printf("- scheduler lag (probe start - due): p50 %s, **p99 %s**, max %s, over 2 s: %d; %d probes in the window (%.0f/s), %d failed\n",
		lag.quantile(0.50), lag.quantile(0.99), time.Duration(lag.max.Load()).Round(10*time.Microsecond), lag.over.Load(),
		probes, float64(probes)/wall.Seconds(), failures.Load())
	fmt.Printf("- swap process: Go heap in use %d MiB, sys %d MiB, %d goroutines, %d GC cycles since start\n",
		ms.HeapInuse>>20, ms.Sys>>20, goroutines, ms.NumGC)
	fmt.Printf("- gap between one target's probes, minus the interval, at the target: swap p50 %s, p99 %s, max %s",
		gapLag(swapGaps, 0.5, interval), gapLag(swapGaps, 0.99, interval), time.Duration(swapGaps.max.Load())-interval)
	if agent != nil {
		fmt.Printf("; consul p50 %s, p99 %s, max %s", gapLag(consulGaps, 0.5, interval), gapLag(consulGaps, 0.99, interval),
			time.Duration(consulGaps.max.Load())-interval)
	}
	fmt.Println()
	fmt.Printf("- load average at the start and end of the window: %s / %s\n", load0, load1)
	res.swapShare, res.swapRate, res.swapRSS = selfShare, swapRate, rss
	res.swapLag, res.failures = lag.quantile(0.99), failures.Load()
	res.swapGap99, res.consulGap99 = gapLag(swapGaps, 0.99, interval), gapLag(consulGaps, 0.99, interval)
	res.load0, res.load1 = load0, load1
	return res, nil
}

// gapLag is the q-quantile of the gaps between one target's consecutive probes minus
// the interval: how late a probe came after the one before it (0 without gaps).
func gapLag(h *histogram, q float64, interval time.Duration) time.Duration {
	if h.n.Load() == 0 {
		return 0
	}
	return h.quantile(q) - interval
}

var (
	resolution  time.Duration
	clientKind  string
	maxOtherCPU float64
	quietWait   time.Duration
	// sweeping: a Consul agent that never passes every check is measured all the same.
	sweeping    bool
	passingWait = 3 * time.Minute
)

// otherCPU samples for d the CPU the machine spends outside pids, as a share of one core.
func otherCPU(d time.Duration, pids ...string) (float64, error) {
	// sample reads the machine's busy time and pids' CPU time so far.
	sample := func() (busy, mine time.Duration, err error) {
		if busy, _, err = machineBusy(); err != nil {
			return 0, 0, err
		}
		for _, p := range pids {
			c, err := cpuTime(p)
			if err != nil {
				return 0, 0, err
			}
			mine += c
		}
		return busy, mine, nil
	}
	b0, mine0, err := sample()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	time.Sleep(d)
	b1, mine1, err := sample()
	if err != nil {
		return 0, err
	}
	return float64((b1-b0)-(mine1-mine0)) / float64(time.Since(t0)), nil
}

// netHTTPChecker probes with net/http's client, tuned for probing, so that
// -client nethttp measures the scheduler with the standard client.
func netHTTPChecker(client *http.Client, url string, timeout time.Duration) health.Checker {
	return health.CheckFunc(func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		req.Header.Set("User-Agent", "swap-health/nethttp")
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		if resp.StatusCode < 200 || resp.StatusCode > 399 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// perK is CPU time per 1,000 checks.
func perK(cpu time.Duration, checks int64) string {
	if checks == 0 {
		return "-"
	}
	return (cpu * 1000 / time.Duration(checks)).Round(time.Millisecond).String()
}

// loadavg is the 1-minute load average.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// machine describes the CPU, core count, kernel and Go version.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	return fmt.Sprintf("%d cores (%s), Linux %s, %s, GOMAXPROCS %d",
		runtime.NumCPU(), model, kernel, runtime.Version(), runtime.GOMAXPROCS(0))
}
