package consul

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/consul/api"
	"go.uber.org/zap"

	"github.com/swap-dev/swap/deployments"
)

// ErrNoResolver: the app has no service-resolver config entry.
var ErrNoResolver = errors.New("no service-resolver")

// subsetFilter selects an app's instances of color c by the meta swap registers.
func subsetFilter(c deployments.Color) string {
	return fmt.Sprintf("Service.Meta.%s == %q", MetaColor, string(c))
}

// WriteResolver writes the service-resolver config entry of app: subsets "blue" and
// "green" selecting instances by meta color, each with only passing instances
// (OnlyPassing), and DefaultSubset live, so mesh traffic to app goes to the live color.
// Writing the same entry again is harmless.
func (r *Registry) WriteResolver(ctx context.Context, app string, live deployments.Color) error {
	if !deployments.NamePattern.MatchString(app) {
		return fmt.Errorf("consul: write the service-resolver of app %q: the name must match %s", app, deployments.NamePattern)
	}
	if _, err := deployments.ParseColor(string(live)); err != nil {
		return fmt.Errorf("consul: write the service-resolver of app %s: %w", app, err)
	}
	entry := &api.ServiceResolverConfigEntry{
		Kind:          api.ServiceResolver,
		Name:          app,
		DefaultSubset: string(live),
		Subsets:       map[string]api.ServiceResolverSubset{},
		Meta:          map[string]string{"managed-by": "swap"},
	}
	for _, c := range deployments.Colors {
		entry.Subsets[string(c)] = api.ServiceResolverSubset{Filter: subsetFilter(c), OnlyPassing: true}
	}
	ok, _, err := r.client.ConfigEntries().Set(entry, r.write(ctx))
	if err != nil {
		return r.fail(fmt.Sprintf("write the service-resolver of app %s (live %s)", app, live), err)
	}
	if !ok {
		return fmt.Errorf("consul: write the service-resolver of app %s: Consul did not apply it; retry", app)
	}
	r.log.Info("service-resolver written", zap.String("app", app), zap.String("live", string(live)))
	return nil
}

// Resolver reads app's service-resolver and returns its default subset as a color. It
// returns an error wrapping ErrNoResolver when there is none.
func (r *Registry) Resolver(ctx context.Context, app string) (deployments.Color, error) {
	e, _, err := r.client.ConfigEntries().Get(api.ServiceResolver, app, r.query(ctx))
	if isNotFound(err) {
		return "", fmt.Errorf("consul: read the service-resolver of app %s: %w; write it with the live color first", app, ErrNoResolver)
	}
	if err != nil {
		return "", r.fail("read the service-resolver of app "+app, err)
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
