package main

import (
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/testenv"
)

// waitReadyz polls GET /readyz at base until it answers status with a body holding
// want, and returns the body.
func waitReadyz(t *testing.T, base string, status int, want string, why func() string) map[string]any {
	t.Helper()
	var got int
	var body map[string]any
	deadline := time.Now().Add(2 * time.Minute)
	for {
		got, body = callAPI(t, http.MethodGet, base+"/readyz", "", "")
		if got == status && strings.Contains(fmt.Sprint(body), want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz = %d %v, want %d with %q\n%s", got, body, status, want, why())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The Consul agent stops and comes back while swap serve runs: the reconcile loop logs
// the outage and backs off, /readyz says not ready (503) with the reason meanwhile, and
// once Consul is back the loop resyncs: /readyz 200 again, and a maintenance set in
// Consul after the restart reaches HAProxy. HAProxy serves throughout.
//
// The agent is a server with a data directory (testenv.ConsulServer), not the dev agent
// of the other scenarios: `consul agent -dev` keeps everything in memory, so after its
// restart the KV state, the lock keys and the instances' registrations would be gone —
// a new, empty Consul, not an outage. A real agent keeps them on disk (the raft store
// for KV and catalog, the agent's own services and checks in its data directory) and
// comes back with them, as this one does. Like a real one, it restarts its checks
// critical: for a few seconds the loop may take an instance out (never the last of the
// live color) and put it back once Consul passes it again.
func TestE2E_ServeRidesOutAConsulRestartAndReadyzSaysSoMeanwhile(t *testing.T) {
	t.Parallel()
	app := e2eApp("outage")
	host := app + ".test"
	s := newStackWith(t, appConfig(app, ""), stackOptions{consul: testenv.ConsulServer(t)})
	blue := app + "_blue"
	s.mustSwap("deploy", app, "--image", s.v1)
	s.waitAnswer(host, "color=blue version=v1")

	listen := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
	b, _ := s.startServe(listen, "SWAP_SERVE_TOKEN="+e2eToken, "SWAP_LOG_LEVEL=info")
	base := "http://" + listen
	logs := func() string { return b.err.String() }
	waitReadyz(t, base, http.StatusOK, "ready", logs)
	l := s.startLoad(host, "/", 2)

	s.consul.Stop()
	body := waitReadyz(t, base, http.StatusServiceUnavailable, "the reconcile loop is not in sync", logs)
	if msg := strings.ToLower(fmt.Sprint(body["error"])); !strings.Contains(msg, "consul") || !strings.Contains(msg, app+": ") {
		t.Fatalf("/readyz during the outage names neither Consul nor the app: %v", body)
	}
	t.Logf("/readyz during the outage: %v", body)
	waitOutput(t, &b.err, "reconcile pass failed; retrying")
	if !strings.Contains(logs(), `"backoff"`) {
		t.Fatalf("the loop's log of the outage has no backoff:\n%s", logs())
	}

	s.consul.Restart(t)
	waitReadyz(t, base, http.StatusOK, "ready", logs)
	waitOutput(t, &b.err, "reconcile works again")
	// The agent restarted its checks critical: wait until Consul passes both instances
	// again and HAProxy has both in rotation before the change under test.
	testenv.WaitFor(t, 2*time.Minute, "Consul to pass both instances again", func() error {
		entries, _, err := s.consul.Client.Health().Service(app, "", true, nil)
		if err != nil || len(entries) != 2 {
			return fmt.Errorf("%d passing: %v", len(entries), err)
		}
		return nil
	})
	s.waitServerStatus(blue, app+"-blue-0", "UP", logs)
	s.waitServerStatus(blue, app+"-blue-1", "UP", logs)

	// A change made in Consul after the restart reaches HAProxy.
	id := deployments.ObjectName(s.installation, app+"-blue-0")
	s.consulCLI("maint", "-enable", "-service="+id, "-reason=e2e-after-restart")
	r := s.waitServerStatus(blue, app+"-blue-0", "DRAIN", logs)
	if got := strings.TrimPrefix(r.CheckStatus, "* "); got != "L7OK" {
		t.Fatalf("HAProxy's own check of %s-blue-0 is %q, want L7OK (only Consul fails it)", app, got)
	}
	s.consulCLI("maint", "-disable", "-service="+id)
	s.waitServerStatus(blue, app+"-blue-0", "UP", logs)
	l.stop()
	l.requireNoFailures(t)

	// The metrics saw it all: failed passes, HAProxy's commands, the lag of the changes.
	_, m := callAPI(t, http.MethodGet, base+"/metrics", "", "")
	text := fmt.Sprint(m["raw"])
	for _, want := range []string{
		`swap_reconcile_pass_failures_total{app="` + app + `"} `,
		`swap_haproxy_commands_total{result="ok",verb="set server"} `,
		"swap_reconcile_lag_seconds_count ",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if strings.Contains(text, `swap_reconcile_pass_failures_total{app="`+app+`"} 0`) {
		t.Errorf("/metrics counts no failed pass during the outage")
	}

	if err := syscall.Kill(b.pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if res := b.wait(time.Minute); res.code != 0 {
		t.Fatalf("serve after SIGTERM: %s", res)
	}
}
