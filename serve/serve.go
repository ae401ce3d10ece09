// Package serve is `swap serve`: the daemon that runs swaps for deploy pipelines over an
// authenticated HTTP API (JSON in and out, Server-Sent Events for progress), with
// /metrics, /healthz and /readyz. Every swap it runs goes through the same switcher as
// the CLI: the same lock, journal and steps. Client is the other end, for `swap --server`.
package serve

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/switcher"
)

// Operator runs swaps and reads their state: *switcher.Switcher.
type Operator interface {
	Deploy(ctx context.Context, app, image string, opts switcher.Options) (*switcher.Result, error)
	Switch(ctx context.Context, app string, color deployments.Color, opts switcher.Options) (*switcher.Result, error)
	Rollback(ctx context.Context, app string, opts switcher.Options) (*switcher.Result, error)
	Promote(ctx context.Context, app string, opts switcher.Options) (*switcher.Result, error)
	Abort(ctx context.Context, app string, opts switcher.Options) (*switcher.Result, error)
	Resume(ctx context.Context, app string, opts switcher.Options) (*switcher.Result, error)
	Status(ctx context.Context, app string) (*switcher.AppStatus, error)
	History(ctx context.Context, app string) ([]switcher.Record, error)
	Ping(ctx context.Context) error
}

var _ Operator = (*switcher.Switcher)(nil)

// ReconcileLoop is the reconcile loop's state: *switcher.Reconciler.
type ReconcileLoop interface {
	Status() switcher.LoopStatus
}

var _ ReconcileLoop = (*switcher.Reconciler)(nil)

// Options configure a Server.
type Options struct {
	// Apps are the configured apps' names.
	Apps []string
	// Token is the bearer token every /v1 request must carry ("" only on a unix socket).
	Token string
	// Metrics serves /metrics.
	Metrics bool
	// Meter is what /metrics shows and the server counts into (nil: a set of its
	// own). Make it first (NewMetrics) to feed it what the server does not see itself:
	// HAProxy's commands (Metrics.HAProxyCommand) and the reconcile loop's passes
	// (Metrics.ReconcilePass).
	Meter *Metrics
	// Loop is the reconcile loop /readyz reports on (nil: none runs).
	Loop ReconcileLoop
	// ExitCode classifies an operation's error the way the CLI's exit code does
	// (0 done, 1 failed, 2 bad input, 3 busy, 4 unreachable).
	ExitCode func(error) int
	Log      *zap.Logger
}

// Server is the daemon's HTTP API. Feed it the switcher's events (Event) and serve
// Handler; Drain waits for the swaps it runs.
type Server struct {
	op   Operator
	opts Options
	log  *zap.Logger
	mux  *http.ServeMux
	met  *Metrics

	// base is the context of every swap the server runs: cancelled by Drain when its
	// wait is over.
	base   context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	stopping bool
	deploys  map[string]*deploy   // by deploy ID
	running  map[string][]*deploy // by app: not finished
	idem     map[string]*deploy   // by app, op and Idempotency-Key
	order    []string             // deploy IDs, oldest first, for trimming
}

// maxDeploys is how many finished deploys the server remembers.
const maxDeploys = 500

// New returns a Server running swaps through op.
func New(op Operator, opts Options) *Server {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.ExitCode == nil {
		opts.ExitCode = func(err error) int {
			if err == nil {
				return 0
			}
			return 1
		}
	}
	s := &Server{op: op, opts: opts, log: opts.Log, mux: http.NewServeMux(),
		deploys: map[string]*deploy{}, running: map[string][]*deploy{}, idem: map[string]*deploy{}}
	s.base, s.cancel = context.WithCancel(context.Background())
	s.met = opts.Meter
	if s.met == nil {
		s.met = NewMetrics()
	}
	if opts.Loop != nil {
		s.met.loopApps(opts.Apps)
	}
	s.routes()
	return s
}

// Handler is the whole API.
func (s *Server) Handler() http.Handler { return s.mux }

func (s *Server) routes() {
	for _, op := range []string{"deploy", "switch", "rollback", "promote", "abort", "resume"} {
		s.mux.Handle("POST /v1/apps/{app}/"+op, s.auth(s.start(op)))
	}
	s.mux.Handle("GET /v1/apps", s.auth(http.HandlerFunc(s.listApps)))
	s.mux.Handle("GET /v1/apps/{app}", s.auth(http.HandlerFunc(s.appStatus)))
	s.mux.Handle("GET /v1/apps/{app}/history", s.auth(http.HandlerFunc(s.appHistory)))
	s.mux.Handle("GET /v1/deploys/{id}", s.auth(http.HandlerFunc(s.deployView)))
	s.mux.Handle("GET /v1/deploys/{id}/events", s.auth(http.HandlerFunc(s.deployEvents)))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "alive"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	if s.opts.Metrics {
		s.mux.Handle("GET /metrics", s.met.handler())
	}
}

