package switcher

import (
	"context"
	"errors"
	"sort"

	"github.com/swap-dev/swap/deployments"
)

// Usage is a container's resource use, like `docker stats`.
type Usage struct {
	CPUPercent float64 `json:"cpu_percent"`
	MemBytes   uint64  `json:"mem_bytes"`
	MemLimit   uint64  `json:"mem_limit"`
}

// UsageReader is optionally implemented by a Runtime that can report resource use.
type UsageReader interface {
	Usage(ctx context.Context, containerID string) (Usage, error)
}

// InstanceStatus is one instance as every view sees it.
type InstanceStatus struct {
	ID      string            `json:"id"`
	Color   deployments.Color `json:"color"`
	Image   string            `json:"image"`
	ImageID string            `json:"image_id,omitempty"`
	Addr    string            `json:"addr"`
	// DockerHost is the Docker host it runs on (docker.hosts[].name), "" with one.
	DockerHost string       `json:"docker_host,omitempty"`
	State      string       `json:"state"`             // Docker
	Consul     string       `json:"consul"`            // passing, critical: why, not registered
	HAProxy    []ServerStat `json:"haproxy"`           // one per HAProxy instance
	Sessions   int          `json:"sessions"`          // summed over HAProxy instances
	Usage      *Usage       `json:"usage,omitempty"`   // nil when unknown
	Problem    string       `json:"problem,omitempty"` // a view that could not be read
	// Drift says where HAProxy or Consul send the instance's traffic or checks when
	// that is not where its container publishes its port now (it restarted on another
	// host port); `swap resume <app>` or the next swap repairs it.
	Drift string `json:"drift,omitempty"`
}

// AppStatus is `swap status <app>`.
type AppStatus struct {
	App    string            `json:"app"`
	Live   deployments.Color `json:"live,omitempty"`
	Routes map[string]string `json:"routes"` // HAProxy instance -> backend
	// Mesh is where the service mesh sends the app's traffic (nil: consul.mesh is off).
	Mesh      *MeshTarget                      `json:"mesh,omitempty"`
	Colors    map[deployments.Color]ColorState `json:"colors"`
	Instances []InstanceStatus                 `json:"instances"`
	InFlight  *Journal                         `json:"in_flight,omitempty"`
	History   []Record                         `json:"history,omitempty"` // the last few
}

// Status reads an app from every view without taking its lock. A view that cannot be
// read is reported in the instances' Problem, not as an error.
func (s *Switcher) Status(ctx context.Context, app string) (*AppStatus, error) {
	spec, st, err := s.appState(ctx, app)
	if err != nil {
		return nil, err
	}
	out := &AppStatus{App: app, Live: st.Live, Colors: st.Colors}
	if n := len(st.History); n > 5 {
		out.History = st.History[n-5:]
	} else {
		out.History = st.History
	}
	if j, ok, err := s.kv().journal(ctx, app); err == nil && ok {
		out.InFlight = &j.Journal
	}
	var problems []error
	out.Routes, err = s.Balancer.Routes(ctx, spec.Route)
	problems = append(problems, err)
	out.Mesh = s.meshStatus(ctx, app)
	insts, err := s.Runtime.List(ctx, app)
	if err != nil && len(insts) == 0 {
		return nil, err
	}
	// A Docker host that does not answer: the others' instances, and the problem.
	problems = append(problems, err)
	regs, err := s.Registry.Instances(ctx, app)
	problems = append(problems, err)
	byID := map[string]RegisteredInstance{}
	for _, r := range regs {
		byID[r.ID] = r
	}
	stats := map[string][]ServerStat{}     // by server name
	byBackend := map[string][]ServerStat{} // by backend, for driftOf
	for _, c := range deployments.Colors {
		be := deployments.BackendName(app, c)
		ss, err := s.Balancer.Servers(ctx, be)
		problems = append(problems, err)
		byBackend[be] = ss
		for _, x := range ss {
			stats[x.Name] = append(stats[x.Name], x)
		}
	}
	problem := ""
	if err := errors.Join(problems...); err != nil {
		problem = err.Error()
	}
	usage, _ := s.Runtime.(UsageReader)
	for _, in := range insts {
		is := InstanceStatus{ID: in.ID(), Color: in.Color, Image: in.Image, ImageID: in.ImageID, Addr: in.Addr(), DockerHost: in.DockerHost, State: in.State,
			HAProxy: stats[in.ID()], Problem: problem}
		switch reg, ok := byID[in.ID()]; {
		case !ok:
			is.Consul = "not registered"
		case reg.Passing:
			is.Consul = "passing"
		default:
			is.Consul = "failing: " + reg.Why
		}
		for _, x := range is.HAProxy {
			is.Sessions += x.Sessions
		}
		if d, ok := driftOf(in, byBackend, byID); ok {
			is.Drift = d.String()
		}
		if usage != nil && in.State == "running" {
			if u, err := usage.Usage(ctx, in.ContainerID); err == nil {
				is.Usage = &u
			}
		}
		out.Instances = append(out.Instances, is)
	}
	sort.Slice(out.Instances, func(i, j int) bool { return out.Instances[i].ID < out.Instances[j].ID })
	return out, nil
}

// History returns app's recorded swaps, oldest first.
func (s *Switcher) History(ctx context.Context, app string) ([]Record, error) {
	_, st, err := s.appState(ctx, app)
	if err != nil {
		return nil, err
	}
	return st.History, nil
}
