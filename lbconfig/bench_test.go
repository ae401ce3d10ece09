package lbconfig

import (
	"context"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// Benchmarks against real HAProxy; results and commands are in docs/benchmarks.md:
//
//	go test ./lbconfig -run '^$' -bench . -benchtime 200x

// BenchmarkServerChanges1000 times 1,000 server changes (weight and state, on 100
// servers) sent to one instance with Client.Do, which batches them in lines under 16 KiB.
func BenchmarkServerChanges1000(b *testing.B) {
	env := startBenchLayout(b)
	ctx := context.Background()
	be := newBackend(b, "blue")
	var servers []Server
	for i := 0; i < 100; i++ {
		s := be.server("app-blue-" + strconv.Itoa(i))
		s.Check.Disabled = true
		servers = append(servers, s)
	}
	must(b, env.c.AddServers(ctx, "app_blue", servers))
	cmds := make([]Command, 0, 1000)
	for i := 0; i < 1000; i++ {
		name := servers[i%100].Name
		var cmd Command
		var err error
		switch i % 4 {
		case 0:
			cmd, err = setWeightCmd("app_blue", name, 50+i%100)
		case 1:
			cmd, err = setStateCmd("app_blue", name, StateDrain)
		case 2:
			cmd, err = setStateCmd("app_blue", name, StateReady)
		case 3:
			cmd, err = setWeightCmd("app_blue", name, 100)
		}
		must(b, err)
		cmds = append(cmds, cmd)
	}
	lines := 0
	for start := 0; start < len(cmds); lines++ {
		start, _ = env.c.chunk(cmds, start)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := env.c.Do(ctx, cmds...); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1000changes")
	b.ReportMetric(float64(lines), "lines/1000changes")
}

// BenchmarkAddServers1000 times adding 1,000 servers with the safe activation sequence
// (add, enable health, ready, health down) to one instance; deleting them again is not
// timed.
func BenchmarkAddServers1000(b *testing.B) {
	env := startBenchLayout(b)
	ctx := context.Background()
	be := newBackend(b, "blue")
	servers := make([]Server, 1000)
	var del []Command
	for i := range servers {
		servers[i] = be.server("app-blue-" + strconv.Itoa(i))
		servers[i].Check.Inter = time.Minute // checks on, but rare
		maint, _ := setStateCmd("app_blue", servers[i].Name, StateMaint)
		d, _ := delServerCmd("app_blue", servers[i].Name)
		del = append(del, maint, d)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := env.c.AddServers(ctx, "app_blue", servers); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if _, err := env.c.Do(ctx, del...); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/1000adds")
}

// BenchmarkFlipUnderLoad flips app.test between blue and green while keep-alive and
// Connection: close clients load HAProxy, and reports the time from just before the
// flip's socket write to the first response from the new color (p50, p99, max), and the
// flip call's own duration.
func BenchmarkFlipUnderLoad(b *testing.B) {
	env := startLayout(b, loadLayout)
	ctx := context.Background()
	c := env.c
	loadServers(b, env, 2)
	fleet, err := NewFleet(nil, WriteOptions{}, Instance{Client: c})
	must(b, err)
	routes := env.layout.RoutesMap()
	must(b, fleet.Flip(ctx, routes, "app.test", "app_blue"))

	var want atomic.Value // the color being waited for
	want.Store("")
	hit := make(chan time.Time, 1)
	l := &load{addr: env.layout.Frontend.Bind, host: "app.test", keepAlive: 4, close: 1, n: 1 << 62,
		onResult: func(r loadResult) {
			if r.err == nil && r.color == want.Load().(string) {
				select {
				case hit <- r.received:
				default:
				}
			}
		}}
	lctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { l.run(lctx); close(done) }()
	defer func() { stop(); <-done }()
	time.Sleep(200 * time.Millisecond) // let the load reach a steady state

	var lat, call []time.Duration
	color := "blue"
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if color == "blue" {
			color = "green"
		} else {
			color = "blue"
		}
		select {
		case <-hit:
		default:
		}
		want.Store(color)
		t0 := time.Now()
		if err := fleet.Flip(ctx, routes, "app.test", "app_"+color); err != nil {
			b.Fatal(err)
		}
		returned := time.Now()
		var first time.Time
		select {
		case first = <-hit:
		case <-time.After(5 * time.Second):
			b.Fatalf("no %s response within 5s of the flip", color)
		}
		want.Store("")
		lat = append(lat, first.Sub(t0))
		call = append(call, returned.Sub(t0))
		// Let the requests routed before this flip finish (each takes well under a
		// millisecond), so none of them can pass for the next flip's first response.
		b.StopTimer()
		time.Sleep(20 * time.Millisecond)
		b.StartTimer()
	}
	b.StopTimer()
	for _, r := range l.results() {
		if r.err != nil || r.status != 200 {
			b.Fatalf("a request failed under load: %d %q %v", r.status, r.body, r.err)
		}
	}
	pct := func(d []time.Duration, p float64) float64 {
		s := append([]time.Duration(nil), d...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return float64(s[int(p*float64(len(s)-1))].Microseconds()) / 1000
	}
	if testing.Verbose() {
		s := append([]time.Duration(nil), lat...)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		b.Logf("latencies: %v", s[len(s)*9/10:])
	}
	b.ReportMetric(pct(lat, 0.5), "ms-to-new-color-p50")
	b.ReportMetric(pct(lat, 0.99), "ms-to-new-color-p99")
	b.ReportMetric(pct(lat, 1), "ms-to-new-color-max")
	b.ReportMetric(pct(call, 0.5), "ms-flip-call-p50")
	b.ReportMetric(float64(len(l.results())), "requests")
}
