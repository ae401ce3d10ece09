// Command demoapp is the application swap deploys in its demo and tests.
//
// It is a static HTTP server configured from the environment:
//
//	PORT         listen port (default 8080)
//	COLOR        reported by / (default: SWAP_COLOR, which swap sets, else "none")
//	VERSION      reported by / (default "dev")
//	START_DELAY  /healthz answers 503 until this Go duration has elapsed
//	HEALTH_FAIL  "1": /healthz always answers 503
//	ERROR_PCT    N: N% of / answers are 500 from the start (as POST /error-rate)
//
// Endpoints:
//
//	GET  /                   "color=<c> version=<v>" (or 500 for the share set by /error-rate),
//	                         with headers X-Color, X-Version and X-Instance (the hostname:
//	                         in a container, its short ID; the benchmarks tell replicas apart by it)
//	GET  /healthz            200 when healthy, 503 otherwise
//	GET  /slow?ms=N          holds the request N ms, then answers like /
//	POST /admin/fail         /healthz answers 503 from now on
//	POST /admin/recover      undoes /admin/fail
//	POST /error-rate?pct=N   N% of / answers are 500 (0 turns it off)
//
// On SIGTERM it stops accepting connections and finishes the requests in flight.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	cfg, err := configFromEnv(os.Getenv)
	if err != nil {
		log.Fatalf("demoapp: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		log.Fatalf("demoapp: %v", err)
	}
}

type config struct {
	port       string
	color      string
	version    string
	startDelay time.Duration
	healthFail bool
	errorPct   int
	instance   string // X-Instance: the hostname (in a container, its short ID)
}

func configFromEnv(getenv func(string) string) (config, error) {
	c := config{port: "8080", color: "none", version: "dev"}
	c.instance, _ = os.Hostname()
	if v := getenv("PORT"); v != "" {
		c.port = v
	}
	if v := getenv("SWAP_COLOR"); v != "" {
		c.color = v
	}
	if v := getenv("COLOR"); v != "" {
		c.color = v
	}
	if v := getenv("VERSION"); v != "" {
		c.version = v
	}
	if v := getenv("START_DELAY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			return c, fmt.Errorf("START_DELAY=%q: %w (use a Go duration such as 3s)", v, err)
		}
		c.startDelay = d
	}
	c.healthFail = getenv("HEALTH_FAIL") == "1"
	if v := getenv("ERROR_PCT"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > 100 {
			return c, fmt.Errorf("ERROR_PCT=%q: must be an integer from 0 to 100", v)
		}
		c.errorPct = n
	}
	return c, nil
}

func run(ctx context.Context, cfg config) error {
	ln, err := net.Listen("tcp", ":"+cfg.port)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: newApp(cfg, time.Now()).routes(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Printf("demoapp color=%s version=%s listening on %s", cfg.color, cfg.version, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Finish what is in flight; a stop_timeout longer than the slowest request is the
	// caller's job.
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Printf("demoapp stopped cleanly")
	return nil
}

type app struct {
	cfg      config
	started  time.Time
	failed   atomic.Bool
	errorPct atomic.Int64
	requests atomic.Uint64
}

func newApp(cfg config, started time.Time) *app {
	a := &app{cfg: cfg, started: started}
	a.failed.Store(cfg.healthFail)
	a.errorPct.Store(int64(cfg.errorPct))
	return a
}

func (a *app) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", a.root)
	mux.HandleFunc("GET /healthz", a.healthz)
	mux.HandleFunc("GET /slow", a.slow)
	mux.HandleFunc("POST /admin/fail", func(w http.ResponseWriter, _ *http.Request) {
		a.failed.Store(true)
		fmt.Fprintln(w, "health: failing")
	})
	mux.HandleFunc("POST /admin/recover", func(w http.ResponseWriter, _ *http.Request) {
		a.failed.Store(false)
		fmt.Fprintln(w, "health: recovered")
	})
	mux.HandleFunc("POST /error-rate", a.setErrorRate)
	return mux
}

func (a *app) root(w http.ResponseWriter, _ *http.Request) {
	n := a.requests.Add(1)
	// Deterministic share: request n fails when it crosses a multiple of 100/pct.
	if pct := uint64(a.errorPct.Load()); pct > 0 && (n*pct)/100 != ((n-1)*pct)/100 {
		w.Header().Set("X-Color", a.cfg.color)
		http.Error(w, fmt.Sprintf("color=%s version=%s injected error", a.cfg.color, a.cfg.version), http.StatusInternalServerError)
		return
	}
	a.answer(w)
}

func (a *app) answer(w http.ResponseWriter) {
	w.Header().Set("X-Color", a.cfg.color)
	w.Header().Set("X-Version", a.cfg.version)
	if a.cfg.instance != "" {
		w.Header().Set("X-Instance", a.cfg.instance)
	}
	fmt.Fprintf(w, "color=%s version=%s\n", a.cfg.color, a.cfg.version)
}

func (a *app) healthz(w http.ResponseWriter, _ *http.Request) {
	switch {
	case a.failed.Load():
		http.Error(w, "unhealthy: failing on request", http.StatusServiceUnavailable)
	case time.Since(a.started) < a.cfg.startDelay:
		http.Error(w, "unhealthy: starting", http.StatusServiceUnavailable)
	default:
		fmt.Fprintln(w, "ok")
	}
}

func (a *app) slow(w http.ResponseWriter, r *http.Request) {
	ms, err := strconv.Atoi(r.URL.Query().Get("ms"))
	if err != nil || ms < 0 || ms > 600_000 {
		http.Error(w, "slow: ms must be an integer from 0 to 600000", http.StatusBadRequest)
		return
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		a.answer(w)
	case <-r.Context().Done():
	}
}

func (a *app) setErrorRate(w http.ResponseWriter, r *http.Request) {
	pct, err := strconv.Atoi(r.URL.Query().Get("pct"))
	if err != nil || pct < 0 || pct > 100 {
		http.Error(w, "error-rate: pct must be an integer from 0 to 100", http.StatusBadRequest)
		return
	}
	a.errorPct.Store(int64(pct))
	fmt.Fprintf(w, "error-rate: %d%%\n", pct)
}
