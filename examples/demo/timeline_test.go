package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

func TestNewTimeline_BinsRequestsBySentTimeAndMarksStepStarts(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	answer := func(ms int, color string) stack.Result {
		return stack.Result{Sent: at(ms), Answer: stack.Answer{Status: 200, Color: color}}
	}
	results := []stack.Result{
		answer(10, "blue"), answer(99, "blue"), answer(100, "green"),
		{Sent: at(150), Answer: stack.Answer{Status: 502, Body: "Bad Gateway"}}, answer(299, "green"),
		{Sent: at(160), Err: "connection refused"}, // a failure too
		answer(300, "green"),                       // at the end: outside
		answer(-1, "blue"),                         // before the start: outside
		answer(120, "purple"),                      // neither color nor failed: not drawn
	}
	run := &stack.Run{Events: []switcher.Event{
		{Time: at(50), Step: switcher.StepLock, Kind: switcher.EventStart},
		{Time: at(60), Step: switcher.StepLock, Kind: switcher.EventDone},
		{Time: at(120), Step: switcher.StepShift, Kind: switcher.EventStart},
	}}
	tl := newTimeline(results, run, t0, at(300), 100*time.Millisecond)
	want := map[string][]float64{"blue": {2, 0, 0}, "green": {0, 1, 1}, "failed": {0, 2, 0}}
	for name, got := range map[string][]float64{"blue": tl.blue, "green": tl.green, "failed": tl.failed} {
		if len(got) != 3 {
			t.Fatalf("%s: %d bins, want 3", name, len(got))
		}
		for i := range got {
			if got[i] != want[name][i] {
				t.Errorf("%s = %v, want %v", name, got, want[name])
				break
			}
		}
	}
	if len(tl.marks) != 2 || tl.marks[0].step != switcher.StepLock || tl.marks[1].at != 0.12 {
		t.Errorf("marks = %+v, want lock at 0.05 and shift at 0.12", tl.marks)
	}

	path := filepath.Join(t.TempDir(), "timeline.png")
	if err := tl.save(path, "test"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() < 400 || r.Dy() < 200 {
		t.Errorf("image is %v", r)
	}
}
