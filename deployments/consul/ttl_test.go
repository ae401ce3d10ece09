package consul

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/swap-dev/swap/deployments"
)

// The tests flip an instance's health at will with a TTL check they set passing or
// critical themselves (publishTTL), instead of running an app that answers or not.
// swap registers probe checks only (Register); the TTL check is the tests' own.

// tTLCheckID is the ID of the TTL check that publishTTL updates for service serviceID.
func tTLCheckID(serviceID string) string { return serviceID + ":ttl" }

// registration is one instance a test registers: what Register takes, and optionally a
// TTL check.
type registration struct {
	Instance deployments.Instance
	// Check is how Consul probes the instance itself (ignored when TTLOnly).
	Check   deployments.HealthCheck
	Version string
	// TTL > 0 adds a TTL check (ID tTLCheckID) that starts critical and is kept up to
	// date by publishTTL.
	TTL time.Duration
	// TTLOnly registers the TTL check alone, so Consul's view is exactly what the test
	// publishes.
	TTLOnly bool
}

// definition is serviceDefinition of reg with its TTL check. deregister_critical_after
// goes on the check Consul runs: the probe, or the TTL check when it is the only one
// (never on a TTL check beside a probe: a silent publisher must not remove live
// instances).
func definition(reg registration, installation string) (*api.AgentServiceRegistration, error) {
	svc, err := serviceDefinition(reg.Instance, reg.Check, reg.Version, installation)
	if err != nil || (reg.TTL <= 0 && !reg.TTLOnly) {
		return svc, err
	}
	if reg.TTL <= 0 {
		return nil, fmt.Errorf("consul: register %s: TTLOnly needs a TTL longer than the republish interval", svc.ID)
	}
	c := &api.AgentServiceCheck{
		CheckID: tTLCheckID(svc.ID),
		Name:    "test probe (TTL)",
		TTL:     reg.TTL.String(),
		Status:  api.HealthCritical,
	}
	if reg.TTLOnly {
		c.DeregisterCriticalServiceAfter = svc.Checks[0].DeregisterCriticalServiceAfter
		svc.Checks = nil
	}
	svc.Checks = append(svc.Checks, c)
	return svc, nil
}

// registerService registers reg's instance on the agent as Register does, with its TTL
// check.
func (r *Registry) registerService(ctx context.Context, reg registration) error {
	svc, err := definition(reg, r.Installation())
	if err != nil {
		return err
	}
	return r.register(ctx, svc)
}

// publishTTL sets the TTL check checkID (tTLCheckID(serviceID)) to passing or critical
// with output as its note, and restarts its TTL. The check lives on the agent the
// service was registered with.
func (r *Registry) publishTTL(ctx context.Context, checkID string, passing bool, output string) error {
	status := api.HealthCritical
	if passing {
		status = api.HealthPassing
	}
	if err := r.client.Agent().UpdateTTLOpts(checkID, output, status, r.query(ctx)); err != nil {
		se, isStatus := statusError(err)
		err = r.fail(fmt.Sprintf("update TTL check %s to %s", checkID, status), err)
		if isStatus && se.Code != http.StatusForbidden {
			return fmt.Errorf("%w; was the instance registered with a TTL check on this agent (registration.TTL)?", err)
		}
		return err
	}
	return nil
}
