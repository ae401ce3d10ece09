package switcher

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/swap-dev/swap/deployments"
)

// srv is a server row on lb1: "name:admin[:down]".
func srv(lb, spec string) ServerAdmin {
	f := strings.Split(spec, ":")
	s := ServerAdmin{LB: lb, Name: f[0], Admin: AdminReady, Up: true}
	if len(f) > 1 && f[1] != "" {
		s.Admin = Admin(f[1])
	}
	if len(f) > 2 && f[2] == "down" {
		s.Up = false
	}
	return s
}

func rows(lb string, specs ...string) []ServerAdmin {
	var out []ServerAdmin
	for _, s := range specs {
		out = append(out, srv(lb, s))
	}
	return out
}

func reg(id string, passing bool) RegisteredInstance {
	c := deployments.Blue
	if strings.Contains(id, "green") {
		c = deployments.Green
	}
	r := RegisteredInstance{ID: id, Color: c, Passing: passing, Addr: "10.0.0.1:31000"}
	if !passing {
		r.Why = "instance " + id + " is in maintenance"
	}
	return r
}

func liveBlue() State { return State{App: "web", Live: deployments.Blue} }

func inLine(lbs ...string) map[string]RouteEntries {
	out := map[string]RouteEntries{}
	for _, lb := range lbs {
		out[lb] = RouteEntries{Route: "web_blue"}
	}
	return out
}

