// Command reconcilebench measures how long a Consul health change takes to reach
// HAProxy: an instance's Consul check goes critical (the instance is put in Consul
// maintenance, which adds a critical check) and the benchmark times how long HAProxy
// keeps sending it requests, by
//
//	swap: `swap watch`, the reconcile loop of `swap serve` (docs/hook.md): a blocking
//	      query sees the change, the server is drained on the Runtime API;
//	consul-template v0.41.1: haproxy.cfg rendered from the passing instances of a
//	      service, HAProxy reloaded (SIGUSR2 to its master) after each render, no wait.
//
//	make deps build && go run ./bench/reconcilebench [-short] [-doc docs/benchmarks.md]
//
// The app is deployed by swap (2 demoapp containers); the consul-template side has its
// own HAProxy in front of the same two containers, registered in Consul a second time
// under another service name, so that a change reaches one method only and the two can
// alternate in one run. For each round a load runs against the method's frontend; the
// time out of rotation is from just before the maintenance call to the last answer by
// the instance (demoapp's X-Instance header); then maintenance ends and the time back in
// rotation is from that call to the instance's first answer.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/internal/stack/procs"
)

// A benchmark program in one file: setup, the alternating rounds, the statistics and
// the report read top to bottom.

const (
	app   = "rcbench"
	route = "rcbench.bench"
	// ctService is the second registration of the app's instances, for consul-template.
	ctService = "rcbench-ct"
)

func main() {
	o := benchkit.RegisterFlags(nil, "reconcilebench")
	var (
		rounds = flag.Int("rounds", 0, "health changes per method (0: 30, or 5 with -short)")
		cache  = flag.String("cache", "bin", "`directory` where consul-template is built once and kept")
		logLvl = flag.String("watch-log-level", "warn", "swap watch's --log-level (debug shows each pass)")
		keep   = flag.Bool("keep", false, "on failure, leave the stack and its logs in -dir (remove it with go run ./examples/demo -down -dir <dir>)")
	)
	sf := benchkit.RegisterStackFlags(nil, "reconcilebench")
	flag.Parse()
	if *rounds <= 0 {
		*rounds = benchkit.Pick(o, 30, 5)
	}
	benchkit.Main("reconcilebench", func(ctx context.Context) error { return run(ctx, o, sf, *rounds, *cache, *logLvl, *keep) })
}

// instance is one of the app's two containers as each method knows it.
type instance struct {
	name      string // X-Instance: the container's short ID
	swapID    string // swap's Consul service ID
	ctID      string // the consul-template side's service ID
	addr      string
	port      int
	container string
}

type method struct {
	Name, Label string
	Frontend    string
	Host        string
	Service     string // the Consul service the method follows
	serviceID   func(instance) string
	// reload, when set, reloads the method's HAProxy by hand: after a reload that was
	// lost (see round).
	reload    func(ctx context.Context) error
	out, back []time.Duration
	consul    []time.Duration // the change visible to a blocking query (both methods wait for it)
	lost      int             // changes HAProxy never followed (a lost reload)
	requests  int
	failed    int
}

