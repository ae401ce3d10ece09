package stack

import (
	"fmt"
	"strings"
	"time"
)

// App is one app of the stack's swap.yaml running examples/demoapp: probed on /healthz
// (rise 2, fall 2), healthy for 1s before the shift, drained for up to 10s, stopped
// within 5s. Zero fields take the defaults in YAML.
type App struct {
	Name, Image string
	Route       string        // default <name>.bench
	Replicas    int           // default 1
	Check       time.Duration // the probe's interval and timeout; default 250ms
	// DeployTimeout bounds start and gate; default 1m.
	DeployTimeout  time.Duration
	ScaleDownDelay time.Duration // default 0
	// Verify, when set, is the verify window after the shift (max_5xx_rate 0.01).
	Verify time.Duration
}

// YAML is the app as an entry of swap.yaml's apps: (Options.Apps), indented two spaces.
func (a App) YAML() string {
	route := a.Route
	if route == "" {
		route = a.Name + ".bench"
	}
	replicas := max(a.Replicas, 1)
	check := a.Check
	if check == 0 {
		check = 250 * time.Millisecond
	}
	deploy := a.DeployTimeout
	if deploy == 0 {
		deploy = time.Minute
	}
	var b strings.Builder
	fmt.Fprintf(&b, `  %s:
    image: %s
    replicas: %d
    port: 8080
    route: %s
    healthcheck:
      path: /healthz
      interval: %s
      timeout: %s
      rise: 2
      fall: 2
    min_healthy_time: 1s
    deploy_timeout: %s
    drain_timeout: 10s
    stop_timeout: 5s
`, a.Name, a.Image, replicas, route, check, check, deploy)
	if a.ScaleDownDelay > 0 {
		fmt.Fprintf(&b, "    scale_down_delay: %s\n", a.ScaleDownDelay)
	}
	if a.Verify > 0 {
		fmt.Fprintf(&b, "    verify:\n      window: %s\n      max_5xx_rate: 0.01\n", a.Verify)
	}
	return b.String()
}
