package serve

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// The read side of the API: apps, history, deploys and their event streams, readiness.

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	out := []*switcher.AppStatus{}
	for _, app := range s.opts.Apps {
		st, err := s.op.Status(r.Context(), app)
		if err != nil {
			s.readError(w, err)
			return
		}
		out = append(out, st)
	}
	writeJSON(w, http.StatusOK, out)
}

// knownApp answers 404 unless app is configured.
func (s *Server) knownApp(w http.ResponseWriter, app string) bool {
	if slices.Contains(s.opts.Apps, app) {
		return true
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("unknown app %q: the config has %v", app, s.opts.Apps))
	return false
}

func (s *Server) appStatus(w http.ResponseWriter, r *http.Request) {
	readApp(s, w, r, s.op.Status)
}

func (s *Server) appHistory(w http.ResponseWriter, r *http.Request) {
	readApp(s, w, r, func(ctx context.Context, app string) ([]switcher.Record, error) {
		h, err := s.op.History(ctx, app)
		if h == nil {
			h = []switcher.Record{} // [] in JSON, not null
		}
		return h, err
	})
}

// readApp answers a read of the app in the request's path: what read says of it as
// JSON, 404 for an app the config does not have, readError's status when read fails.
func readApp[T any](s *Server, w http.ResponseWriter, r *http.Request, read func(context.Context, string) (T, error)) {
	app := r.PathValue("app")
	if !s.knownApp(w, app) {
		return
	}
	v, err := read(r.Context(), app)
	if err != nil {
		s.readError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// readError answers a failed read: 503 when a dependency does not answer.
func (s *Server) readError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch s.opts.ExitCode(err) {
	case 2:
		status = http.StatusBadRequest
		if errors.Is(err, deployments.ErrUnknownApp) {
			status = http.StatusNotFound
		}
	case 4:
		status = http.StatusServiceUnavailable
	}
	writeError(w, status, err.Error())
}

func (s *Server) find(w http.ResponseWriter, r *http.Request) *deploy {
	id := r.PathValue("id")
	s.mu.Lock()
	d := s.deploys[id]
	s.mu.Unlock()
	if d == nil {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no deploy %q: this swap serve ran none of that ID (or it is too old, or from before its start)", id))
	}
	return d
}

func (s *Server) deployView(w http.ResponseWriter, r *http.Request) {
	if d := s.find(w, r); d != nil {
		writeJSON(w, http.StatusOK, d.view())
	}
}

// Final is the last message of an event stream: the deploy as it ended.
type Final = View

// deployEvents streams a deploy's progress as Server-Sent Events: every event so far,
// then each new one as it comes (`event: event`, data the switcher.Event as JSON), and
// last `event: result` with the deploy's final View (outcome, exit_code, error), then
// the stream ends. A comment line every 15s keeps proxies from closing an idle stream.
func (s *Server) deployEvents(w http.ResponseWriter, r *http.Request) {
	d := s.find(w, r)
	if d == nil {
		return
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "streaming is not supported by this connection")
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher.Flush()
	keepAlive := time.NewTicker(15 * time.Second)
	defer keepAlive.Stop()
	next := 0
	for {
		evs, done, changed := d.since(next)
		for _, e := range evs {
			if err := writeSSE(w, "event", e); err != nil {
				return
			}
		}
		next += len(evs)
		if done {
			_ = writeSSE(w, "result", d.view())
			flusher.Flush()
			return
		}
		flusher.Flush()
		select {
		case <-changed:
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		}
	}
}

func writeSSE(w http.ResponseWriter, event string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, b)
	return err
}

// Readiness is GET /readyz's answer.
type Readiness struct {
	Status string `json:"status"` // "ready" or "not ready"
	// Error says what is not ready: the dependencies that do not answer, and the
	// reconcile loop's apps whose last pass failed.
	Error string `json:"error,omitempty"`
	// Reconcile is the reconcile loop's state, when it runs.
	Reconcile *switcher.LoopStatus `json:"reconcile,omitempty"`
}

// ready is GET /readyz: 200 when Docker, Consul and every HAProxy answer and the
// reconcile loop (when it runs) is in sync — every app's last pass worked — else 503
// saying what is not.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	var errs []error
	if err := s.op.Ping(ctx); err != nil {
		errs = append(errs, err)
	}
	var ans Readiness
	if s.opts.Loop != nil {
		st := s.opts.Loop.Status()
		ans.Reconcile = &st
		if err := st.InSync(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		ans.Status, ans.Error = "not ready", err.Error()
		writeJSON(w, http.StatusServiceUnavailable, ans)
		return
	}
	ans.Status = "ready"
	writeJSON(w, http.StatusOK, ans)
}
