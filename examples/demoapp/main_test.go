package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

func env(kv map[string]string) func(string) string {
	return func(k string) string { return kv[k] }
}

func do(t *testing.T, h http.Handler, method, target string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Code, rec.Body.String()
}

func TestRootNamesTheInstance(t *testing.T) {
	cfg, err := configFromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	rec := httptest.NewRecorder()
	newApp(cfg, time.Now()).routes().ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Header().Get("X-Instance"); got != host || got == "" {
		t.Fatalf("X-Instance = %q, want the hostname %q", got, host)
	}
}

func TestRootAnswersColorAndVersion(t *testing.T) {
	cfg, err := configFromEnv(env(map[string]string{"COLOR": "green", "VERSION": "v2"}))
	if err != nil {
		t.Fatal(err)
	}
	code, body := do(t, newApp(cfg, time.Now()).routes(), "GET", "/")
	if code != 200 || body != "color=green version=v2\n" {
		t.Fatalf("GET / = %d %q", code, body)
	}
}

func TestHealthzFollowsStartDelayFailAndRecover(t *testing.T) {
	cfg, err := configFromEnv(env(map[string]string{"START_DELAY": "1h"}))
	if err != nil {
		t.Fatal(err)
	}
	starting := newApp(cfg, time.Now()).routes()
	if code, _ := do(t, starting, "GET", "/healthz"); code != 503 {
		t.Fatalf("healthz during START_DELAY = %d, want 503", code)
	}
	started := newApp(cfg, time.Now().Add(-2*time.Hour)).routes()
	steps := []struct {
		method, path string
		want         int
	}{
		{"GET", "/healthz", 200},
		{"POST", "/admin/fail", 200},
		{"GET", "/healthz", 503},
		{"POST", "/admin/recover", 200},
		{"GET", "/healthz", 200},
	}
	for _, s := range steps {
		if code, _ := do(t, started, s.method, s.path); code != s.want {
			t.Fatalf("%s %s = %d, want %d", s.method, s.path, code, s.want)
		}
	}
}

func TestHealthFailFromEnvAnswers503(t *testing.T) {
	cfg, _ := configFromEnv(env(map[string]string{"HEALTH_FAIL": "1"}))
	if code, _ := do(t, newApp(cfg, time.Now()).routes(), "GET", "/healthz"); code != 503 {
		t.Fatalf("healthz with HEALTH_FAIL=1 = %d, want 503", code)
	}
}

func TestErrorRateGivesExactShareOf500s(t *testing.T) {
	h := newApp(config{color: "green"}, time.Now()).routes()
	if code, _ := do(t, h, "POST", "/error-rate?pct=25"); code != 200 {
		t.Fatalf("set error rate = %d", code)
	}
	fails := 0
	for range 100 {
		if code, _ := do(t, h, "GET", "/"); code == 500 {
			fails++
		}
	}
	if fails != 25 {
		t.Fatalf("500s in 100 requests = %d, want 25", fails)
	}
	for _, bad := range []string{"/error-rate?pct=101", "/error-rate?pct=x"} {
		if code, _ := do(t, h, "POST", bad); code != 400 {
			t.Fatalf("POST %s = %d, want 400", bad, code)
		}
	}
}

func TestBadStartDelayIsRejected(t *testing.T) {
	_, err := configFromEnv(env(map[string]string{"START_DELAY": "soon"}))
	if err == nil || !strings.Contains(err.Error(), "START_DELAY") {
		t.Fatalf("err = %v, want one naming START_DELAY", err)
	}
}

func TestShutdownFinishesSlowRequestInFlight(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, config{port: strconv.Itoa(port), color: "blue", version: "v1"})
	}()
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	waitUp(t, url+"/healthz")

	type result struct {
		body string
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := http.Get(url + "/slow?ms=300")
		if err != nil {
			res <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		res <- result{string(b), err}
	}()
	time.Sleep(100 * time.Millisecond) // let the slow request reach the handler
	cancel()
	r := <-res
	if r.err != nil || r.body != "color=blue version=v1\n" {
		t.Fatalf("slow request across shutdown = %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Fatalf("run = %v", err)
	}
}

func waitUp(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func TestColorComesFromSwapUnlessSetAndErrorPctFromEnv(t *testing.T) {
	cfg, err := configFromEnv(env(map[string]string{"SWAP_COLOR": "green", "ERROR_PCT": "100"}))
	if err != nil || cfg.color != "green" {
		t.Fatalf("cfg %+v, %v", cfg, err)
	}
	if code, body := do(t, newApp(cfg, time.Now()).routes(), "GET", "/"); code != 500 || !strings.Contains(body, "color=green") {
		t.Fatalf("GET / with ERROR_PCT=100 = %d %q", code, body)
	}
	cfg, _ = configFromEnv(env(map[string]string{"SWAP_COLOR": "green", "COLOR": "blue"}))
	if cfg.color != "blue" {
		t.Fatalf("COLOR should win over SWAP_COLOR: %q", cfg.color)
	}
	if _, err := configFromEnv(env(map[string]string{"ERROR_PCT": "x"})); err == nil {
		t.Fatal("ERROR_PCT=x accepted")
	}
}
