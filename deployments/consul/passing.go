package consul

import (
	"fmt"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Check IDs Consul gives its own checks.
const (
	serfCheckID        = "serfHealth"            // the agent's gossip liveness, per node
	nodeMaintCheckID   = "_node_maintenance"     // `consul maint -enable`
	serviceMaintPrefix = "_service_maintenance:" // + service ID: `consul maint -enable -service`
)

// Status is an instance's aggregated health.
type Status string

// Statuses, from best to worst.
const (
	StatusPassing     Status = "passing"
	StatusWarning     Status = "warning"
	StatusCritical    Status = "critical"
	StatusMaintenance Status = "maintenance"
)

// WarningPolicy says whether a check in the warning state lets an instance pass.
type WarningPolicy int

const (
	// WarningFails: warning is not passing. swap's default: it moves traffic on this
	// verdict, and Consul's own ?passing filter and resolver OnlyPassing agree.
	WarningFails WarningPolicy = iota
	// WarningPasses: only critical (and maintenance) fail, as Consul's DNS does by
	// default. For watchers that would rather keep a struggling live instance (an HTTP
	// check answering 429 is a warning) than drop it.
	WarningPasses
)

// ServiceRef names one service instance: the node it is registered on and its ID.
type ServiceRef struct {
	Node      string
	ServiceID string
}

// Verdict is whether one instance passes, and why not.
type Verdict struct {
	Passing bool
	Status  Status
	Reason  string // empty when passing; otherwise names the deciding check
}

// judge decides whether instance ref passes given checks, which may hold any checks of
// any nodes: only ref's node's checks count, namely node checks (empty ServiceID) and
// ref's own service checks. The first rule that applies decides:
//
//  1. node maintenance (_node_maintenance) → maintenance
//  2. service maintenance (_service_maintenance:<id>) → maintenance
//  3. the node's serfHealth critical (its agent is not alive) → critical
//  4. any other node check or service check critical → critical
//  5. any of them warning → warning, which fails under WarningFails
//  6. otherwise → passing, including an instance without checks (as in Consul)
//
// A status other than passing or warning counts as critical. judge is pure.
func judge(ref ServiceRef, checks []*api.HealthCheck, policy WarningPolicy) Verdict {
	var serf, nodeMaint, svcMaint, critical, warning *api.HealthCheck
	for _, c := range checks {
		if c == nil || c.Node != ref.Node || (c.ServiceID != "" && c.ServiceID != ref.ServiceID) {
			continue
		}
		switch {
		case c.ServiceID == "" && c.CheckID == nodeMaintCheckID:
			nodeMaint = first(nodeMaint, c)
		case c.ServiceID != "" && c.CheckID == serviceMaintPrefix+ref.ServiceID:
			svcMaint = first(svcMaint, c)
		case c.ServiceID == "" && c.CheckID == serfCheckID && c.Status != api.HealthPassing:
			// serfHealth is never warning: anything but passing means the agent is gone.
			serf = first(serf, c)
		case c.Status == api.HealthPassing:
		case c.Status == api.HealthWarning:
			warning = first(warning, c)
		default:
			critical = first(critical, c)
		}
	}
	switch {
	case nodeMaint != nil:
		return Verdict{Status: StatusMaintenance, Reason: fmt.Sprintf("node %s is in maintenance%s", ref.Node, note(nodeMaint))}
	case svcMaint != nil:
		return Verdict{Status: StatusMaintenance, Reason: fmt.Sprintf("instance %s is in maintenance%s", ref.ServiceID, note(svcMaint))}
	case serf != nil:
		return Verdict{Status: StatusCritical, Reason: fmt.Sprintf("node %s failed serfHealth: its Consul agent is not alive", ref.Node)}
	case critical != nil:
		return Verdict{Status: StatusCritical, Reason: describe(critical)}
	case warning != nil:
		return Verdict{Passing: policy == WarningPasses, Status: StatusWarning, Reason: describe(warning)}
	}
	return Verdict{Passing: true, Status: StatusPassing}
}

// Passing returns the instances of refs that pass (see judge), in refs' order.
func Passing(refs []ServiceRef, checks []*api.HealthCheck, policy WarningPolicy) []ServiceRef {
	var out []ServiceRef
	for _, ref := range refs {
		if judge(ref, checks, policy).Passing {
			out = append(out, ref)
		}
	}
	return out
}

func first(have, c *api.HealthCheck) *api.HealthCheck {
	if have != nil {
		return have
	}
	return c
}

func note(c *api.HealthCheck) string {
	if c.Notes != "" {
		return ": " + c.Notes
	}
	return ""
}

func describe(c *api.HealthCheck) string {
	where := "node " + c.Node
	if c.ServiceID != "" {
		where = c.ServiceID
	}
	s := fmt.Sprintf("check %q of %s is %s", c.CheckID, where, c.Status)
	if out := strings.TrimSpace(c.Output); out != "" {
		if len(out) > maxOutput {
			out = out[:maxOutput] + "..."
		}
		s += ": " + out
	}
	return s
}

// maxOutput bounds how much of a check's output goes into a reason.
const maxOutput = 200
