package main

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/bench/internal/benchkit"
)

// published runs report without -doc and -img and returns what it printed.
func published(t *testing.T, methods []*method) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout := os.Stdout
	os.Stdout = w
	err = report(&benchkit.Options{Command: "go run ./bench/reconcilebench"}, benchkit.Machine{CPUs: 2}, nil, methods)
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func ms(v ...float64) []time.Duration {
	var out []time.Duration
	for _, x := range v {
		out = append(out, time.Duration(x*float64(time.Millisecond)))
	}
	return out
}

func TestReport_Goals(t *testing.T) {
	out := published(t, []*method{
		{Name: "swap", Label: "swap watch", out: ms(3, 4, 5, 6, 19), consul: ms(1, 1, 2), back: ms(10), requests: 100},
		{Name: "consul-template", Label: "consul-template", out: ms(100, 110, 120), back: ms(300), lost: 1, requests: 90, failed: 2},
	})
	for _, want := range []string{
		"<!-- bench:reconcile -->",
		"| swap watch | 5 | 5.00 | 19.0 | 19.0 | 19.0 | 1.00 | 10.0 | 100 | 0 | 0 |",
		"| consul-template | 3 | 110 | 120 | 120 | 120 | – | 300 | 90 | 2 | 1 |",
		"swap ≤ 20 ms p99 — 19.0 ms (n = 5): met.",
		"22.0x (medians 5.00 ms vs 110 ms): met.",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	out = published(t, []*method{
		{Name: "swap", Label: "swap watch", out: ms(30, 40, 50)},
		{Name: "consul-template", Label: "consul-template", out: ms(100)},
	})
	for _, want := range []string{"50.0 ms (n = 3): **not met**", "2.5x (medians 40.0 ms vs 100 ms): **not met**"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
