package main

import (
	"testing"
)

func TestAggregate(t *testing.T) {
	agg := aggregate([]point{
		{path: "direct", conns: 8, rps: 1000},
		{path: "haproxy", conns: 8, rps: 700, connect: 8, reuse: 992, failed: 1},
		{path: "direct", conns: 8, rps: 3000},
		{path: "haproxy", conns: 8, rps: 900, connect: 2, reuse: 998},
	})
	d, h := agg["direct"][8], agg["haproxy"][8]
	if d.Mean() != 2000 || h.Mean() != 800 || h.Failed != 1 {
		t.Fatalf("direct %+v haproxy %+v", d, h)
	}
	if r := h.ReuseRatio(); r != 0.995 {
		t.Fatalf("reuse ratio %v", r)
	}
	if (Aggregate{}).ReuseRatio() != 0 || (Aggregate{}).Mean() != 0 {
		t.Fatal("empty aggregate")
	}
	if rpsCell([]float64{1234.4, 99.6}) != "1234 / 100" {
		t.Fatal(rpsCell([]float64{1234.4, 99.6}))
	}
}
