package switcher

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/swap-dev/swap/deployments"
)

// The reconcile loop keeps this host's HAProxy instances in step with Consul between
// swaps: level-triggered, each pass reads the whole desired state of an app (its state in
// KV, its journal, the Consul health of its instances) and HAProxy's runtime state, and
// applies only the difference. desiredActions is that comparison, pure.

// Admin is a server's administrative state in HAProxy.
type Admin string

// Administrative states.
const (
	AdminReady Admin = "ready"
	AdminDrain Admin = "drain"
	AdminMaint Admin = "maint"
)

// ServerAdmin is one server of a backend on one HAProxy instance (`show servers state`).
type ServerAdmin struct {
	LB    string // HAProxy instance name
	Name  string // the instance ID
	Admin Admin
	// Up: HAProxy's own checks say the server is up (operational state running).
	Up bool
}

// RouteEntries are an app's routing key's values in one HAProxy instance's maps ("" when
// absent): routes.map, preview.map and canary.map ("<backend>:<weight>").
type RouteEntries struct {
	Route, Preview, Canary string
}

// ActionKind names what a reconcile action does.
type ActionKind string

// Reconcile actions, in the order a pass applies them.
const (
	ActAdd     ActionKind = "add"      // add Add to Backend where an HAProxy lacks them
	ActRoute   ActionKind = "route"    // point the routes map at Backend
	ActPreview ActionKind = "preview"  // point the preview map at Backend ("" removes it)
	ActCanary  ActionKind = "canary"   // remove the canary entry (no swap runs)
	ActPutBack ActionKind = "put-back" // set Servers ready: Consul passes them again
	ActTakeOut ActionKind = "take-out" // set Servers drain: Consul fails them
	ActRemove  ActionKind = "remove"   // delete Servers: Consul no longer has them
	ActMesh    ActionKind = "mesh"     // route the mesh to Color (consul.mesh)
)

// Action is one change a reconcile pass makes.
type Action struct {
	Kind    ActionKind `json:"kind"`
	Backend string     `json:"backend,omitempty"`
	Servers []string   `json:"servers,omitempty"`
	// Add are the servers ActAdd adds (Servers names them).
	Add []Server `json:"-"`
	// Color is where ActMesh routes the mesh.
	Color deployments.Color `json:"color,omitempty"`
	Why   string            `json:"why"`
}

func (a Action) String() string {
	switch a.Kind {
	case ActRoute, ActPreview:
		to := a.Backend
		if to == "" {
			to = "nothing"
		}
		return fmt.Sprintf("%s -> %s (%s)", a.Kind, to, a.Why)
	case ActCanary:
		return fmt.Sprintf("canary removed (%s)", a.Why)
	case ActMesh:
		return fmt.Sprintf("mesh -> %s (%s)", a.Color, a.Why)
	}
	return fmt.Sprintf("%s %s/%s (%s)", a.Kind, a.Backend, strings.Join(a.Servers, ","), a.Why)
}

// Observed is what a reconcile pass reads of one app.
type Observed struct {
	App   string
	Route string // the app's routing key
	// State is the app's state in KV (Live "" before the first swap).
	State State
	// Journal is the swap in flight (nil: none).
	Journal *Journal
	// Instances are the app's instances of this installation registered in Consul.
	Instances []RegisteredInstance
	// Servers are the servers of the app's color backends on every HAProxy instance of
	// this host, by backend.
	Servers map[string][]ServerAdmin
	// Maps are the routing key's map entries, by HAProxy instance name.
	Maps map[string]RouteEntries
	// Out are the servers the loop took out of rotation itself ("<backend>/<server>" ->
	// why), the only ones it ever puts back.
	Out map[string]string
	// Mesh is where the service mesh sends the app's traffic (nil: the mesh is off).
	Mesh *MeshTarget
}

// Desired is what a pass should do: the actions, the loop's own record of the servers it
// took out once they are applied, and what it left alone and why.
type Desired struct {
	Actions []Action
	Out     map[string]string
	Notes   []string
	// Hold: the app is left alone entirely (an interrupted swap), Notes say why.
	Hold bool
}