func run(ctx context.Context, o *benchkit.Options, sf *benchkit.StackFlags, rounds int, cache, logLevel string, keep bool) (err error) {
	ctBin, err := benchkit.ConsulTemplate(ctx, cache)
	if err != nil {
		return err
	}
	image := "swap-bench/" + app + ":v1"
	st, down, err := sf.UpStack(ctx, stack.App{Name: app, Image: image, Route: route, Replicas: 2}.YAML())
	defer func() {
		if keep && err != nil {
			fmt.Fprintf(os.Stderr, "-keep: the stack stays in %s\n", sf.Dir)
			return
		}
		down(&err)
	}()
	if err != nil {
		return err
	}
	if err := sf.DeployDemo(ctx, st, app, image); err != nil {
		return err
	}
	cl, err := api.NewClient(&api.Config{Address: st.Consul})
	if err != nil {
		return err
	}
	insts, err := instances(cl)
	if err != nil {
		return err
	}

	// swap's side: the reconcile loop.
	wctx, stopWatch := context.WithCancel(ctx)
	watch := st.Command(wctx, "watch", "--log-level", logLevel)
	watchLog, err := os.Create(filepath.Join(st.Dir, "swap-watch.log"))
	if err != nil {
		stopWatch()
		return err
	}
	defer watchLog.Close()
	watch.Stdout, watch.Stderr = watchLog, watchLog
	if err := watch.Start(); err != nil {
		stopWatch()
		return fmt.Errorf("start swap watch: %w", err)
	}
	defer func() {
		stopWatch()
		// Stopped by its context (SIGINT, see stack.Command), swap watch exits 0 and
		// Wait says the context was canceled.
		if werr := watch.Wait(); werr != nil && !errors.Is(werr, context.Canceled) {
			err = errors.Join(err, fmt.Errorf("swap watch: %v (see %s)", werr, watchLog.Name()))
		}
	}()

	// consul-template's side: the same containers under ctService.
	for _, in := range insts {
		reg := &api.AgentServiceRegistration{ID: in.ctID, Name: ctService, Address: in.addr, Port: in.port}
		if err := cl.Agent().ServiceRegister(reg); err != nil {
			return fmt.Errorf("register %s: %w", in.ctID, err)
		}
	}
	ctPort, err := procs.FreePort()
	if err != nil {
		return err
	}
	ctDir := filepath.Join(st.Dir, "ct")
	ctBind := fmt.Sprintf("127.0.0.1:%d", ctPort)
	tmpl := benchkit.ClassicConfig("reconcilebench: consul-template", ctDir, ctBind, "web",
		"backend web\n    balance roundrobin\n"+
			`{{ range service "`+ctService+`" }}    server {{ .ID }} {{ .Address }}:{{ .Port }}{{ "\n" }}{{ end }}`+"\n")
	hc, err := benchkit.StartTemplatedHAProxy(ctx, ctBin, st.Consul, ctDir, tmpl, func(cfg string) bool {
		return strings.Count(cfg, "    server ") == len(insts)
	})
	if err != nil {
		return err
	}
	defer hc.Stop()

	methods := []*method{
		{Name: "swap", Label: "swap watch (reconcile loop, Runtime API)", Frontend: st.Frontend, Host: route, Service: app,
			serviceID: func(in instance) string { return in.swapID }},
		{Name: "consul-template", Label: "consul-template " + benchkit.ConsulTemplateVersion + " + reload", Frontend: ctBind, Host: "any", Service: ctService,
			serviceID: func(in instance) string { return in.ctID }, reload: hc.MasterCLI.Reload},
	}
	for _, m := range methods {
		if err := waitServes(ctx, m, insts); err != nil {
			return err
		}
	}
	machine := benchkit.ReadMachine()
	for i := range rounds {
		in := insts[i%len(insts)]
		for _, m := range methods {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r, err := round(ctx, cl, m, in)
			if err != nil {
				return fmt.Errorf("round %d, %s, %s: %w (swap watch's log: %s)", i+1, m.Name, m.serviceID(in), err, watchLog.Name())
			}
			if r.out > 0 {
				m.out = append(m.out, r.out)
			}
			if r.back > 0 {
				m.back = append(m.back, r.back)
			}
			if r.consul > 0 {
				m.consul = append(m.consul, r.consul)
			}
			m.lost += r.lost
			m.requests, m.failed = m.requests+r.requests, m.failed+r.failed
			fmt.Fprintf(os.Stderr, "round %2d/%d %-16s %s critical at %s, out of rotation after %7s (consul: %s), back after %7s, %d requests, %d failed, %d lost\n",
				i+1, rounds, m.Name, m.serviceID(in), r.changed.UTC().Format("15:04:05.000"), benchkit.Ms(r.out), benchkit.Ms(r.consul), benchkit.Ms(r.back), r.requests, r.failed, r.lost)
		}
	}
	end := benchkit.LoadAvg()
	return report(o, machine, &end, methods)
}

// instances reads the app's two instances from swap's registrations in Consul.
func instances(cl *api.Client) ([]instance, error) {
	entries, _, err := cl.Health().Service(app, "", false, nil)
	if err != nil {
		return nil, err
	}
	var out []instance
	for i, e := range entries {
		c := e.Service.Meta["container"]
		if len(c) < 12 {
			return nil, fmt.Errorf("consul service %s has no container ID in its meta (%v)", e.Service.ID, e.Service.Meta)
		}
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		out = append(out, instance{name: c[:12], swapID: e.Service.ID, ctID: fmt.Sprintf("%s-%d", ctService, i),
			addr: addr, port: e.Service.Port, container: c})
	}
	if len(out) != 2 {
		return nil, fmt.Errorf("want the app's 2 instances in consul, found %d", len(out))
	}
	return out, nil
}

