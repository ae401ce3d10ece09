// Package wire builds a switcher.Switcher from a config with the real adapters: the
// Docker driver, the Consul registry (services, KV, locks) and an HAProxy fleet. It is
// the one place that knows every adapter; cmd/swap and the end-to-end tests use it.
package wire

import (
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/lbconfig"
	"github.com/swap-dev/swap/switcher"
)

// Options tune New.
type Options struct {
	// Command is the lock holder's command line.
	Command string
	// ContainerLabels are added to every container swap starts.
	ContainerLabels map[string]string
	// LockTTL is the Consul session TTL of the app lock (0: the registry's default).
	LockTTL time.Duration
	// HAProxyObserver, when set, hears every Runtime API command sent to the HAProxy
	// instances (swap serve's metrics).
	HAProxyObserver lbconfig.Observer
}

// New wires a Switcher for cfg (already defaulted and validated). close releases the
// clients.
func New(cfg *deployments.Config, log *zap.Logger, opts Options) (sw *switcher.Switcher, close func(), err error) {
	if log == nil {
		log = zap.NewNop()
	}
	dcfg := cfg.Docker
	// One identity for the containers and the Consul services: the KV prefix's.
	dcfg.Installation = deployments.Installation(cfg.Consul.KVPrefix)
	rt, closeRT, err := runtimeOf(cfg, dcfg, log, opts.ContainerLabels)
	if err != nil {
		return nil, nil, err
	}
	reg, err := consul.New(cfg.Consul, log.Named("consul"))
	if err != nil {
		closeRT()
		return nil, nil, err
	}
	var clientOpts []lbconfig.Option
	if opts.HAProxyObserver != nil {
		clientOpts = append(clientOpts, lbconfig.WithObserver(opts.HAProxyObserver))
	}
	// haproxy.check_container runs in the engine of this host: the single engine's
	// driver, or (several hosts) a client of the Fleet's own.
	var drv *docker.Driver
	if one, ok := rt.(*Runtime); ok {
		drv = one.Driver
	}
	fleet, err := Fleet(cfg, drv, clientOpts...)
	if err != nil {
		closeRT()
		return nil, nil, err
	}
	sw = &switcher.Switcher{
		Config:   cfg,
		Runtime:  rt,
		Registry: Registry{R: reg},
		Balancer: &Balancer{F: fleet, Log: log.Named("haproxy")},
		Store:    Store{R: reg},
		Locker:   Locker{R: reg, Command: opts.Command, TTL: opts.LockTTL, Log: log.Named("lock")},
		Hooks:    Hooks{Log: log.Named("hooks")},
		Log:      log.Named("switcher"),
	}
	if cfg.Consul.Mesh {
		sw.Mesh = Mesh{R: reg}
	}
	return sw, closeRT, nil
}

// runtimeOf is the Docker runtime of cfg: the one engine of docker.host, or every host
// of docker.hosts.
func runtimeOf(cfg *deployments.Config, dcfg deployments.DockerConfig, log *zap.Logger, labels map[string]string) (switcher.Runtime, func(), error) {
	if len(cfg.Docker.Hosts) > 0 {
		h, err := NewHosts(cfg, dcfg, labels, log.Named("docker"))
		if err != nil {
			return nil, nil, err
		}
		return h, h.Close, nil
	}
	drv, err := docker.New(dcfg, log.Named("docker"))
	if err != nil {
		return nil, nil, err
	}
	return &Runtime{Driver: drv, Labels: labels}, func() { drv.Close() }, nil
}

// Fleet builds the HAProxy fleet of cfg with the layout the config describes, each
// instance persisting to its own directory (haproxy.instances[].dir, default
// haproxy.dir), checking its files as WriteOptions says (with drv, nil: a Docker client
// of its own when haproxy.check_container needs one). opts are added to each instance's
// client.
func Fleet(cfg *deployments.Config, drv *docker.Driver, opts ...lbconfig.Option) (*lbconfig.Fleet, error) {
	var instances []lbconfig.Instance
	for i := range cfg.HAProxy.Instances {
		inst, err := instance(cfg, i, opts...)
		if err != nil {
			return nil, err
		}
		instances = append(instances, inst)
	}
	if len(instances) == 0 {
		return nil, errors.New("haproxy.instances: none configured")
	}
	return newFleet(cfg, drv, instances)
}

