package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// progress renders a swap's events: one line per step (and per notable thing inside
// one) with timings, or JSON lines with --output json.
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	json bool
	t0   time.Time
}

func newProgress(w io.Writer, jsonLines bool) *progress {
	return &progress{w: w, json: jsonLines, t0: time.Now()}
}

var kindMark = map[switcher.EventKind]string{
	switcher.EventStart:  "…",
	switcher.EventDone:   "✓",
	switcher.EventFailed: "✗",
	switcher.EventSkip:   "-",
	switcher.EventInfo:   " ",
}

func (p *progress) event(e switcher.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		_ = json.NewEncoder(p.w).Encode(struct {
			Type string `json:"type"`
			switcher.Event
		}{"event", e})
		return
	}
	if e.Kind == switcher.EventStart {
		return // the done or failed line says it all, with the time
	}
	took := ""
	if e.Elapsed > 0 {
		took = e.Elapsed.Round(time.Millisecond).String()
	}
	fmt.Fprintf(p.w, "%7.2fs %s %-9s %8s  %s\n", e.Time.Sub(p.t0).Seconds(), kindMark[e.Kind], e.Step, took, e.Message)
}

// result prints the outcome of an operation.
func (p *progress) result(res *switcher.Result, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.json {
		out := struct {
			Type   string           `json:"type"`
			Result *switcher.Result `json:"result,omitempty"`
			Error  string           `json:"error,omitempty"`
		}{Type: "result", Result: res}
		if err != nil {
			out.Error = err.Error()
		}
		_ = json.NewEncoder(p.w).Encode(out)
		return
	}
	if res == nil {
		return
	}
	if res.Message != "" {
		fmt.Fprintln(p.w, res.Message)
	}
	if res.Outcome != "" && res.Outcome != switcher.OutcomeDryRun {
		total := time.Duration(0)
		for _, s := range res.Steps {
			total += s.Duration
		}
		fmt.Fprintf(p.w, "%s %s: %s", res.Plan.App, res.Plan.Op, res.Outcome)
		if res.Plan.To != "" && res.Outcome == switcher.OutcomeDone {
			fmt.Fprintf(p.w, ", %s live with %s", res.Plan.To, res.Plan.Image)
		}
		if total > 0 {
			fmt.Fprintf(p.w, " (%s)", total.Round(time.Millisecond))
		}
		fmt.Fprintln(p.w)
	}
}