// waitServes waits until every instance answers through m's frontend.
func waitServes(ctx context.Context, m *method, insts []instance) error {
	var seen nameSet
	l := &stack.Load{Addr: m.Frontend, Host: m.Host, KeepAlive: 2, OnResult: func(r stack.Result) {
		if r.OK() {
			seen.add(r.Instance)
		}
	}}
	if err := l.Start(); err != nil {
		return err
	}
	defer l.Stop()
	deadline := time.Now().Add(30 * time.Second)
	for {
		all := true
		for _, in := range insts {
			all = all && seen.has(in.name)
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("%s: not every instance answers through %s (seen %v)", m.Name, m.Frontend, seen.list())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Timing of one round.
const (
	warmUp   = 200 * time.Millisecond
	quietOut = 500 * time.Millisecond // no answer by the instance for this long: it is out
	maxWait  = 10 * time.Second       // then the change counts as lost
)

// roundResult is one round; a zero duration is a change HAProxy did not follow.
type roundResult struct {
	out, back, consul time.Duration
	changed           time.Time // when the maintenance call was made (to match with swap watch's log)
	lost              int
	requests, failed  int
}

// round puts in into Consul maintenance under load on m's frontend, times until HAProxy
// stops sending it requests, ends the maintenance and times until it answers again.
// It also times when a blocking query on the service sees each change: the part both
// methods wait for. A change HAProxy has not followed after maxWait is counted lost and
// the method's HAProxy is reloaded by hand (consul-template renders the file, but a
// SIGUSR2 that reaches HAProxy's master while it is still re-executing itself for the
// previous reload is lost).
func round(ctx context.Context, cl *api.Client, m *method, in instance) (res roundResult, err error) {
	var lastHit atomic.Int64 // UnixNano of the instance's last answer
	var backAt atomic.Int64  // UnixNano after which an answer counts as "back"
	var firstBack atomic.Int64
	l := &stack.Load{Addr: m.Frontend, Host: m.Host, KeepAlive: 3, Close: 1, OnResult: func(r stack.Result) {
		if !r.OK() || r.Instance != in.name {
			return
		}
		ns := r.Recv.UnixNano()
		lastHit.Store(max(lastHit.Load(), ns))
		if b := backAt.Load(); b != 0 && ns > b {
			firstBack.CompareAndSwap(0, ns)
		}
	}}
	if err := l.Start(); err != nil {
		return res, err
	}
	defer func() {
		l.Stop()
		ok, bad := l.Counts()
		res.requests, res.failed = int(ok+bad), int(bad)
	}()
	time.Sleep(warmUp)
	// On a saturated machine the first answers can take a while: wait for one by the
	// instance (it is in rotation: the previous round saw it back).
	for start := time.Now(); lastHit.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > maxWait || ctx.Err() != nil {
			return res, fmt.Errorf("instance %s got no request in %s before the change", in.name, maxWait)
		}
	}
	id := m.serviceID(in)
	_, meta, err := cl.Health().Service(m.Service, "", false, nil)
	if err != nil {
		return res, err
	}
	seen := watchCritical(ctx, cl, m.Service, id, meta.LastIndex, true)
	t0 := time.Now()
	res.changed = t0
	if err := cl.Agent().EnableServiceMaintenance(id, "reconcilebench"); err != nil {
		return res, err
	}
	for {
		now := time.Now()
		last := time.Unix(0, lastHit.Load())
		if now.Sub(last) >= quietOut && now.Sub(t0) >= quietOut {
			res.out = max(time.Microsecond, last.Sub(t0))
			break
		}
		if now.Sub(t0) > maxWait || ctx.Err() != nil {
			res.lost++
			if m.reload == nil {
				_ = cl.Agent().DisableServiceMaintenance(id)
				return res, fmt.Errorf("still in rotation %s after the check went critical", maxWait)
			}
			if err := m.reload(ctx); err != nil {
				return res, err
			}
			lastHit.Store(0)
			t0 = time.Now() // wait for the hand-made reload to take it out
		}
		time.Sleep(5 * time.Millisecond)
	}
	res.consul = max(0, (<-seen).Sub(t0))
	if res.lost > 0 {
		res.out, res.consul = 0, 0
	}
	t1 := time.Now()
	backAt.Store(t1.UnixNano())
	if err := cl.Agent().DisableServiceMaintenance(id); err != nil {
		return res, err
	}
	for firstBack.Load() == 0 {
		if time.Since(t1) > maxWait || ctx.Err() != nil {
			if m.reload == nil {
				return res, fmt.Errorf("not back in rotation %s after the check passed again", maxWait)
			}
			res.lost++
			if err := m.reload(ctx); err != nil {
				return res, err
			}
			backAt.Store(time.Now().UnixNano())
			t1 = time.Time{}
			for firstBack.Load() == 0 {
				if ctx.Err() != nil {
					return res, ctx.Err()
				}
				time.Sleep(5 * time.Millisecond)
			}
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !t1.IsZero() {
		res.back = time.Unix(0, firstBack.Load()).Sub(t1)
	}
	time.Sleep(100 * time.Millisecond) // a reload's old worker finishing
	return res, nil
}

// watchCritical runs a blocking query on service from index until instance id is (or,
// with critical false, is no longer) failing, and sends the time it returned.
func watchCritical(ctx context.Context, cl *api.Client, service, id string, index uint64, critical bool) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		for ctx.Err() == nil {
			entries, meta, err := cl.Health().Service(service, "", false, (&api.QueryOptions{WaitIndex: index, WaitTime: 30 * time.Second}).WithContext(ctx))
			now := time.Now()
			if err != nil {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			index = meta.LastIndex
			for _, e := range entries {
				if e.Service.ID == id && (e.Checks.AggregatedStatus() != api.HealthPassing) == critical {
					ch <- now
					return
				}
			}
		}
		ch <- time.Time{}
	}()
	return ch
}

func report(o *benchkit.Options, machine benchkit.Machine, end *[3]float64, methods []*method) error {
	var b strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("Check critical → HAProxy stops sending to the instance (out), of which Consul's own part (a blocking query sees the check fail), and check passing again → the instance's first answer (back):")
	w("")
	w("| method | out: %s | Consul, median ms | back, median ms | requests | failed | changes not followed |", benchkit.RowHeader)
	w("|---|---|---|---|---|---|---|---|---|---|---|")
	sums := map[string]benchkit.Summary{}
	for _, m := range methods {
		s := benchkit.Summarize(m.out)
		sums[m.Name] = s
		w("| %s | %s | %s | %s | %d | %d | %d |", m.Label, s.Row(), medianCell(m.consul), medianCell(m.back), m.requests, m.failed, m.lost)
	}
	w("")
	w("%s", machine.Line(o.CommandLine(), end))
	w("")
	sw, ct := sums["swap"], sums["consul-template"]
	w("- Goal: swap ≤ 20 ms p99 — %s ms (n = %d): %s.", benchkit.Ms(sw.P99), sw.N, benchkit.Verdict(sw.P99 <= 20*time.Millisecond))
	r := float64(ct.Median) / float64(max(sw.Median, time.Microsecond))
	w("- Goal: swap ≥ 5x faster than consul-template — %.1fx (medians %s ms vs %s ms): %s.", r, benchkit.Ms(sw.Median), benchkit.Ms(ct.Median), benchkit.Verdict(r >= 5))
	if path, link, ok := o.PlotPath("bench-reconcile.png"); ok {
		var series []benchkit.Series
		for _, m := range methods {
			series = append(series, benchkit.MsSeries(m.Name, m.out))
		}
		if err := benchkit.LinePlot(path, "Consul check critical → HAProxy stops sending (ms, log)", "round", "ms", true, series...); err != nil {
			return err
		}
		w("")
		w("![reconcile lag: swap watch vs consul-template](%s)", link)
	}
	return o.Publish("reconcile", b.String())
}

// medianCell is the median of samples in ms, or "–" without any.
func medianCell(samples []time.Duration) string {
	if len(samples) == 0 {
		return "–"
	}
	return benchkit.Ms(benchkit.Summarize(samples).Median)
}

// nameSet is a set of names safe for concurrent use.
type nameSet struct {
	mu sync.Mutex
	m  map[string]bool
}

func (s *nameSet) add(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]bool{}
	}
	s.m[name] = true
}

func (s *nameSet) has(name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[name]
}

func (s *nameSet) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(maps.Keys(s.m))
}
