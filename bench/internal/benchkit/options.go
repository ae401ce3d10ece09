package benchkit

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

// Options are the flags every program of the suite takes (`make bench` passes them):
// -short for the quick run, -doc for the Markdown file its tables are spliced into,
// -img for the directory of its PNG plots.
type Options struct {
	Short bool
	Doc   string // "" prints the tables only
	Img   string // directory of the PNGs ("" writes none)
	// Command is how the program was run, for the line under each table.
	Command string
}

// RegisterFlags adds -short, -doc and -img to fs (flag.CommandLine when nil). name is
// the program's directory under bench/, for Command.
func RegisterFlags(fs *flag.FlagSet, name string) *Options {
	if fs == nil {
		fs = flag.CommandLine
	}
	o := &Options{Command: "go run ./bench/" + name}
	fs.BoolVar(&o.Short, "short", false, "the quick run of `make bench BENCH=short`: fewer samples")
	fs.StringVar(&o.Doc, "doc", "", "splice the tables into this Markdown `file` (docs/benchmarks.md) between its <!-- bench:NAME --> markers")
	fs.StringVar(&o.Img, "img", "docs/img", "write the PNG plots into this `directory` (\"\": none)")
	return o
}

// CommandLine is Command with the flags that change what is measured (-short).
func (o *Options) CommandLine(extra ...string) string {
	parts := []string{o.Command}
	if o.Short {
		parts = append(parts, "-short")
	}
	return strings.Join(append(parts, extra...), " ")
}

// Pick is short when -short is set, else full.
func Pick[T any](o *Options, full, short T) T {
	if o.Short {
		return short
	}
	return full
}

// Publish prints fragment under a heading naming section and, with -doc, splices it
// into the document.
func (o *Options) Publish(section, fragment string) error {
	fmt.Printf("\n<!-- bench:%s -->\n%s\n<!-- /bench:%s -->\n", section, strings.TrimSpace(fragment), section)
	if o.Doc == "" {
		return nil
	}
	if err := Splice(o.Doc, section, fragment); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote the %q tables into %s\n", section, o.Doc)
	return nil
}

// PlotPath is where the plot named name ("bench-cutover.png") goes, and the link to it
// from the document ("img/bench-cutover.png", relative to -doc's directory); ok is false
// without -img.
func (o *Options) PlotPath(name string) (path, link string, ok bool) {
	if o.Img == "" {
		return "", "", false
	}
	if err := os.MkdirAll(o.Img, 0o755); err != nil {
		return "", "", false
	}
	path = filepath.Join(o.Img, name)
	link = path
	if o.Doc != "" {
		if rel, err := filepath.Rel(filepath.Dir(o.Doc), path); err == nil {
			link = rel
		}
	}
	return path, filepath.ToSlash(link), true
}

// Main runs a benchmark program's body with a context that SIGINT and SIGTERM cancel
// (the body then removes what it started), and exits 1 with the error, named after the
// program, when it fails.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}
