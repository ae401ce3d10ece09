// Command datapathbench measures what swap's HAProxy costs the app's throughput: the same
// load (closed loops on keep-alive connections, stack.Load) against one app container
// directly (its port published on 127.0.0.1) and through swap's HAProxy frontend, at 8
// and 64 connections, alternating, with HAProxy's connection reuse for the server
// (`show stat`: connect and reuse over the run).
//
//	make deps build && go run ./bench/datapathbench [-short] [-doc docs/benchmarks.md]
//
// The app is deployed by swap (one demoapp container) on the demo's stack
// (internal/stack); everything is removed at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/lbconfig"
)

const (
	app   = "dpbench"
	route = "dpbench.bench"
)

func main() {
	o := benchkit.RegisterFlags(nil, "datapathbench")
	var (
		dur    = flag.Duration("duration", 0, "each measurement's length (0: 10s, or 2s with -short)")
		rounds = flag.Int("rounds", 0, "rounds of every measurement (0: 2, or 1 with -short)")
	)
	sf := benchkit.RegisterStackFlags(nil, "datapathbench")
	flag.Parse()
	if *dur <= 0 {
		*dur = benchkit.Pick(o, 10*time.Second, 2*time.Second)
	}
	if *rounds <= 0 {
		*rounds = benchkit.Pick(o, 2, 1)
	}
	benchkit.Main("datapathbench", func(ctx context.Context) error { return run(ctx, o, sf, *dur, *rounds) })
}

// point is one measurement.
type point struct {
	path           string // "direct" or "haproxy"
	conns          int
	rps            float64
	failed         int64
	connect, reuse int64 // HAProxy's counters over the run (haproxy only)
}

func run(ctx context.Context, o *benchkit.Options, sf *benchkit.StackFlags, dur time.Duration, rounds int) (err error) {
	st, down, err := sf.UpStack(ctx, stack.App{Name: app, Image: "swap-bench/" + app + ":v1", Route: route, Check: time.Second}.YAML())
	defer down(&err)
	if err != nil {
		return err
	}
	if err := sf.DeployDemo(ctx, st, app, "swap-bench/"+app+":v1"); err != nil {
		return err
	}
	cl, err := api.NewClient(&api.Config{Address: st.Consul})
	if err != nil {
		return err
	}
	entries, _, err := cl.Health().Service(app, "", false, nil)
	if err != nil || len(entries) != 1 {
		return fmt.Errorf("want the app's one instance in consul: %d, %v", len(entries), err)
	}
	svc := entries[0].Service
	direct := fmt.Sprintf("%s:%d", svc.Address, svc.Port)
	admin, err := lbconfig.Dial(filepath.Join(st.Dir, "haproxy", lbconfig.AdminSockFile))
	if err != nil {
		return err
	}
	backend := app + "_" + svc.Meta["color"]

	machine := benchkit.ReadMachine()
	var points []point
	for r := range rounds {
		for _, conns := range []int{8, 64} {
			for _, path := range []string{"direct", "haproxy"} {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				p := point{path: path, conns: conns}
				addr := direct
				var before lbconfig.Stat
				if path == "haproxy" {
					addr = st.Frontend
					if before, err = serverStat(ctx, admin, backend); err != nil {
						return err
					}
				}
				p.rps, p.failed, err = measure(addr, route, conns, dur)
				if err != nil {
					return err
				}
				if path == "haproxy" {
					after, err := serverStat(ctx, admin, backend)
					if err != nil {
						return err
					}
					p.connect, p.reuse = after.Connect-before.Connect, after.Reuse-before.Reuse
				}
				fmt.Fprintf(os.Stderr, "round %d  %-7s %2d connections  %8.0f req/s  failed %d  connect %d reuse %d\n",
					r+1, path, conns, p.rps, p.failed, p.connect, p.reuse)
				points = append(points, p)
			}
		}
	}
	end := benchkit.LoadAvg()
	return report(o, machine, &end, dur, points)
}

// serverStat is the `show stat` row of the app's one server in backend.
func serverStat(ctx context.Context, admin *lbconfig.Client, backend string) (lbconfig.Stat, error) {
	rows, err := admin.Stat(ctx, backend)
	if err != nil {
		return lbconfig.Stat{}, err
	}
	var found []lbconfig.Stat
	for _, r := range rows {
		if r.Proxy == backend && r.Type == lbconfig.StatServer {
			found = append(found, r)
		}
	}
	if len(found) != 1 {
		return lbconfig.Stat{}, fmt.Errorf("want one server in backend %s of `show stat`, found %d", backend, len(found))
	}
	return found[0], nil
}

