package switcher

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// Tiny hand-written fakes of the switcher's ports, for its failure paths. "Containers"
// are httptest servers, so the gate's own probes are real HTTP.

type fakeContainer struct {
	inst    deployments.Instance
	srv     *httptest.Server
	healthy *atomic.Bool
}

type fakeRuntime struct {
	t        *testing.T
	mu       sync.Mutex
	cs       map[string]*fakeContainer // by instance ID
	images   map[string]string         // reference -> image ID ("" once the tag is gone)
	ids      map[string]bool           // image IDs present
	made     int                       // images made, for their IDs
	prunes   []string                  // PruneDangling calls
	removed  []string                  // images removed (their references)
	healthy  func(color deployments.Color) bool
	startErr error
}

func newFakeRuntime(t *testing.T) *fakeRuntime {
	return &fakeRuntime{t: t, cs: map[string]*fakeContainer{}, images: map[string]string{}, ids: map[string]bool{},
		healthy: func(deployments.Color) bool { return true }}
}

// EnsureImage "pulls" a missing reference as a new image.
func (f *fakeRuntime) EnsureImage(_ context.Context, ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.images[ref] == "" {
		f.tagLocked(ref)
	}
	return Image{Ref: ref, ID: f.images[ref]}, nil
}

// tag points ref at a new image, as a build of that tag would.
func (f *fakeRuntime) tag(ref string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tagLocked(ref)
}

func (f *fakeRuntime) tagLocked(ref string) string {
	f.made++
	id := fmt.Sprintf("sha256:%064x", f.made)
	f.images[ref], f.ids[id] = id, true
	return id
}

// dropImage removes the image id, as `docker rmi` would.
func (f *fakeRuntime) dropImage(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ids, id)
	for ref, v := range f.images {
		if v == id {
			delete(f.images, ref)
		}
	}
}

func (f *fakeRuntime) InspectImage(_ context.Context, ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ids[ref] {
		return Image{Ref: ref, ID: ref}, nil
	}
	if id := f.images[ref]; id != "" {
		return Image{Ref: ref, ID: id}, nil
	}
	return Image{}, fmt.Errorf("%w: %s", ErrImageNotFound, ref)
}

func (f *fakeRuntime) Start(_ context.Context, spec deployments.StartSpec) ([]deployments.Instance, error) {
	if f.startErr != nil {
		return nil, f.startErr
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []deployments.Instance
	for i := range spec.Replicas {
		healthy := &atomic.Bool{}
		healthy.Store(f.healthy(spec.Color))
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" && !healthy.Load() {
				http.Error(w, "unhealthy", http.StatusServiceUnavailable)
				return
			}
			fmt.Fprintln(w, "ok")
		}))
		f.t.Cleanup(srv.Close)
		host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
		p, _ := strconv.Atoi(port)
		in := deployments.Instance{App: spec.App, Color: spec.Color, Index: i, Deploy: spec.Deploy, Image: spec.Image,
			ImageID: spec.ImageID, ContainerID: "c-" + deployments.InstanceID(spec.App, spec.Color, i), Host: host, Port: p, State: "running"}
		if _, ok := f.cs[in.ID()]; ok {
			return nil, fmt.Errorf("container %s exists", in.ID())
		}
		f.cs[in.ID()] = &fakeContainer{inst: in, srv: srv, healthy: healthy}
		out = append(out, in)
	}
	return out, nil
}

func (f *fakeRuntime) List(_ context.Context, app string) ([]deployments.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []deployments.Instance
	for _, c := range f.cs {
		if c.inst.App == app {
			out = append(out, c.inst)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID() < out[j].ID() })
	return out, nil
}

func (f *fakeRuntime) Stop(_ context.Context, inst deployments.Instance, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.cs[inst.ID()]
	if !ok {
		return nil
	}
	c.srv.Close()
	delete(f.cs, inst.ID())
	return nil
}