// outKey names a server in the loop's record.
func outKey(backend, server string) string { return backend + "/" + server }

// desiredActions compares the desired state of an app with HAProxy's and says what to
// change. The rules:
//
//   - the live color's instances Consul passes join the live backend on every HAProxy
//     instance that lacks them (one restarted from files older than the last swap), as
//     a swap's stage adds them, before the route moves there; the instances of any other
//     color are the swaps' to add;
//   - a journal that is not waiting for promote is a swap that was interrupted (the lock
//     is free, or the pass would not run): the app is left alone until `swap resume`;
//   - routes.map points the key at the live color's backend (nothing before the first
//     swap); preview.map at the color waiting for promote, or nowhere; canary.map has no
//     entry (a canary only lives during a swap);
//   - with the mesh on, its route is the live color, without a split;
//   - the servers of a color that is retiring (drained, kept up for scale_down_delay) or
//     waiting in preview are the swap's, never touched;
//   - a server that is ready while Consul fails its instance is taken out (drain) and
//     recorded; a recorded server is put back (ready) once Consul passes it again, and
//     forgotten; a server not in the record is never put back (a drain of swap's own);
//   - a server whose instance Consul does not know leaves the backend, except when
//     Consul knows no instance at all of the live color (a catalog that lost its
//     registrations is not a reason to empty the live backend);
//   - on every HAProxy instance the live backend keeps at least one server HAProxy's
//     own checks pass, if it had one: Consul's word alone never takes the last one out;
//     HAProxy's checks decide for it.
func desiredActions(o Observed) Desired {
	d := Desired{Out: maps.Clone(o.Out)}
	if d.Out == nil {
		d.Out = map[string]string{}
	}
	if j := o.Journal; j != nil && j.Status != JournalWaiting {
		d.Hold = true
		d.Notes = append(d.Notes, fmt.Sprintf("a swap of %s to %s (deploy %s) stopped at %s without finishing: the loop leaves %s alone; run `swap resume %s`",
			o.App, j.Plan.To, j.Plan.Deploy, j.Step, o.App, o.App))
		return d
	}
	live := o.State.Live
	frozen := map[deployments.Color]string{}
	for c, cs := range o.State.Colors {
		if cs.Retiring() {
			frozen[c] = "retiring after deploy " + cs.RetiredBy
		}
	}
	wantRoute, wantPreview := "", ""
	if live != "" {
		wantRoute = deployments.BackendName(o.App, live)
	}
	if j := o.Journal; j != nil {
		frozen[j.Plan.To] = "waiting for promote in deploy " + j.Plan.Deploy
		if j.Plan.Preview {
			wantPreview = j.Plan.ToBackend()
		}
	}
	adds, notes := addActions(o)
	d.Actions, d.Notes = append(d.Actions, adds...), append(d.Notes, notes...)
	d.Actions = append(d.Actions, mapActions(o, wantRoute, wantPreview)...)
	d.Actions, d.Notes = append(d.Actions, meshActions(o)...), append(d.Notes, meshNotes(o)...)

	insts := map[string]RegisteredInstance{}
	liveKnown := false
	for _, in := range o.Instances {
		insts[in.ID] = in
		if in.Color == live {
			liveKnown = true
		}
	}
	var takeOut, putBack, remove []Action
	for _, c := range deployments.Colors {
		be := deployments.BackendName(o.App, c)
		if why, ok := frozen[c]; ok {
			if len(o.Servers[be]) > 0 {
				d.Notes = append(d.Notes, fmt.Sprintf("%s is %s: its servers are the swap's, left alone", c, why))
			}
			continue
		}
		rows := map[string][]ServerAdmin{}
		for _, r := range o.Servers[be] {
			rows[r.Name] = append(rows[r.Name], r)
		}
		var out, back, gone []string
		keepAll := false
		whyOut := map[string]string{}
		for _, name := range slices.Sorted(maps.Keys(rows)) {
			inst, registered := insts[name]
			marked := d.Out[outKey(be, name)] != ""
			switch {
			case !registered:
				if be == wantRoute && !liveKnown {
					keepAll = true
					continue
				}
				gone = append(gone, name)
			case !inst.Passing:
				if anyAdmin(rows[name], AdminReady) {
					out = append(out, name)
					whyOut[name] = inst.Why
				}
			case marked:
				if !allAdmin(rows[name], AdminReady) {
					back = append(back, name)
				}
				delete(d.Out, outKey(be, name))
			}
		}
		if keepAll {
			d.Notes = append(d.Notes, fmt.Sprintf("Consul knows no instance of the live color %s of %s: its servers stay in %s (a catalog that lost its registrations is not a reason to empty the live backend)",
				live, o.App, be))
		}
		if be == wantRoute {
			var kept []string
			out, gone, kept = spareLast(rows, out, gone, back)
			for _, k := range kept {
				d.Notes = append(d.Notes, fmt.Sprintf("%s stays in rotation in %s although Consul says %s: it is the last server of the live color HAProxy's own checks pass; HAProxy's checks decide for it",
					k, be, orNot(whyOut[k], "it is gone")))
			}
		}
		if len(back) > 0 {
			putBack = append(putBack, Action{Kind: ActPutBack, Backend: be, Servers: back, Why: "Consul passes them again"})
		}
		if len(out) > 0 {
			var whys []string
			for _, n := range out {
				whys = append(whys, n+": "+whyOut[n])
				d.Out[outKey(be, n)] = orNot(whyOut[n], "failing in Consul")
			}
			takeOut = append(takeOut, Action{Kind: ActTakeOut, Backend: be, Servers: out, Why: "Consul fails them: " + strings.Join(whys, "; ")})
		}
		if len(gone) > 0 {
			remove = append(remove, Action{Kind: ActRemove, Backend: be, Servers: gone, Why: "not registered in Consul"})
		}
	}
	// The record keeps only servers that are still in HAProxy.
	for k := range d.Out {
		be, name, _ := strings.Cut(k, "/")
		found := false
		for _, r := range o.Servers[be] {
			found = found || r.Name == name
		}
		if !found {
			delete(d.Out, k)
		}
	}
	for _, a := range remove {
		for _, n := range a.Servers {
			delete(d.Out, outKey(a.Backend, n))
		}
	}
	d.Actions = append(d.Actions, putBack...)
	d.Actions = append(d.Actions, takeOut...)
	d.Actions = append(d.Actions, remove...)
	return d
}

