// Command demo is `make demo`: it starts a Consul dev agent and HAProxy on loopback,
// makes two versions of examples/demoapp into FROM-scratch images, deploys v1 (blue)
// with swap, puts load on HAProxy's frontend, swaps to v2 (green) under that load and
// prints what the load saw: requests, failures, answers per color before and after the
// cutover, and each step's time. Then it starts `swap serve` (the sidecar daemon of
// deploy pipelines) on a unix socket and rolls back to blue through its HTTP API
// (`swap --server unix://... rollback`), under load again, with the same summary. Then
// it removes everything it started — also on Ctrl-C. `demo -down` (make demo-down) removes what a killed demo left behind.
//
// Everything lives in one working directory (.demo): swap.yaml, HAProxy's files and
// sockets, logs and pid files. Containers and images carry the label swap.demo=<id>.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

// The load: bounded in time, loopback only.
const (
	loadWorkers = 4
	loadPause   = 2 * time.Millisecond // between one worker's requests: leave the CPUs some air
	loadMax     = 3 * time.Minute      // the load stops by itself after this, whatever happens
	loadBefore  = 2 * time.Second      // load on blue before the swap starts
	loadAfter   = 2 * time.Second      // and on green after it ends
)

func main() {
	var (
		dir     = flag.String("dir", ".demo", "working `directory` (created, and removed at the end)")
		down    = flag.Bool("down", false, "remove what a killed demo left in -dir, then exit")
		keep    = flag.Bool("keep", false, "leave the stack running at the end (remove it with `make demo-down`)")
		app     = flag.String("app", "web", "the app's `name`; its route is <name>.demo")
		swapBin = flag.String("swap", "bin/swap", "the swap `binary`")
		consul  = flag.String("consul", "bin/consul", "the consul `binary`")
		demoapp = flag.String("demoapp", "bin/demoapp", "the static demoapp `binary` the images are made of")
		tl      = flag.String("timeline", "demo-timeline.png", "where to write the timeline PNG: requests per 100 ms by color and failed, the swap's steps marked (empty: none)")
	)
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := os.Stdout
	if *down {
		if err := stack.Down(ctx, *dir, out); err != nil {
			fmt.Fprintf(os.Stderr, "demo-down: %v\n", err)
			os.Exit(1)
		}
		fmt.Fprintln(out, "demo-down: done")
		return
	}
	d := &demo{out: out, dir: *dir, app: *app, swap: *swapBin, consul: *consul, demoapp: *demoapp, keep: *keep, timeline: *tl}
	err := d.run(ctx, stop)
	switch {
	case err != nil && d.interrupted:
		fmt.Fprintf(os.Stderr, "\ndemo: interrupted (%v)\n", err)
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\ndemo: %v\n", err)
		os.Exit(1)
	}
}

type demo struct {
	out                 io.Writer
	dir, app            string
	swap, consul        string
	demoapp             string
	keep                bool
	timeline            string // the PNG's path ("": none)
	interrupted         bool   // by a signal: the teardown saw ctx done
	st                  *stack.Stack
	v1, v2, host, front string
}

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

