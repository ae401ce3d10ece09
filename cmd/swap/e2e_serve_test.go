package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
	"github.com/swap-dev/swap/serve"
	"github.com/swap-dev/swap/switcher"
)

// `swap serve` on the real stack: a pipeline deploys, rolls back and follows through the
// API and through `swap --server`, with load running; refusals; SIGTERM during a swap.

const e2eToken = "e2e-serve-token"

// startServe runs `swap serve` on listen (with env) and waits until it answers.
func (s *stack) startServe(listen string, env ...string) (*bgSwap, *serve.Client) {
	s.t.Helper()
	b := s.swapBackground(env, "serve", "--listen", listen)
	server := "http://" + listen
	if strings.HasPrefix(listen, "unix://") {
		server = listen
	}
	c, err := serve.NewClient(server, e2eToken)
	if err != nil {
		s.t.Fatal(err)
	}
	testenv.WaitFor(s.t, time.Minute, "swap serve answers /healthz", func() error {
		if b.exited() {
			return fmt.Errorf("it ended:\n%s", b.res)
		}
		if !strings.Contains(b.out.String(), "listening on") {
			return fmt.Errorf("not listening yet")
		}
		return nil
	})
	return b, c
}

// api sends one request to the daemon at base (http://host:port).
func callAPI(t *testing.T, method, url, token, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	if m == nil {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m
}

func TestE2E_ServeRunsAPipelinesDeployAndRollbackUnderLoadAndRefusesWhatItShould(t *testing.T) {
	t.Parallel()
	app := e2eApp("served")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica))

	// On a TCP address serve refuses to start without a token.
	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	if r := s.swap([]string{"SWAP_SERVE_TOKEN="}, "serve", "--listen", listen); r.code != exitUsage || !strings.Contains(r.stderr, "needs a token") {
		t.Fatalf("serve on TCP without a token: want exit 2 saying it needs a token, got %s", r)
	}
	b, c := s.startServe(listen, "SWAP_SERVE_TOKEN="+e2eToken)
	base := "http://" + listen
	client := []string{"SWAP_SERVE_TOKEN=" + e2eToken}

	// Refusals: nothing is done, the token is never logged.
	for _, tc := range []struct {
		method, path, token, body string
		status                    int
	}{
		{"POST", "/v1/apps/" + app + "/deploy", "", `{"image":"` + s.v1 + `"}`, 401},
		{"POST", "/v1/apps/" + app + "/deploy", "wrong", `{"image":"` + s.v1 + `"}`, 401},
		{"POST", "/v1/apps/" + app + "/deploy", e2eToken, `{"image":`, 400},
		{"POST", "/v1/apps/nope/deploy", e2eToken, `{"image":"` + s.v1 + `"}`, 404},
		{"POST", "/v1/apps/" + app + "/deploy", e2eToken, `{"image":"Not A Ref"}`, 400},
		{"POST", "/v1/apps/" + app + "/promote", e2eToken, ``, 409}, // no swap waits in preview
	} {
		if status, body := callAPI(t, tc.method, base+tc.path, tc.token, tc.body); status != tc.status {
			t.Errorf("%s %s (token %q) = %d %v, want %d", tc.method, tc.path, tc.token, status, body, tc.status)
		}
	}
	if names := s.containers("swap.app=" + app); len(names) != 0 {
		t.Fatalf("a refused request started containers: %v", names)
	}

	// The first deploy through the CLI client: the same progress and exit code as local.
	r := s.swap(client, "--server", base, "deploy", app, "--image", s.v1)
	if r.code != 0 || !strings.Contains(r.stdout, "commit") || !strings.Contains(r.stdout, "done") {
		t.Fatalf("swap --server deploy: %s", r)
	}
	s.waitAnswer(host, "color=blue version=v1")

	l := s.startLoad(host, "/", 2)
	r = s.swap(client, "--server", base, "deploy", app, "--image", s.v2, "--output", "json")
	if r.code != 0 {
		t.Fatalf("swap --server deploy v2: %s", r)
	}
	if _, ok := findEvent(events(r.stdout), switcher.StepShift, switcher.EventDone, ""); !ok {
		t.Fatalf("no shift event in the client's JSON progress:\n%s", r.stdout)
	}
	s.waitAnswer(host, "color=green version=v2")

	// A rollback through the API itself, followed on its event stream.
	a, err := c.Start(context.Background(), app, "rollback", nil, "pipeline-run-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.Start(context.Background(), app, "rollback", nil, "pipeline-run-1")
	if err != nil || again.Deploy != a.Deploy {
		t.Fatalf("a retried request with the same Idempotency-Key got %+v, %v; want deploy %s", again, err, a.Deploy)
	}
	var seen []switcher.Step
	final, err := c.Follow(context.Background(), a.Deploy, func(e switcher.Event) { seen = append(seen, e.Step) })
	if err != nil {
		t.Fatal(err)
	}
	if final.Outcome != switcher.OutcomeDone || *final.ExitCode != 0 || len(seen) == 0 {
		t.Fatalf("the rollback ended %+v after %d events", final, len(seen))
	}
	s.waitAnswer(host, "color=blue version=v1")
	l.requireNoFailures(t)

	// What `swap status` shows, and the history.
	if status, st := callAPI(t, "GET", base+"/v1/apps/"+app, e2eToken, ""); status != 200 || st["live"] != "blue" {
		t.Errorf("GET /v1/apps/%s = %d %v", app, status, st)
	}
	if status, _ := callAPI(t, "GET", base+"/v1/apps/"+app+"/history", e2eToken, ""); status != 200 {
		t.Errorf("GET history = %d", status)
	}
	if status, _ := callAPI(t, "GET", base+"/readyz", "", ""); status != 200 {
		t.Errorf("readyz = %d", status)
	}
	if status, m := callAPI(t, "GET", base+"/metrics", "", ""); status != 200 || !strings.Contains(fmt.Sprint(m["raw"]), `swap_operations_total{app="`+app+`",op="rollback",outcome="done"} 1`) {
		t.Errorf("metrics = %d, without the rollback", status)
	}
	// SIGTERM with nothing running: exit 0; the token appears nowhere in its logs.
	if err := syscall.Kill(b.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := b.wait(time.Minute)
	if res.code != 0 || strings.Contains(res.stdout+res.stderr, e2eToken) {
		t.Fatalf("serve after SIGTERM: exit %d (want 0), token in its output: %v\n%s", res.code, strings.Contains(res.stdout+res.stderr, e2eToken), res)
	}
}

func TestE2E_ServeStoppedDuringASwapLeavesNoHalfDoneStepAndExits0(t *testing.T) {
	t.Parallel()
	app := e2eApp("sigterm")
	host := app + ".test"
	s := newStack(t, appConfig(app, oneReplica+holdHooks(app, "pre_deploy")))
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	sock := "unix://" + filepath.Join(s.dir, "swap.sock")
	b, c := s.startServe(sock, "SWAP_SERVE_SHUTDOWN_TIMEOUT=2s", "SWAP_SERVE_TOKEN=")
	if fi, err := os.Stat(strings.TrimPrefix(sock, "unix://")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the socket: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	l := s.startLoad(host, "/", 2)
	h := s.newHold(app)
	a, err := c.Start(context.Background(), app, "deploy", map[string]string{"image": s.v2}, "")
	if err != nil {
		t.Fatal(err)
	}
	h.waitHeld(nil)
	// SIGTERM while the swap is held in its pre_deploy hook: serve waits
	// shutdown_timeout, then cancels it; the swap rolls back and serve exits 0.
	if err := syscall.Kill(b.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	res := b.wait(2 * time.Minute)
	if res.code != 0 {
		t.Fatalf("serve after SIGTERM during a swap: %s", res)
	}
	l.requireNoFailures(t)
	st := s.mustSwap("status", app)
	if strings.Contains(st.stdout, "in flight") || !strings.Contains(st.stdout, app+": live blue") {
		t.Fatalf("after serve stopped: %s", st.stdout)
	}
	if h := s.mustSwap("history", app).stdout; !strings.Contains(h, "rolled back") {
		t.Fatalf("the cancelled deploy %s is not in the history as rolled back:\n%s", a.Deploy, h)
	}
	if names := s.containers("swap.app="+app, "swap.color=green"); len(names) != 0 {
		t.Fatalf("green containers left: %v", names)
	}
	s.waitAnswer(host, "color=blue version=v1")
}
