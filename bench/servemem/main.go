// Command servemem measures `swap serve`'s idle memory with a config of many apps and
// the reconcile loop on:
//
//	make build && go run ./bench/servemem
//
// It starts the demo's world (internal/stack: a Consul dev agent, HAProxy,
// FROM-scratch demoapp images) with -apps apps in swap.yaml, deploys each (one
// instance, unless -deploy=false), then runs `bin/swap serve` on a loopback port, waits
// until /readyz says ready (every app's reconcile pass worked), lets it idle for -idle,
// and reads VmRSS and VmHWM from /proc/<pid>/status, plus the Go runtime's own figures
// from /metrics. It prints them as a Markdown table. Everything it started is removed
// at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/swap-dev/swap/bench/internal/benchkit"
	"github.com/swap-dev/swap/internal/stack"
)

// token is the API's bearer token (the API is not used: swap serve needs one on TCP).
const token = "servemem"

func main() {
	var (
		apps    = flag.Int("apps", 10, "apps in swap.yaml")
		deploy  = flag.Bool("deploy", true, "deploy each app (one instance) before swap serve starts, so the loop follows live instances")
		idle    = flag.Duration("idle", 30*time.Second, "how long swap serve idles, once ready, before the measure")
		dir     = flag.String("dir", ".servemem", "working `directory` (short: HAProxy's sockets live there)")
		prefix  = flag.String("app", "servemem", "the apps' name `prefix` (<prefix>-0, ...; no other swap app of these names may run on this Docker)")
		swapBin = flag.String("swap", "bin/swap", "the swap `binary`")
		consul  = flag.String("consul", "bin/consul", "the consul `binary`")
		demoapp = flag.String("demoapp", "bin/demoapp", "the static demoapp `binary`")
		short   = flag.Bool("short", false, "idle 10s instead of -idle (make bench BENCH=short)")
		doc     = flag.String("doc", "", "splice the table into this Markdown `file` (docs/benchmarks.md), section serve-memory")
		_       = flag.String("img", "", "the suite's plot directory (this program draws no plot)")
	)
	flag.Parse()
	if *short {
		*idle = 10 * time.Second
	}
	table = &strings.Builder{}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, *apps, *deploy, *idle, *dir, *prefix, *swapBin, *consul, *demoapp)
	if err == nil && *doc != "" {
		line := benchkit.ReadMachine().Line(strings.Join(append([]string{"go run ./bench/servemem"}, os.Args[1:]...), " "), nil)
		err = benchkit.Splice(*doc, "serve-memory", table.String()+"\n"+line)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "servemem: %v\n", err)
		os.Exit(1)
	}
}

// table is the result as Markdown, also printed.
var table *strings.Builder

func run(ctx context.Context, n int, deploy bool, idle time.Duration, dir, prefix, swapBin, consul, demoapp string) error {
	if n < 1 {
		return fmt.Errorf("-apps %d: at least 1", n)
	}
	bin, err := os.ReadFile(demoapp)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	image := "swap-bench/" + prefix + ":v1"
	var cfg strings.Builder
	names := make([]string, n)
	for i := range n {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
		cfg.WriteString(stack.App{Name: names[i], Image: image, Check: time.Second}.YAML())
	}
	opts := stack.Options{Dir: dir, Swap: swapBin, Consul: consul, Log: os.Stderr, Apps: cfg.String(), HostPorts: benchkit.HostPorts}
	return stack.With(ctx, opts, func(st *stack.Stack) error {
		return measure(ctx, st, bin, image, names, deploy, idle)
	})
}

