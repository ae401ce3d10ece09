package main

import (
	"fmt"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/swap-dev/swap/internal/stack"
	"github.com/swap-dev/swap/switcher"
)

// summary prints what the load saw and the swap's steps; it returns the failed requests.
func (d *demo) summary(sw swapOf, run *stack.Run, load *stack.Load, results []stack.Result) int {
	cut, _ := run.Cutover()
	swapStart, swapEnd := run.Span()
	type counts struct{ before, after int }
	answers := map[string]*counts{}
	var failed counts
	var failures []string
	var lastFrom, firstTo time.Time
	for _, r := range results {
		c := &failed
		if r.OK() {
			if answers[r.Body] == nil {
				answers[r.Body] = &counts{}
			}
			c = answers[r.Body]
		} else if len(failures) < 5 {
			failures = append(failures, r.Failure())
		}
		if r.Sent.Before(cut) {
			c.before++
		} else {
			c.after++
		}
		if r.Body == sw.from && r.Sent.After(lastFrom) {
			lastFrom = r.Sent
		}
		if r.Body == sw.to && (firstTo.IsZero() || r.Sent.Before(firstTo)) {
			firstTo = r.Sent
		}
	}
	total := len(results)
	nFailed := failed.before + failed.after
	span := load.Stopped().Sub(load.Started())

	d.printf("\n== summary of %s\n", sw.cmd)
	w := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "  requests\t%d in %s (%.0f/s), %d workers, 127.0.0.1 only\n", total, span.Round(time.Millisecond), float64(total)/span.Seconds(), load.Workers())
	fmt.Fprintf(w, "  failed\t%d\n", nFailed)
	fmt.Fprintf(w, "  swap\t%s from its first event to its last\n", swapEnd.Sub(swapStart).Round(time.Millisecond))
	fmt.Fprintf(w, "  cutover\t%s, %s into the swap: one `set map` on HAProxy's admin socket\n",
		cut.Format("15:04:05.000"), cut.Sub(swapStart).Round(time.Millisecond))
	if !lastFrom.IsZero() && !firstTo.IsZero() {
		how := "one clean switch"
		if !lastFrom.Before(firstTo) {
			how = "an overlap"
		}
		fmt.Fprintf(w, "  \t%s: %s answered every request sent until %s it, %s every one sent from %s it\n", how,
			sw.fromColor, rel(lastFrom, cut), sw.toColor, rel(firstTo, cut))
		fmt.Fprintf(w, "  \t(swap reports the cutover once it is journaled in Consul, a few ms after HAProxy switched)\n")
	}
	w.Flush()

	d.printf("\n  answers (by when the request was sent)     before cutover   after cutover\n")
	bodies := make([]string, 0, len(answers))
	for b := range answers {
		bodies = append(bodies, b)
	}
	sort.Strings(bodies)
	for _, b := range bodies {
		d.printf("    %-40s %14d %15d\n", b, answers[b].before, answers[b].after)
	}
	d.printf("    %-40s %14d %15d\n", "failed", failed.before, failed.after)
	for _, f := range failures {
		d.printf("      e.g. %s\n", f)
	}

	d.printf("\n  steps of %s\n", sw.cmd)
	var sum time.Duration
	for _, s := range run.Steps() {
		sum += s.Took
		note := stepNote[s.Step]
		if s.Skipped != "" {
			note = "skipped: " + s.Skipped
		}
		d.printf("    %-9s %8s  %s\n", s.Step, s.Took.Round(time.Millisecond), note)
	}
	d.printf("    %-9s %8s\n", "total", sum.Round(time.Millisecond))
	return nFailed
}

// stepNote says what each step of the demo's swap waits on.
var stepNote = map[switcher.Step]string{
	switcher.StepLock:      "Consul session lock swap/locks/<app>",
	switcher.StepPreflight: "Docker, Consul and HAProxy answer, before anything changes",
	switcher.StepPlan:      "read the state in Consul KV, pick the new color and the image",
	switcher.StepStart:     "Docker: create and start 2 containers",
	switcher.StepRegister:  "Consul: service, tags, HTTP check",
	switcher.StepStage:     "HAProxy: add server x2, DOWN until its own checks pass; the old color's as backups",
	switcher.StepGate:      "wait: swap's probe, Consul and HAProxy healthy for min_healthy_time (1s)",
	switcher.StepShift:     "HAProxy: one set map on the admin socket, then routes.map rewritten",
	switcher.StepVerify:    "watch the new color's 5xx and health in three views for the verify window (3s)",
	switcher.StepDrain:     "the old color's backups out, then wait until it has no sessions",
	switcher.StepRetire:    "HAProxy del server x2, Consul deregister, docker stop + rm x2",
	switcher.StepCleanup:   "remove old images swap ran, beyond retain, and failed deploys' images",
	switcher.StepCommit:    "write the state and history, release the lock",
}

// rel says when t was relative to ref: "12ms before" or "3ms after".
func rel(t, ref time.Time) string {
	d := t.Sub(ref).Round(time.Millisecond)
	if d < 0 {
		return (-d).String() + " before"
	}
	return d.String() + " after"
}
