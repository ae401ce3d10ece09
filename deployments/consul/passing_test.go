package consul

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"
)

func chk(node, service, id, status string) *api.HealthCheck {
	return &api.HealthCheck{Node: node, ServiceID: service, CheckID: id, Status: status, Output: "out of " + id}
}

func TestJudge_DecidesWhetherAnInstancePassesFromItsNodeAndServiceChecks(t *testing.T) {
	const (
		pass = api.HealthPassing
		warn = api.HealthWarning
		crit = api.HealthCritical
	)
	me := ServiceRef{Node: "n1", ServiceID: "web-blue-0"}
	serfOK := chk("n1", "", "serfHealth", pass)
	probeOK := chk("n1", "web-blue-0", "web-blue-0:probe", pass)
	tests := []struct {
		name   string
		checks []*api.HealthCheck
		policy WarningPolicy
		want   Status
		pass   bool
		reason string // a part of the reason
	}{
		{"no checks at all passes, as in Consul", nil, WarningFails, StatusPassing, true, ""},
		{"nil checks are skipped", []*api.HealthCheck{nil, serfOK, nil}, WarningFails, StatusPassing, true, ""},
		{"serfHealth and probe passing pass", []*api.HealthCheck{serfOK, probeOK}, WarningFails, StatusPassing, true, ""},
		{"serfHealth critical fails every instance of the node",
			[]*api.HealthCheck{chk("n1", "", "serfHealth", crit), probeOK}, WarningFails, StatusCritical, false, "node n1 failed serfHealth"},
		{"serfHealth warning counts as a dead agent too",
			[]*api.HealthCheck{chk("n1", "", "serfHealth", warn), probeOK}, WarningPasses, StatusCritical, false, "serfHealth"},
		{"serfHealth critical on another node does not matter",
			[]*api.HealthCheck{chk("n2", "", "serfHealth", crit), serfOK, probeOK}, WarningFails, StatusPassing, true, ""},
		{"node maintenance fails every instance of the node",
			[]*api.HealthCheck{serfOK, probeOK, {Node: "n1", CheckID: "_node_maintenance", Status: crit, Notes: "kernel upgrade"}},
			WarningFails, StatusMaintenance, false, "node n1 is in maintenance: kernel upgrade"},
		{"node maintenance wins over a dead agent",
			[]*api.HealthCheck{chk("n1", "", "serfHealth", crit), chk("n1", "", "_node_maintenance", crit)},
			WarningFails, StatusMaintenance, false, "node n1 is in maintenance"},
		{"service maintenance fails that instance",
			[]*api.HealthCheck{serfOK, probeOK, chk("n1", "web-blue-0", "_service_maintenance:web-blue-0", crit)},
			WarningFails, StatusMaintenance, false, "instance web-blue-0 is in maintenance"},
		{"another instance's maintenance does not matter",
			[]*api.HealthCheck{serfOK, probeOK, chk("n1", "web-blue-1", "_service_maintenance:web-blue-1", crit)},
			WarningFails, StatusPassing, true, ""},
		{"the same service ID on another node does not matter",
			[]*api.HealthCheck{serfOK, probeOK, chk("n2", "web-blue-0", "web-blue-0:probe", crit)},
			WarningFails, StatusPassing, true, ""},
		{"a critical service check fails it, naming the check and its output",
			[]*api.HealthCheck{serfOK, chk("n1", "web-blue-0", "web-blue-0:probe", crit)},
			WarningFails, StatusCritical, false, `check "web-blue-0:probe" of web-blue-0 is critical: out of web-blue-0:probe`},
		{"one critical check among passing ones fails it",
			[]*api.HealthCheck{serfOK, probeOK, chk("n1", "web-blue-0", "web-blue-0:ttl", crit)},
			WarningFails, StatusCritical, false, "web-blue-0:ttl"},
		{"another node check critical fails every instance of the node",
			[]*api.HealthCheck{serfOK, probeOK, chk("n1", "", "disk", crit)},
			WarningFails, StatusCritical, false, `check "disk" of node n1 is critical`},
		{"an unknown status counts as critical",
			[]*api.HealthCheck{serfOK, chk("n1", "web-blue-0", "web-blue-0:probe", "bogus")},
			WarningFails, StatusCritical, false, "bogus"},
		{"warning fails under WarningFails",
			[]*api.HealthCheck{serfOK, chk("n1", "web-blue-0", "web-blue-0:probe", warn)},
			WarningFails, StatusWarning, false, "is warning"},
		{"warning passes under WarningPasses",
			[]*api.HealthCheck{serfOK, chk("n1", "web-blue-0", "web-blue-0:probe", warn)},
			WarningPasses, StatusWarning, true, "is warning"},
		{"a node check warning is a warning",
			[]*api.HealthCheck{serfOK, probeOK, chk("n1", "", "memory", warn)},
			WarningFails, StatusWarning, false, "memory"},
		{"critical wins over warning whatever the order",
			[]*api.HealthCheck{chk("n1", "web-blue-0", "a", warn), chk("n1", "web-blue-0", "b", crit)},
			WarningPasses, StatusCritical, false, `"b"`},
		{"maintenance wins over critical",
			[]*api.HealthCheck{chk("n1", "web-blue-0", "web-blue-0:probe", crit), chk("n1", "web-blue-0", "_service_maintenance:web-blue-0", crit)},
			WarningFails, StatusMaintenance, false, "maintenance"},
		{"a long output is cut in the reason",
			[]*api.HealthCheck{{Node: "n1", ServiceID: "web-blue-0", CheckID: "p", Status: crit, Output: strings.Repeat("x", 1000)}},
			WarningFails, StatusCritical, false, strings.Repeat("x", 200) + "..."},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := judge(me, tc.checks, tc.policy)
			if v.Status != tc.want || v.Passing != tc.pass {
				t.Fatalf("Judge = %+v, want status %s passing %v", v, tc.want, tc.pass)
			}
			if tc.reason == "" && v.Reason != "" && tc.want == StatusPassing {
				t.Errorf("reason %q for a passing instance", v.Reason)
			}
			if !strings.Contains(v.Reason, tc.reason) {
				t.Errorf("reason %q does not contain %q", v.Reason, tc.reason)
			}
		})
	}
}

