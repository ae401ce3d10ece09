package wire

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/switcher"
)

// Hosts is a switcher.Runtime spanning several Docker hosts (docker.hosts). An app's
// replica indexes are placed on the hosts by Place; each instance carries the name of
// its host (Instance.DockerHost) and is published on that host's address, so Consul
// and HAProxy reach it there. The switcher sees one runtime: Start is all or nothing
// across hosts, List merges every host, Stop goes to the instance's host, and images
// are ensured, removed and pruned on every host, each with its own pull/prune lock.
type Hosts struct {
	Hosts []HostRuntime
	// Place names the host of each replica index 0..replicas-1 of app.
	Place func(app string, replicas int) []string
	Log   *zap.Logger
}

// HostRuntime is one Docker host of Hosts.
type HostRuntime struct {
	Name    string
	Runtime *Runtime
}

var (
	_ switcher.Runtime     = (*Hosts)(nil)
	_ switcher.UsageReader = (*Hosts)(nil)
	_ switcher.Pinger      = (*Hosts)(nil)
)

// NewHosts connects to every one of cfg's docker.hosts (without contacting them).
func NewHosts(cfg *deployments.Config, dcfg deployments.DockerConfig, labels map[string]string, log *zap.Logger) (*Hosts, error) {
	h := &Hosts{Log: log, Place: func(app string, replicas int) []string {
		if a := cfg.Apps[app]; a != nil && a.Replicas == replicas {
			return cfg.HostsOf(a)
		}
		return cfg.HostsOf(&deployments.App{Replicas: replicas}) // spread

	}}
	for _, dh := range cfg.Docker.HostList() {
		drv, err := docker.NewHost(dcfg, dh, log.Named(dh.Name))
		if err != nil {
			h.Close()
			return nil, err
		}
		h.Hosts = append(h.Hosts, HostRuntime{Name: dh.Name, Runtime: &Runtime{Driver: drv, Labels: labels, Name: dh.Name}})
	}
	return h, nil
}

// Close releases every host's client.
func (h *Hosts) Close() {
	for _, hr := range h.Hosts {
		hr.Runtime.Driver.Close()
	}
}

