package lbconfig

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// go test ./lbconfig -run TestTestdataMatchesRealHAProxy -update rewrites testdata/ from
// the installed HAProxy. Without -update the test proves the files still match it.
var update = flag.Bool("update", false, "rewrite testdata/ from the real HAProxy")

// errorCase is one command HAProxy refuses, with its answer and the sentinel it maps to.
type errorCase struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	Answer  string `json:"answer"`
	Want    string `json:"want"` // the sentinel's variable name
}

var sentinels = map[string]error{
	"ErrNoSuchBackend": ErrNoSuchBackend, "ErrNoSuchServer": ErrNoSuchServer,
	"ErrUnknownCommand": ErrUnknownCommand, "ErrPermission": ErrPermission,
	"ErrNotRemovable": ErrNotRemovable, "ErrAlreadyExists": ErrAlreadyExists,
	"ErrNotDynamic": ErrNotDynamic, "ErrNoSuchMap": ErrNoSuchMap,
	"ErrMapKeyNotFound": ErrMapKeyNotFound, "ErrMapVersion": ErrMapVersion,
	"ErrInvalidArgument": ErrInvalidArgument,
}

// errorCommands are run against richState; {routes} is the routes map path.
var errorCommands = []struct{ name, cmd, want string }{
	{"set state on a missing backend", "set server nope/x state ready", "ErrNoSuchBackend"},
	{"set state on a missing server", "set server app_blue/nope state ready", "ErrNoSuchServer"},
	{"set state without a server", "set server app_blue state ready", "ErrInvalidArgument"},
	{"set state to a bogus state", "set server app_blue/app-blue-0 state bogus", "ErrInvalidArgument"},
	{"set weight out of range", "set server app_blue/app-blue-0 weight 300", "ErrInvalidArgument"},
	{"set health to a bogus value", "set server app_blue/app-blue-0 health bogus", "ErrInvalidArgument"},
	{"set addr to a name", "set server app_blue/app-blue-0 addr nope port 80", "ErrInvalidArgument"},
	{"get weight of a missing server", "get weight app_blue/nope", "ErrNoSuchServer"},
	{"add server twice", "add server app_blue/app-blue-0 127.0.0.1:1", "ErrAlreadyExists"},
	{"add server with a bogus keyword", "add server app_blue/x 127.0.0.1:1 bogus", "ErrInvalidArgument"},
	{"add server to a static backend", "add server static_be/x 127.0.0.1:1", "ErrNotDynamic"},
	{"add server to a missing backend", "add server nope/x 127.0.0.1:1", "ErrNoSuchBackend"},
	{"del server that is not in maint", "del server app_blue/app-blue-0", "ErrNotRemovable"},
	{"del server that is missing", "del server app_blue/nope", "ErrNoSuchServer"},
	{"del server on a missing backend", "del server nope/x", "ErrNoSuchBackend"},
	{"enable health of a missing server", "enable health app_blue/nope", "ErrNoSuchServer"},
	{"shutdown sessions of a missing server", "shutdown sessions server app_blue/nope", "ErrNoSuchServer"},
	{"show servers state of a missing backend", "show servers state nope", "ErrNoSuchBackend"},
	{"show stat of a missing backend", "show stat nope 6 -1", "ErrNoSuchBackend"},
	{"unknown command", "frobnicate", "ErrUnknownCommand"},
	{"set map on a missing key", "set map {routes} nope.test app_blue", "ErrMapKeyNotFound"},
	{"del map on a missing key", "del map {routes} nope.test", "ErrMapKeyNotFound"},
	{"set map on a missing map", "set map /nonexistent.map k v", "ErrNoSuchMap"},
	{"commit a version that was never prepared", "commit map @99 {routes}", "ErrMapVersion"},
	{"server command on a user-level socket", "user;set server app_blue/app-blue-0 state ready", "ErrPermission"},
}

type capture struct {
	file string
	cmd  string
	// parse proves the capture parses; it returns how many records it found.
	parse func(string) (int, error)
}

func captures(routes string) []capture {
	return []capture{
		{"show-stat.txt", "show stat", func(s string) (int, error) { r, err := ParseStat(s); return len(r), err }},
		{"show-stat-backend.txt", "show stat app_blue 6 -1", func(s string) (int, error) { r, err := ParseStat(s); return len(r), err }},
		{"show-servers-state.txt", "show servers state", func(s string) (int, error) { r, err := ParseServersState(s); return len(r), err }},
		{"show-servers-conn.txt", "show servers conn", func(s string) (int, error) { r, err := parseServersConn(s); return len(r), err }},
		{"show-info.txt", "show info", func(s string) (int, error) { r, err := parseInfo(s); return len(r.Fields), err }},
		{"show-map.txt", "show map " + routes, func(s string) (int, error) { r, err := parseShowMap(s); return len(r), err }},
		{"show-backend.txt", "show backend", func(s string) (int, error) { r, err := parseBackends(s); return len(r), err }},
		{"get-weight.txt", "get weight app_blue/app-blue-1", func(s string) (int, error) { _, _, err := parseWeight(s); return 1, err }},
	}
}

