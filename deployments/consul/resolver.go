package consul

import (
	"context"
	"errors"
	"fmt"
	"math"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// The mesh flip (consul.mesh): swap keeps two config entries per app, both carrying
// the meta managed-by=swap and its installation, and touches no entry without them.
//
//   - service-resolver <app>: subsets "blue" and "green" selecting the instances by the
//     meta color swap registers (only passing ones), DefaultSubset the live color.
//   - service-splitter <app>: only during canary steps, the new color's weight and the
//     rest to the live color; deleted when the canary ends.
//
// Consul accepts a splitter only for a service whose protocol is http, http2 or grpc
// (service-defaults, or proxy-defaults' config.protocol; tcp otherwise). When the app's
// protocol is none of them, swap writes a service-defaults entry with protocol http of
// its own, the same way marked; one it did not write is never changed.

// Sentinel errors of the mesh's config entries.
var (
	// ErrNoResolver: the app has no service-resolver config entry.
	ErrNoResolver = errors.New("no service-resolver")
	// ErrEntryNotOurs: a config entry swap would change was not written by this swap
	// installation; swap leaves it alone.
	ErrEntryNotOurs = errors.New("config entry not written by this swap installation")
)

// Config entry meta swap writes.
const (
	MetaManagedBy = "managed-by"
	managedBySwap = "swap"
)

// protocolHTTP is the protocol swap gives an app so that its mesh traffic can be split.
const protocolHTTP = "http"

// splittable reports whether Consul lets a service of protocol p have a splitter.
func splittable(p string) bool { return p == "http" || p == "http2" || p == "grpc" }

// subsetFilter selects an app's instances of color c, in installation, by the meta swap
// registers. The default installation also owns instances registered before services
// carried it, so its filter is the color alone.
func subsetFilter(c deployments.Color, installation string) string {
	f := fmt.Sprintf("Service.Meta.%s == %q", MetaColor, string(c))
	if installation != deployments.DefaultInstallation {
		f += fmt.Sprintf(" and Service.Meta.%s == %q", MetaInstallation, installation)
	}
	return f
}

// entryMeta is the meta of every config entry swap writes.
func (r *Registry) entryMeta() map[string]string {
	return map[string]string{MetaManagedBy: managedBySwap, MetaInstallation: r.Installation()}
}

// ours reports whether a config entry's meta says this installation wrote it.
func (r *Registry) ours(meta map[string]string) bool {
	return meta[MetaManagedBy] == managedBySwap && deployments.OwnedBy(r.Installation(), meta[MetaInstallation])
}

// notOurs is the error for an entry of kind on app that swap did not write.
func (r *Registry) notOurs(kind, app string, meta map[string]string, what string) error {
	by := "written by something else (no meta managed-by=swap)"
	if meta[MetaManagedBy] == managedBySwap {
		by = fmt.Sprintf("written by swap installation %q, not %q", meta[MetaInstallation], r.Installation())
	}
	return fmt.Errorf("consul: %s: the %s %q is %s (%w); swap leaves it alone: delete it (`consul config delete -kind %s -name %s`) to let swap manage it, or set consul.mesh: false",
		what, kind, app, by, ErrEntryNotOurs, kind, app)
}

// getEntry reads the config entry kind/app: nil, 0 when there is none.
func (r *Registry) getEntry(ctx context.Context, kind, app, what string) (api.ConfigEntry, error) {
	e, _, err := r.client.ConfigEntries().Get(kind, app, r.query(ctx))
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, r.fail(what, err)
	}
	return e, nil
}

// casEntry writes e if the entry is still at index (0: only if absent).
func (r *Registry) casEntry(ctx context.Context, e api.ConfigEntry, index uint64, what string) error {
	ok, _, err := r.client.ConfigEntries().CAS(e, index, r.write(ctx))
	if err != nil {
		return r.fail(what, err)
	}
	if !ok {
		return fmt.Errorf("consul: %s: %w: the entry changed while swap wrote it; retry", what, ErrStale)
	}
	return nil
}

func checkAppColor(what, app string, c deployments.Color) error {
	if !deployments.NamePattern.MatchString(app) {
		return fmt.Errorf("consul: %s: the app name %q must match %s", what, app, deployments.NamePattern)
	}
	if _, err := deployments.ParseColor(string(c)); err != nil {
		return fmt.Errorf("consul: %s: %w", what, err)
	}
	return nil
}

