package switcher

import (
	"time"
)

// Step names one step of a swap. The same names appear in events, the journal, logs
// and swap serve's metrics (swap_step_duration_seconds{step}); docs/cli.md lists them.
type Step string

// The steps, in order.
const (
	StepLock     Step = "lock"
	StepPlan     Step = "plan"
	StepStart    Step = "start"
	StepRegister Step = "register"
	StepStage    Step = "stage"
	StepGate     Step = "gate"
	StepPreview  Step = "preview"
	StepShift    Step = "shift"
	StepVerify   Step = "verify"
	StepDrain    Step = "drain"
	StepRetire   Step = "retire"
	StepCleanup  Step = "cleanup"
	StepCommit   Step = "commit"
	// StepRollback and StepResume are not steps of a swap but of its repair.
	StepRollback Step = "rollback"
	StepResume   Step = "resume"
)

// Steps lists a swap's steps in order.
var Steps = []Step{StepLock, StepPlan, StepStart, StepRegister, StepStage, StepGate,
	StepPreview, StepShift, StepVerify, StepDrain, StepRetire, StepCleanup, StepCommit}

// order is a step's position in Steps (rollback and resume come last).
func (s Step) order() int {
	for i, x := range Steps {
		if x == s {
			return i
		}
	}
	return len(Steps)
}

// EventKind says what an Event reports.
type EventKind string

// The event kinds.
const (
	EventStart  EventKind = "start"  // a step begins
	EventDone   EventKind = "done"   // a step ended well
	EventFailed EventKind = "failed" // a step failed
	EventSkip   EventKind = "skip"   // a step had nothing to do
	EventInfo   EventKind = "info"   // progress inside a step
)

// Event is one thing that happened during a swap.
type Event struct {
	Time     time.Time     `json:"time"`
	App      string        `json:"app"`
	Deploy   string        `json:"deploy,omitempty"`
	Step     Step          `json:"step"`
	Kind     EventKind     `json:"kind"`
	Message  string        `json:"message,omitempty"`
	Instance string        `json:"instance,omitempty"`
	Elapsed  time.Duration `json:"elapsed,omitempty"` // for done and failed: the step's duration
}