// measure runs conns keep-alive closed loops against addr for a warm-up second and then
// dur, and returns the answers per second in dur and the failures.
func measure(addr, host string, conns int, dur time.Duration) (float64, int64, error) {
	l := &stack.Load{Addr: addr, Host: host, KeepAlive: conns}
	if err := l.Start(); err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	ok0, bad0 := l.Counts()
	t0 := time.Now()
	time.Sleep(dur)
	ok1, bad1 := l.Counts()
	took := time.Since(t0)
	l.Stop()
	return float64(ok1-ok0) / took.Seconds(), bad1 - bad0, nil
}

// Aggregate is the mean of the rounds of one path and connection count.
type Aggregate struct {
	RPS            []float64
	Failed         int64
	Connect, Reuse int64
}

// ReuseRatio is the share of server requests that went over a reused connection.
func (a Aggregate) ReuseRatio() float64 {
	if a.Connect+a.Reuse == 0 {
		return 0
	}
	return float64(a.Reuse) / float64(a.Connect+a.Reuse)
}

// Mean is the mean throughput of the rounds.
func (a Aggregate) Mean() float64 {
	if len(a.RPS) == 0 {
		return 0
	}
	s := 0.0
	for _, v := range a.RPS {
		s += v
	}
	return s / float64(len(a.RPS))
}

func aggregate(points []point) map[string]map[int]*Aggregate {
	out := map[string]map[int]*Aggregate{"direct": {}, "haproxy": {}}
	for _, p := range points {
		a := out[p.path][p.conns]
		if a == nil {
			a = &Aggregate{}
			out[p.path][p.conns] = a
		}
		a.RPS = append(a.RPS, p.rps)
		a.Failed += p.failed
		a.Connect += p.connect
		a.Reuse += p.reuse
	}
	return out
}

func report(o *benchkit.Options, machine benchkit.Machine, end *[3]float64, dur time.Duration, points []point) error {
	agg := aggregate(points)
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("| connections | app container direct (req/s, each round) | through swap's HAProxy (req/s, each round) | HAProxy / direct | server connections opened | reused | reuse ratio | failed |")
	w("|---|---|---|---|---|---|---|---|")
	ok := true
	var ratios []string
	for _, c := range []int{8, 64} {
		d, h := agg["direct"][c], agg["haproxy"][c]
		if d == nil || h == nil {
			continue
		}
		r := h.Mean() / max(d.Mean(), 1)
		ok = ok && r >= 0.7
		ratios = append(ratios, fmt.Sprintf("%.0f%% at %d connections", 100*r, c))
		w("| %d | %s | %s | %.0f%% | %d | %d | %.1f%% | %d |", c, rpsCell(d.RPS), rpsCell(h.RPS), 100*r, h.Connect, h.Reuse, 100*h.ReuseRatio(), d.Failed+h.Failed)
	}
	w("")
	w("%s", machine.Line(o.CommandLine(), end))
	w("")
	w("- Goal: through HAProxy ≥ 70%% of the container's direct throughput — %s (%s of load each, means of the rounds): %s.",
		strings.Join(ratios, ", "), dur, benchkit.Verdict(ok))
	if path, link, ok := o.PlotPath("bench-datapath.png"); ok {
		var groups []benchkit.Bar
		for _, c := range []int{8, 64} {
			if d, h := agg["direct"][c], agg["haproxy"][c]; d != nil && h != nil {
				groups = append(groups, benchkit.Bar{Label: fmt.Sprintf("%d connections", c), Values: []float64{d.Mean(), h.Mean()}})
			}
		}
		if err := benchkit.BarPlot(path, "Data path: requests per second", "req/s", false, []string{"container direct", "through swap's HAProxy"}, groups); err != nil {
			return err
		}
		w("")
		w("![data path: direct vs through HAProxy](%s)", link)
	}
	return o.Publish("datapath", b.String())
}

func rpsCell(v []float64) string {
	var s []string
	for _, x := range v {
		s = append(s, fmt.Sprintf("%.0f", x))
	}
	return strings.Join(s, " / ")
}
