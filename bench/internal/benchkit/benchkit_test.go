package benchkit

import (
	"bytes"
	"flag"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSummarize_NearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 20; i >= 1; i-- { // unsorted on purpose
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	s := Summarize(ds)
	want := Summary{N: 20, Min: time.Millisecond, Median: 10 * time.Millisecond, P95: 19 * time.Millisecond,
		P99: 20 * time.Millisecond, Max: 20 * time.Millisecond}
	if s != want {
		t.Fatalf("Summarize = %+v, want %+v", s, want)
	}
	if ds[0] != 20*time.Millisecond {
		t.Fatal("Summarize sorted its caller's slice")
	}
	if got := Summarize(nil); got != (Summary{}) {
		t.Fatalf("Summarize(nil) = %+v", got)
	}
	if got := Summarize([]time.Duration{3 * time.Millisecond}); got.P99 != 3*time.Millisecond || got.Median != 3*time.Millisecond {
		t.Fatalf("one sample: %+v", got)
	}
}

func TestMs_And_Row(t *testing.T) {
	for d, want := range map[time.Duration]string{420 * time.Microsecond: "0.42", 12345 * time.Microsecond: "12.3", 1234 * time.Millisecond: "1234"} {
		if got := Ms(d); got != want {
			t.Errorf("Ms(%v) = %q, want %q", d, got, want)
		}
	}
	if got := Summarize([]time.Duration{time.Millisecond, 2 * time.Millisecond}).Row(); got != "2 | 1.00 | 2.00 | 2.00 | 2.00" {
		t.Errorf("Row = %q", got)
	}
	if got := (Summary{}).Row(); !strings.HasPrefix(got, "0 |") {
		t.Errorf("empty Row = %q", got)
	}
}

func TestSpliceText(t *testing.T) {
	doc := "# B\n\nintro\n<!-- bench:cutover -->\nold table\n<!-- /bench:cutover -->\nafter\n"
	got, err := SpliceText(doc, "cutover", "| a |\n| - |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# B\n\nintro\n<!-- bench:cutover -->\n| a |\n| - |\n<!-- /bench:cutover -->\nafter\n"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	if _, err := SpliceText(doc, "memory", "x"); err == nil || !strings.Contains(err.Error(), "<!-- bench:memory -->") {
		t.Fatalf("missing markers: %v", err)
	}
	twice := doc + "<!-- bench:cutover -->\n<!-- /bench:cutover -->\n"
	if _, err := SpliceText(twice, "cutover", "x"); err == nil {
		t.Fatal("markers twice: no error")
	}
}

func TestSplice_ReplacesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "b.md")
	if err := os.WriteFile(p, []byte("<!-- bench:x -->\n<!-- /bench:x -->\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Splice(p, "x", "new"); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	if string(b) != "<!-- bench:x -->\nnew\n<!-- /bench:x -->\n" {
		t.Fatalf("file = %q", b)
	}
}

func TestPlots_WritePNGs(t *testing.T) {
	dir := t.TempDir()
	line := filepath.Join(dir, "line.png")
	if err := LinePlot(line, "t", "x", "y", true, Series{Name: "swap", X: []float64{1, 2, 3}, Y: []float64{1, 10, 100}},
		Series{Name: "reload", X: []float64{1, 2, 3}, Y: []float64{5, 50, 500}}); err != nil {
		t.Fatal(err)
	}
	with := filepath.Join(dir, "with.png")
	if err := LinePlotWith(with, PlotOptions{Title: "t", LogX: true, LogY: true, Headroom: true},
		Series{Name: "a", X: []float64{1, 4, 16, 64}, Y: []float64{3, 30, 300, 3000}}); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(dir, "one.png") // a single value on a log axis
	if err := LinePlotWith(one, PlotOptions{LogY: true}, Series{Name: "a", X: []float64{1000}, Y: []float64{0.1}}); err != nil {
		t.Fatal(err)
	}
	bar := filepath.Join(dir, "bar.png")
	if err := BarPlot(bar, "t", "ms", false, []string{"median", "p99"}, []Bar{{"swap", []float64{1, 2}}, {"reload", []float64{50, 90}}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{line, with, one, bar} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if r := img.Bounds(); r.Dx() < 100 || r.Dy() < 100 {
			t.Fatalf("%s: %v", p, r)
		}
	}
	if err := BarPlot(filepath.Join(dir, "logbar.png"), "t", "ms", true, []string{"a"}, []Bar{{"x", []float64{1}}}); err == nil {
		t.Fatal("a log-scale bar plot: no error")
	}
	if err := LinePlot(filepath.Join(dir, "bad.png"), "t", "x", "y", false, Series{Name: "s", X: []float64{1}, Y: nil}); err == nil {
		t.Fatal("mismatched series: no error")
	}
}

func TestOptions(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	o := RegisterFlags(fs, "cutoverbench")
	dir := t.TempDir()
	if err := fs.Parse([]string{"-short", "-doc", filepath.Join(dir, "docs", "benchmarks.md"), "-img", filepath.Join(dir, "docs", "img")}); err != nil {
		t.Fatal(err)
	}
	if o.CommandLine() != "go run ./bench/cutoverbench -short" || Pick(o, 40, 8) != 8 {
		t.Fatalf("%q %d", o.CommandLine(), Pick(o, 40, 8))
	}
	path, link, ok := o.PlotPath("bench-cutover.png")
	if !ok || path != filepath.Join(dir, "docs", "img", "bench-cutover.png") || link != "img/bench-cutover.png" {
		t.Fatalf("PlotPath = %q %q %v", path, link, ok)
	}
	o.Img = ""
	if _, _, ok := o.PlotPath("x.png"); ok {
		t.Fatal("PlotPath without -img")
	}
}
