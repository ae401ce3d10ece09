package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

// The sweep (-sweep): how a swap's time and each of its steps grow with the replicas per
// color and with the HAProxy instances swap keeps in step. One stack per point (a fresh
// Consul and that many HAProxys on one frontend address), the first deploy untimed, then
// a few timed swaps under a light load; the swap CLI's peak memory is read on the way.

// point is one configuration of the sweep.
type point struct {
	Replicas, HAProxies, Swaps int
}

func (p point) String() string { return fmt.Sprintf("%d×%d", p.Replicas, p.HAProxies) }

// sweepPoints is the sweep: the replicas axis on one HAProxy (with 8, which still
// starts within the Docker driver's 1-minute start deadline when the machine is busy),
// the HAProxy axis at baseReplicas (the same point is not run twice). Docker creates and
// starts containers one after another, at 0.3–3 s each on this shared machine: the
// bigger points get fewer timed swaps so that the full sweep stays near 6–10 minutes.
func sweepPoints(short bool) (points []point, baseReplicas int) {
	if short {
		return []point{{1, 1, 1}, {4, 1, 1}, {1, 3, 1}}, 1
	}
	return []point{{1, 1, 3}, {4, 1, 3}, {8, 1, 1}, {16, 1, 1}, {64, 1, 1}, {4, 3, 2}, {4, 9, 2}}, 4
}

// sweepResult is what one point measured.
type sweepResult struct {
	point
	swaps            []measure
	requests, failed int
	err              error // the point could not be measured
}

// oneLine is err's message on one line, at most 300 bytes.
func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// median of f over the point's swaps.
func (r sweepResult) median(f func(measure) time.Duration) time.Duration {
	ds := make([]time.Duration, len(r.swaps))
	for i, m := range r.swaps {
		ds[i] = f(m)
	}
	return benchkit.Summarize(ds).Median
}

type sweepConfig struct {
	short                    bool
	doc, dir, app            string
	swapBin, consul, demoapp string
	workers                  int
	log                      io.Writer
}

func runSweep(ctx context.Context, c sweepConfig) error {
	bin, err := os.ReadFile(c.demoapp)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	points, base := sweepPoints(c.short)
	machine := benchkit.ReadMachine()
	t0 := time.Now()
	var results []sweepResult
	for _, p := range points {
		fmt.Fprintf(c.log, "== %d replicas per color, %d HAProxy: %d swaps\n", p.Replicas, p.HAProxies, p.Swaps)
		r, err := runPoint(ctx, c, p, bin)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// One point's failure (Docker refusing a port, a deadline on a busy
			// machine) is reported in the table; the other points still count.
			r.err = err
			fmt.Fprintf(c.log, "  failed: %v\n", err)
		}
		results = append(results, r)
	}
	end := benchkit.LoadAvg()
	command := "go run ./bench/swapbench -sweep"
	if c.short {
		command += " -short"
	}
	line := machine.Line(command, &end)
	took := time.Since(t0).Round(time.Second)
	scaling, memory := sweepTables(results, line, took)
	fmt.Println(scaling)
	fmt.Println(memory)
	if c.doc == "" {
		return nil
	}
	img := *imgDir
	if img == "" {
		img = filepath.Join(filepath.Dir(c.doc), "img")
	}
	if err := os.MkdirAll(img, 0o755); err != nil {
		return err
	}
	if err := sweepPlots(results, base, img); err != nil {
		return err
	}
	return errors.Join(benchkit.Splice(c.doc, "swap-scaling", scaling), benchkit.Splice(c.doc, "swap-memory", memory))
}

func runPoint(ctx context.Context, c sweepConfig, p point, bin []byte) (res sweepResult, err error) {
	res.point = p
	v1, _ := imageRefs(c.app)
	// 5 minutes to start 64 replicas, and to remove them.
	app := stack.App{Name: c.app, Image: v1, Replicas: p.Replicas, DeployTimeout: 5 * time.Minute}
	opts := stack.Options{Dir: c.dir, Swap: c.swapBin, Consul: c.consul, Log: indentWriter{c.log},
		HAProxies: p.HAProxies, HostPorts: benchkit.HostPorts, Apps: app.YAML(), DownTimeout: 5 * time.Minute}
	err = withImages(ctx, opts, c.app, bin, func(st *stack.Stack) error {
		res, err = measurePoint(ctx, c, p, st)
		return err
	})
	return res, err
}

