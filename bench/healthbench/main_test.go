package main

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestHistogram_MergeOfGapStatsKeepsCountsAndMax(t *testing.T) {
	a, b := newHistogram(gapWidth, gapBuckets), newHistogram(gapWidth, gapBuckets)
	for range 98 {
		a.add(1000*time.Millisecond + 200*time.Microsecond) // bucket 1000
	}
	b.add(1005 * time.Millisecond)
	b.add(12 * time.Second) // past the last bucket
	// The stats go over the wire as JSON between the target servers and the benchmark.
	var ga, gb gapStats
	for _, x := range []struct {
		h   *histogram
		out *gapStats
	}{{a, &ga}, {b, &gb}} {
		j, err := json.Marshal(x.h.gapStats())
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(j, x.out); err != nil {
			t.Fatal(err)
		}
	}
	m := newHistogram(gapWidth, gapBuckets)
	m.merge(ga)
	m.merge(gb)
	if n := m.n.Load(); n != 100 {
		t.Fatalf("merged %d gaps, want 100", n)
	}
	if got := time.Duration(m.max.Load()); got != 12*time.Second {
		t.Errorf("max = %v", got)
	}
	// 98 of 100 at 1000.2 ms (upper edge 1001 ms), then 1005 ms, then one over.
	if got := gapLag(m, 0.5, time.Second); got != time.Millisecond {
		t.Errorf("p50 lag = %v, want 1ms", got)
	}
	if got := gapLag(m, 0.99, time.Second); got != 6*time.Millisecond {
		t.Errorf("p99 lag = %v, want 6ms", got)
	}
	if got := gapLag(newHistogram(gapWidth, gapBuckets), 0.99, time.Second); got != 0 {
		t.Errorf("lag of no gaps = %v, want 0", got)
	}
}

func TestServicesJSON_OneServiceWithAnHTTPCheckPerPort(t *testing.T) {
	b := servicesJSON([]int{4001, 4002}, time.Second, 2*time.Second)
	var cfg struct {
		Services []struct {
			ID    string
			Port  int
			Check struct{ HTTP, Interval, Timeout, Status string }
		}
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Services) != 2 || cfg.Services[1].ID != "bench-1" || cfg.Services[1].Port != 4002 ||
		cfg.Services[1].Check.HTTP != "http://127.0.0.1:4002/health" || cfg.Services[1].Check.Interval != "1s" ||
		cfg.Services[1].Check.Timeout != "2s" || cfg.Services[1].Check.Status != "passing" {
		t.Errorf("services = %+v", cfg.Services)
	}
}

func TestSweepTable_PerThousandTargetsAndTheGoal(t *testing.T) {
	rs := []result{
		{targets: 1000, swapShare: 0.05, consulShare: 0.40, swapRate: 1000, consulRate: 990, swapGap99: 11 * time.Millisecond,
			consulGap99: 40 * time.Millisecond, swapLag: 12 * time.Millisecond, swapRSS: 30 << 10, consulRSS: 200 << 10, consulPassing: 1000, load0: "3.1", load1: "3.4"},
		{targets: 10000, swapShare: 0.40, consulShare: 1.20, swapRate: 10000, consulRate: 900, swapGap99: 15 * time.Millisecond,
			consulGap99: 2500 * time.Millisecond, swapLag: 14 * time.Millisecond, swapRSS: 90 << 10, consulRSS: 900 << 10, consulPassing: 6000},
	}
	got := sweepTable(rs, time.Second, 20*time.Second, "_machine_")
	for _, want := range []string{
		"| 1000 | 5.0% | 5.00% | 40.0% | 40.00% | **0.12** | 1000 | 990 | 50 ms | 404 ms | 11.0 ms | 40.0 ms | 12.0 ms | 30 MiB | 200 MiB | 1000 of 1000 |",
		"| 10000 | 40.0% | 4.00% | 120.0% | 12.00% | **0.33** |", "2500 ms", "6000 of 10000",
		"**not met**", "1000: 3.1 → 3.4", "_machine_"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if got := sweepTable(rs[:1], time.Second, 20*time.Second, ""); !strings.Contains(got, "met at every size") {
		t.Errorf("a sweep under 0.25 does not say the goal is met:\n%s", got)
	}
	img := t.TempDir()
	if err := sweepPlots(rs, img); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bench-health-cpu.png", "bench-health-lag.png"} {
		if st, err := os.Stat(filepath.Join(img, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestSweepTable_NamesASizeThatWasNotMeasured(t *testing.T) {
	rs := []result{{targets: 1000, swapShare: 0.05, consulShare: 0.40, swapRate: 1000}, {targets: 5000, err: errors.New("consul agent has no leader after 1m0s")},
		{targets: 10000, swapShare: 0.4, swapRate: 10000, consulErr: errors.New("the agent did not take 10000 services")}}
	got := sweepTable(rs, time.Second, 20*time.Second, "")
	for _, want := range []string{"| 5000 | not measured |", "Not measured: 5000 targets: consul agent has no leader after 1m0s", "**not met**",
		"| 10000 | 40.0% | 4.00% | – | – | – | 10000 | – | 40 ms | – |", "| 1000 | 5.0% | 5.00% | 40.0% | 40.00% | **0.12** | 1000 | 0 | 50 ms | – | 0.00 ms | – |", "Not measured: the Consul agent at 10000 targets: the agent did not take 10000 services"} {
		if !strings.Contains(got, want) {
			t.Errorf("table lacks %q:\n%s", want, got)
		}
	}
	if err := sweepPlots(rs, t.TempDir()); err != nil {
		t.Errorf("plots of a sweep with a size not measured: %v", err)
	}
}

func TestLogTail_IsTheLastLines(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(p, []byte("a\nb\nc\nd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := logTail(p, 2); got != "c\nd" {
		t.Errorf("logTail = %q", got)
	}
	if got := logTail(p, 10); got != "a\nb\nc\nd" {
		t.Errorf("logTail of a short file = %q", got)
	}
}

func TestStartConsul_AnAgentThatDoesNotStartLeavesNothingBehind(t *testing.T) {
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "healthbench-consul-*"))
	a, err := startConsul("/bin/false", []int{4001}, time.Second, 2*time.Second)
	if err == nil || a != nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("startConsul(/bin/false) = %v, %v; want an error saying the agent exited", a, err)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "healthbench-consul-*"))
	if len(after) > len(before) {
		t.Errorf("directories left: %v (before: %v)", after, before)
	}
}