func TestDesiredActions_ComparesTheDesiredStateWithHAProxys(t *testing.T) {
	blueUp := map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0", "web-blue-1")}
	bothPass := []RegisteredInstance{reg("web-blue-0", true), reg("web-blue-1", true)}
	waiting := &Journal{Status: JournalWaiting, Step: StepPreview, Done: true,
		Plan: Plan{App: "web", Deploy: "d2", From: deployments.Blue, To: deployments.Green, Preview: true}}
	tests := []struct {
		name     string
		o        Observed
		want     []string // Action.Kind + " " + Backend + " " + servers
		wantOut  []string
		wantNote string
		wantHold bool
	}{
		{name: "nothing deployed and nothing in HAProxy: nothing to do",
			o: Observed{State: State{App: "web"}, Maps: map[string]RouteEntries{"lb1": {}}}},
		{name: "everything in line: nothing to do",
			o: Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: inLine("lb1")}},
		{name: "KV says blue while the routes map says green: route to blue",
			o:    Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: map[string]RouteEntries{"lb1": {Route: "web_green"}}},
			want: []string{"route web_blue"}},
		{name: "one HAProxy of two without the live servers and the route (restarted from old files): added, then routed",
			o:    Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: map[string]RouteEntries{"lb1": {Route: "web_blue"}, "lb2": {}}},
			want: []string{"add web_blue web-blue-0,web-blue-1", "route web_blue"}},
		{name: "a live server missing on one HAProxy: added; Consul fails one: it waits; the other color's: the swaps'",
			o: Observed{State: liveBlue(), Instances: append(slices.Clone(bothPass), reg("web-blue-2", false), reg("web-green-0", true)),
				Servers: map[string][]ServerAdmin{"web_blue": append(rows("lb1", "web-blue-0", "web-blue-1"), rows("lb2", "web-blue-1")...)},
				Maps:    inLine("lb1", "lb2")},
			want: []string{"add web_blue web-blue-0"}, wantNote: "web-blue-2: instance web-blue-2 is in maintenance"},
		{name: "a preview entry without a swap waiting: removed",
			o:    Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: map[string]RouteEntries{"lb1": {Route: "web_blue", Preview: "web_green"}}},
			want: []string{"preview "}},
		{name: "a canary entry without a swap: removed",
			o:    Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: map[string]RouteEntries{"lb1": {Route: "web_blue", Canary: "web_green:10"}}},
			want: []string{"canary web_green"}},
		{name: "a swap waiting for promote: the preview follows it and its color's failing servers are left alone",
			o: Observed{State: liveBlue(), Journal: waiting,
				Instances: append(slices.Clone(bothPass), reg("web-green-0", false)),
				Servers:   map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0", "web-blue-1"), "web_green": rows("lb1", "web-green-0")},
				Maps:      inLine("lb1")},
			want: []string{"preview web_green"}, wantNote: "waiting for promote"},
		{name: "an interrupted swap (journal running, lock free): the app is held for swap resume",
			o: Observed{State: liveBlue(), Journal: &Journal{Status: JournalRunning, Step: StepGate, Plan: Plan{To: deployments.Green, Deploy: "d2"}},
				Instances: []RegisteredInstance{reg("web-blue-0", false)}, Servers: blueUp, Maps: map[string]RouteEntries{"lb1": {Route: "web_green"}}},
			wantHold: true, wantNote: "swap resume web"},
		{name: "a ready server Consul fails: taken out and recorded",
			o:    Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", true)}, Servers: blueUp, Maps: inLine("lb1")},
			want: []string{"take-out web_blue web-blue-0"}, wantOut: []string{"web_blue/web-blue-0"}},
		{name: "a failing server already taken out: nothing to do, still recorded",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", true)},
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0:drain", "web-blue-1")}, Maps: inLine("lb1"),
				Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			wantOut: []string{"web_blue/web-blue-0"}},
		{name: "a failing server a swap drained (not recorded): left as it is",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", true)},
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0:drain", "web-blue-1")}, Maps: inLine("lb1")}},
		{name: "a recorded server Consul passes again: put back and forgotten",
			o: Observed{State: liveBlue(), Instances: bothPass,
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0:drain", "web-blue-1")}, Maps: inLine("lb1"),
				Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			want: []string{"put-back web_blue web-blue-0"}},
		{name: "a drained server Consul passes that the loop did not take out: never put back",
			o: Observed{State: liveBlue(), Instances: bothPass,
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0:drain", "web-blue-1:maint")}, Maps: inLine("lb1")}},
		{name: "a recorded server already ready again (put back by hand): only forgotten",
			o: Observed{State: liveBlue(), Instances: bothPass, Servers: blueUp, Maps: inLine("lb1"),
				Out: map[string]string{"web_blue/web-blue-0": "maint"}}},
		{name: "a recorded server no longer in HAProxy: forgotten (and added again: Consul passes it)",
			o: Observed{State: liveBlue(), Instances: bothPass, Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-1")}, Maps: inLine("lb1"),
				Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			want: []string{"add web_blue web-blue-0"}},
		{name: "a retiring color's recorded servers are the swap's: not put back",
			o: Observed{State: State{App: "web", Live: deployments.Green, Colors: map[deployments.Color]ColorState{deployments.Blue: {RetiredBy: "d2"}}},
				Instances: append(slices.Clone(bothPass), reg("web-green-0", true)),
				Servers:   map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0:drain", "web-blue-1:drain"), "web_green": rows("lb1", "web-green-0")},
				Maps:      map[string]RouteEntries{"lb1": {Route: "web_green"}}, Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			wantOut: []string{"web_blue/web-blue-0"}, wantNote: "retiring"},
		{name: "every live server fails in Consul while HAProxy's checks pass: the last one stays",
			o:    Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", false)}, Servers: blueUp, Maps: inLine("lb1")},
			want: []string{"take-out web_blue web-blue-1"}, wantOut: []string{"web_blue/web-blue-1"}, wantNote: "HAProxy's checks decide"},
		{name: "every live server fails in Consul and HAProxy's checks too: all taken out (HAProxy serves none anyway)",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", false)},
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0::down", "web-blue-1::down")}, Maps: inLine("lb1")},
			want: []string{"take-out web_blue web-blue-0,web-blue-1"}, wantOut: []string{"web_blue/web-blue-0", "web_blue/web-blue-1"}},
		{name: "the only server HAProxy passes fails in Consul, the other is down in HAProxy: the one it passes stays",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", false)},
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0::down", "web-blue-1")}, Maps: inLine("lb1")},
			want: []string{"take-out web_blue web-blue-0"}, wantOut: []string{"web_blue/web-blue-0"}, wantNote: "web-blue-1 stays in rotation"},
		{name: "a server whose instance left Consul: removed from the backend",
			o:    Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-1", true)}, Servers: blueUp, Maps: inLine("lb1")},
			want: []string{"remove web_blue web-blue-0"}},
		{name: "Consul knows no instance of the live color: nothing removed",
			o:        Observed{State: liveBlue(), Servers: blueUp, Maps: inLine("lb1")},
			wantNote: "knows no instance of the live color"},
		{name: "the last live server HAProxy passes left Consul: it stays",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-1", false)},
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0", "web-blue-1::down")}, Maps: inLine("lb1")},
			want: []string{"take-out web_blue web-blue-1"}, wantOut: []string{"web_blue/web-blue-1"}, wantNote: "web-blue-0 stays in rotation"},
		{name: "a failing server ready on one HAProxy and drained on the other: taken out (everywhere)",
			o: Observed{State: liveBlue(), Instances: []RegisteredInstance{reg("web-blue-0", false), reg("web-blue-1", true)},
				Servers: map[string][]ServerAdmin{"web_blue": append(rows("lb1", "web-blue-0:drain", "web-blue-1"), rows("lb2", "web-blue-0", "web-blue-1")...)},
				Maps:    inLine("lb1", "lb2"), Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			want: []string{"take-out web_blue web-blue-0"}, wantOut: []string{"web_blue/web-blue-0"}},
		{name: "a recorded server put back on one HAProxy only: put back (everywhere)",
			o: Observed{State: liveBlue(), Instances: bothPass,
				Servers: map[string][]ServerAdmin{"web_blue": append(rows("lb1", "web-blue-0", "web-blue-1"), rows("lb2", "web-blue-0:drain", "web-blue-1")...)},
				Maps:    inLine("lb1", "lb2"), Out: map[string]string{"web_blue/web-blue-0": "maint"}},
			want: []string{"put-back web_blue web-blue-0"}},
		{name: "the idle color's failing server is taken out too (no last-server rule off the live color)",
			o: Observed{State: liveBlue(), Instances: append(slices.Clone(bothPass), reg("web-green-0", false)),
				Servers: map[string][]ServerAdmin{"web_blue": rows("lb1", "web-blue-0", "web-blue-1"), "web_green": rows("lb1", "web-green-0")}, Maps: inLine("lb1")},
			want: []string{"take-out web_green web-green-0"}, wantOut: []string{"web_green/web-green-0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.o.App, tt.o.Route = "web", "web.test"
			d := desiredActions(tt.o)
			var got []string
			for _, a := range d.Actions {
				got = append(got, strings.TrimSpace(string(a.Kind)+" "+a.Backend+" "+strings.Join(a.Servers, ",")))
			}
			want := tt.want
			for i := range want {
				want[i] = strings.TrimSpace(want[i])
			}
			if !slices.Equal(got, want) {
				t.Errorf("actions %q, want %q", got, want)
			}
			if out := slices.Sorted(maps.Keys(d.Out)); !slices.Equal(out, tt.wantOut) {
				t.Errorf("record %q, want %q", out, tt.wantOut)
			}
			if d.Hold != tt.wantHold {
				t.Errorf("hold %v, want %v", d.Hold, tt.wantHold)
			}
			notes := strings.Join(d.Notes, "\n")
			if tt.wantNote == "" && notes != "" || !strings.Contains(notes, tt.wantNote) {
				t.Errorf("notes %q, want one with %q", notes, tt.wantNote)
			}
		})
	}
}
