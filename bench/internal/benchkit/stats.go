// Package benchkit is what swap's benchmark programs (bench/*) share: order statistics
// over samples, a description of the machine they ran on, the splicing of their
// Markdown tables into docs/benchmarks.md, and PNG plots (gonum/plot). It holds no
// measurement of its own.
package benchkit

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Summary is the order statistics of a set of duration samples. Quantiles are nearest
// rank: P95 of 20 samples is the 19th smallest.
type Summary struct {
	N                          int
	Min, Median, P95, P99, Max time.Duration
}

// Summarize returns the summary of samples (the zero Summary for none).
func Summarize(samples []time.Duration) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	return Summary{N: len(s), Min: s[0], Median: Quantile(s, 0.5), P95: Quantile(s, 0.95),
		P99: Quantile(s, 0.99), Max: s[len(s)-1]}
}

// Quantile is the nearest-rank q-quantile (0 < q <= 1) of sorted, which must be sorted
// and not empty.
func Quantile(sorted []time.Duration, q float64) time.Duration {
	k := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(k, 0), len(sorted)-1)]
}

// Ms formats d in milliseconds with a precision that suits its size: "0.42", "12.3",
// "1234".
func Ms(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms < 10:
		return fmt.Sprintf("%.2f", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f", ms)
	}
	return fmt.Sprintf("%.0f", ms)
}

// Verdict is how a report says whether a goal was reached: "met" or "**not met**".
func Verdict(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

// Row is the summary as Markdown table cells: "n | median | p95 | p99 | max" (ms).
func (s Summary) Row() string {
	if s.N == 0 {
		return "0 | – | – | – | –"
	}
	return fmt.Sprintf("%d | %s | %s | %s | %s", s.N, Ms(s.Median), Ms(s.P95), Ms(s.P99), Ms(s.Max))
}

// RowHeader is the header matching Row.
const RowHeader = "n | median ms | p95 ms | p99 ms | max ms"