func (d *demo) run(ctx context.Context, stopSignals context.CancelFunc) (err error) {
	if _, err := os.Stat(d.dir); err == nil {
		d.printf("a previous demo left %s behind: removing what it started first\n", d.dir)
		if err := stack.Down(ctx, d.dir, indent(d.out, "  ")); err != nil {
			return fmt.Errorf("clean up the previous demo: %w", err)
		}
	}
	bin, err := os.ReadFile(d.demoapp)
	if err != nil {
		return fmt.Errorf("%w: run `make build` first", err)
	}
	d.printf("== starting Consul and HAProxy on 127.0.0.1 (working directory %s)\n", d.dir)
	st, err := stack.Up(ctx, stack.Options{
		Dir: d.dir, Swap: d.swap, Consul: d.consul, Log: indent(d.out, "  "),
		Apps: stack.App{Name: d.app, Image: "swap-demo/" + d.app + ":v1", Route: d.app + ".demo", Replicas: 2, Verify: 3 * time.Second}.YAML(),
	})
	if st != nil {
		d.st = st
		defer func() { err = errors.Join(err, d.teardown(ctx, stopSignals, err)) }()
	}
	if err != nil {
		return err
	}
	d.host, d.front = d.app+".demo", st.Frontend
	if err := d.checkAppFree(ctx); err != nil {
		return err
	}

	d.v1, d.v2 = "swap-demo/"+d.app+":v1", "swap-demo/"+d.app+":v2"
	t0 := time.Now()
	for _, v := range []struct{ ref, version string }{{d.v1, "v1"}, {d.v2, "v2"}} {
		if err := st.DemoImage(ctx, v.ref, v.version, bin); err != nil {
			return err
		}
	}
	d.printf("  images             %s, %s: FROM scratch, imported from %s, nothing pulled (%s)\n",
		d.v1, d.v2, d.demoapp, since(t0))

	d.printf("\n== swap deploy %s --image %s    (the first deploy: blue; one line per step)\n", d.app, d.v1)
	if _, err := st.SwapJSON(ctx, "", d.stepLines(false), "deploy", d.app, "--image", d.v1); err != nil {
		return err
	}
	if err := d.waitAnswer(ctx, "color=blue version=v1"); err != nil {
		return err
	}

	load, err := d.startLoad()
	if err != nil {
		return err
	}
	defer load.Stop()
	d.printf("\n== load: %d workers on http://%s/ with Host: %s (%d on keep-alive connections, %d on a new connection per request)\n",
		loadWorkers, d.front, d.host, (loadWorkers+1)/2, loadWorkers/2)
	if err := sleep(ctx, loadBefore); err != nil {
		return err
	}

	d.printf("\n== swap deploy %s --image %s --output json    (blue -> green, under load)\n", d.app, d.v2)
	cli := swapOf{cmd: fmt.Sprintf("swap deploy %s --image %s", d.app, d.v2),
		from: "color=blue version=v1", to: "color=green version=v2", fromColor: "blue", toColor: "green", timeline: d.timeline}
	if err := d.swapUnderLoad(ctx, load, cli, "deploy", d.app, "--image", d.v2); err != nil {
		return err
	}

	// The same swap as a deploy pipeline runs it: through swap serve's HTTP API.
	d.printf("\n== swap serve: the sidecar daemon of deploy pipelines (HTTP API on a unix socket, docs/serve.md)\n")
	server, err := st.Serve(ctx)
	if err != nil {
		return err
	}
	if load, err = d.startLoad(); err != nil {
		return err
	}
	defer load.Stop()
	if err := sleep(ctx, loadBefore); err != nil {
		return err
	}
	d.printf("\n== swap --server %s rollback %s --output json    (green -> blue, under load, run by swap serve)\n", server, d.app)
	api := swapOf{cmd: fmt.Sprintf("swap --server ... rollback %s (POST /v1/apps/%s/rollback)", d.app, d.app),
		from: cli.to, to: cli.from, fromColor: "green", toColor: "blue"}
	return d.swapUnderLoad(ctx, load, api, "--server", server, "rollback", d.app)
}

// startLoad starts loadWorkers workers on the frontend, half of them on keep-alive
// connections, half with a new connection per request, recording every request.
func (d *demo) startLoad() (*stack.Load, error) {
	keepAlive, close := stack.Split(loadWorkers)
	l := &stack.Load{Addr: d.front, Host: d.host, KeepAlive: keepAlive, Close: close,
		Pause: loadPause, MaxTime: loadMax, Record: true}
	return l, l.Start()
}

// swapOf says which swap a summary is about: its command and the answers of the color
// it leaves and of the one it goes to.
type swapOf struct {
	cmd, from, to      string
	fromColor, toColor string
	// timeline is where to draw what the load saw ("": nowhere).
	timeline string
}

// swapUnderLoad runs swap args with --output json while load runs, prints its steps as
// they happen, stops the load loadAfter after the swap and prints the summary. Any
// failed request is an error.
func (d *demo) swapUnderLoad(ctx context.Context, load *stack.Load, sw swapOf, args ...string) error {
	run, err := d.st.SwapJSON(ctx, "", d.stepLines(true), args...)
	if err != nil {
		return err
	}
	if err := sleep(ctx, loadAfter); err != nil {
		return err
	}
	results := load.Stop()
	failed := d.summary(sw, run, load, results)
	if sw.timeline != "" {
		t := newTimeline(results, run, load.Started(), load.Stopped(), 100*time.Millisecond)
		title := fmt.Sprintf("%s under load: %d requests, %d failed", sw.cmd, len(results), failed)
		if err := t.save(sw.timeline, title); err != nil {
			return fmt.Errorf("timeline %s: %w", sw.timeline, err)
		}
		d.printf("\n  timeline  %s  (requests per 100 ms by color and failed; the steps marked where they start)\n", sw.timeline)
	}
	if failed > 0 {
		return fmt.Errorf("%d requests failed during %s", failed, sw.cmd)
	}
	return nil
}