// measure deploys the apps when deploy is set, runs swap serve on st, lets it idle, and
// prints its memory.
func measure(ctx context.Context, st *stack.Stack, bin []byte, image string, names []string, deploy bool, idle time.Duration) error {
	if err := st.DemoImage(ctx, image, "v1", bin); err != nil {
		return err
	}
	instances := 0
	if deploy {
		for _, app := range names {
			if insts, err := st.Docker.List(ctx, app); err != nil || len(insts) > 0 {
				return fmt.Errorf("docker already runs swap containers of app %s (%d, %v): pick another -app", app, len(insts), err)
			}
			t0 := time.Now()
			if _, err := st.SwapJSON(ctx, "", nil, "deploy", app, "--image", image); err != nil {
				return fmt.Errorf("deploy %s: %w", app, err)
			}
			instances++
			fmt.Fprintf(os.Stderr, "deployed %s (%s)\n", app, time.Since(t0).Round(time.Millisecond))
		}
	}

	listen, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"serve", "--listen", listen}
	cmd := st.Command(ctx, args...)
	cmd.Env = append(cmd.Env, "SWAP_SERVE_TOKEN="+token)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr // its warnings, if any
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start swap serve: %w", err)
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	base := "http://" + listen
	t0 := time.Now()
	if err := waitReady(ctx, base, exited, 2*time.Minute); err != nil {
		return fmt.Errorf("swap serve (pid %d): %w", pid, err)
	}
	fmt.Fprintf(os.Stderr, "swap serve pid %d ready in %s; idling %s\n", pid, time.Since(t0).Round(time.Millisecond), idle)
	// Sample the RSS each second while idle: its peak over the window, beside VmHWM,
	// which also holds the start.
	var idlePeak int64
	deadline := time.Now().Add(idle)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("swap serve exited while idle: %v", err)
		case <-time.After(time.Second):
		}
		if m, err := procStatus(pid); err == nil {
			idlePeak = max(idlePeak, m["VmRSS"])
		}
	}
	mem, err := procStatus(pid)
	if err != nil {
		return err
	}
	gm, err := goMetrics(base)
	if err != nil {
		return err
	}
	if err := waitReady(ctx, base, exited, 10*time.Second); err != nil {
		return fmt.Errorf("swap serve was no longer ready after idling: %w", err)
	}

	out := io.MultiWriter(os.Stdout, table)
	fmt.Fprintf(out, "| machine | command | apps (instances) | idle | VmRSS | VmRSS peak while idle | VmHWM | Go heap in use | Go runtime total (sys) | goroutines |\n")
	fmt.Fprintf(out, "|---|---|---|---|---|---|---|---|---|---|\n")
	fmt.Fprintf(out, "| %s | `swap serve --listen %s` (reconcile loop on, metrics on) | %d (%d) | %s | %s | %s | %s | %s | %s | %.0f |\n",
		machine(), "127.0.0.1:<port>", len(names), instances, idle, mib(mem["VmRSS"]), mib(idlePeak), mib(mem["VmHWM"]),
		mib(int64(gm["go_memstats_heap_inuse_bytes"])), mib(int64(gm["go_memstats_sys_bytes"])), gm["go_goroutines"])
	return nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, base string, exited <-chan error, timeout time.Duration) error {
	client := &http.Client{Timeout: 15 * time.Second}
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %s: %s", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-exited:
			return fmt.Errorf("it exited: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// procStatus reads the kB figures of /proc/<pid>/status, in bytes.
func procStatus(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		f := strings.Fields(v)
		if !ok || len(f) != 2 || f[1] != "kB" {
			continue
		}
		if n, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			out[k] = n << 10
		}
	}
	if out["VmRSS"] == 0 {
		return nil, fmt.Errorf("/proc/%d/status has no VmRSS", pid)
	}
	return out, nil
}

// goMetrics reads the gauges of GET /metrics.
func goMetrics(base string) (map[string]float64, error) {
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics: %w", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		if len(f.Metric) == 1 && f.Metric[0].Gauge != nil {
			out[name] = f.Metric[0].Gauge.GetValue()
		}
	}
	return out, nil
}

// machine describes where it ran: CPUs, memory, kernel, Go.
func machine() string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	memTotal := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				if f := strings.Fields(rest); len(f) == 2 {
					if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
						memTotal = fmt.Sprintf(", %.0f GiB", float64(kb)/(1<<20))
					}
				}
			}
		}
	}
	return fmt.Sprintf("%d CPUs%s, Linux %s, %s %s", runtime.NumCPU(), memTotal, strings.TrimSpace(string(kernel)), runtime.Version(), runtime.GOARCH)
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// freeAddr is a free loopback address.
func freeAddr() (string, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