func TestPassing_KeepsThePassingInstancesInOrder(t *testing.T) {
	refs := []ServiceRef{
		{"n1", "web-blue-0"}, {"n1", "web-blue-1"}, {"n2", "web-green-0"}, {"n2", "web-green-1"}, {"n1", "web-green-2"},
	}
	checks := []*api.HealthCheck{
		chk("n1", "", "serfHealth", api.HealthPassing),
		chk("n2", "", "serfHealth", api.HealthPassing),
		chk("n1", "web-blue-0", "web-blue-0:probe", api.HealthPassing),
		chk("n1", "web-blue-1", "web-blue-1:probe", api.HealthCritical),
		chk("n2", "web-green-0", "web-green-0:probe", api.HealthWarning),
		chk("n2", "web-green-1", "web-green-1:probe", api.HealthPassing),
		chk("n1", "web-green-2", "_service_maintenance:web-green-2", api.HealthCritical),
	}
	tests := []struct {
		policy WarningPolicy
		want   []ServiceRef
	}{
		{WarningFails, []ServiceRef{refs[0], refs[3]}},
		{WarningPasses, []ServiceRef{refs[0], refs[2], refs[3]}},
	}
	for _, tc := range tests {
		if got := Passing(refs, checks, tc.policy); !slices.Equal(got, tc.want) {
			t.Errorf("Passing(policy %d) = %v, want %v", tc.policy, got, tc.want)
		}
	}
	// A dead node takes all its instances out.
	checks[1] = chk("n2", "", "serfHealth", api.HealthCritical)
	if got, want := Passing(refs, checks, WarningPasses), []ServiceRef{refs[0]}; !slices.Equal(got, want) {
		t.Errorf("with n2 dead Passing = %v, want %v", got, want)
	}
	if got := Passing(nil, checks, WarningFails); len(got) != 0 {
		t.Errorf("Passing of no refs = %v", got)
	}
}
