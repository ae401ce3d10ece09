package switcher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/swap-dev/swap/deployments"
)

// drift is an instance whose container publishes its port elsewhere than HAProxy or
// Consul send its traffic and checks: the container restarted and its engine gave it
// another host port (docker.host_ports: ephemeral, or a container from before swap
// pinned host ports).
type drift struct {
	Instance deployments.Instance
	// HAProxy is the address each HAProxy instance that differs has for the server,
	// by HAProxy instance name.
	HAProxy map[string]string
	// Consul is the address Consul has registered when it differs ("" when it agrees
	// or the instance is not registered).
	Consul string
	// backends are the HAProxy backends with a server of the instance's name at
	// another address (its color's, and another that holds it as a backup).
	backends []string
}

func (d drift) String() string {
	var parts []string
	for _, lb := range slices.Sorted(maps.Keys(d.HAProxy)) {
		parts = append(parts, fmt.Sprintf("haproxy %s sends it to %s", lb, d.HAProxy[lb]))
	}
	if d.Consul != "" {
		parts = append(parts, "consul has "+d.Consul)
	}
	return fmt.Sprintf("the container publishes %s but %s", d.Instance.Addr(), strings.Join(parts, ", "))
}

// sameAddr reports whether addr ("host:port", IPv6 bracketed or not) is host:port.
func sameAddr(addr, host string, port int) bool {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	return strings.Trim(h, "[]") == strings.Trim(host, "[]") && p == strconv.Itoa(port)
}

// drifts compares app's running containers with HAProxy's servers and Consul's
// registrations of them. The error joins the views that could not be read.
func (s *Switcher) drifts(ctx context.Context, app string) ([]drift, error) {
	insts, err := s.Runtime.List(ctx, app)
	if err != nil {
		return nil, err
	}
	var problems []error
	regs, err := s.Registry.Instances(ctx, app)
	problems = append(problems, err)
	byID := map[string]RegisteredInstance{}
	for _, r := range regs {
		byID[r.ID] = r
	}
	stats := map[string][]ServerStat{} // by backend
	for _, c := range deployments.Colors {
		be := deployments.BackendName(app, c)
		ss, err := s.Balancer.Servers(ctx, be)
		problems = append(problems, err)
		stats[be] = ss
	}
	var out []drift
	for _, in := range insts {
		if d, ok := driftOf(in, stats, byID); ok {
			out = append(out, d)
		}
	}
	return out, errors.Join(problems...)
}

// driftOf compares a running instance with HAProxy's servers (stats: rows by backend)
// and Consul's registrations (by instance ID); ok says whether anything differs. A
// stopped or restarting container has no address to follow yet: it never drifts.
func driftOf(in deployments.Instance, stats map[string][]ServerStat, regs map[string]RegisteredInstance) (d drift, ok bool) {
	if in.State != "running" || in.Port == 0 {
		return drift{}, false
	}
	d = drift{Instance: in, HAProxy: map[string]string{}}
	for _, be := range slices.Sorted(maps.Keys(stats)) {
		for _, st := range stats[be] {
			if st.Name == in.ID() && st.Addr != "" && !sameAddr(st.Addr, in.Host, in.Port) {
				d.HAProxy[st.LB] = st.Addr
				if !slices.Contains(d.backends, be) {
					d.backends = append(d.backends, be)
				}
			}
		}
	}
	if r, ok := regs[in.ID()]; ok && r.Addr != "" && !sameAddr(r.Addr, in.Host, in.Port) {
		d.Consul = r.Addr
	}
	return d, len(d.HAProxy) > 0 || d.Consul != ""
}

// repairDrift makes HAProxy's servers and Consul's registrations of app's running
// containers follow the containers' published ports (see drift), reports each repair
// as a resume event and returns how many instances it moved. It needs the app's lock:
// the next swap and `swap resume` call it before anything else.
func (s *Switcher) repairDrift(ctx context.Context, spec *deployments.App) (int, error) {
	drifts, err := s.drifts(ctx, spec.Name)
	if err != nil && len(drifts) == 0 {
		return 0, fmt.Errorf("look for %s's containers that moved to another host port: %w", spec.Name, err)
	}
	moved := 0
	var errs []error
	for _, d := range drifts {
		in := d.Instance
		failed := false
		for _, backend := range d.backends {
			if err := s.Balancer.SetServerAddr(ctx, backend, in.ID(), in.Host, in.Port); err != nil {
				errs = append(errs, fmt.Errorf("move HAProxy server %s/%s to %s: %w", backend, in.ID(), in.Addr(), err))
				failed = true
			}
		}
		if failed {
			continue
		}
		if d.Consul != "" {
			if err := s.Registry.Register(ctx, in, spec.HealthCheck, imageVersion(in.Image)); err != nil {
				errs = append(errs, fmt.Errorf("register %s again at %s: %w", in.ID(), in.Addr(), err))
				continue
			}
		}
		moved++
		s.emit(Event{App: spec.Name, Step: StepResume, Kind: EventInfo, Instance: in.ID(),
			Message: fmt.Sprintf("%s moved to %s (it restarted on another host port): HAProxy and Consul follow it now (%s)", in.ID(), in.Addr(), d)})
	}
	if err := errors.Join(errs...); err != nil {
		return moved, fmt.Errorf("repair %s's instances that moved to another host port: %w; run `swap resume %s` again", spec.Name, err, spec.Name)
	}
	return moved, nil
}
