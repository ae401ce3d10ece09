package stack

import (
	"bufio"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// readRun parses testdata/deploy.jsonl: the --output json of a real
// `swap deploy probe --image swap-demo/probe:v1` (green -> blue, 3s verify window).
func readRun(t *testing.T) (*Run, []switcher.Event) {
	t.Helper()
	f, err := os.Open("testdata/deploy.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r := &Run{}
	var heard []switcher.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if err := r.parseLine(sc.Bytes(), func(e switcher.Event) { heard = append(heard, e) }); err != nil {
			t.Fatal(err)
		}
	}
	return r, heard
}

func TestRun_ReadsEveryEventAndTheResultOfARealSwap(t *testing.T) {
	r, heard := readRun(t)
	if len(r.Events) != 43 || len(heard) != len(r.Events) {
		t.Fatalf("%d events, %d heard; want the 43 event lines", len(r.Events), len(heard))
	}
	if r.Result == nil || r.Result.Outcome != switcher.OutcomeDone || r.Result.Plan.From != "green" || r.Result.Plan.To != "blue" {
		t.Fatalf("result %+v, want done green -> blue", r.Result)
	}
	if r.Error != "" {
		t.Errorf("error %q, want none", r.Error)
	}
}

func TestRun_StepsTakeTheirTimesFromDoneEventsAndKeepSkipMessages(t *testing.T) {
	r, _ := readRun(t)
	steps := r.Steps()
	var names []string
	for _, s := range steps {
		names = append(names, string(s.Step))
	}
	want := "lock plan start register stage gate preview shift verify drain retire cleanup commit"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("steps %q, want %q", got, want)
	}
	tests := []struct {
		step    switcher.Step
		took    time.Duration
		skipped string
	}{
		{switcher.StepLock, 9050232, ""},
		{switcher.StepGate, 1517902290, ""},
		{switcher.StepRetire, 2867855149, ""},
		{switcher.StepPreview, 2147618, "no preview frontend configured"},
	}
	for _, tc := range tests {
		t.Run(string(tc.step), func(t *testing.T) {
			for _, s := range steps {
				if s.Step == tc.step {
					if s.Took != tc.took || s.Skipped != tc.skipped {
						t.Fatalf("%s = %v %q, want %v %q", tc.step, s.Took, s.Skipped, tc.took, tc.skipped)
					}
					if r.Took(tc.step) != tc.took {
						t.Fatalf("Took(%s) = %v, want %v", tc.step, r.Took(tc.step), tc.took)
					}
					return
				}
			}
			t.Fatalf("no step %s", tc.step)
		})
	}
	// The result line's steps agree with the events' for every step it lists.
	for _, st := range r.Result.Steps {
		if got := r.Took(st.Step); got != st.Duration {
			t.Errorf("%s: events say %v, the result %v", st.Step, got, st.Duration)
		}
	}
}

func TestRun_CutoverIsTheShiftsRouteEventInsideTheSpan(t *testing.T) {
	r, _ := readRun(t)
	cut, ok := r.Cutover()
	if !ok {
		t.Fatal("no cutover found")
	}
	want := time.Date(2026, 11, 22, 3, 7, 19, 0, time.UTC)
	if cut.Truncate(time.Second) != want {
		t.Errorf("cutover %v, want within %v", cut, want)
	}
	start, end := r.Span()
	if !start.Before(cut) || !cut.Before(end) {
		t.Errorf("cutover %v outside the swap's span %v..%v", cut, start, end)
	}
	var route switcher.Event
	for _, e := range r.Events {
		if e.Time.Equal(cut) {
			route = e
		}
	}
	if route.Step != switcher.StepShift || !strings.Contains(route.Message, "now routes to probe_blue") {
		t.Errorf("cutover event %+v, want the shift's route change", route)
	}
}

func TestRun_CutoverFallsBackToTheShiftsDoneEvent(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	r := &Run{Events: []switcher.Event{
		{Time: at.Add(-time.Second), Step: switcher.StepShift, Kind: switcher.EventStart},
		{Time: at, Step: switcher.StepShift, Kind: switcher.EventDone},
	}}
	if cut, ok := r.Cutover(); !ok || !cut.Equal(at) {
		t.Fatalf("Cutover = %v %v, want %v", cut, ok, at)
	}
	if _, ok := (&Run{}).Cutover(); ok {
		t.Fatal("a run without a shift has a cutover")
	}
}

func TestRun_RefusesLinesThatAreNotSwapsJSON(t *testing.T) {
	tests := []struct {
		name, line string
	}{
		{"text output", "   0.01s ✓ lock         3ms  lock held"},
		{"an event of the wrong shape", `{"type":"event","time":"yesterday"}`},
		{"a result of the wrong shape", `{"type":"result","result":"done"}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := (&Run{}).parseLine([]byte(tc.line), nil); err == nil {
				t.Fatalf("parseLine(%q) = nil, want an error", tc.line)
			}
		})
	}
}