// WriteResolver writes the service-resolver config entry of app: subsets "blue" and
// "green" selecting instances by meta color, each with only passing instances
// (OnlyPassing), and DefaultSubset live, so mesh traffic to app goes to the live color.
// Writing the same entry again changes nothing; a resolver swap did not write is
// ErrEntryNotOurs and stays as it is.
func (r *Registry) WriteResolver(ctx context.Context, app string, live deployments.Color) error {
	what := fmt.Sprintf("write the service-resolver of app %s (live %s)", app, live)
	if err := checkAppColor(what, app, live); err != nil {
		return err
	}
	entry := &api.ServiceResolverConfigEntry{
		Kind:          api.ServiceResolver,
		Name:          app,
		DefaultSubset: string(live),
		Subsets:       map[string]api.ServiceResolverSubset{},
		Meta:          r.entryMeta(),
	}
	for _, c := range deployments.Colors {
		entry.Subsets[string(c)] = api.ServiceResolverSubset{Filter: subsetFilter(c, r.Installation()), OnlyPassing: true}
	}
	cur, err := r.getEntry(ctx, api.ServiceResolver, app, what)
	if err != nil {
		return err
	}
	var index uint64
	if cur != nil {
		if !r.ours(cur.GetMeta()) {
			return r.notOurs(api.ServiceResolver, app, cur.GetMeta(), what)
		}
		if old, ok := cur.(*api.ServiceResolverConfigEntry); ok && sameResolver(old, entry) {
			return nil
		}
		index = cur.GetModifyIndex()
	}
	if err := r.casEntry(ctx, entry, index, what); err != nil {
		return err
	}
	r.log.Info("service-resolver written", zap.String("app", app), zap.String("live", string(live)))
	return nil
}

func sameResolver(a, b *api.ServiceResolverConfigEntry) bool {
	if a.DefaultSubset != b.DefaultSubset || len(a.Subsets) != len(b.Subsets) || a.Redirect != nil || len(a.Failover) > 0 {
		return false
	}
	for k, s := range b.Subsets {
		if a.Subsets[k] != s {
			return false
		}
	}
	return true
}

// Resolver reads app's service-resolver and returns its default subset as a color. It
// returns an error wrapping ErrNoResolver when there is none.
func (r *Registry) Resolver(ctx context.Context, app string) (deployments.Color, error) {
	e, err := r.getEntry(ctx, api.ServiceResolver, app, "read the service-resolver of app "+app)
	if err != nil {
		return "", err
	}
	if e == nil {
		return "", fmt.Errorf("consul: read the service-resolver of app %s: %w; write it with the live color first", app, ErrNoResolver)
	}
	res, ok := e.(*api.ServiceResolverConfigEntry)
	if !ok {
		return "", fmt.Errorf("consul: read the service-resolver of app %s: got a %T", app, e)
	}
	c, err := deployments.ParseColor(res.DefaultSubset)
	if err != nil {
		return "", fmt.Errorf("consul: the service-resolver of app %s: default subset: %w; was it written by swap?", app, err)
	}
	return c, nil
}

// MeshSplit is an app's service-splitter as swap writes it: Weight percent of the mesh
// traffic to the subset To, the rest to the other color.
type MeshSplit struct {
	To     deployments.Color
	Weight int
}

// WriteSplit sends weight percent (1..100) of app's mesh traffic to the subset to and
// the rest to the other color, with a service-splitter; weight 0 deletes the splitter
// (the resolver's default subset gets it all). Before the first split it makes sure
// Consul allows one (ensureSplittable). The resolver must exist (WriteResolver): the
// splitter names its subsets. A splitter swap did not write is ErrEntryNotOurs.
func (r *Registry) WriteSplit(ctx context.Context, app string, to deployments.Color, weight int) error {
	what := fmt.Sprintf("split app %s's mesh traffic %d%% to %s", app, weight, to)
	if weight == 0 {
		what = "end app " + app + "'s mesh split"
	}
	if err := checkAppColor(what, app, to); err != nil {
		return err
	}
	if weight < 0 || weight > 100 {
		return fmt.Errorf("consul: %s: the weight must be from 0 to 100", what)
	}
	cur, err := r.getEntry(ctx, api.ServiceSplitter, app, what)
	if err != nil {
		return err
	}
	if cur != nil && !r.ours(cur.GetMeta()) {
		return r.notOurs(api.ServiceSplitter, app, cur.GetMeta(), what)
	}
	if weight == 0 {
		if cur == nil {
			return nil
		}
		ok, _, err := r.client.ConfigEntries().DeleteCAS(api.ServiceSplitter, app, cur.GetModifyIndex(), r.write(ctx))
		if err != nil {
			return r.fail(what, err)
		}
		if !ok {
			return fmt.Errorf("consul: %s: %w: the splitter changed while swap deleted it; retry", what, ErrStale)
		}
		r.log.Info("service-splitter deleted", zap.String("app", app))
		return nil
	}
	if err := r.ensureSplittable(ctx, app); err != nil {
		return err
	}
	entry := &api.ServiceSplitterConfigEntry{
		Kind: api.ServiceSplitter,
		Name: app,
		Meta: r.entryMeta(),
		Splits: []api.ServiceSplit{
			{Weight: float32(weight), ServiceSubset: string(to)},
			{Weight: float32(100 - weight), ServiceSubset: string(to.Other())},
		},
	}
	var index uint64
	if cur != nil {
		if s, ok := cur.(*api.ServiceSplitterConfigEntry); ok && splitOf(s) == (MeshSplit{To: to, Weight: weight}) {
			return nil
		}
		index = cur.GetModifyIndex()
	}
	if err := r.casEntry(ctx, entry, index, what); err != nil {
		return err
	}
	r.log.Info("service-splitter written", zap.String("app", app), zap.String("to", string(to)), zap.Int("weight", weight))
	return nil
}

