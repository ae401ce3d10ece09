package switcher

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// AppLoopStatus is what the reconcile loop last did for one app.
type AppLoopStatus struct {
	App string `json:"app"`
	// Passes counts the loop's passes (each a Settle), failed ones included.
	Passes      int       `json:"passes"`
	LastPass    time.Time `json:"last_pass,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// LastError is the last failed pass's error, "" once a pass succeeded since.
	LastError string `json:"last_error,omitempty"`
	// Failures counts the failed passes since the last that succeeded.
	Failures int `json:"consecutive_failures"`
}

// InSync says whether HAProxy was in line with Consul for the app at its last pass.
func (s AppLoopStatus) InSync() bool { return s.Passes > 0 && s.Failures == 0 }

// LoopStatus is the reconcile loop's state, app by app (Reconciler.Status).
type LoopStatus struct {
	Apps []AppLoopStatus `json:"apps"`
}

// ErrLoopNotInSync: the reconcile loop's last pass of an app failed, or it has made
// none yet.
var ErrLoopNotInSync = errors.New("the reconcile loop is not in sync")

// InSync returns nil when every app's last pass succeeded, else an error wrapping
// ErrLoopNotInSync that names each app that is not and why.
func (s LoopStatus) InSync() error {
	var why []string
	for _, a := range s.Apps {
		switch {
		case a.Passes == 0:
			why = append(why, a.App+": no pass yet")
		case a.Failures > 0:
			passes := "passes"
			if a.Failures == 1 {
				passes = "pass"
			}
			why = append(why, fmt.Sprintf("%s: %d failed %s in a row since %s, the last: %s",
				a.App, a.Failures, passes, sinceText(a.LastSuccess), a.LastError))
		}
	}
	if len(why) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrLoopNotInSync, strings.Join(why, "; "))
}

func sinceText(t time.Time) string {
	if t.IsZero() {
		return "the start"
	}
	return "the last success at " + t.UTC().Format(time.RFC3339)
}

// PassReport is one pass of the loop (Reconciler.OnPass).
type PassReport struct {
	App    string
	Result PassResult
	Err    error
	// Took is how long the pass (a Settle) took.
	Took time.Duration
	// Lag, for a pass that brought HAProxy in line after the feed reported a change, is
	// the time from the first such change seen to the end of the pass; 0 otherwise (the
	// first pass, a resync, a failed pass).
	Lag time.Duration
}

// Status is the loop's state, for every app of the config.
func (r *Reconciler) Status() LoopStatus {
	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	out := LoopStatus{Apps: []AppLoopStatus{}}
	for _, app := range r.Config.AppNames() {
		st := AppLoopStatus{App: app}
		if s, ok := r.status[app]; ok {
			st = s
		}
		out.Apps = append(out.Apps, st)
	}
	slices.SortFunc(out.Apps, func(a, b AppLoopStatus) int { return strings.Compare(a.App, b.App) })
	return out
}

// recordPass notes a pass in Status and reports it to OnPass.
func (r *Reconciler) recordPass(p PassReport, end time.Time) {
	r.statusMu.Lock()
	if r.status == nil {
		r.status = map[string]AppLoopStatus{}
	}
	s := r.status[p.App]
	s.App = p.App
	s.Passes++
	s.LastPass = end
	if p.Err != nil {
		s.Failures++
		s.LastError = p.Err.Error()
	} else {
		s.Failures, s.LastError, s.LastSuccess = 0, "", end
	}
	r.status[p.App] = s
	r.statusMu.Unlock()
	if r.OnPass != nil {
		r.OnPass(p)
	}
}
