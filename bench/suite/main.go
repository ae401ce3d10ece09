// Command suite runs swap's benchmark programs one after the other: `make bench` (and
// `make bench BENCH=short`). The programs are its arguments, directories under bench/
// (the Makefile's BENCH_SUITE, one line per program). Each is built once, then run from
// the repository root as
//
//	bin/bench/<name> [-short] -doc docs/benchmarks.md -img docs/img
//
// so that it splices its tables into docs/benchmarks.md and writes its plots as
// docs/img/bench-*.png. After each program the suite checks that it left nothing behind:
// no process of its process group, no Docker container or image labelled with the ID of
// a stack it started (benchkit.StackIDsEnv), no working directory .<name>/ (the
// programs' default -dir). A
// program that fails, or leaves something, fails the suite after the others have run.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/swap-dev/swap/bench/internal/benchkit"
)

func main() {
	mode := flag.String("mode", "full", "full or short (each program's -short)")
	doc := flag.String("doc", "docs/benchmarks.md", "the Markdown `file` the programs splice their tables into")
	img := flag.String("img", "docs/img", "the `directory` of the plots")
	flag.Parse()
	if *mode != "full" && *mode != "short" {
		fmt.Fprintf(os.Stderr, "suite: -mode %q: want full or short (make bench BENCH=short)\n", *mode)
		os.Exit(2)
	}
	progs, err := Programs(flag.Args())
	if err != nil {
		fmt.Fprintf(os.Stderr, "suite: %v\n", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *mode == "short", *doc, *img, progs); err != nil {
		fmt.Fprintf(os.Stderr, "suite: %v\n", err)
		os.Exit(1)
	}
}

// Programs checks the program names: directories bench/<name> with a main package, each
// once.
func Programs(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, errors.New("no program given: list them in the Makefile's BENCH_SUITE")
	}
	var out []string
	for _, a := range args {
		name := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(a, "./"), "bench/"), "/")
		if name == "" || strings.ContainsAny(name, "/. ") || name == "suite" || name == "internal" {
			return nil, fmt.Errorf("%q is not a benchmark program: give the name of a directory under bench/, such as cutoverbench", a)
		}
		if slices.Contains(out, name) {
			return nil, fmt.Errorf("%s is listed twice", name)
		}
		if _, err := os.Stat(filepath.Join("bench", name, "main.go")); err != nil {
			return nil, fmt.Errorf("%s: no bench/%s/main.go (run from the repository root)", name, name)
		}
		out = append(out, name)
	}
	return out, nil
}

// Budget is the suite's time limit for a mode (issue 13: ~15 min, short under 3).
func Budget(short bool) time.Duration {
	if short {
		return 3 * time.Minute
	}
	return 15 * time.Minute
}

type outcome struct {
	name string
	took time.Duration
	err  error
}

func run(ctx context.Context, short bool, doc, img string, progs []string) error {
	binDir, err := os.MkdirTemp("", "swap-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(binDir)
	fmt.Fprintf(os.Stderr, "suite: building %s\n", strings.Join(progs, ", "))
	for _, p := range progs {
		cmd := exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(binDir, p), "./bench/"+p)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build bench/%s: %w", p, err)
		}
	}
	start := time.Now()
	load := benchkit.LoadAvg()
	var results []outcome
	for _, p := range progs {
		if ctx.Err() != nil {
			break
		}
		args := []string{"-doc", doc, "-img", img}
		if short {
			args = append([]string{"-short"}, args...)
		}
		fmt.Fprintf(os.Stderr, "\nsuite: bench/%s %s (load average %s)\n", p, strings.Join(args, " "), loadText(benchkit.LoadAvg()))
		ids := filepath.Join(binDir, p+".stacks")
		t0 := time.Now()
		err := runOne(ctx, filepath.Join(binDir, p), args, benchkit.StackIDsEnv+"="+ids)
		o := outcome{name: p, took: time.Since(t0).Round(time.Second), err: err}
		if left := leftovers(ctx, p, ids); left != "" {
			o.err = errors.Join(o.err, errors.New(left))
		}
		results = append(results, o)
	}
	total := time.Since(start).Round(time.Second)
	fmt.Fprintf(os.Stderr, "\nsuite: %s run, load average %s at the start, %s at the end\n", map[bool]string{true: "short", false: "full"}[short], loadText(load), loadText(benchkit.LoadAvg()))
	var errs []error
	for _, o := range results {
		status := "ok"
		if o.err != nil {
			status = "FAILED: " + o.err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", o.name, o.err))
		}
		fmt.Fprintf(os.Stderr, "  %-16s %7s  %s\n", o.name, o.took, status)
	}
	fmt.Fprintf(os.Stderr, "  %-16s %7s  (budget %s)\n", "total", total, Budget(short))
	if total > Budget(short) {
		fmt.Fprintf(os.Stderr, "suite: over the budget of %s (the machine's load average is %s)\n", Budget(short), loadText(benchkit.LoadAvg()))
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return errors.Join(errs...)
}

func loadText(l [3]float64) string { return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2]) }

// runOne runs a program in its own process group; on ctx's end it gets SIGINT (it
// cleans up) and, a minute later, its group is killed.
func runOne(ctx context.Context, bin string, args []string, env ...string) error {
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		killGroup(cmd.Process.Pid)
		return err
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case err := <-done:
			killGroup(cmd.Process.Pid)
			return err
		case <-time.After(time.Minute):
			killGroup(cmd.Process.Pid)
			return <-done
		}
	}
}

// killGroup kills what is left of the process group pgid (the program's own children:
// the group is the program's, made for it) and says so.
func killGroup(pgid int) {
	if syscall.Kill(-pgid, 0) == nil {
		fmt.Fprintf(os.Stderr, "suite: processes of group %d outlived their program: killed\n", pgid)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// labelled lists the Docker containers and images labelled swap.demo=<id> (the
// stack's label), as "container <id>" and "image <id>".
func labelled(ctx context.Context, id string) []string {
	var out []string
	filter := "label=swap.demo=" + id
	for _, q := range [][]string{{"ps", "-aq", "--filter", filter}, {"images", "-q", "--filter", filter}} {
		b, err := exec.CommandContext(ctx, "docker", q...).Output()
		if err != nil {
			continue
		}
		kind := map[string]string{"ps": "container", "images": "image"}[q[0]]
		for _, id := range strings.Fields(string(bytes.TrimSpace(b))) {
			if s := kind + " " + id; !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	}
	return out
}

// StackIDs reads the file the programs record their stacks' IDs in (benchkit.StackIDsEnv).
func StackIDs(text string) []string {
	var ids []string
	for _, l := range strings.Fields(text) {
		if !slices.Contains(ids, l) {
			ids = append(ids, l)
		}
	}
	return ids
}

// leftovers says what program p left behind: Docker objects labelled with the IDs of
// the stacks it started (recorded in idFile), its working directory.
func leftovers(ctx context.Context, p, idFile string) string {
	var left []string
	b, _ := os.ReadFile(idFile)
	for _, id := range StackIDs(string(b)) {
		left = append(left, labelled(ctx, id)...)
	}
	if _, err := os.Stat("." + p); err == nil {
		left = append(left, "directory ."+p+"/")
	}
	if len(left) == 0 {
		return ""
	}
	return fmt.Sprintf("left behind: %s (a killed run's stack is removed by go run ./examples/demo -down -dir .%s)", strings.Join(left, ", "), p)
}
