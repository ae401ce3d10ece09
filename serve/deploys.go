package serve

import (
	"sync"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// deploy is one operation the daemon runs: its events as they come, then its result.
// Readers follow it with wait: a channel closed at the next change.
type deploy struct {
	app, op string
	started time.Time

	mu sync.Mutex
	id string // the swap's deploy ID, once an event carried it
	// ran: an event named the deploy, so its swap got past its plan (else it was
	// refused, or had nothing to do, and id is one of the server's).
	ran      bool
	events   []switcher.Event
	finished time.Time
	result   *switcher.Result
	errText  string
	err      error
	code     int  // the CLI's exit code for the outcome
	done     bool // result, errText and code are final
	changed  chan struct{}
	// identified is closed once id is known or the operation ended.
	identified chan struct{}
}

func newDeploy(app, op string, now time.Time) *deploy {
	return &deploy{app: app, op: op, started: now, changed: make(chan struct{}), identified: make(chan struct{})}
}

// named reports whether the deploy has its ID.
func (d *deploy) named() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.id != ""
}

// add appends e; the first event that carries the swap's deploy ID names the deploy,
// and it is returned (once) so the server can index it.
func (d *deploy) add(e switcher.Event) (named string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.done {
		return ""
	}
	d.events = append(d.events, e)
	if d.id == "" && e.Deploy != "" {
		d.id, d.ran = e.Deploy, true
		named = d.id
		close(d.identified)
	}
	d.broadcastLocked()
	return named
}

// finish records the outcome. A deploy that never learnt its swap's ID (it failed
// before its plan, or there was nothing to do) keeps fallbackID.
func (d *deploy) finish(res *switcher.Result, err error, code int, fallbackID string, now time.Time) (named string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.result, d.err, d.code, d.done, d.finished = res, err, code, true, now
	if err != nil {
		d.errText = err.Error()
	}
	if d.id == "" {
		d.id = fallbackID
		named = d.id
		close(d.identified)
	}
	d.broadcastLocked()
	return named
}

func (d *deploy) broadcastLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// since returns the events from index i on, whether the deploy is over, and a channel
// closed at the next change.
func (d *deploy) since(i int) ([]switcher.Event, bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var evs []switcher.Event
	if i < len(d.events) {
		evs = append(evs, d.events[i:]...)
	}
	return evs, d.done, d.changed
}

// View is a deploy as the API shows it.
type View struct {
	Deploy   string              `json:"deploy"`
	App      string              `json:"app"`
	Op       string              `json:"op"`
	State    string              `json:"state"` // running, waiting (in preview, for promote) or finished
	Started  time.Time           `json:"started"`
	Finished time.Time           `json:"finished,omitzero"`
	Outcome  string              `json:"outcome,omitempty"`
	ExitCode *int                `json:"exit_code,omitempty"`
	Error    string              `json:"error,omitempty"`
	Steps    []switcher.StepTime `json:"steps,omitempty"`
	Events   int                 `json:"events"`
	Result   *switcher.Result    `json:"result,omitempty"`
	ran      bool
	err      error
}

// States of a deploy.
const (
	StateRunning  = "running"
	StateWaiting  = "waiting"
	StateFinished = "finished"
)

func (d *deploy) view() View {
	d.mu.Lock()
	defer d.mu.Unlock()
	v := View{Deploy: d.id, App: d.app, Op: d.op, State: StateRunning, Started: d.started, Events: len(d.events), ran: d.ran}
	if !d.done {
		return v
	}
	v.State, v.Finished, v.Error, v.Result, v.err = StateFinished, d.finished, d.errText, d.result, d.err
	code := d.code
	v.ExitCode = &code
	if d.result != nil {
		v.Outcome, v.Steps = d.result.Outcome, d.result.Steps
		if d.result.Outcome == switcher.OutcomeWaiting {
			v.State = StateWaiting
		}
	} else if d.errText != "" {
		v.Outcome = switcher.OutcomeFailed
	}
	return v
}
