package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swap-dev/swap/bench/internal/benchkit"
)

// The sweep (-sweep): the scaling curve of swap's scheduler against the Consul agent,
// both probing the same targets over the same window at each size.

// sweepPlan is the sizes and the windows of a sweep.
type sweepPlan struct {
	sizes                    []int
	window, warmup, passWait time.Duration
}

func planSweep(short bool) sweepPlan {
	if short {
		return sweepPlan{sizes: []int{250, 1000}, window: 10 * time.Second, warmup: 3 * time.Second, passWait: 30 * time.Second}
	}
	return sweepPlan{sizes: []int{1000, 5000, 10000}, window: 15 * time.Second, warmup: 5 * time.Second, passWait: 60 * time.Second}
}

func runSweep(short bool, doc string, interval, timeout time.Duration, consulBin string) error {
	if consulBin == "none" {
		return fmt.Errorf("-sweep compares with the Consul agent: give -consul the consul binary")
	}
	plan := planSweep(short)
	sweeping, passingWait = true, plan.passWait
	machine := benchkit.ReadMachine()
	var results []result
	for _, n := range plan.sizes {
		logf("== %d targets", n)
		// The agent opens a connection per check; each stays in the kernel's connection
		// tracking for 2 minutes (TIME_WAIT). A full table drops new connections of
		// every process on the machine: wait for room first.
		waitConntrack(n*int((plan.warmup+plan.window)/interval), 3*time.Minute)
		r, err := run(n, plan.window, interval, timeout, plan.warmup, consulBin, "")
		if err != nil {
			// A size that could not be measured is named in the table; the others count.
			logf("%d targets: %v", n, err)
			r = result{targets: n, err: err}
		}
		results = append(results, r)
	}
	end := benchkit.LoadAvg()
	command := "go run ./bench/healthbench -sweep"
	if short {
		command += " -short"
	}
	table := sweepTable(results, interval, plan.window, machine.Line(command, &end))
	fmt.Println(table)
	if doc == "" {
		return nil
	}
	img := *imgDir
	if img == "" {
		img = filepath.Join(filepath.Dir(doc), "img")
	}
	if err := os.MkdirAll(img, 0o755); err != nil {
		return err
	}
	if err := sweepPlots(results, img); err != nil {
		return err
	}
	return benchkit.Splice(doc, "health-scaling", table)
}

// perProbes is the CPU time per 1,000 probes done at rate probes/s, for a CPU share.
func perProbes(share, rate float64) string {
	if rate <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f ms", 1000*share*1000/rate)
}

// lagCell is a p99 probe lag for the table: "–" when the prober probed nothing in the
// window (no gaps to measure).
func lagCell(lag time.Duration, rate float64) string {
	if rate <= 0 {
		return "–"
	}
	return benchkit.Ms(lag) + " ms"
}

// perThousand is a CPU share (of one core) per 1,000 targets, in percent of a core.
func perThousand(share float64, targets int) float64 { return 100 * share * 1000 / float64(targets) }

