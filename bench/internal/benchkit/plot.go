package benchkit

import (
	"fmt"
	"image/color"
	"math"
	"strconv"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Series is one line of a plot.
type Series struct {
	Name string
	X, Y []float64
}

// MsSeries is the line of samples ds in milliseconds, one point each (x = 1, 2, ...),
// none below 0.01 ms so that a log scale can draw them all.
func MsSeries(name string, ds []time.Duration) Series {
	s := Series{Name: name}
	for i, d := range ds {
		s.X = append(s.X, float64(i+1))
		s.Y = append(s.Y, max(0.01, float64(d)/float64(time.Millisecond)))
	}
	return s
}

// palette is the colours of the series, in order (blue and green first: swap's colors).
var palette = []color.RGBA{
	{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}, {R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, {R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	{R: 0x94, G: 0x67, B: 0xbd, A: 0xff}, {R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

// Color is the i-th colour of the palette (wrapping).
func Color(i int) color.Color { return palette[i%len(palette)] }

// LinePlot draws series as lines with points and writes a PNG of 16×9 cm to path. A log
// y axis (logY) suits latencies that differ by orders of magnitude; it needs Y > 0.
func LinePlot(path, title, xLabel, yLabel string, logY bool, series ...Series) error {
	return LinePlotWith(path, PlotOptions{Title: title, XLabel: xLabel, YLabel: yLabel, LogY: logY, Headroom: true}, series...)
}

// PlotOptions are a line plot's title, labels and axes.
type PlotOptions struct {
	Title, XLabel, YLabel string
	LogX, LogY            bool // log axes need values > 0
	// Headroom, when set, ends the y axis above the highest point so that the legend
	// (top right) covers no line: it gets 4% of the axis plus 6% per series.
	Headroom bool
}

// LinePlotWith is LinePlot with more choices.
func LinePlotWith(path string, o PlotOptions, series ...Series) error {
	p := plot.New()
	p.Title.Text = o.Title
	p.X.Label.Text = o.XLabel
	p.Y.Label.Text = o.YLabel
	if o.LogX {
		// Ticks at the values measured: a few points (1, 4, 16, 64) span no decades.
		var ticks []plot.Tick
		seen := map[float64]bool{}
		for _, s := range series {
			for _, x := range s.X {
				if !seen[x] {
					seen[x] = true
					ticks = append(ticks, plot.Tick{Value: x, Label: strconv.FormatFloat(x, 'g', -1, 64)})
				}
			}
		}
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.ConstantTicks(ticks)
	}
	if o.LogY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	}
	p.Add(plotter.NewGrid())
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, s := range series {
		if len(s.X) != len(s.Y) {
			return fmt.Errorf("plot %s: series %q has %d x and %d y values", path, s.Name, len(s.X), len(s.Y))
		}
		xy := make(plotter.XYs, len(s.X))
		for k := range s.X {
			xy[k].X, xy[k].Y = s.X[k], s.Y[k]
			lo, hi = math.Min(lo, s.Y[k]), math.Max(hi, s.Y[k])
		}
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("plot %s: series %q: %w", path, s.Name, err)
		}
		l.Color, pts.Color = Color(i), Color(i)
		p.Add(l, pts)
		p.Legend.Add(s.Name, l, pts)
	}
	share := 0.0 // of the y axis, above the highest point, for the legend
	if o.Headroom {
		share = 0.04 + 0.06*float64(len(series))
	}
	switch {
	case o.LogY && lo > 0: // also gives a single value a range: gonum's would reach 0
		p.Y.Min = lo / 1.5
		p.Y.Max = math.Pow(10, math.Log10(hi*1.5)+(math.Log10(hi*1.5)-math.Log10(p.Y.Min))*share/(1-share))
	case o.Headroom && hi > lo:
		p.Y.Max = hi + (hi-math.Min(0, lo))*share/(1-share)
	}
	p.Legend.Top = true
	return p.Save(16*vg.Centimeter, 9*vg.Centimeter, path)
}

// Bar is one group of a bar plot: a label and one value per series.
type Bar struct {
	Label  string
	Values []float64
}

// BarPlot draws grouped bars (one group per label, one bar per series name) and writes a
// PNG of 16×9 cm to path. Bars start at 0, which a log scale cannot show: logY is an
// error (gonum/plot panics on it).
func BarPlot(path, title, yLabel string, logY bool, names []string, groups []Bar) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = yLabel
	if logY {
		return fmt.Errorf("plot %s: bars start at 0, which a log scale cannot show: use a linear scale or LinePlot", path)
	}
	w := vg.Points(min(40, 240/float64(max(1, len(names)*len(groups)))))
	labels := make([]string, len(groups))
	for i, g := range groups {
		labels[i] = g.Label
		if len(g.Values) != len(names) {
			return fmt.Errorf("plot %s: group %q has %d values for %d series", path, g.Label, len(g.Values), len(names))
		}
	}
	for si, name := range names {
		vals := make(plotter.Values, len(groups))
		for gi, g := range groups {
			vals[gi] = g.Values[si]
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("plot %s: series %q: %w", path, name, err)
		}
		b.Color = Color(si)
		b.LineStyle.Width = 0
		b.Offset = vg.Length(float64(si)-float64(len(names)-1)/2) * w
		p.Add(b)
		p.Legend.Add(name, b)
	}
	p.Legend.Top = true
	p.NominalX(labels...)
	// Room above the bars for the legend (top right, one line per series).
	p.Y.Max += (p.Y.Max - min(p.Y.Min, 0)) * 0.12 * float64(len(names))
	return p.Save(16*vg.Centimeter, 9*vg.Centimeter, path)
}