// each runs f on every host side by side and returns the errors, each prefixed with
// its host's name, joined.
func (h *Hosts) each(f func(i int, hr HostRuntime) error) error {
	errs := make([]error, len(h.Hosts))
	var wg sync.WaitGroup
	for i, hr := range h.Hosts {
		wg.Go(func() {
			if err := f(i, hr); err != nil {
				errs[i] = fmt.Errorf("docker host %s: %w", hr.Name, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (h *Hosts) host(name string) (HostRuntime, error) {
	for _, hr := range h.Hosts {
		if hr.Name == name {
			return hr, nil
		}
	}
	var names []string
	for _, hr := range h.Hosts {
		names = append(names, hr.Name)
	}
	return HostRuntime{}, fmt.Errorf("docker host %q is not one of docker.hosts (%v): was it renamed or removed from the config while it still runs swap's containers?", name, names)
}

// Ping checks that every host's engine answers, naming each that does not.
func (h *Hosts) Ping(ctx context.Context) error {
	return h.each(func(i int, hr HostRuntime) error { return hr.Runtime.Ping(ctx) })
}

// sameImage reports the image every host has for ref, or an error when they differ:
// every host must run the very same image.
func (h *Hosts) sameImage(ref string, imgs []switcher.Image) (switcher.Image, error) {
	for i, img := range imgs[1:] {
		if img.ID != imgs[0].ID {
			return switcher.Image{}, fmt.Errorf("%s is image %s on docker host %s but %s on %s: every host must run the same image; "+
				"pull it from one registry on every host (or docker save | docker load it), then deploy again",
				ref, deployments.ShortID(imgs[0].ID), h.Hosts[0].Name, deployments.ShortID(img.ID), h.Hosts[i+1].Name)
		}
	}
	return imgs[0], nil
}

// EnsureImage makes ref available on every host and checks it is the same image on all.
func (h *Hosts) EnsureImage(ctx context.Context, ref string) (switcher.Image, error) {
	imgs := make([]switcher.Image, len(h.Hosts))
	err := h.each(func(i int, hr HostRuntime) error {
		var err error
		imgs[i], err = hr.Runtime.EnsureImage(ctx, ref)
		return err
	})
	if err != nil {
		return switcher.Image{}, err
	}
	return h.sameImage(ref, imgs)
}

// InspectImage says which image ref is on every host: ErrImageNotFound when one lacks
// it, naming it.
func (h *Hosts) InspectImage(ctx context.Context, ref string) (switcher.Image, error) {
	imgs := make([]switcher.Image, len(h.Hosts))
	var missing []string
	var mu sync.Mutex
	err := h.each(func(i int, hr HostRuntime) error {
		var err error
		imgs[i], err = hr.Runtime.InspectImage(ctx, ref)
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, switcher.ErrImageNotFound) {
			missing = append(missing, hr.Name)
			return nil
		}
		return err
	})
	if err != nil {
		return switcher.Image{}, err
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return switcher.Image{}, fmt.Errorf("%w: %s is not on docker host(s) %v", switcher.ErrImageNotFound, ref, missing)
	}
	return h.sameImage(ref, imgs)
}

// Start starts the spec's replicas, each on the host Place names, all hosts side by
// side. All or nothing: when one host fails, what the others started is stopped and
// removed before the error (naming the host) returns.
func (h *Hosts) Start(ctx context.Context, s deployments.StartSpec) ([]deployments.Instance, error) {
	place := h.Place(s.App, s.Replicas)
	byHost := map[string][]int{}
	for i, name := range place {
		byHost[name] = append(byHost[name], i)
	}
	var mu sync.Mutex
	var started []deployments.Instance
	err := h.each(func(i int, hr HostRuntime) error {
		idx := byHost[hr.Name]
		if len(idx) == 0 {
			return nil
		}
		spec := s
		spec.Replicas, spec.Indexes = len(idx), idx
		insts, err := hr.Runtime.Start(ctx, spec)
		mu.Lock()
		started = append(started, insts...)
		mu.Unlock()
		return err
	})
	if err != nil {
		if len(started) > 0 {
			h.rollBack(ctx, started, s.StopTimeout)
		}
		return nil, fmt.Errorf("start %s/%s on %d docker host(s): %w", s.App, s.Color, len(byHost), err)
	}
	sortInstances(started)
	return started, nil
}

// rollBack stops what a failed Start started on the hosts that did not fail, on a
// context of its own (the caller's may be what ended).
func (h *Hosts) rollBack(ctx context.Context, insts []deployments.Instance, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, in := range insts {
		wg.Go(func() {
			if err := h.Stop(ctx, in, timeout); err != nil {
				h.Log.Error("could not remove a container of a failed start on another host; `swap resume` or the next swap removes it",
					zap.String("docker_host", in.DockerHost), zap.String("instance", in.ID()), zap.Error(err))
			}
		})
	}
	wg.Wait()
}

// List returns the app's instances on every host. A host that does not answer is an
// error naming it, returned with the instances of the hosts that did: a caller
// removing a color still removes what it can reach.
func (h *Hosts) List(ctx context.Context, app string) ([]deployments.Instance, error) {
	var mu sync.Mutex
	var all []deployments.Instance
	err := h.each(func(i int, hr HostRuntime) error {
		insts, err := hr.Runtime.List(ctx, app)
		mu.Lock()
		all = append(all, insts...)
		mu.Unlock()
		return err
	})
	sortInstances(all)
	return all, err
}

// Stop stops and removes an instance on its host.
func (h *Hosts) Stop(ctx context.Context, inst deployments.Instance, timeout time.Duration) error {
	hr, err := h.host(inst.DockerHost)
	if err != nil {
		return err
	}
	if err := hr.Runtime.Stop(ctx, inst, timeout); err != nil {
		return fmt.Errorf("docker host %s: %w", hr.Name, err)
	}
	return nil
}

// RemoveImage removes img from every host that has it; ErrImageInUse when a container
// uses it on one of them (it is removed from the others).
func (h *Hosts) RemoveImage(ctx context.Context, img switcher.Image) error {
	return h.each(func(i int, hr HostRuntime) error { return hr.Runtime.RemoveImage(ctx, img) })
}

// PruneDangling prunes every host and returns how many images went in all.
func (h *Hosts) PruneDangling(ctx context.Context, until time.Duration, labels []string) (int, error) {
	var mu sync.Mutex
	total := 0
	err := h.each(func(i int, hr HostRuntime) error {
		n, err := hr.Runtime.PruneDangling(ctx, until, labels)
		mu.Lock()
		total += n
		mu.Unlock()
		return err
	})
	return total, err
}

// Usage reads a container's CPU and memory on the host that runs it.
func (h *Hosts) Usage(ctx context.Context, containerID string) (switcher.Usage, error) {
	var errs []error
	for _, hr := range h.Hosts {
		u, err := hr.Runtime.Usage(ctx, containerID)
		if err == nil {
			return u, nil
		}
		errs = append(errs, err)
	}
	return switcher.Usage{}, errors.Join(errs...)
}

// sortInstances orders instances by app, color and index, as one engine lists them.
func sortInstances(insts []deployments.Instance) {
	slices.SortFunc(insts, func(a, b deployments.Instance) int {
		return cmp.Or(cmp.Compare(a.App, b.App), cmp.Compare(a.Color, b.Color), cmp.Compare(a.Index, b.Index))
	})
}
