package main

import (
	"errors"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

func TestContainerStop_SpansFromTheLastDeregistrationToTheLastRemoval(t *testing.T) {
	// testdata/deploy-debug.log: the --log-level debug stderr of a real
	// `swap deploy probe` from green to blue.
	b, err := os.ReadFile("testdata/deploy-debug.log")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, app, from string
		want            time.Duration
		wantErr         bool
	}{
		{"the old color's containers", "probe", "green", 25855*time.Millisecond - 23489*time.Millisecond, false},
		{"a color that was not retired", "probe", "blue", 0, true},
		{"another app", "web", "green", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := containerStop(string(b), tc.app, tc.from)
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("containerStop = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestQuantile_IsTheNearestRank(t *testing.T) {
	ds := []time.Duration{7, 1, 9, 3, 5, 2, 8, 4, 10, 6}
	tests := []struct {
		q    float64
		want time.Duration
	}{{0.5, 5}, {0.95, 10}, {0.9, 9}, {0.1, 1}, {0, 1}}
	for _, tc := range tests {
		if got := quantile(ds, tc.q); got != tc.want {
			t.Errorf("quantile(%v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if ds[0] != 7 {
		t.Error("quantile sorted its input in place")
	}
}

func TestMeasure_OverheadIsTotalMinusWhatSwapWaitsOn(t *testing.T) {
	m := measure{
		wall: 10 * time.Second, span: 9900 * time.Millisecond,
		steps: map[switcher.Step]time.Duration{switcher.StepStart: 3 * time.Second, switcher.StepGate: 2 * time.Second,
			switcher.StepDrain: time.Second, switcher.StepStage: 300 * time.Millisecond},
		containerStop: 2 * time.Second, delay: time.Second,
	}
	if got, want := m.overheadWall(), time.Second; got != want {
		t.Errorf("overhead from the process time = %v, want %v", got, want)
	}
	if got, want := m.overheadSpan(), 900*time.Millisecond; got != want {
		t.Errorf("overhead from the event span = %v, want %v", got, want)
	}
}

func TestSweepPoints_RunEachPointOnceOnBothAxes(t *testing.T) {
	for _, short := range []bool{false, true} {
		points, base := sweepPoints(short)
		seen := map[point]bool{}
		onBase := 0
		for _, p := range points {
			if seen[p] {
				t.Errorf("short=%v: %v twice", short, p)
			}
			seen[p] = true
			if p.Replicas != base && p.HAProxies != 1 {
				t.Errorf("short=%v: %v is on neither axis", short, p)
			}
			if p.Replicas == base {
				onBase++
			}
		}
		if onBase < 2 || len(points) < 3 {
			t.Errorf("short=%v: the HAProxy axis has %d points", short, onBase)
		}
	}
	full, _ := sweepPoints(false)
	if len(full) != 7 || full[4].Replicas != 64 || full[len(full)-1].HAProxies != 9 {
		t.Errorf("full sweep = %v", full)
	}
}

func TestSweepTables_HoldTheMedianOfEachStepPerPoint(t *testing.T) {
	mk := func(start, stage, wall time.Duration, peak stack.Bytes) measure {
		return measure{wall: wall, span: wall - 10*time.Millisecond, containerStop: time.Millisecond,
			steps:   map[switcher.Step]time.Duration{switcher.StepStart: start, switcher.StepStage: stage, switcher.StepRetire: 2 * time.Millisecond},
			peakRSS: peak, maxRSS: peak + 1<<20}
	}
	results := []sweepResult{
		{point: point{1, 1, 3}, requests: 100, swaps: []measure{
			mk(300*time.Millisecond, 20*time.Millisecond, 3*time.Second, 30<<20),
			mk(100*time.Millisecond, 10*time.Millisecond, 2*time.Second, 32<<20),
			mk(200*time.Millisecond, 30*time.Millisecond, 4*time.Second, 31<<20)}},
		{point: point{4, 3, 1}, requests: 50, failed: 1, swaps: []measure{mk(time.Second, 50*time.Millisecond, 5*time.Second, 40<<20)}},
	}
	scaling, memory := sweepTables(results, "_machine_", time.Minute)
	for _, want := range []string{"| step (median ms) | 1×1 | 4×3 |", "| start (waited) | 200 | 1000 |", "| stage | 20.0 | 50.0 |",
		"| **total** (process, exec to exit) | 3000 | 5000 |", "| swaps timed (requests, failed) | 3 (100, 0) | 1 (50, 1) |", "_machine_"} {
		if !strings.Contains(scaling, want) {
			t.Errorf("scaling table lacks %q:\n%s", want, scaling)
		}
	}
	for _, want := range []string{"| 1×1 | 3 | 31.0 MiB | 32.0 MiB | 33.0 MiB |", "| 4×3 | 1 | 40.0 MiB | 40.0 MiB | 41.0 MiB |"} {
		if !strings.Contains(memory, want) {
			t.Errorf("memory table lacks %q:\n%s", want, memory)
		}
	}
	for _, set := range plotSets {
		for _, name := range set.rows {
			if !slices.ContainsFunc(sweepRows, func(r sweepRow) bool { return r.name == name }) {
				t.Errorf("plot %s draws %q, which is no row of the table", set.file, name)
			}
		}
	}
}

func TestSweepTables_NameAPointThatFailed(t *testing.T) {
	results := []sweepResult{{point: point{64, 1, 1}, err: errors.New("start 64 container(s):\n  host port in use")}}
	scaling, memory := sweepTables(results, "", time.Minute)
	if !strings.Contains(scaling, "| start (waited) | – |") || !strings.Contains(scaling, "64×1: 0 of 1 swaps timed, then: start 64 container(s): host port in use") {
		t.Errorf("scaling table:\n%s", scaling)
	}
	if !strings.Contains(memory, "| 64×1 | 0 | – | – | – |") {
		t.Errorf("memory table:\n%s", memory)
	}
}