// RemoveImage removes img by ID (by reference when the ID is unknown), like the driver.
func (f *fakeRuntime) RemoveImage(_ context.Context, img Image) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	id := img.ID
	if id == "" {
		id = f.images[img.Ref]
	}
	for _, c := range f.cs {
		if c.inst.ImageID == id {
			return ErrImageInUse
		}
	}
	if !f.ids[id] {
		return nil
	}
	delete(f.ids, id)
	for ref, v := range f.images {
		if v == id {
			delete(f.images, ref)
		}
	}
	f.removed = append(f.removed, img.Ref)
	return nil
}

// PruneDangling records its calls ("<until> <labels>").
func (f *fakeRuntime) PruneDangling(_ context.Context, until time.Duration, labels []string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.prunes = append(f.prunes, fmt.Sprintf("%s %v", until, labels))
	return 0, nil
}

func (f *fakeRuntime) colors() map[deployments.Color]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[deployments.Color]int{}
	for _, c := range f.cs {
		n[c.inst.Color]++
	}
	return n
}

// fakeRegistry is passing for everything registered unless failing says otherwise.
type fakeRegistry struct {
	mu      sync.Mutex
	regs    map[string]RegisteredInstance
	failing map[string]bool
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{regs: map[string]RegisteredInstance{}, failing: map[string]bool{}}
}

func (f *fakeRegistry) Register(_ context.Context, in deployments.Instance, _ deployments.HealthCheck, _ string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.regs[in.ID()] = RegisteredInstance{ID: in.ID(), Color: in.Color, Addr: in.Addr()}
	return nil
}

func (f *fakeRegistry) Deregister(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.regs, id)
	return nil
}

func (f *fakeRegistry) Instances(_ context.Context, app string) ([]RegisteredInstance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []RegisteredInstance
	for _, r := range f.regs {
		r.Passing = !f.failing[r.ID]
		if !r.Passing {
			r.Why = "service check critical"
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeRegistry) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.regs)
}

// fakeBalancer is one HAProxy named "lb1": servers are UP/L7OK as soon as added unless
// down says otherwise.
type fakeBalancer struct {
	mu       sync.Mutex
	servers  map[string]map[string]*ServerStat // backend -> name -> stat
	routes   map[string]string
	preview  map[string]string
	canary   map[string]int
	down     map[string]bool // server names whose HAProxy check fails
	routeLog []string
	// onServers, when set, runs (under the lock) before Servers reads backend.
	onServers func(backend string)
}

func newFakeBalancer() *fakeBalancer {
	return &fakeBalancer{servers: map[string]map[string]*ServerStat{}, routes: map[string]string{},
		preview: map[string]string{}, canary: map[string]int{}, down: map[string]bool{}}
}

func (f *fakeBalancer) AddServers(_ context.Context, backend string, servers []Server) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.servers[backend] == nil {
		f.servers[backend] = map[string]*ServerStat{}
	}
	for _, srv := range servers {
		if _, ok := f.servers[backend][srv.Name]; ok {
			return fmt.Errorf("server %s/%s exists", backend, srv.Name)
		}
		f.servers[backend][srv.Name] = &ServerStat{LB: "lb1", Name: srv.Name, Backup: srv.Backup, Addr: net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port))}
	}
	return nil
}

func (f *fakeBalancer) RemoveServers(_ context.Context, backend string, servers []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, srv := range servers {
		delete(f.servers[backend], srv)
	}
	return nil
}