// auth lets a request through when it carries the token: `Authorization: Bearer <t>`,
// compared in constant time (of the digests, so the length leaks nothing either).
func (s *Server) auth(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.opts.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Token != "" {
			got, ok := bearer(r)
			sum := sha256.Sum256([]byte(got))
			if !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="swap"`)
				writeError(w, http.StatusUnauthorized, "missing or wrong bearer token: send `Authorization: Bearer <token>` (the token of SWAP_SERVE_TOKEN or serve.token_file)")
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const prefix = "Bearer "
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return "", false
	}
	return h[len(prefix):], true
}

// Event hears the switcher's events (set it as the switcher's OnEvent): each goes to the
// deploy it belongs to, by app and deploy ID.
func (s *Server) Event(e switcher.Event) {
	s.met.event(e)
	s.mu.Lock()
	defer s.mu.Unlock()
	var d *deploy
	if e.Deploy != "" {
		d = s.deploys[e.Deploy]
	}
	if d == nil {
		// Not named yet: the app's newest deploy waiting for its ID (events before the
		// plan carry none), else the newest running one (a swap repaired first).
		r := s.running[e.App]
		for i := len(r) - 1; i >= 0 && d == nil; i-- {
			if !r[i].named() {
				d = r[i]
			}
		}
		if d == nil && len(r) > 0 {
			d = r[len(r)-1]
		}
	}
	if d == nil {
		return
	}
	if id := d.add(e); id != "" {
		s.nameLocked(d, id)
	}
}

// nameLocked indexes d under its new ID.
func (s *Server) nameLocked(d *deploy, id string) {
	if _, ok := s.deploys[id]; ok {
		return // a repeat of an ID (a resume of the same deploy): keep the first
	}
	s.deploys[id] = d
	s.order = append(s.order, id)
	for len(s.order) > maxDeploys {
		old := s.deploys[s.order[0]]
		if old != nil && !old.view().Finished.IsZero() {
			delete(s.deploys, s.order[0])
		}
		s.order = s.order[1:]
	}
}

// request is a POST's body.
type request struct {
	Image  string `json:"image"`
	Color  string `json:"color"`
	DryRun bool   `json:"dry_run"`
	// Wait is how long to wait for a busy lock, a Go duration ("" fails at once: 409).
	Wait string `json:"wait"`
}

// Accepted is the answer to a POST: the deploy to follow.
type Accepted struct {
	Deploy  string `json:"deploy"`
	App     string `json:"app"`
	Op      string `json:"op"`
	State   string `json:"state"`
	Outcome string `json:"outcome,omitempty"`
	Message string `json:"message,omitempty"`
	Status  string `json:"status_url"`
	Events  string `json:"events_url"`
}

// start is POST /v1/apps/{app}/<op>: it checks the request, runs the operation in the
// daemon and answers once the swap is named (202), or when it ended before (a refusal:
// 4xx with the reason; nothing to do: 200).
func (s *Server) start(op string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app := r.PathValue("app")
		if !s.knownApp(w, app) {
			return
		}
		var req request
		if r.ContentLength != 0 {
			dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				writeError(w, http.StatusBadRequest, fmt.Sprintf("the body is not a JSON object of this operation: %v (send e.g. {\"image\": \"web:v2\"})", err))
				return
			}
		}
		run, err := s.operation(op, app, req)
		if err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		key := r.Header.Get("Idempotency-Key")
		d, fresh, err := s.launch(app, op, key, run)
		if err != nil {
			writeError(w, http.StatusServiceUnavailable, err.Error())
			return
		}
		if !fresh {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		s.answer(w, r, d)
	})
}

// operation checks req for op and returns the call that runs it.
func (s *Server) operation(op, app string, req request) (func(context.Context) (*switcher.Result, error), error) {
	opts := switcher.Options{DryRun: req.DryRun}
	if req.Wait != "" {
		d, err := time.ParseDuration(req.Wait)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("wait %q: use a Go duration like 30s", req.Wait)
		}
		opts.Wait = d
	}
	if req.Image != "" && op != "deploy" {
		return nil, fmt.Errorf("%s takes no image (only deploy does)", op)
	}
	if req.Color != "" && op != "switch" {
		return nil, fmt.Errorf("%s takes no color (only switch does)", op)
	}
	switch op {
	case "deploy":
		if req.Image != "" {
			if err := deployments.CheckImageRef(req.Image); err != nil {
				return nil, fmt.Errorf("image: %w", err)
			}
		}
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Deploy(ctx, app, req.Image, opts) }, nil
	case "switch":
		c, err := deployments.ParseColor(req.Color)
		if err != nil {
			return nil, fmt.Errorf("color: %w", err)
		}
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Switch(ctx, app, c, opts) }, nil
	case "rollback":
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Rollback(ctx, app, opts) }, nil
	case "promote":
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Promote(ctx, app, opts) }, nil
	case "abort":
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Abort(ctx, app, opts) }, nil
	case "resume":
		return func(ctx context.Context) (*switcher.Result, error) { return s.op.Resume(ctx, app, opts) }, nil
	}
	return nil, fmt.Errorf("unknown operation %q", op)
}

// errStopping refuses new swaps once SIGTERM came.
var errStopping = errors.New("swap serve is stopping: no new swap is started")

// launch runs the operation in the background, or returns the deploy an earlier
// request with the same Idempotency-Key started.
func (s *Server) launch(app, op, key string, run func(context.Context) (*switcher.Result, error)) (*deploy, bool, error) {
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return nil, false, errStopping
	}
	ikey := ""
	if key != "" {
		ikey = app + "\x00" + op + "\x00" + key
		if d, ok := s.idem[ikey]; ok {
			s.mu.Unlock()
			return d, false, nil
		}
	}
	d := newDeploy(app, op, time.Now())
	if ikey != "" {
		s.idem[ikey] = d
	}
	s.running[app] = append(s.running[app], d)
	s.wg.Add(1)
	s.mu.Unlock()

	go func() {
		defer s.wg.Done()
		start := time.Now()
		res, err := run(s.base)
		code := s.opts.ExitCode(err)
		s.met.finished(app, op, res, err, time.Since(start))
		s.mu.Lock()
		defer s.mu.Unlock()
		if id := d.finish(res, err, code, newID(), time.Now()); id != "" {
			s.nameLocked(d, id)
		}
		s.running[app] = slices.DeleteFunc(s.running[app], func(x *deploy) bool { return x == d })
	}()
	return d, true, nil
}

// newID names a deploy that never got a swap's ID.
func newID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "op-" + time.Now().UTC().Format("20060102-150405") + "-" + hex.EncodeToString(b[:])
}

// answer replies to a POST once the deploy is named or over.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, d *deploy) {
	select {
	case <-d.identified:
	case <-r.Context().Done():
		return
	}
	v := d.view()
	a := Accepted{Deploy: v.Deploy, App: v.App, Op: v.Op, State: v.State, Outcome: v.Outcome,
		Status: "/v1/deploys/" + v.Deploy, Events: "/v1/deploys/" + v.Deploy + "/events"}
	if v.ran || v.Error == "" {
		if v.Result != nil {
			a.Message = v.Result.Message
		}
		status := http.StatusAccepted
		if v.Outcome == switcher.OutcomeNothing || v.Outcome == switcher.OutcomeDryRun {
			status = http.StatusOK
		}
		writeJSON(w, status, a)
		return
	}
	// It ended with an error before its swap got past its plan: a refusal, answered
	// as such.
	status := http.StatusInternalServerError
	switch *v.ExitCode {
	case 2:
		status = http.StatusBadRequest
	case 3:
		status = http.StatusConflict
	case 4:
		status = http.StatusServiceUnavailable
	}
	if errors.Is(v.err, switcher.ErrNothingToDo) || errors.Is(v.err, switcher.ErrNoPrevious) {
		status = http.StatusConflict // nothing to promote, abort or roll back to
	}
	writeJSON(w, status, map[string]any{"error": v.Error, "exit_code": *v.ExitCode, "deploy": v.Deploy})
}

// Drain stops starting swaps, waits up to wait for the running ones, then cancels them
// (before its shift a swap then rolls back; after, it stops between steps and leaves its
// journal for `swap resume`) and waits for them to return.
func (s *Server) Drain(wait time.Duration) {
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
		s.log.Warn("swaps still running after the shutdown timeout: cancelling them", zap.Duration("waited", wait))
		s.cancel()
		<-done
	}
}

// Running reports how many swaps the server runs now.
func (s *Server) Running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.running {
		n += len(r)
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