// ReloadFleet is the fleet that `swap lb render --reload` reloads (Fleet.Reload): the
// instances of cfg whose files this host writes, each through its master CLI. Another
// host's instance (address, no dir) is left out: its files are written on its host, and
// reloaded there. An instance without master_socket cannot be reloaded by swap: the
// error, an ErrInvalidConfig, names each one. It is nil, nil when no instance's files
// are written here.
func ReloadFleet(cfg *deployments.Config) (*lbconfig.Fleet, error) {
	var instances []lbconfig.Instance
	var missing []deployments.FieldError
	for i, in := range cfg.HAProxy.Instances {
		if !cfg.HAProxy.WritesFiles(i) {
			continue
		}
		if in.MasterSocket == "" {
			missing = append(missing, deployments.FieldError{
				Path: string(deployments.Path("haproxy.instances").Index(i).Key("master_socket")),
				Msg: fmt.Sprintf("haproxy %s has none, so swap cannot reload it: set it to the master CLI socket HAProxy runs with (`haproxy -W -S <socket>`, docs/haproxy.md), or run `swap lb render` without --reload and reload that HAProxy yourself",
					in.Name),
			})
			continue
		}
		inst, err := instance(cfg, i)
		if err != nil {
			return nil, err
		}
		instances = append(instances, inst)
	}
	if err := deployments.NewValidationError(missing); err != nil {
		return nil, err
	}
	if len(instances) == 0 {
		return nil, nil
	}
	return newFleet(cfg, nil, instances)
}

// instance is haproxy.instances[i] of cfg as a fleet's instance: its client (with
// opts), its master CLI when master_socket is set, its directory.
func instance(cfg *deployments.Config, i int, opts ...lbconfig.Option) (lbconfig.Instance, error) {
	in := cfg.HAProxy.Instances[i]
	c, err := Client(in, opts...)
	if err != nil {
		return lbconfig.Instance{}, err
	}
	inst := lbconfig.Instance{Client: c, Dir: cfg.HAProxy.InstanceDir(i), NoFiles: !cfg.HAProxy.WritesFiles(i)}
	if in.MasterSocket != "" {
		if inst.Master, err = lbconfig.NewMaster(in.MasterSocket, lbconfig.WithName(in.Name+"-master")); err != nil {
			return lbconfig.Instance{}, fmt.Errorf("haproxy instance %s master socket: %w", in.Name, err)
		}
	}
	return inst, nil
}

// newFleet is the fleet of instances with cfg's layout and write options (see Fleet).
func newFleet(cfg *deployments.Config, drv *docker.Driver, instances []lbconfig.Instance) (*lbconfig.Fleet, error) {
	write, err := WriteOptions(cfg, drv)
	if err != nil {
		return nil, err
	}
	layout, err := switcher.LBLayout(cfg, switcher.LBCurrent{})
	if err != nil {
		return nil, err
	}
	return lbconfig.NewFleet(layout, write, instances...)
}

// Client is the Runtime API client of one HAProxy instance: its admin socket, else its
// TCP address. opts are added to the client's name.
func Client(in deployments.HAProxyInstance, opts ...lbconfig.Option) (*lbconfig.Client, error) {
	network, addr := "unix", in.Socket
	if addr == "" {
		network, addr = "tcp", in.Address
	}
	c, err := lbconfig.New(network, addr, append([]lbconfig.Option{lbconfig.WithName(in.Name)}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("haproxy instance %s: %w", in.Name, err)
	}
	return c, nil
}

var _ lbconfig.CheckRunner = docker.HAProxyCheck{}

// WriteOptions says how swap checks a rendered haproxy.cfg before it replaces the live
// one: `haproxy -c` with haproxy.binary, a process of swap's own, or, with
// haproxy.check_container, run in that container through drv's Docker engine (nil: a
// Docker client for cfg.Docker that lives as long as the process; it holds no
// connection while idle).
func WriteOptions(cfg *deployments.Config, drv *docker.Driver) (lbconfig.WriteOptions, error) {
	write := lbconfig.WriteOptions{Binary: cfg.HAProxy.Binary}
	if cfg.HAProxy.CheckContainer == "" {
		return write, nil
	}
	if drv == nil {
		var err error
		if drv, err = docker.New(cfg.Docker, zap.NewNop()); err != nil {
			return write, fmt.Errorf("haproxy.check_container: %w", err)
		}
	}
	write.Checker = drv.HAProxyCheck(cfg.HAProxy.CheckContainer)
	return write, nil
}