func sweepTable(results []result, interval, window time.Duration, machineLine string) string {
	var b strings.Builder
	b.WriteString("| targets | swap CPU (% of a core) | per 1,000 targets | Consul CPU | per 1,000 targets | **swap / Consul** | probes/s: swap | Consul | CPU per 1,000 probes: swap | Consul | p99 probe lag: swap | Consul | swap's scheduler lag p99 | RSS: swap | Consul | Consul checks passing at the end |\n")
	b.WriteString("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	met := true
	var failed []string
	for _, r := range results {
		if r.err != nil {
			met = false
			fmt.Fprintf(&b, "| %d | not measured |%s\n", r.targets, strings.Repeat(" |", 15))
			msg := strings.Join(strings.Fields(r.err.Error()), " ")
			failed = append(failed, fmt.Sprintf("%d targets: %s", r.targets, msg[:min(len(msg), 400)]))
			continue
		}
		if r.consulErr != nil {
			met = false
			fmt.Fprintf(&b, "| %d | %.1f%% | %.2f%% | – | – | – | %.0f | – | %s | – | %s | – | %s | %d MiB | – | – |\n",
				r.targets, 100*r.swapShare, perThousand(r.swapShare, r.targets), r.swapRate, perProbes(r.swapShare, r.swapRate),
				benchkit.Ms(r.swapGap99)+" ms", benchkit.Ms(r.swapLag)+" ms", r.swapRSS>>10)
			msg := strings.Join(strings.Fields(r.consulErr.Error()), " ")
			failed = append(failed, fmt.Sprintf("the Consul agent at %d targets: %s", r.targets, msg[:min(len(msg), 400)]))
			continue
		}
		ratio := r.swapShare / r.consulShare
		met = met && ratio <= 0.25
		fmt.Fprintf(&b, "| %d | %.1f%% | %.2f%% | %.1f%% | %.2f%% | **%.2f** | %.0f | %.0f | %s | %s | %s | %s | %s | %d MiB | %d MiB | %d of %d |\n",
			r.targets, 100*r.swapShare, perThousand(r.swapShare, r.targets), 100*r.consulShare, perThousand(r.consulShare, r.targets),
			ratio, r.swapRate, r.consulRate, perProbes(r.swapShare, r.swapRate), perProbes(r.consulShare, r.consulRate),
			benchkit.Ms(r.swapGap99)+" ms", lagCell(r.consulGap99, r.consulRate),
			benchkit.Ms(r.swapLag)+" ms", r.swapRSS>>10, r.consulRSS>>10, r.consulPassing, r.targets)
	}
	verdict := "met at every size"
	if !met {
		verdict = "**not met** at every size (see the ratio column, and what could not be measured below)"
	}
	fmt.Fprintf(&b, "\nGoal: swap's CPU ≤ 0.25× the agent's at every size — %s. HTTP checks every %s, %s windows, both probers on the same targets in the same window. ", verdict, interval, window)
	b.WriteString("Probe lag: the gap between two consecutive probes of one target, as the target saw them, minus the interval (1 ms buckets). ")
	b.WriteString("Where the agent does fewer probes than it has targets (it falls behind), its CPU per 1,000 targets understates what the same work would cost it: compare the CPU per 1,000 probes too. ")
	fmt.Fprintf(&b, "Load average before and after each window: %s. %s\n", loads(results), machineLine)
	for _, f := range failed {
		fmt.Fprintf(&b, "\nNot measured: %s\n", f)
	}
	return b.String()
}

func loads(results []result) string {
	var parts []string
	for _, r := range results {
		if r.err != nil {
			continue
		}
		parts = append(parts, fmt.Sprintf("%d: %s → %s", r.targets, r.load0, r.load1))
	}
	return strings.Join(parts, ", ")
}

// sweepPlots writes docs/img/bench-health-cpu.png and bench-health-lag.png.
func sweepPlots(results []result, img string) error {
	var x, cx, swapCPU, consulCPU, swapLag, consulLag []float64
	for _, r := range results {
		if r.err != nil {
			continue
		}
		x = append(x, float64(r.targets))
		swapCPU = append(swapCPU, perThousand(r.swapShare, r.targets))
		// a log axis needs values above 0: lags under 0.1 ms are drawn at 0.1 ms
		swapLag = append(swapLag, max(0.1, float64(r.swapGap99)/float64(time.Millisecond)))
		if r.consulErr == nil && r.consulRate > 0 {
			cx = append(cx, float64(r.targets))
			consulCPU = append(consulCPU, perThousand(r.consulShare, r.targets))
			consulLag = append(consulLag, max(0.1, float64(r.consulGap99)/float64(time.Millisecond)))
		}
	}
	err := benchkit.LinePlotWith(filepath.Join(img, "bench-health-cpu.png"), benchkit.PlotOptions{
		Title: "Health checks: CPU per 1,000 targets (HTTP, every 1 s)", XLabel: "targets", YLabel: "% of one core per 1,000 targets", Headroom: true},
		benchkit.Series{Name: "swap health.Scheduler", X: x, Y: swapCPU}, benchkit.Series{Name: "Consul agent", X: cx, Y: consulCPU})
	if err != nil {
		return err
	}
	return benchkit.LinePlotWith(filepath.Join(img, "bench-health-lag.png"), benchkit.PlotOptions{
		Title: "Health checks: p99 probe lag (gap between probes - interval)", XLabel: "targets", YLabel: "ms (log)", LogY: true, Headroom: true},
		benchkit.Series{Name: "swap health.Scheduler", X: x, Y: swapLag}, benchkit.Series{Name: "Consul agent", X: cx, Y: consulLag})
}

// waitConntrack waits, at most for wait, until the connection tracking table has room
// for need more entries (with a tenth of it to spare). Without conntrack it returns at once.
func waitConntrack(need int, wait time.Duration) {
	read := func(name string) (int, bool) {
		b, err := os.ReadFile("/proc/sys/net/netfilter/" + name)
		if err != nil {
			return 0, false
		}
		var n int
		_, err = fmt.Sscan(string(b), &n)
		return n, err == nil
	}
	limit, ok := read("nf_conntrack_max")
	if !ok {
		return
	}
	for deadline := time.Now().Add(wait); ; {
		count, ok := read("nf_conntrack_count")
		if !ok || count+need <= limit*9/10 {
			return
		}
		if time.Now().After(deadline) {
			logf("conntrack: %d of %d entries in use, %d more needed: going on all the same", count, limit, need)
			return
		}
		logf("conntrack: %d of %d entries in use, %d more needed: waiting for room", count, limit, need)
		time.Sleep(10 * time.Second) // TIME_WAIT entries expire on the kernel's clock; nothing to wait on
	}
}
