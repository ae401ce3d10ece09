package switcher

import (
	"context"
	"fmt"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// The switcher owns no I/O: it drives these interfaces, which the adapters in
// deployments/docker, deployments/consul and lbconfig satisfy (wired in internal/wire), and
// which its failure-path tests fake.

// Runtime runs an app's containers.
type Runtime interface {
	// EnsureImage makes ref available locally (pulling only when missing) and says
	// which image it is.
	EnsureImage(ctx context.Context, ref string) (Image, error)
	// InspectImage says which image ref (a reference or an ID) is, without pulling;
	// ErrImageNotFound when the host does not have it.
	InspectImage(ctx context.Context, ref string) (Image, error)
	// Start starts spec.Replicas containers and returns them running, with their
	// published addresses. On error nothing it created is left behind.
	Start(ctx context.Context, spec deployments.StartSpec) ([]deployments.Instance, error)
	// List returns the app's swap-managed containers in any state.
	List(ctx context.Context, app string) ([]deployments.Instance, error)
	// Stop stops (SIGTERM, then timeout) and removes one managed container.
	Stop(ctx context.Context, inst deployments.Instance, timeout time.Duration) error
	// RemoveImage removes an image a deploy ran, by its ID when known (whatever its
	// reference names now stays), when no container uses it; ErrImageInUse reports
	// that case, and an image other tags still name.
	RemoveImage(ctx context.Context, img Image) error
	// PruneDangling removes dangling images no container uses, created more than
	// until ago, carrying every label of labels, and returns how many went.
	PruneDangling(ctx context.Context, until time.Duration, labels []string) (int, error)
}

// RegisteredInstance is one service instance as the Registry sees it.
type RegisteredInstance struct {
	ID      string
	Color   deployments.Color
	Passing bool
	// Why says why it is not passing (check name and output).
	Why string
	// Addr is the registered "host:port".
	Addr string
}

// Registry is the service catalog (Consul).
type Registry interface {
	Register(ctx context.Context, inst deployments.Instance, check deployments.HealthCheck, version string) error
	Deregister(ctx context.Context, serviceID string) error
	Instances(ctx context.Context, app string) ([]RegisteredInstance, error)
}

// Server is a backend server the Balancer should add.
type Server struct {
	Name string // deployments.InstanceID
	Host string
	Port int
	// Backup: the server takes traffic only while no other server of the backend is up
	// (the old color's instances in the new color's backend, until the drain).
	Backup bool
}

// ServerStat is one server of a backend on one HAProxy instance.
type ServerStat struct {
	LB          string // HAProxy instance name
	Name        string
	Addr        string // "host:port" HAProxy sends the server's traffic to
	Status      string // UP, DOWN, DRAIN, MAINT, "DOWN 1/2"...
	CheckStatus string // L7OK, L4CON, ... ("* " prefix removed)
	Sessions    int    // scur
	Queued      int    // qcur
	UsedConns   int    // used_conn_cur
	Responses   uint64 // hrsp_1xx..hrsp_other
	Errors5xx   uint64 // hrsp_5xx
	Backup      bool   // a backup server (bck)
}

// BackendCounters are the response counters of a backend's own row of `show stat` on one
// HAProxy instance: every answer sent for the backend, HAProxy's own 502/503/504 (no
// server up, a server refused or timed out) included, which the server rows do not
// count.
type BackendCounters struct {
	LB        string
	Responses uint64 // hrsp_1xx..hrsp_other
	Errors5xx uint64 // hrsp_5xx
}

// Empty reports whether the server has nothing in flight.
func (s ServerStat) Empty() bool { return s.Sessions == 0 && s.Queued == 0 && s.UsedConns == 0 }

// Healthy reports whether HAProxy's own check passes (L7OK for an HTTP check; L4OK or
// L6OK for a TCP one) and the server is up.
func (s ServerStat) Healthy() bool {
	switch s.CheckStatus {
	case "L7OK", "L6OK", "L4OK":
		return s.Status == "UP"
	}
	return false
}

// Balancer is the HAProxy fleet. Every change is made at runtime on every instance and
// then persisted to HAProxy's files.
type Balancer interface {
	// AddServers adds servers to backend, DOWN until HAProxy's checks pass.
	AddServers(ctx context.Context, backend string, servers []Server) error
	// RemoveServers puts the servers in maintenance and deletes them (retrying while one
	// is not removable, until ctx ends). A missing server is not an error.
	RemoveServers(ctx context.Context, backend string, servers []string) error
	// Servers lists backend's servers on every instance.
	Servers(ctx context.Context, backend string) ([]ServerStat, error)
	// Counters returns the backend's own response counters on every instance.
	Counters(ctx context.Context, backend string) ([]BackendCounters, error)
	// SetServerAddr moves a server to host:port on every instance.
	SetServerAddr(ctx context.Context, backend, server, host string, port int) error
	// Drain stops new sessions to the servers (state drain).
	Drain(ctx context.Context, backend string, servers []string) error
	// ShutdownSessions ends the server's sessions.
	ShutdownSessions(ctx context.Context, backend, server string) error
	// Route points the routing key at backend on every instance, all or nothing.
	Route(ctx context.Context, key, backend string) error
	// Routes returns where key points on each instance ("" when unset), by instance name.
	Routes(ctx context.Context, key string) (map[string]string, error)
	// Preview points the preview frontend's key at backend ("" removes it).
	Preview(ctx context.Context, key, backend string) error
	// Canary sends weight percent (0..100) of key's traffic to backend; 0 ends it.
	Canary(ctx context.Context, key, backend string, weight int) error
}

// Store is the KV store for state and journal, with check-and-set.
type Store interface {
	// Get returns the value and its modify index; a missing key is (nil, 0, nil).
	Get(ctx context.Context, key string) ([]byte, uint64, error)
	// CAS writes value if the key's index is still index (0: only if absent) and
	// returns the new index; a moved index is an error wrapping ErrStale.
	CAS(ctx context.Context, key string, value []byte, index uint64) (uint64, error)
	// Delete removes key if its index is still index; a moved index is an error
	// wrapping ErrStale, a missing key is not an error.
	Delete(ctx context.Context, key string, index uint64) error
}

// Locker takes the per-app lock.
type Locker interface {
	// Lock takes the app's lock, waiting up to wait; a busy lock is an error that
	// names the holder.
	Lock(ctx context.Context, app string, wait time.Duration) (Unlocker, error)
}

// Unlocker releases a lock.
type Unlocker interface {
	Unlock(ctx context.Context) error
	// Lost is closed if the lock is lost while held.
	Lost() <-chan struct{}
}

// Hook is one run of a deploy hook.
type Hook struct {
	App, Name, Command string
	// Env is the hook's environment beyond PATH and HOME: the app's hooks.env, then
	// SWAP_APP, SWAP_COLOR, SWAP_IMAGE and SWAP_DEPLOY.
	Env []string
	// Timeout bounds the run (the app's hooks.timeout).
	Timeout time.Duration
}

// HookRunner runs a deploy hook (a shell command).
type HookRunner interface {
	Run(ctx context.Context, h Hook) error
}

// LockBreaker is optionally implemented by a Locker that can break a lock whose holder
// died (swap unlock). It returns who held it.
type LockBreaker interface {
	ForceRelease(ctx context.Context, app string) (holder string, err error)
}

// Mesh is the service mesh's routing of an app (Consul's service-resolver and
// service-splitter, with consul.mesh): which color mesh clients reach. The switcher moves
// it with the edge (HAProxy) at every flip. A nil Mesh is the mesh off.
type Mesh interface {
	// Route sends all of app's mesh traffic to live: its default subset is live and no
	// split remains. Writing the same again changes nothing.
	Route(ctx context.Context, app string, live deployments.Color) error
	// Split sends weight percent (1..100) of app's mesh traffic to the subset to, the
	// rest to the other color, until Route; weight 0 ends the split.
	Split(ctx context.Context, app string, to deployments.Color, weight int) error
	// Target says where app's mesh traffic goes now.
	Target(ctx context.Context, app string) (MeshTarget, error)
}

// MeshTarget is where an app's mesh traffic goes.
type MeshTarget struct {
	// Live is the default subset ("" when the mesh has no route for the app yet).
	Live deployments.Color `json:"live,omitempty"`
	// Canary and Weight are the split, when one is set: Weight percent to Canary, the
	// rest to the other color.
	Canary deployments.Color `json:"canary,omitempty"`
	Weight int               `json:"weight,omitempty"`
	// Problem says what could not be read, or what stands in swap's way.
	Problem string `json:"problem,omitempty"`
}

// String reads as "green", "blue, 30% to green" or "none".
func (t MeshTarget) String() string {
	s := string(t.Live)
	if s == "" {
		s = "none"
	}
	if t.Weight > 0 {
		s += fmt.Sprintf(", %d%% to %s", t.Weight, t.Canary)
	}
	return s
}