// addActions adds to the live backend, on every HAProxy instance that lacks them, the
// live color's instances Consul passes. One Consul fails is left out until it passes
// (its health change runs the next pass): the route only moves to servers that serve.
func addActions(o Observed) ([]Action, []string) {
	live := o.State.Live
	if live == "" {
		return nil, nil
	}
	be := deployments.BackendName(o.App, live)
	has := map[string]map[string]bool{} // HAProxy instance -> its servers in be
	for lb := range o.Maps {
		has[lb] = map[string]bool{}
	}
	for _, r := range o.Servers[be] {
		if has[r.LB] == nil {
			has[r.LB] = map[string]bool{}
		}
		has[r.LB][r.Name] = true
	}
	var add []Server
	var names, failing []string
	var notes []string
	for _, in := range slices.SortedFunc(slices.Values(o.Instances), func(a, b RegisteredInstance) int { return strings.Compare(a.ID, b.ID) }) {
		missing := false
		for _, m := range has {
			missing = missing || !m[in.ID]
		}
		if in.Color != live || !missing {
			continue
		}
		if !in.Passing {
			failing = append(failing, in.ID+": "+orNot(in.Why, "failing in Consul"))
			continue
		}
		host, port, err := splitAddr(in.Addr)
		if err != nil {
			notes = append(notes, fmt.Sprintf("%s is not added to %s: Consul registers it at %q: %v", in.ID, be, in.Addr, err))
			continue
		}
		add = append(add, Server{Name: in.ID, Host: host, Port: port})
		names = append(names, in.ID)
	}
	if len(failing) > 0 {
		notes = append(notes, fmt.Sprintf("%s is missing on an HAProxy instance but Consul fails it, so it is added once it passes: %s",
			be, strings.Join(failing, "; ")))
	}
	if len(add) == 0 {
		return nil, notes
	}
	return []Action{{Kind: ActAdd, Backend: be, Servers: names, Add: add,
		Why: "the live color in KV is " + string(live) + " and Consul passes them, but an HAProxy instance lacks them"}}, notes
}