// measurePoint is runPoint's part on the stack: the first deploy, then p.Swaps swaps
// measured.
func measurePoint(ctx context.Context, c sweepConfig, p point, st *stack.Stack) (res sweepResult, err error) {
	res.point = p
	v1, v2 := imageRefs(c.app)
	t0 := time.Now()
	if _, err := st.SwapJSON(ctx, "", nil, "deploy", c.app, "--image", v1); err != nil {
		return res, err
	}
	fmt.Fprintf(c.log, "  first deploy (untimed) %s\n", time.Since(t0).Round(time.Millisecond))
	var load *stack.Load
	if c.workers > 0 {
		if load, err = startLoad(st.Frontend, c.app+".bench", c.workers, 20*time.Minute); err != nil {
			return res, err
		}
		defer load.Stop()
	}
	for i := range p.Swaps {
		image := v2
		if i%2 == 1 {
			image = v1
		}
		t0 := time.Now()
		r, err := st.SwapJSON(ctx, "debug", nil, "deploy", c.app, "--image", image)
		wall := time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("swap %d: %w", i+1, err)
		}
		m, err := measureRun(r, wall, 0)
		if err != nil {
			return res, fmt.Errorf("swap %d: %w", i+1, err)
		}
		fmt.Fprintf(c.log, "  swap %d/%d  process %s  overhead %s  peak RSS %.1f MiB (wait4: %.1f MiB)\n", i+1, p.Swaps,
			ms(m.wall), ms(m.overheadWall()), m.peakRSS.MiB(), m.maxRSS.MiB())
		res.swaps = append(res.swaps, m)
	}
	if load != nil {
		load.Stop()
		ok, bad := load.Counts()
		res.requests, res.failed = int(ok+bad), int(bad)
	}
	return res, nil
}

// sweepRow is a row of the scaling table: a name and what it reads.
type sweepRow struct {
	name string
	f    func(measure) time.Duration
}

// sweepRows are the rows of the scaling table, in order.
var sweepRows = func() []sweepRow {
	type row = sweepRow
	var rows []row
	for _, s := range switcher.Steps {
		if s == switcher.StepPreview || s == switcher.StepVerify { // off in the benchmark's app
			continue
		}
		name := string(s)
		switch s {
		case switcher.StepStart, switcher.StepGate, switcher.StepDrain:
			name += " (waited)"
		}
		rows = append(rows, row{name, func(m measure) time.Duration { return m.steps[s] }})
		if s == switcher.StepRetire {
			rows = append(rows,
				row{"  of which container stop (waited)", func(m measure) time.Duration { return m.containerStop }},
				row{"  of which swap (del server, deregister)", func(m measure) time.Duration { return m.steps[s] - m.containerStop }})
		}
	}
	return append(rows,
		row{"between steps (journal writes)", func(m measure) time.Duration { return m.span - m.stepSum() }},
		row{"process start and exit", func(m measure) time.Duration { return m.wall - m.span }},
		row{"**total** (process, exec to exit)", func(m measure) time.Duration { return m.wall }},
		row{"**swap's own** (total - waited)", measure.overheadWall},
	)
}()

// sweepTables renders the scaling table (median per step and point) and the memory
// table.
func sweepTables(results []sweepResult, machineLine string, took time.Duration) (scaling, memory string) {
	var b strings.Builder
	b.WriteString("| step (median ms) |")
	for _, r := range results {
		fmt.Fprintf(&b, " %s |", r.point)
	}
	b.WriteString("\n|---|")
	b.WriteString(strings.Repeat("---:|", len(results)))
	b.WriteString("\n")
	for _, row := range sweepRows {
		fmt.Fprintf(&b, "| %s |", row.name)
		for _, r := range results {
			if len(r.swaps) == 0 {
				b.WriteString(" – |")
				continue
			}
			fmt.Fprintf(&b, " %s |", benchkit.Ms(r.median(row.f)))
		}
		b.WriteString("\n")
	}
	b.WriteString("| swaps timed (requests, failed) |")
	for _, r := range results {
		fmt.Fprintf(&b, " %d (%d, %d) |", len(r.swaps), r.requests, r.failed)
	}
	fmt.Fprintf(&b, "\n\nColumns: replicas per color × HAProxy instances. %s (the sweep took %s)\n", machineLine, took)
	for _, r := range results {
		if r.err != nil {
			fmt.Fprintf(&b, "\n%s: %d of %d swaps timed, then: %s\n", r.point, len(r.swaps), r.Swaps, oneLine(r.err))
		}
	}
	scaling = b.String()

	b.Reset()
	b.WriteString("| replicas × HAProxys | swaps | peak RSS of `swap` (VmHWM), median | max | ru_maxrss at exit (with its `haproxy -c` children), max |\n")
	b.WriteString("|---|---:|---:|---:|---:|\n")
	for _, r := range results {
		if len(r.swaps) == 0 {
			fmt.Fprintf(&b, "| %s | 0 | – | – | – |\n", r.point)
			continue
		}
		var peak, maxrss []float64
		for _, m := range r.swaps {
			peak = append(peak, m.peakRSS.MiB())
			maxrss = append(maxrss, m.maxRSS.MiB())
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f MiB | %.1f MiB | %.1f MiB |\n", r.point, len(r.swaps), medianF(peak), slices.Max(peak), slices.Max(maxrss))
	}
	fmt.Fprintf(&b, "\n%s\n", machineLine)
	return scaling, b.String()
}

// medianF is the nearest-rank median of xs (not empty).
func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[(len(s)+1)/2-1]
}

