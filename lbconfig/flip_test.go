package lbconfig

import (
	"context"
	"testing"
	"time"
)

// TestAMapFlipUnderLoadFailsNoRequest sends at least 20,000 requests through HAProxy,
// over keep-alive and Connection: close connections, while the route flips from blue to
// green half-way through. No request may fail, and no request sent after the flip call
// returned may be answered by blue.
func TestAMapFlipUnderLoadFailsNoRequest(t *testing.T) {
	env := startLayout(t, loadLayout)
	ctx := testCtx(t)
	routes := env.layout.RoutesMap()
	// Two servers per color, so HAProxy balances within a color too.
	backends := loadServers(t, env, 2)
	blue, blue2 := backends["blue"][0], backends["blue"][1]
	fleet, err := NewFleet(nil, WriteOptions{}, Instance{Client: env.c})
	must(t, err)
	must(t, fleet.Flip(ctx, routes, "app.test", "app_blue"))
	blue.record.Store(true)
	blue2.record.Store(true)

	var flipCalled, flipReturned time.Time
	var flipErr error
	l := &load{
		addr: env.layout.Frontend.Bind, host: "app.test",
		keepAlive: 4, close: 2, n: 24000,
		atHalf: func() {
			flipCalled = time.Now()
			flipErr = fleet.Flip(ctx, routes, "app.test", "app_green")
			flipReturned = time.Now()
		},
	}
	lctx, cancel := context.WithTimeout(ctx, 3*time.Minute) // a bound, not an assertion
	defer cancel()
	l.run(lctx)
	if flipErr != nil {
		t.Fatalf("flip: %v", flipErr)
	}
	if flipReturned.IsZero() {
		t.Fatal("the load never reached half-way")
	}

	results := l.results()
	var failed, blueN, greenN, lateBlue int
	for _, r := range results {
		if r.err != nil || r.status != 200 {
			failed++
			if failed <= 5 {
				t.Errorf("request failed: status %d %q, %v", r.status, r.body, r.err)
			}
			continue
		}
		switch r.color {
		case "blue":
			blueN++
			if r.sent.After(flipReturned) {
				lateBlue++
			}
		case "green":
			greenN++
		default:
			t.Errorf("a response from %q", r.color)
		}
	}
	if len(results) < 20000 {
		t.Fatalf("only %d requests were sent (want at least 20,000)", len(results))
	}
	if failed != 0 {
		if out, err := env.h.Exec("show stat -1 6 -1"); err == nil {
			t.Logf("show stat:\n%s", out)
		}
		t.Fatalf("%d of %d requests failed", failed, len(results))
	}
	if lateBlue != 0 {
		t.Fatalf("%d requests sent after the flip returned were answered by blue", lateBlue)
	}
	if blueN == 0 || greenN == 0 {
		t.Fatalf("blue %d, green %d: the flip did not happen under load", blueN, greenN)
	}
	bothOnOneConn := false
	for _, w := range l.workers {
		if w.keepAlive && w.colorsSeen["blue"] && w.colorsSeen["green"] {
			bothOnOneConn = true
		}
	}
	if !bothOnOneConn {
		t.Fatal("no keep-alive connection saw both colors: the next request on a connection must follow the flip")
	}
	// For the record: blue may still start a request HAProxy routed before the flip
	// committed, a few microseconds after the flip call returned; requests sent after
	// the flip never go there (checked above).
	late := 0
	for _, b := range []*backend{blue, blue2} {
		b.mu.Lock()
		for _, s := range b.starts {
			if s.After(flipReturned) {
				late++
			}
		}
		b.mu.Unlock()
	}
	t.Logf("%d requests (%d blue, %d green), 0 failed; flip call %v; blue handler starts after the flip returned: %d",
		len(results), blueN, greenN, flipReturned.Sub(flipCalled), late)
}
