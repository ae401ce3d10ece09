package main

import (
	"fmt"
	"image/color"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

// timeline is what the load saw, in bins of equal width by the time each request was
// sent: answers by color and failures; and when each step of the swap started.
type timeline struct {
	start               time.Time
	bin                 time.Duration
	blue, green, failed []float64 // requests per bin
	marks               []mark
}

// mark is a step's start, in seconds from the timeline's start.
type mark struct {
	at   float64
	step switcher.Step
}

// newTimeline bins the results from start to end (a last partial bin is left out: it
// would look like a drop in the load) and marks the run's step starts.
func newTimeline(results []stack.Result, run *stack.Run, start, end time.Time, bin time.Duration) timeline {
	n := max(1, int(end.Sub(start)/bin))
	t := timeline{start: start, bin: bin, blue: make([]float64, n), green: make([]float64, n), failed: make([]float64, n)}
	for _, r := range results {
		i := int(r.Sent.Sub(start) / bin)
		if r.Sent.Before(start) || i >= n {
			continue
		}
		switch {
		case !r.OK():
			t.failed[i]++
		case r.Color == "blue":
			t.blue[i]++
		case r.Color == "green":
			t.green[i]++
		}
	}
	if run != nil {
		for _, e := range run.Events {
			if e.Kind == switcher.EventStart {
				t.marks = append(t.marks, mark{at: e.Time.Sub(start).Seconds(), step: e.Step})
			}
		}
	}
	return t
}

var (
	blueInk  = color.RGBA{R: 0x1f, G: 0x5f, B: 0xbf, A: 0xff}
	greenInk = color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff}
	redInk   = color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}
	grayInk  = color.RGBA{R: 0x70, G: 0x70, B: 0x70, A: 0xff}
)

// save draws the timeline as a PNG of 24×12 cm: one line per color and one for the
// failures, a dashed vertical line at each step's start with its name.
func (t timeline) save(path, title string) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "seconds since the load started"
	p.Y.Label.Text = fmt.Sprintf("requests per %s", t.bin)
	p.Add(plotter.NewGrid())
	top := 1.0
	for _, s := range [][]float64{t.blue, t.green, t.failed} {
		for _, v := range s {
			top = max(top, v)
		}
	}
	// Room above the lines: the step names in four rows at the top, the legend below
	// them (both would hide the lines otherwise).
	p.Y.Min, p.Y.Max = 0, top*1.5
	for _, s := range []struct {
		name string
		ys   []float64
		ink  color.Color
	}{{"blue (v1)", t.blue, blueInk}, {"green (v2)", t.green, greenInk}, {"failed", t.failed, redInk}} {
		xy := make(plotter.XYs, len(s.ys))
		for i, v := range s.ys {
			xy[i].X, xy[i].Y = (float64(i)+0.5)*t.bin.Seconds(), v
		}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color, l.Width = s.ink, vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	var labels plotter.XYLabels
	for i, m := range t.marks {
		l, err := plotter.NewLine(plotter.XYs{{X: m.at, Y: 0}, {X: m.at, Y: p.Y.Max}})
		if err != nil {
			return err
		}
		l.Color, l.Dashes = grayInk, []vg.Length{vg.Points(3), vg.Points(3)}
		p.Add(l)
		// Steps a few ms apart would print over each other: four heights in turn.
		labels.XYs = append(labels.XYs, plotter.XY{X: m.at, Y: p.Y.Max * (1 - 0.045*float64(i%4+1))})
		labels.Labels = append(labels.Labels, string(m.step))
	}
	if len(t.marks) > 0 {
		ls, err := plotter.NewLabels(labels)
		if err != nil {
			return err
		}
		for i := range ls.TextStyle {
			ls.TextStyle[i].Color = grayInk
		}
		ls.Offset = vg.Point{X: vg.Points(2)}
		p.Add(ls)
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Legend.YOffs = -vg.Points(52) // under the four rows of step names
	return p.Save(24*vg.Centimeter, 12*vg.Centimeter, path)
}