// plotSets are the plots of each axis: the steps that wait on Docker, the checks and
// the drain, and the steps that are swap's own work (per server, per HAProxy, per
// journal write). Names are sweepRows'.
var plotSets = []struct {
	file, what string
	rows       []string
}{
	{"waited", "what swap waits on", []string{"start (waited)", "gate (waited)", "drain (waited)",
		"  of which container stop (waited)", "**total** (process, exec to exit)"}},
	{"own", "swap's own work", []string{"register", "stage", "shift", "  of which swap (del server, deregister)",
		"between steps (journal writes)", "**swap's own** (total - waited)"}},
}

// sweepPlots draws each step's median against the replicas (on one HAProxy) and against
// the HAProxys (at base replicas): docs/img/bench-swap-{replicas,haproxies}-{waited,own}.png.
func sweepPlots(results []sweepResult, base int, img string) error {
	var byReplicas, byHAProxies []sweepResult
	for _, r := range results {
		if len(r.swaps) == 0 {
			continue
		}
		if r.HAProxies == 1 {
			byReplicas = append(byReplicas, r)
		}
		if r.Replicas == base {
			byHAProxies = append(byHAProxies, r)
		}
	}
	series := func(rs []sweepResult, rows []string, x func(sweepResult) float64) []benchkit.Series {
		var out []benchkit.Series
		for _, name := range rows {
			var f func(measure) time.Duration
			for _, r := range sweepRows {
				if r.name == name {
					f = r.f
				}
			}
			s := benchkit.Series{Name: plotName(name)}
			for _, r := range rs {
				s.X = append(s.X, x(r))
				s.Y = append(s.Y, max(1, float64(r.median(f))/float64(time.Millisecond)))
			}
			out = append(out, s)
		}
		return out
	}
	for _, set := range plotSets {
		err := benchkit.LinePlotWith(filepath.Join(img, "bench-swap-replicas-"+set.file+".png"),
			benchkit.PlotOptions{Title: "swap's steps against the replicas per color (1 HAProxy): " + set.what,
				XLabel: "replicas per color (log)", YLabel: "median ms (log)", LogX: true, LogY: true, Headroom: true},
			series(byReplicas, set.rows, func(r sweepResult) float64 { return float64(r.Replicas) })...)
		if err != nil {
			return err
		}
		err = benchkit.LinePlotWith(filepath.Join(img, "bench-swap-haproxies-"+set.file+".png"),
			benchkit.PlotOptions{Title: fmt.Sprintf("swap's steps against the HAProxys (%d replicas): %s", base, set.what),
				XLabel: "HAProxy instances (log)", YLabel: "median ms (log)", LogX: true, LogY: true, Headroom: true},
			series(byHAProxies, set.rows, func(r sweepResult) float64 { return float64(r.HAProxies) })...)
		if err != nil {
			return err
		}
	}
	return nil
}

// plotName is a table row's name as a legend entry.
func plotName(row string) string {
	row = strings.TrimSpace(strings.ReplaceAll(row, "**", ""))
	row = strings.TrimPrefix(row, "of which ")
	return row
}

// indentWriter indents the stack's lines under the point's heading.
type indentWriter struct{ w io.Writer }

func (i indentWriter) Write(p []byte) (int, error) {
	if _, err := fmt.Fprint(i.w, "  "+string(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