func (f *fakeBalancer) Servers(_ context.Context, backend string) ([]ServerStat, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onServers != nil {
		f.onServers(backend)
	}
	var out []ServerStat
	for _, s := range f.servers[backend] {
		st := *s
		if st.Status == "" {
			st.Status, st.CheckStatus = "UP", "L7OK"
			if f.down[st.Name] {
				st.Status, st.CheckStatus = "DOWN", "L7STS"
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Counters sums the servers' answers: the fake's HAProxy answers nothing itself.
func (f *fakeBalancer) Counters(_ context.Context, backend string) ([]BackendCounters, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.onServers != nil {
		f.onServers(backend)
	}
	c := BackendCounters{LB: "lb1"}
	for _, s := range f.servers[backend] {
		c.Responses += s.Responses
		c.Errors5xx += s.Errors5xx
	}
	return []BackendCounters{c}, nil
}

func (f *fakeBalancer) SetServerAddr(_ context.Context, backend, server, host string, port int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.servers[backend][server]
	if !ok {
		return fmt.Errorf("no server %s/%s", backend, server)
	}
	s.Addr = net.JoinHostPort(host, strconv.Itoa(port))
	return nil
}

func (f *fakeBalancer) Drain(_ context.Context, backend string, servers []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, server := range servers {
		if s, ok := f.servers[backend][server]; ok {
			s.Status = "DRAIN"
		}
	}
	return nil
}

func (f *fakeBalancer) ShutdownSessions(_ context.Context, backend, server string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.servers[backend][server]; ok {
		s.Sessions = 0
	}
	return nil
}

func (f *fakeBalancer) Route(_ context.Context, key, backend string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.routes[key] = backend
	f.routeLog = append(f.routeLog, backend)
	return nil
}

func (f *fakeBalancer) Routes(_ context.Context, key string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]string{"lb1": f.routes[key]}, nil
}

func (f *fakeBalancer) Preview(_ context.Context, key, backend string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.preview[key] = backend
	return nil
}

func (f *fakeBalancer) Canary(_ context.Context, key, backend string, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.canary[key] = weight
	return nil
}

// spikeAfter makes backend's servers answer n more responses, errs of them 5xx, on the
// second read of backend from now on (the first read being the watcher's baseline).
func (f *fakeBalancer) spikeAfter(backend string, n, errs uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reads := 0
	f.onServers = func(be string) {
		if be != backend {
			return
		}
		if reads++; reads == 2 {
			f.addResponsesLocked(backend, n, errs)
		}
	}
}

func (f *fakeBalancer) addResponsesLocked(backend string, n, errs uint64) {
	for _, s := range f.servers[backend] {
		s.Responses += n
		s.Errors5xx += errs
	}
}

func (f *fakeBalancer) serverCount(backend string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.servers[backend])
}

func (f *fakeBalancer) route(key string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.routes[key]
}

// fakeStore is an in-memory KV with Consul's check-and-set rules.
type fakeStore struct {
	mu    sync.Mutex
	vals  map[string][]byte
	idx   map[string]uint64
	clock uint64
}

func newFakeStore() *fakeStore {
	return &fakeStore{vals: map[string][]byte{}, idx: map[string]uint64{}}
}

func (f *fakeStore) Get(_ context.Context, key string) ([]byte, uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.vals[key]
	if !ok {
		return nil, 0, nil
	}
	return append([]byte(nil), v...), f.idx[key], nil
}

func (f *fakeStore) CAS(_ context.Context, key string, value []byte, index uint64) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.idx[key] != index {
		return 0, fmt.Errorf("%s: %w", key, ErrStale)
	}
	f.clock++
	f.vals[key] = append([]byte(nil), value...)
	f.idx[key] = f.clock
	return f.clock, nil
}

func (f *fakeStore) Delete(_ context.Context, key string, index uint64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if i, ok := f.idx[key]; ok && i != index {
		return fmt.Errorf("delete %s: %w", key, ErrStale)
	}
	delete(f.vals, key)
	delete(f.idx, key)
	return nil
}

func (f *fakeStore) has(key string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.vals[key]
	return ok
}

// fakeLocker is a per-app mutex that waits up to wait when busy, then fails.
type fakeLocker struct {
	mu   sync.Mutex
	held map[string]bool
	// taken lists every lock handed out, newest last (a test closes one's lost).
	taken []*fakeUnlock
}

// lose makes the newest lock of app lost, as a Consul session gone would.
func (f *fakeLocker) lose(app string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.taken) - 1; i >= 0; i-- {
		if u := f.taken[i]; u.app == app {
			close(u.lost)
			delete(f.held, app)
			return
		}
	}
}

