package main

import (
	"os"
	"testing"
	"time"

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
