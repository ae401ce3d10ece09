// Package docker runs an app's colors as Docker containers through the Docker Engine
// API: it starts and stops swap's containers, lists them from their labels, makes sure
// images are present, removes images no container uses, prunes dangling images and reads
// per-container CPU and memory.
//
// Safety rules, enforced here and not left to callers: nothing without the label
// swap.managed=true is stopped or removed; volumes are never removed; an image used by
// any container (managed or not, running or not) is never removed; a prune never runs
// while a pull holds the per-host pull/prune lock. docs/docker.md has the details.
package docker

import (
	"context"
	"fmt"

	"github.com/docker/docker/api/types"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/client"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// DefaultHostIP is where container ports are published unless configured otherwise.
const DefaultHostIP = "127.0.0.1"

// engine is the part of the Docker SDK client the driver uses. Helpers take the
// narrowest part they need (client.ContainerAPIClient, client.ImageAPIClient), so a test
// fake embeds that interface and overrides only what the test calls.
type engine interface {
	client.ContainerAPIClient
	client.ImageAPIClient
	Ping(ctx context.Context) (types.Ping, error)
	DaemonHost() string
	Close() error
}

var _ engine = (*client.Client)(nil)

// Driver talks to one Docker engine. It is safe for concurrent use.
type Driver struct {
	cli  engine
	host string // the engine's address, for messages and the pull/prune lock
	// hostName is the docker.hosts[].name of the engine (NewHost), "" for docker.host.
	hostName string
	hostIP   string // default address ports are published on
	log      *zap.Logger
	lock     *hostLock
	// dockerConfig is Docker's config file, read for registry credentials on a pull.
	dockerConfig string
	// installation is the identity of the swap installation this driver acts for: its
	// containers carry it in the label swap.installation, and the driver lists, stops
	// and removes nothing that carries another (deployments.OwnedBy).
	installation string
	// restart is the restart policy of every container Start creates.
	restart container.RestartPolicy
	// portLo..portHi is the range Start picks host ports from; 0 lets the engine pick.
	portLo, portHi int
}

// New connects a Driver to the engine cfg names (cfg.Host; empty means DOCKER_HOST or the
// default socket). The Engine API version is negotiated on first use, so the same binary
// talks to older engines (20.10, API 1.41) and newer ones. New does not contact the
// engine; call Ping to check it answers.
func New(cfg deployments.DockerConfig, log *zap.Logger) (*Driver, error) {
	opts := []client.Opt{client.FromEnv, client.WithAPIVersionNegotiation()}
	if cfg.Host != "" {
		opts = append(opts, client.WithHost(cfg.Host))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		host := cfg.Host
		if host == "" {
			host = "DOCKER_HOST"
		}
		return nil, fmt.Errorf("docker client for %s: %w; check docker.host (unix:///var/run/docker.sock, tcp://host:2376) and DOCKER_* variables", host, err)
	}
	d := newDriver(cli, cfg.HostIP, log)
	if err := d.configure(cfg); err != nil {
		cli.Close()
		return nil, err
	}
	return d, nil
}

// NewHost connects a Driver to one of docker.hosts: its engine (through its TLS files
// when it has them), publishing container ports on its address; cfg gives the rest
// (installation, restart policy, host port range), as for New. DOCKER_* variables are
// not read: the host says everything. Like New, it does not contact the engine.
func NewHost(cfg deployments.DockerConfig, h deployments.DockerHost, log *zap.Logger) (*Driver, error) {
	opts := []client.Opt{client.WithHost(h.Engine), client.WithAPIVersionNegotiation()}
	if h.TLS.On() {
		opts = append(opts, client.WithTLSClientConfig(h.TLS.CAFile, h.TLS.CertFile, h.TLS.KeyFile))
	}
	cli, err := client.NewClientWithOpts(opts...)
	if err != nil {
		return nil, fmt.Errorf("docker client for host %s (%s): %w; check docker.hosts[].engine and its tls files", h.Name, h.Engine, err)
	}
	d := newDriver(cli, h.Address, log)
	d.hostName = h.Name
	if err := d.configure(cfg); err != nil {
		cli.Close()
		return nil, err
	}
	return d, nil
}

// configure applies the installation, restart policy and host port range of cfg.
func (d *Driver) configure(cfg deployments.DockerConfig) error {
	d.installation = deployments.Installation(cfg.Installation)
	if cfg.RestartPolicy != "" {
		name, retries, err := cfg.RestartPolicyName()
		if err != nil {
			return fmt.Errorf("docker.restart_policy: %w", err)
		}
		d.restart = container.RestartPolicy{Name: container.RestartPolicyMode(name), MaximumRetryCount: retries}
	}
	if cfg.HostPorts != "" {
		lo, hi, ok, err := cfg.HostPortRange()
		if err != nil {
			return fmt.Errorf("docker.host_ports: %w", err)
		}
		if ok {
			d.portLo, d.portHi = lo, hi
		}
	}
	return nil
}

// Installation is the installation this driver acts for.
func (d *Driver) Installation() string { return d.installation }

func newDriver(cli engine, hostIP string, log *zap.Logger) *Driver {
	if log == nil {
		log = zap.NewNop()
	}
	if hostIP == "" {
		hostIP = DefaultHostIP
	}
	host := cli.DaemonHost()
	return &Driver{
		cli:          cli,
		host:         host,
		hostIP:       hostIP,
		log:          log.Named("docker").With(zap.String("docker_host", host)),
		lock:         newHostLock(lockPathFor(host)),
		dockerConfig: defaultDockerConfigPath(),
		installation: deployments.DefaultInstallation,
	}
}

// Host is the engine's address, e.g. "unix:///var/run/docker.sock".
func (d *Driver) Host() string { return d.host }

// Close releases the client's connections.
func (d *Driver) Close() error { return d.cli.Close() }

// Ping checks that the engine answers. An unreachable engine is an ErrUnreachable naming
// the address and what to check; a socket this user may not open is ErrPermissionDenied.
func (d *Driver) Ping(ctx context.Context) error {
	if _, err := d.cli.Ping(ctx); err != nil {
		return d.engineError("ping docker engine", err)
	}
	return nil
}