// richState is HAProxy with servers in every state: app_blue has app-blue-0 UP and
// app-blue-1 draining at weight 50; app_green has app-green-0 in maint, app-green-1
// failing its checks and app-green-2 without checks; routes and a canary are set.
func richState(t *testing.T) *lbEnv {
	t.Helper()
	env := startLayout(t, func(dir string, port func(string) int) *Layout {
		l := baseLayout(dir, port)
		return l
	})
	// A backend without a dynamic algorithm, for ErrNotDynamic.
	cfg, err := os.ReadFile(env.h.CfgPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg = append(cfg, []byte("backend static_be\n    balance source\n\n"+
		"global\n    stats socket "+filepath.Join(env.h.Dir, "user.sock")+" mode 600 level user\n")...)
	if err := os.WriteFile(env.h.CfgPath, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	env.h.Reload(t)
	ctx := testCtx(t)
	c := env.c
	blue0, blue1 := newBackend(t, "blue"), newBackend(t, "blue")
	g0, g1, g2 := newBackend(t, "green"), newBackend(t, "green"), newBackend(t, "green")
	g1.failing.Store(true)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(c.AddServers(ctx, "app_blue", []Server{blue0.server("app-blue-0"), blue1.server("app-blue-1")}))
	noCheck := g2.server("app-green-2")
	noCheck.Check.Disabled = true
	must(c.AddServers(ctx, "app_green", []Server{g0.server("app-green-0"), g1.server("app-green-1"), noCheck}))
	waitUp(t, c, "app_blue", "app-blue-0")
	waitUp(t, c, "app_blue", "app-blue-1")
	must(c.setState(ctx, "app_blue", "app-blue-1", StateDrain))
	must(c.setWeight(ctx, "app_blue", "app-blue-1", 50))
	must(c.setState(ctx, "app_green", "app-green-0", StateMaint))
	_, _, err = c.PutMap(ctx, env.layout.RoutesMap(), "app.test", "app_blue")
	must(err)
	_, _, err = c.PutMap(ctx, env.layout.RoutesMap(), "other.test", "app_green")
	must(err)
	_, _, err = c.PutMap(ctx, env.layout.CanaryMap(), "app.test", canaryValue("app_green", 10))
	must(err)
	// Let app-green-1 fail a check so its status is DOWN with a check result.
	time.Sleep(0) // no sleep: poll below
	pollT(t, func() error {
		st, err := c.ServerStat(ctx, "app_green", "app-green-1")
		if err != nil {
			return err
		}
		if st.CheckStatus != "L7STS" {
			return errors.New("app-green-1 check is " + st.CheckStatus)
		}
		return nil
	})
	return env
}

func pollT(t testing.TB, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTestdataMatchesRealHAProxy(t *testing.T) {
	env := richState(t)
	routes := env.layout.RoutesMap()
	for _, cp := range captures(routes) {
		out, err := env.h.Exec(cp.cmd)
		if err != nil {
			t.Fatalf("%s: %v", cp.cmd, err)
		}
		n, err := cp.parse(out)
		if err != nil || n == 0 {
			t.Errorf("%s: live answer does not parse (%d records, %v):\n%s", cp.cmd, n, err, out)
		}
		path := filepath.Join("testdata", cp.file)
		if *update {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		saved, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to capture it)", err)
		}
		if headerLine(string(saved)) != headerLine(out) {
			t.Errorf("%s: testdata/%s has another header than the installed HAProxy:\n saved %q\n  live %q",
				cp.cmd, cp.file, headerLine(string(saved)), headerLine(out))
		}
	}

	procs, err := env.h.Master("show proc")
	if err != nil {
		t.Fatal(err)
	}
	if p, err := parseShowProc(procs); err != nil || len(p) < 2 {
		t.Errorf("show proc: %v %v", p, err)
	}
	var cases []errorCase
	for _, ec := range errorCommands {
		cmd := strings.ReplaceAll(ec.cmd, "{routes}", routes)
		out, err := env.h.Exec(cmd)
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		cases = append(cases, errorCase{Name: ec.name, Command: ec.cmd, Answer: out, Want: ec.want})
		got := classify(out)
		if !errors.Is(got, sentinels[ec.want]) {
			t.Errorf("%s: %q answered %q, classified %v, want %s", ec.name, cmd, out, got, ec.want)
		}
	}
	errPath := filepath.Join("testdata", "errors.json")
	if *update {
		b, _ := json.MarshalIndent(cases, "", "  ")
		if err := os.WriteFile(errPath, append(b, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "show-proc.txt"), []byte(procs), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var saved []errorCase
	b, err := os.ReadFile(errPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &saved); err != nil {
		t.Fatal(err)
	}
	live := map[string]string{}
	for _, c := range cases {
		live[c.Name] = c.Answer
	}
	for _, s := range saved {
		if live[s.Name] != s.Answer {
			t.Errorf("%s: HAProxy now answers %q, testdata/errors.json says %q", s.Name, live[s.Name], s.Answer)
		}
	}
}

// headerLine is the first line starting with '#' (the column names), or "" for an
// answer without one.
func headerLine(s string) string {
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, "#") {
			return line
		}
	}
	return ""
}
