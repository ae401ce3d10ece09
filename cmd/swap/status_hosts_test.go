package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/swap-dev/swap/switcher"
)

func TestStatusShowsEachInstancesDockerHostOnlyWithSeveralHosts(t *testing.T) {
	one := &switcher.AppStatus{App: "web", Live: "blue", Instances: []switcher.InstanceStatus{
		{ID: "web-blue-0", Color: "blue", Addr: "127.0.0.1:32768", State: "running", Consul: "passing"},
	}}
	var b bytes.Buffer
	printStatus(&b, one)
	if strings.Contains(b.String(), "HOST") {
		t.Fatalf("one engine: a HOST column:\n%s", b.String())
	}
	several := &switcher.AppStatus{App: "web", Live: "blue",
		InFlight: &switcher.Journal{Plan: switcher.Plan{Op: "deploy", To: "green", Deploy: "d2"}, Step: switcher.StepGate,
			Hosts: map[string][]string{"b": {"web-green-1"}, "a": {"web-green-0"}}},
		Instances: []switcher.InstanceStatus{
			{ID: "web-blue-0", Color: "blue", Addr: "10.0.0.1:32768", DockerHost: "a", State: "running", Consul: "passing"},
			{ID: "web-blue-1", Color: "blue", Addr: "10.0.0.2:32768", DockerHost: "b", State: "running", Consul: "passing"},
		}}
	b.Reset()
	printStatus(&b, several)
	out := b.String()
	for _, want := range []string{"INSTANCE    HOST", "web-blue-0  a ", "web-blue-1  b ",
		"started on docker host a: web-green-0\n    started on docker host b: web-green-1"} {
		if !strings.Contains(out, want) {
			t.Fatalf("status does not show %q:\n%s", want, out)
		}
	}
}
