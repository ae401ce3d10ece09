package main

import (
	"fmt"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// BenchmarkDeployOverDockerHosts times `swap deploy` of the default app, 6 replicas per
// color spread over 1, 2 and 3 Docker hosts (network namespaces with engines of their
// own), alternating v2 and v1, under a light load. Besides the time per deploy it
// reports each step's median (from --output json) as <step>-s.
//
//	CONSUL_BIN=... go test ./cmd/swap -run '^$' -bench DeployOverDockerHosts -benchtime 3x
func BenchmarkDeployOverDockerHosts(b *testing.B) {
	for _, n := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("hosts=%d", n), func(b *testing.B) {
			s, _ := hostsStackN(b, n, "", 6)
			app := e2eApp("web")
			s.mustSwap("deploy", app)
			l := s.startLoad("web.test", "/", 2)
			steps := map[switcher.Step][]time.Duration{}
			images := []string{s.v2, s.v1}
			b.ResetTimer()
			for i := range b.N {
				r := s.mustSwap("deploy", app, "--image", images[i%2], "--output", "json")
				for _, e := range events(r.stdout) {
					if e.Kind == switcher.EventDone && e.Elapsed > 0 {
						steps[e.Step] = append(steps[e.Step], e.Elapsed)
					}
				}
			}
			b.StopTimer()
			if fails := l.finish(); len(fails) > 0 {
				b.Fatalf("%d of %d requests failed: %v", len(fails), l.total.Load(), fails[:min(5, len(fails))])
			}
			names := make([]string, 0, len(steps))
			for st := range steps {
				names = append(names, string(st))
			}
			sort.Strings(names)
			for _, st := range names {
				d := slices.Clone(steps[switcher.Step(st)])
				slices.Sort(d)
				b.ReportMetric(d[len(d)/2].Seconds(), st+"-s")
			}
		})
	}
}
