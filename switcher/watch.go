package switcher

import (
	"context"
	"fmt"

	"github.com/swap-dev/swap/health"
)

// HealthTargets returns swap's own probe of every managed instance of apps (every app
// in the config when apps is empty), each with its app's interval, rise and fall, for
// `swap health watch`. Target IDs are the instance IDs.
func (s *Switcher) HealthTargets(ctx context.Context, apps ...string) ([]health.Target, error) {
	if len(apps) == 0 {
		apps = s.Config.AppNames()
	}
	var out []health.Target
	for _, name := range apps {
		spec, err := s.app(name)
		if err != nil {
			return nil, err
		}
		insts, err := s.Runtime.List(ctx, name)
		if err != nil {
			return nil, err
		}
		hc := spec.HealthCheck
		for _, in := range insts {
			if in.State != "running" {
				continue
			}
			probe, err := probeFor(in, hc)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", in.ID(), err)
			}
			out = append(out, health.Target{ID: in.ID(), Checker: probe, Interval: hc.Interval, Rise: hc.Rise, Fall: hc.Fall})
		}
	}
	return out, nil
}