// splitAddr splits a registered "host:port".
func splitAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("port %q is not a TCP port", p)
	}
	return host, port, nil
}

// mapActions compares the routing key's entries on every HAProxy instance with the
// desired ones.
func mapActions(o Observed, wantRoute, wantPreview string) []Action {
	var out []Action
	routeOff, previewOff, canary := false, false, ""
	for _, lb := range slices.Sorted(maps.Keys(o.Maps)) {
		e := o.Maps[lb]
		routeOff = routeOff || (wantRoute != "" && e.Route != wantRoute)
		previewOff = previewOff || e.Preview != wantPreview
		if e.Canary != "" && canary == "" {
			canary = e.Canary
		}
	}
	if routeOff {
		out = append(out, Action{Kind: ActRoute, Backend: wantRoute, Why: "the live color in KV is " + strings.TrimPrefix(wantRoute, o.App+"_")})
	}
	if previewOff {
		why := "no swap waits in preview"
		if wantPreview != "" {
			why = "a swap waits in preview"
		}
		out = append(out, Action{Kind: ActPreview, Backend: wantPreview, Why: why})
	}
	if canary != "" {
		be, _, _ := strings.Cut(canary, ":")
		out = append(out, Action{Kind: ActCanary, Backend: be, Why: "no swap runs, so no canary either"})
	}
	return out
}

// meshActions routes the mesh to the live color in KV when it sends the traffic
// elsewhere or splits it (a canary only lives during a swap).
func meshActions(o Observed) []Action {
	live := o.State.Live
	if o.Mesh == nil || o.Mesh.Problem != "" || live == "" || (o.Mesh.Live == live && o.Mesh.Weight == 0) {
		return nil
	}
	return []Action{{Kind: ActMesh, Color: live, Why: fmt.Sprintf("the live color in KV is %s; the mesh sends the traffic to %s", live, o.Mesh)}}
}

// meshNotes says why the mesh is left as it is when it could not be read.
func meshNotes(o Observed) []string {
	if o.Mesh == nil || o.Mesh.Problem == "" {
		return nil
	}
	return []string{"the mesh is left as it is: " + o.Mesh.Problem}
}

// spareLast keeps, on every HAProxy instance, one server of the live backend in rotation
// that HAProxy's checks pass, when taking out or removing the candidates would leave none
// while there was one. It returns the candidates left and the names it kept.
func spareLast(rows map[string][]ServerAdmin, out, gone, back []string) (outLeft, goneLeft, kept []string) {
	leaving := func(name string) bool { return slices.Contains(out, name) || slices.Contains(gone, name) }
	byLB := map[string][]ServerAdmin{}
	for _, name := range slices.Sorted(maps.Keys(rows)) {
		for _, r := range rows[name] {
			byLB[r.LB] = append(byLB[r.LB], r)
		}
	}
	for _, lb := range slices.Sorted(maps.Keys(byLB)) {
		serving, left := 0, 0
		var candidate string
		for _, r := range byLB[lb] {
			ready := r.Admin == AdminReady || slices.Contains(back, r.Name)
			if !ready || !r.Up {
				continue
			}
			serving++
			if !leaving(r.Name) {
				left++
			} else if candidate == "" {
				candidate = r.Name
			}
		}
		if serving > 0 && left == 0 && candidate != "" {
			out = slices.DeleteFunc(out, func(n string) bool { return n == candidate })
			gone = slices.DeleteFunc(gone, func(n string) bool { return n == candidate })
			kept = append(kept, candidate)
		}
	}
	return out, gone, kept
}

func anyAdmin(rows []ServerAdmin, a Admin) bool {
	return slices.ContainsFunc(rows, func(r ServerAdmin) bool { return r.Admin == a })
}

func allAdmin(rows []ServerAdmin, a Admin) bool {
	return !slices.ContainsFunc(rows, func(r ServerAdmin) bool { return r.Admin != a })
}

func orNot(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}
