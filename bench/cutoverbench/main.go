// Command cutoverbench compares three ways of moving an app's traffic from blue to
// green, on the same app and the same load, alternating the methods in one run:
//
//	(a) swap: a Runtime API map change, as swap's shift step makes it (lbconfig.Fleet.Flip:
//	    `set map` on the admin socket, then the map file rewritten);
//	(b) reload: a config pointing at the new color written to disk, then a seamless
//	    HAProxy reload (master-worker, `expose-fd listeners`, lbconfig.Master.Reload);
//	(c) consul-template v0.41.1: the live color put in Consul KV; consul-template renders
//	    haproxy.cfg from KV and the catalog and reloads HAProxy (SIGUSR2 to the master).
//
//	make deps build && go run ./bench/cutoverbench [-short] [-doc docs/benchmarks.md]
//
// The app is two demoapp processes on the host (blue and green), each method has its own
// HAProxy in front of both. For every flip a load (3 keep-alive connections and 1 new
// connection per request, closed loops) runs against that method's frontend; the flip is
// timed from just before the change to the first answer by the new color and to the last
// answer by the old one, and every failed request is counted. consul-template is built
// once from the module proxy into bin/ (benchkit.ConsulTemplate).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/internal/stack/procs"
	"github.com/swap-dev/swap/lbconfig"
)

// A benchmark program in one file: setup, the alternating flips, the statistics and
// the report read top to bottom.

const host = "app.bench"

// idleApp is swap.yaml's app for the stack; it is never deployed (the stack gives the
// benchmark its Consul dev agent).
const idleApp = `  cutover:
    image: swap-bench/cutover:v1
    replicas: 1
    port: 8080
    route: cutover.bench
`

// backends is the backend sections of (b)'s and (c)'s classic config; for (c) the
// servers come from Consul's catalog (blue and green are each a registered service).
func backends(blue, green string) string {
	return "backend web_blue\n" + blue + "\nbackend web_green\n" + green + "\n"
}

const ctServers = `{{ range service "cutoverbench-%s" }}    server {{ .ID }} {{ .Address }}:{{ .Port }}{{ "\n" }}{{ end }}`

func main() {
	o := benchkit.RegisterFlags(nil, "cutoverbench")
	var (
		rounds = flag.Int("rounds", 0, "flips per method (0: 40, or 6 with -short)")
		cache  = flag.String("cache", "bin", "`directory` where consul-template is built once and kept")
	)
	sf := benchkit.RegisterStackFlags(nil, "cutoverbench")
	flag.Parse()
	if *rounds <= 0 {
		*rounds = benchkit.Pick(o, 40, 6)
	}
	benchkit.Main("cutoverbench", func(ctx context.Context) error { return run(ctx, o, sf, *rounds, *cache) })
}

// method is one way to flip, with its HAProxy and its current color.
type method struct {
	Name     string
	Label    string
	Frontend string
	Color    string
	Change   func(ctx context.Context, to string) error
	samples  []sample
}

type sample struct {
	toFirstNew, toLastOld, call time.Duration
	requests, failed, retried   int
}