// splitOf reads a splitter as swap writes it: the first split with a color subset and
// a weight below 100 is the canary (a 100% split reads as that color alone).
func splitOf(s *api.ServiceSplitterConfigEntry) MeshSplit {
	for _, sp := range s.Splits {
		c, err := deployments.ParseColor(sp.ServiceSubset)
		if err != nil || sp.Service != "" {
			continue
		}
		w := int(math.Round(float64(sp.Weight)))
		if w > 0 {
			return MeshSplit{To: c, Weight: w}
		}
	}
	return MeshSplit{}
}

// Split reads app's service-splitter: the zero MeshSplit when there is none.
func (r *Registry) Split(ctx context.Context, app string) (MeshSplit, error) {
	what := "read the service-splitter of app " + app
	e, err := r.getEntry(ctx, api.ServiceSplitter, app, what)
	if err != nil || e == nil {
		return MeshSplit{}, err
	}
	if !r.ours(e.GetMeta()) {
		return MeshSplit{}, r.notOurs(api.ServiceSplitter, app, e.GetMeta(), what+": it decides where the mesh traffic goes, not the resolver swap flips")
	}
	s, ok := e.(*api.ServiceSplitterConfigEntry)
	if !ok {
		return MeshSplit{}, fmt.Errorf("consul: %s: got a %T", what, e)
	}
	return splitOf(s), nil
}

// Protocol is the protocol Consul's mesh gives app: service-defaults, else
// proxy-defaults' config.protocol, else tcp (as its discovery chain compiles it).
func (r *Registry) Protocol(ctx context.Context, app string) (string, error) {
	chain, _, err := r.client.DiscoveryChain().Get(app, nil, r.query(ctx))
	if err != nil {
		return "", r.fail("read the discovery chain of app "+app, err)
	}
	if chain == nil || chain.Chain == nil {
		return "", fmt.Errorf("consul: read the discovery chain of app %s: empty answer", app)
	}
	return chain.Chain.Protocol, nil
}

// ensureSplittable makes sure Consul accepts a service-splitter for app: its protocol
// must be http, http2 or grpc. When it is not, swap writes (or updates) its own
// service-defaults entry for app with protocol http; a service-defaults entry swap did
// not write is never changed, and its protocol is then an error that says what to do.
func (r *Registry) ensureSplittable(ctx context.Context, app string) error {
	p, err := r.Protocol(ctx, app)
	if err != nil {
		return err
	}
	if splittable(p) {
		return nil
	}
	what := fmt.Sprintf("give app %s protocol http so that its canary can be split in the mesh", app)
	cur, err := r.getEntry(ctx, api.ServiceDefaults, app, what)
	if err != nil {
		return err
	}
	entry := &api.ServiceConfigEntry{Kind: api.ServiceDefaults, Name: app, Protocol: protocolHTTP, Meta: r.entryMeta()}
	var index uint64
	if cur != nil {
		if !r.ours(cur.GetMeta()) {
			return fmt.Errorf("consul: app %s's mesh protocol is %q, and Consul splits canary traffic (service-splitter) only for http, http2 or grpc; its service-defaults was not written by swap, so swap leaves it: set Protocol = \"http\" in it (swap fronts every app with an HTTP frontend), or remove apps.%s.canary, or set consul.mesh: false",
				app, p, app)
		}
		sd, ok := cur.(*api.ServiceConfigEntry)
		if !ok {
			return fmt.Errorf("consul: %s: got a %T", what, cur)
		}
		c := *sd
		c.Protocol = protocolHTTP
		entry = &c
		index = cur.GetModifyIndex()
	}
	if err := r.casEntry(ctx, entry, index, what); err != nil {
		return err
	}
	r.log.Info("service-defaults written: protocol http, so that the canary can be split in the mesh", zap.String("app", app), zap.String("was", p))
	return nil
}