var errFakeBusy = errors.New("lock busy")

func (f *fakeLocker) Lock(ctx context.Context, app string, wait time.Duration) (Unlocker, error) {
	deadline := time.Now().Add(wait)
	for {
		if u := f.tryLock(app); u != nil {
			return u, nil
		}
		if !time.Now().Before(deadline) {
			return nil, errFakeBusy
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func (f *fakeLocker) tryLock(app string) Unlocker {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.held == nil {
		f.held = map[string]bool{}
	}
	if f.held[app] {
		return nil
	}
	f.held[app] = true
	u := &fakeUnlock{f: f, app: app, lost: make(chan struct{})}
	f.taken = append(f.taken, u)
	return u
}

type fakeUnlock struct {
	f    *fakeLocker
	app  string
	lost chan struct{}
}

func (u *fakeUnlock) Unlock(context.Context) error {
	u.f.mu.Lock()
	defer u.f.mu.Unlock()
	delete(u.f.held, u.app)
	return nil
}

func (u *fakeUnlock) Lost() <-chan struct{} { return u.lost }

// fakeHooks records hook runs and fails those named in fail.
type fakeHooks struct {
	mu   sync.Mutex
	ran  []string
	fail map[string]bool
}

func (f *fakeHooks) Run(_ context.Context, h Hook) error {
	name := h.Name
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ran = append(f.ran, name)
	if f.fail[name] {
		return fmt.Errorf("exit status 1")
	}
	return nil
}

// ForceRelease makes fakeLocker a LockBreaker.
func (f *fakeLocker) ForceRelease(_ context.Context, app string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.held[app] {
		return "", nil
	}
	delete(f.held, app)
	return "pid 1 on host", nil
}

// setColorHealthy makes every container of color answer its health check or not.
func (f *fakeRuntime) setColorHealthy(c deployments.Color, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, fc := range f.cs {
		if fc.inst.Color == c {
			fc.healthy.Store(ok)
		}
	}
}

// backend lists backend's servers with their backup flag.
func (f *fakeBalancer) backend(backend string) map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for name, s := range f.servers[backend] {
		out[name] = s.Backup
	}
	return out
}

func (f *fakeBalancer) setDown(server string, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[server] = down
}

// fakeMesh is the service mesh's routing of apps: a default subset and a split each.
type fakeMesh struct {
	mu    sync.Mutex
	live  map[string]deployments.Color
	split map[string]MeshTarget
	log   []string // "route blue", "split green 10", in order
	// fail, when set, decides whether a change fails: op is "route" or "split".
	fail func(op string, c deployments.Color, weight int) error
}

func newFakeMesh() *fakeMesh {
	return &fakeMesh{live: map[string]deployments.Color{}, split: map[string]MeshTarget{}}
}

func (f *fakeMesh) Route(_ context.Context, app string, live deployments.Color) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "route "+string(live))
	if f.fail != nil {
		if err := f.fail("route", live, 0); err != nil {
			return err
		}
	}
	f.live[app] = live
	delete(f.split, app)
	return nil
}

func (f *fakeMesh) Split(_ context.Context, app string, to deployments.Color, weight int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, fmt.Sprintf("split %s %d", to, weight))
	if f.fail != nil {
		if err := f.fail("split", to, weight); err != nil {
			return err
		}
	}
	if weight == 0 {
		delete(f.split, app)
	} else {
		f.split[app] = MeshTarget{Canary: to, Weight: weight}
	}
	return nil
}

func (f *fakeMesh) Target(_ context.Context, app string) (MeshTarget, error) {
	return f.target(app), nil
}

func (f *fakeMesh) target(app string) MeshTarget {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.split[app]
	t.Live = f.live[app]
	return t
}

func (f *fakeMesh) changes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}