func run(ctx context.Context, o *benchkit.Options, sf *benchkit.StackFlags, rounds int, cache string) (err error) {
	if _, err := os.Stat(sf.Demoapp); err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	ctBin, err := benchkit.ConsulTemplate(ctx, cache)
	if err != nil {
		return err
	}
	st, down, err := sf.UpStack(ctx, idleApp)
	defer down(&err)
	if err != nil {
		return err
	}
	var running []interface{ Stop() error }
	defer func() {
		for i := len(running) - 1; i >= 0; i-- {
			_ = running[i].Stop()
		}
	}()

	// The app: blue and green.
	ports := map[string]int{}
	for _, color := range []string{"blue", "green"} {
		port, err := procs.FreePort()
		if err != nil {
			return err
		}
		p, err := procs.Start(procs.Options{Name: "app-" + color, Bin: mustAbs(sf.Demoapp), Dir: st.Dir,
			Env:     []string{fmt.Sprintf("PORT=%d", port), "COLOR=" + color, "VERSION=v1"},
			LogFile: filepath.Join(st.Dir, "app-"+color+".log"), DieWithParent: true})
		if err != nil {
			return err
		}
		running = append(running, p)
		if err := stack.WaitAnswer(ctx, fmt.Sprintf("127.0.0.1:%d", port), "", "/healthz", "", 20*time.Second); err != nil {
			return fmt.Errorf("demoapp %s: %w", color, err)
		}
		ports[color] = port
	}
	serverLine := func(color string) string {
		return fmt.Sprintf("    server web-%s-0 127.0.0.1:%d\n", color, ports[color])
	}

	// (a) swap's layout and Runtime API.
	a, err := startSwapLayout(ctx, filepath.Join(st.Dir, "a"), ports)
	if err != nil {
		return err
	}
	running = append(running, a.h)

	// (b) a classic config, written and reloaded.
	bDir := filepath.Join(st.Dir, "b")
	bBind, err := bind()
	if err != nil {
		return err
	}
	writeB := func(color string) error {
		cfg := benchkit.ClassicConfig("cutoverbench (b): reload", bDir, bBind, "web_"+color, backends(serverLine("blue"), serverLine("green")))
		return writeAtomic(filepath.Join(bDir, "haproxy.cfg"), []byte(cfg))
	}
	if err := os.MkdirAll(bDir, 0o700); err != nil {
		return err
	}
	if err := writeB("blue"); err != nil {
		return err
	}
	hb, err := benchkit.StartHAProxy(ctx, bDir, "haproxy-b", filepath.Join(bDir, "haproxy.cfg"))
	if err != nil {
		return err
	}
	running = append(running, hb)

	// (c) consul-template from Consul KV and the catalog.
	cl, err := api.NewClient(&api.Config{Address: st.Consul})
	if err != nil {
		return err
	}
	hc, cBind, err := startConsulTemplate(ctx, cl, st.Consul, ctBin, filepath.Join(st.Dir, "c"), ports)
	if err != nil {
		return err
	}
	running = append(running, hc)

	methods := []*method{
		{Name: "swap", Label: "(a) swap: Runtime API map change", Frontend: a.layout.Frontend.Bind, Color: "blue",
			Change: func(ctx context.Context, to string) error {
				return a.fleet.Flip(ctx, a.layout.RoutesMap(), host, "web_"+to)
			}},
		{Name: "reload", Label: "(b) config written + seamless reload", Frontend: bBind, Color: "blue",
			Change: func(ctx context.Context, to string) error {
				if err := writeB(to); err != nil {
					return err
				}
				return hb.MasterCLI.Reload(ctx)
			}},
		{Name: "consul-template", Label: "(c) consul-template " + benchkit.ConsulTemplateVersion + " + reload", Frontend: cBind, Color: "blue",
			Change: func(ctx context.Context, to string) error {
				_, err := cl.KV().Put(&api.KVPair{Key: "cutoverbench/color", Value: []byte(to)}, nil)
				return err
			}},
	}
	for _, m := range methods {
		if err := stack.WaitAnswer(ctx, m.Frontend, host, "/", "", 20*time.Second); err != nil {
			return fmt.Errorf("%s frontend: %w", m.Name, err)
		}
	}

	machine := benchkit.ReadMachine()
	for i := range rounds {
		for _, m := range methods {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			to := map[string]string{"blue": "green", "green": "blue"}[m.Color]
			s, err := flip(ctx, m, to)
			if err != nil {
				return fmt.Errorf("round %d, %s: %w", i+1, m.Name, err)
			}
			m.samples = append(m.samples, s)
			m.Color = to
			fmt.Fprintf(os.Stderr, "round %2d/%d %-16s %-5s → %-5s first new %7s  last old %7s  failed %d  retried %d\n",
				i+1, rounds, m.Name, map[string]string{"blue": "green", "green": "blue"}[to], to,
				benchkit.Ms(s.toFirstNew), benchkit.Ms(s.toLastOld), s.failed, s.retried)
		}
	}
	end := benchkit.LoadAvg()
	return report(o, machine, &end, methods)
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func bind() (string, error) {
	p, err := procs.FreePort()
	return fmt.Sprintf("127.0.0.1:%d", p), err
}

func writeAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// swapLayout is (a): swap's own haproxy.cfg and routes.map (lbconfig.Render) and the
// fleet that flips it.
type swapLayout struct {
	layout *lbconfig.Layout
	h      *benchkit.HAProxy
	fleet  *lbconfig.Fleet
}

func startSwapLayout(ctx context.Context, dir string, ports map[string]int) (*swapLayout, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	fe, err := bind()
	if err != nil {
		return nil, err
	}
	l := &lbconfig.Layout{Dir: dir, Frontend: lbconfig.Listener{Name: "fe", Bind: fe}, Routing: lbconfig.RouteByHost,
		Routes: []lbconfig.MapEntry{{Key: host, Value: "web_blue"}}}
	for _, color := range []string{"blue", "green"} {
		l.Backends = append(l.Backends, lbconfig.Backend{Name: "web_" + color,
			Server:  lbconfig.Server{Check: lbconfig.Check{Disabled: true}},
			Servers: []lbconfig.Server{{Name: "web-" + color + "-0", Addr: "127.0.0.1", Port: ports[color]}}})
	}
	files, err := lbconfig.Render(l)
	if err != nil {
		return nil, err
	}
	if _, err := lbconfig.WriteFiles(ctx, dir, files, lbconfig.WriteOptions{}); err != nil {
		return nil, err
	}
	h, err := benchkit.StartHAProxy(ctx, dir, "haproxy-a", l.Path(lbconfig.ConfigFile))
	if err != nil {
		return nil, err
	}
	fleet, err := lbconfig.NewFleet(l, lbconfig.WriteOptions{}, lbconfig.Instance{Client: h.Admin, Master: h.MasterCLI})
	if err != nil {
		_ = h.Stop()
		return nil, err
	}
	return &swapLayout{layout: l, h: h, fleet: fleet}, nil
}

// startConsulTemplate registers the two colors in Consul's catalog, puts the live color
// in KV and starts consul-template rendering (c)'s haproxy.cfg from them, and its HAProxy.
func startConsulTemplate(ctx context.Context, cl *api.Client, consulAddr, ctBin, dir string, ports map[string]int) (*benchkit.TemplatedHAProxy, string, error) {
	fe, err := bind()
	if err != nil {
		return nil, "", err
	}
	for _, color := range []string{"blue", "green"} {
		reg := &api.AgentServiceRegistration{ID: "cutoverbench-" + color + "-0", Name: "cutoverbench-" + color, Address: "127.0.0.1", Port: ports[color]}
		if err := cl.Agent().ServiceRegister(reg); err != nil {
			return nil, "", fmt.Errorf("register %s in consul: %w", reg.ID, err)
		}
	}
	if _, err := cl.KV().Put(&api.KVPair{Key: "cutoverbench/color", Value: []byte("blue")}, nil); err != nil {
		return nil, "", err
	}
	tmpl := benchkit.ClassicConfig("cutoverbench (c): consul-template", dir, fe, `web_{{ key "cutoverbench/color" }}`,
		backends(fmt.Sprintf(ctServers, "blue"), fmt.Sprintf(ctServers, "green")))
	h, err := benchkit.StartTemplatedHAProxy(ctx, ctBin, consulAddr, dir, tmpl, func(cfg string) bool {
		return strings.Contains(cfg, "default_backend web_blue") && strings.Contains(cfg, "server cutoverbench-green-0")
	})
	return h, fe, err
}

// Timing of one flip.
const (
	warmUp  = 150 * time.Millisecond // load before the change
	quiet   = 300 * time.Millisecond // no old-color answer for this long: the flip is over
	maxFlip = 20 * time.Second
)

// flip changes m's route to color to under load and measures it.
func flip(ctx context.Context, m *method, to string) (sample, error) {
	from := m.Color
	var t0, lastOld atomic.Int64 // UnixNano
	var sawNew atomic.Bool
	l := &stack.Load{Addr: m.Frontend, Host: host, KeepAlive: 3, Close: 1, Record: true,
		OnResult: func(r stack.Result) {
			switch {
			case r.Color == from:
				lastOld.Store(max(lastOld.Load(), r.Recv.UnixNano()))
			case r.Color == to && t0.Load() != 0:
				sawNew.Store(true)
			}
		}}
	if err := l.Start(); err != nil {
		return sample{}, err
	}
	stopped := false
	defer func() {
		if !stopped {
			l.Stop()
		}
	}()
	time.Sleep(warmUp)
	start := time.Now()
	t0.Store(start.UnixNano())
	err := m.Change(ctx, to)
	call := time.Since(start)
	if err != nil {
		return sample{}, err
	}
	for {
		now := time.Now()
		if sawNew.Load() && now.Sub(time.Unix(0, lastOld.Load())) >= quiet && now.Sub(start) >= quiet {
			break
		}
		if now.Sub(start) > maxFlip || ctx.Err() != nil {
			return sample{}, fmt.Errorf("%s → %s: no steady %s answers within %s", from, to, to, maxFlip)
		}
		time.Sleep(5 * time.Millisecond)
	}
	res := l.Stop()
	stopped = true
	s, err := measure(res, start, from, to)
	s.call = call
	return s, err
}

// measure reads a flip's results: the first answer by to and the last by from, both
// after t0, and the failures.
func measure(res []stack.Result, t0 time.Time, from, to string) (sample, error) {
	s := sample{requests: len(res)}
	var first, last time.Time
	for _, r := range res {
		if !r.OK() {
			s.failed++
			continue
		}
		if r.Retried {
			s.retried++
		}
		switch r.Color {
		case to:
			if r.Recv.Before(t0) {
				return s, fmt.Errorf("a %s answer before the change (at %s): the route was not %s", to, r.Recv.Format(time.RFC3339Nano), from)
			}
			if first.IsZero() || r.Recv.Before(first) {
				first = r.Recv
			}
		case from:
			if last.Before(r.Recv) {
				last = r.Recv
			}
		default:
			return s, fmt.Errorf("an answer by %q, neither %s nor %s", r.Color, from, to)
		}
	}
	if first.IsZero() {
		return s, fmt.Errorf("no %s answer after the change", to)
	}
	s.toFirstNew = first.Sub(t0)
	s.toLastOld = max(0, last.Sub(t0))
	return s, nil
}

func report(o *benchkit.Options, machine benchkit.Machine, end *[3]float64, methods []*method) error {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	sums := map[string][2]benchkit.Summary{}
	type counts struct{ call, req, failed, retried string }
	cnt := map[string]counts{}
	for _, m := range methods {
		var first, last, call []time.Duration
		req, failed, retried := 0, 0, 0
		for _, s := range m.samples {
			first, last, call = append(first, s.toFirstNew), append(last, s.toLastOld), append(call, s.call)
			req, failed, retried = req+s.requests, failed+s.failed, retried+s.retried
		}
		sums[m.Name] = [2]benchkit.Summary{benchkit.Summarize(first), benchkit.Summarize(last)}
		c := counts{call: benchkit.Ms(benchkit.Summarize(call).Median), req: fmt.Sprint(req), failed: fmt.Sprint(failed), retried: fmt.Sprint(retried)}
		if m.Name == "consul-template" {
			c.call = "– (the KV put: " + c.call + ")"
		}
		cnt[m.Name] = c
	}
	for k, title := range []string{"From the change to the first answer by the new color", "From the change to the last answer by the old color"} {
		w("%s:", title)
		w("")
		w("| method | %s |", benchkit.RowHeader)
		w("|---|---|---|---|---|---|")
		for _, m := range methods {
			w("| %s | %s |", m.Label, sums[m.Name][k].Row())
		}
		w("")
	}
	w("| method | flip call, median ms | requests | failed | retried |")
	w("|---|---|---|---|---|")
	for _, m := range methods {
		c := cnt[m.Name]
		w("| %s | %s | %s | %s | %s |", m.Label, c.call, c.req, c.failed, c.retried)
	}
	w("")
	w("%s", machine.Line(o.CommandLine(), end))
	w("")
	sw := sums["swap"]
	goalRatio := func(peer string) string {
		p := sums[peer]
		rf := ratio(p[0].Median, sw[0].Median)
		rl := ratio(p[1].Median, sw[1].Median)
		return fmt.Sprintf("%.0fx to the first new-color answer, %.0fx to the last old-color answer (medians): %s", rf, rl, benchkit.Verdict(rf >= 20 && rl >= 20))
	}
	failedSwap := 0
	for _, s := range methods[0].samples {
		failedSwap += s.failed
	}
	w("- Goal: swap ≥ 20x faster than a seamless reload — %s.", goalRatio("reload"))
	w("- Goal: swap ≥ 20x faster than consul-template — %s.", goalRatio("consul-template"))
	w("- Goal: 0 failed requests with swap — %d failed: %s.", failedSwap, benchkit.Verdict(failedSwap == 0))
	verdict := benchkit.Verdict(sw[0].P99 <= 5*time.Millisecond)
	if sw[0].P99 > 5*time.Millisecond {
		if machine.Load[0] >= float64(machine.CPUs) {
			verdict += fmt.Sprintf(" — but the machine was saturated (load average %.1f on %d cores), which the goal excludes", machine.Load[0], machine.CPUs)
		}
	}
	w("- Goal: the flip's p99 to the first new-color answer ≤ 5 ms when the machine is not saturated — %s ms at load average %.2f: %s.",
		benchkit.Ms(sw[0].P99), machine.Load[0], verdict)
	if path, link, ok := o.PlotPath("bench-cutover.png"); ok {
		var series []benchkit.Series
		for _, m := range methods {
			var flips []time.Duration
			for _, f := range m.samples {
				flips = append(flips, max(f.toFirstNew, f.toLastOld))
			}
			series = append(series, benchkit.MsSeries(m.Name, flips))
		}
		if err := benchkit.LinePlot(path, "Cutover: change → new color only (ms, log scale)", "flip", "ms", true, series...); err != nil {
			return err
		}
		w("")
		w("Each flip, from the change until the new color answers and the old one no longer does (the later of the two times):")
		w("")
		w("![cutover: swap vs reload vs consul-template](%s)", link)
	}
	return o.Publish("cutover", b.String())
}

func ratio(a, b time.Duration) float64 {
	if b <= 0 {
		b = time.Microsecond
	}
	return float64(a) / float64(b)
}