// checkAppFree refuses to run when Docker already has swap containers of the app: the
// demo's would need their names, and its first deploy would remove them.
func (d *demo) checkAppFree(ctx context.Context) error {
	insts, err := d.st.Docker.List(ctx, d.app)
	if err != nil {
		return err
	}
	if len(insts) == 0 {
		return nil
	}
	names := make([]string, 0, len(insts))
	for _, in := range insts {
		names = append(names, in.ID())
	}
	return fmt.Errorf("docker already runs swap containers of app %s (%s); the demo would take their names: "+
		"remove them, or run the demo with another app name (make demo DEMO_FLAGS='-app demo2')", d.app, strings.Join(names, ", "))
}

// waitAnswer polls the frontend until it answers with want.
func (d *demo) waitAnswer(ctx context.Context, want string) error {
	if err := stack.WaitAnswer(ctx, d.front, d.host, "/", want, 15*time.Second); err != nil {
		return fmt.Errorf("the frontend %s never answered %q for %s: %w", d.front, want, d.host, err)
	}
	return nil
}

var kindMark = map[switcher.EventKind]string{
	switcher.EventDone: "✓", switcher.EventFailed: "✗", switcher.EventSkip: "-", switcher.EventInfo: " ",
}

// printEvent shows one event line as swap's text output does.
// stepLines returns what prints a swap's events: one line per step (a skipped step
// once, with its reason), and with details also the lines a step says on its way.
func (d *demo) stepLines(details bool) func(switcher.Event) {
	var first time.Time
	skipped := map[switcher.Step]string{}
	return func(e switcher.Event) {
		if first.IsZero() {
			first = e.Time
		}
		switch e.Kind {
		case switcher.EventSkip:
			skipped[e.Step] = e.Message
			return
		case switcher.EventDone, switcher.EventFailed:
			if msg, ok := skipped[e.Step]; ok {
				e.Kind, e.Message = switcher.EventSkip, msg
			}
		default:
			if !details {
				return
			}
		}
		d.printEvent(first, e)
	}
}

func (d *demo) printEvent(t0 time.Time, e switcher.Event) {
	if e.Kind == switcher.EventStart {
		return
	}
	took := ""
	if e.Elapsed > 0 {
		took = e.Elapsed.Round(time.Millisecond).String()
	}
	d.printf("  %7.2fs %s %-9s %8s  %s\n", e.Time.Sub(t0).Seconds(), kindMark[e.Kind], e.Step, took, e.Message)
}

// teardown removes the stack (unless -keep and the demo went well). It runs with its own
// deadline, so a Ctrl-C still cleans up; a second Ctrl-C stops the demo at once and
// leaves the rest to `make demo-down`.
func (d *demo) teardown(ctx context.Context, stopSignals context.CancelFunc, runErr error) error {
	if ctx.Err() != nil {
		d.interrupted = true
		d.printf("\ninterrupted: removing what the demo started (Ctrl-C again leaves it to `make demo-down`)\n")
	}
	stopSignals()
	if d.keep && runErr == nil {
		d.printf("\n== the stack keeps running (-keep)\n")
		d.printf("  curl -H 'Host: %s' http://%s/\n", d.host, d.front)
		d.printf("  SWAP_CONFIG=%s SWAP_CONTAINER_LABELS=%s bin/swap status %s\n", d.st.Config, d.st.Label, d.app)
		d.printf("  make demo-down    # removes it all\n")
		return nil
	}
	d.printf("\n== cleaning up\n")
	cctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := d.st.Down(cctx); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	d.printf("  removed the containers and images labelled %s, stopped HAProxy and Consul, removed %s\n", d.st.Label, d.dir)
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func since(t0 time.Time) string { return time.Since(t0).Round(time.Millisecond).String() }

// indent prefixes every line written to w.
func indent(w io.Writer, prefix string) io.Writer { return &indenter{w: w, prefix: prefix, bol: true} }

type indenter struct {
	w      io.Writer
	prefix string
	bol    bool
}

func (in *indenter) Write(p []byte) (int, error) {
	var b bytes.Buffer
	for _, c := range p {
		if in.bol {
			b.WriteString(in.prefix)
			in.bol = false
		}
		b.WriteByte(c)
		if c == '\n' {
			in.bol = true
		}
	}
	if _, err := in.w.Write(b.Bytes()); err != nil {
		return 0, err
	}
	return len(p), nil
}
