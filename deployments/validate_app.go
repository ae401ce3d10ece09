package deployments

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
)

// The apps' part of Validate: each app, its route, healthcheck and hooks.

func (c *Config) validateApps(ps *problems) {
	if len(c.Apps) == 0 {
		ps.add("apps", "define at least one app (image, port and route)")
		return
	}
	names := c.AppNames()
	lower := map[string]string{}
	routes := map[string]string{}
	for _, name := range names {
		a := c.Apps[name]
		p := Path("apps").Key(name)
		if err := CheckAppName(name); err != nil {
			ps.add(p, "%v", err)
		}
		if other, clash := lower[strings.ToLower(name)]; clash {
			ps.add(p, "differs from app %q only in case, and Consul treats them as one service: rename one", other)
		} else {
			lower[strings.ToLower(name)] = name
		}
		if a == nil {
			ps.add(p, "is empty: set at least image, port and route")
			continue
		}
		a.validate(ps, p, c.HAProxy.Routing)
		c.validatePlacement(ps, p, a)
		if a.Route != "" {
			key := a.Route
			if c.HAProxy.Routing == RoutingHost {
				key = strings.ToLower(key)
			}
			if other, dup := routes[key]; dup {
				ps.add(p.Key("route"), "%q is also the route of app %s: every app needs its own route", a.Route, other)
			} else {
				routes[key] = name
			}
		}
	}
}

func (a *App) validate(ps *problems, p Path, routing string) {
	if a.Image == "" {
		ps.add(p.Key("image"), "set the image to run, like registry.example.com/web:1.4.2")
	} else if err := CheckImageRef(a.Image); err != nil {
		ps.add(p.Key("image"), "%v", err)
	}
	if a.Replicas < 1 || a.Replicas > MaxReplicas {
		ps.add(p.Key("replicas"), "must be from 1 to %d, got %d", MaxReplicas, a.Replicas)
	}
	switch {
	case a.Port == 0:
		ps.add(p.Key("port"), "set the port the app listens on inside the container (1-65535)")
	case a.Port < 0 || a.Port > 65535:
		ps.add(p.Key("port"), "must be from 1 to 65535, got %d", a.Port)
	}
	for k, v := range a.Env {
		kp := p.Key("env").Key(k)
		switch {
		case k == "":
			ps.add(kp, "variable name is empty")
		case strings.Contains(k, "=") || hasSpaceOrControl(k):
			ps.add(kp, "variable name must not contain '=', whitespace or control characters")
		}
		if strings.ContainsRune(v, 0) {
			ps.add(kp, "value must not contain a NUL byte")
		}
	}
	if hasControl(a.EnvFile) {
		ps.add(p.Key("env_file"), "must not contain control characters")
	}
	for k := range a.Labels {
		kp := p.Key("labels").Key(k)
		switch {
		case k == "":
			ps.add(kp, "label name is empty")
		case strings.HasPrefix(strings.ToLower(k), "swap."):
			ps.add(kp, "the swap. prefix is reserved for the labels swap sets itself: use another prefix")
		case hasControl(k):
			ps.add(kp, "label name must not contain control characters")
		}
	}
	for i, arg := range a.Command {
		if strings.ContainsRune(arg, 0) {
			ps.add(p.Key("command").Index(i), "must not contain a NUL byte")
		} else if i == 0 && arg == "" {
			ps.add(p.Key("command").Index(i), "the program to run is empty: name it, or remove command to use the image's")
		}
	}
	a.validateRoute(ps, p.Key("route"), routing)
	a.HealthCheck.validate(ps, p.Key("healthcheck"))

	nonNegative(ps, p.Key("min_healthy_time"), a.MinHealthyTime)
	positive(ps, p.Key("deploy_timeout"), a.DeployTimeout, "2m")
	hc := a.HealthCheck
	if a.DeployTimeout > 0 && hc.Interval > 0 && hc.Rise > 0 && a.MinHealthyTime >= 0 {
		need := time.Duration(hc.Rise)*hc.Interval + a.MinHealthyTime
		if a.DeployTimeout <= need {
			ps.add(p.Key("deploy_timeout"), "%v is too short: becoming healthy takes at least healthcheck.rise × healthcheck.interval + min_healthy_time = %v, plus the containers' start: allow more, like %v",
				a.DeployTimeout, need, max(DefaultDeployTimeout, 4*need).Round(time.Second))
		}
	}
	positive(ps, p.Key("drain_timeout"), a.DrainTimeout, "30s")
	positive(ps, p.Key("stop_timeout"), a.StopTimeout, "10s")
	nonNegative(ps, p.Key("scale_down_delay"), a.ScaleDownDelay)
	if a.Retain < 1 {
		ps.add(p.Key("retain"), "must be at least 1 (a rollback needs the previous image), got %d", a.Retain)
	}

	v := p.Key("verify")
	nonNegative(ps, v.Key("window"), a.Verify.Window)
	switch r := a.Verify.Max5xxRate; {
	case !(r >= 0 && r <= 1): // also NaN
		ps.add(v.Key("max_5xx_rate"), "must be a fraction from 0 to 1 (0.05 is 5%%), got %v", r)
	case r > 0 && a.Verify.Window == 0:
		ps.add(v.Key("max_5xx_rate"), "has no effect while verify.window is 0: set window (like 2m) to watch the new color after the shift")
	}

	prev := 0
	for i, st := range a.Canary {
		sp := p.Key("canary").Index(i)
		switch {
		case st.Weight < 1 || st.Weight > 100:
			ps.add(sp.Key("weight"), "must be a percentage from 1 to 100, got %d", st.Weight)
		case st.Weight <= prev:
			ps.add(sp.Key("weight"), "%d is not above the previous step's %d: weights must increase", st.Weight, prev)
		}
		prev = max(prev, st.Weight)
		if st.Bake <= 0 {
			ps.add(sp.Key("bake"), "must be > 0: how long to hold this weight before the next step, like 5m")
		}
	}

	a.Hooks.validate(ps, p.Key("hooks"))
}

// HookVars are the variables swap sets for every hook; hooks.env cannot set them.
var HookVars = []string{"SWAP_APP", "SWAP_COLOR", "SWAP_IMAGE", "SWAP_DEPLOY"}

var envNamePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (h *Hooks) validate(ps *problems, p Path) {
	for _, hk := range []struct{ key, cmd string }{
		{"pre_deploy", h.PreDeploy}, {"post_shift", h.PostShift}, {"post_deploy", h.PostDeploy},
	} {
		if strings.ContainsRune(hk.cmd, 0) {
			ps.add(p.Key(hk.key), "must not contain a NUL byte")
		}
	}
	positive(ps, p.Key("timeout"), h.Timeout, "5m")
	for k, v := range h.Env {
		kp := p.Key("env").Key(k)
		switch {
		case !envNamePattern.MatchString(k):
			ps.add(kp, "%q is not a variable name: use letters, digits and '_', not starting with a digit, like SLACK_URL", k)
		case slices.Contains(HookVars, k):
			ps.add(kp, "swap sets %s for every hook itself: remove it", k)
		}
		if strings.ContainsRune(v, 0) {
			ps.add(kp, "value must not contain a NUL byte")
		}
	}
}

// percentProblem says what is wrong with the percent-encoding of s ("%" not followed by
// two hex digits), or returns "".
func percentProblem(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		if i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2]) {
			end := min(i+3, len(s))
			return fmt.Sprintf("%q is not percent-encoding: '%%' must be followed by two hex digits (write %%25 for a literal '%%')", s[i:end])
		}
		i += 2
	}
	return ""
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func (a *App) validateRoute(ps *problems, p Path, routing string) {
	r := a.Route
	switch {
	case r == "" && routing == RoutingPath:
		ps.add(p, "set the path prefix this app serves, like /web (haproxy.routing is path)")
	case r == "":
		ps.add(p, "set the Host header this app serves, like web.example.com (haproxy.routing is host)")
	case hasSpaceOrControl(r):
		ps.add(p, "%q must not contain whitespace or control characters", r)
	case routing == RoutingPath:
		if !strings.HasPrefix(r, "/") {
			ps.add(p, "%q must start with '/' (haproxy.routing is path), like /%s", r, r)
		} else if !routePathPattern.MatchString(r) {
			ps.add(p, "%q may contain only letters, digits and . _ ~ / %% + = & : @ , - after its leading '/'", r)
		}
	case routing == RoutingHost:
		if strings.HasPrefix(r, "/") {
			ps.add(p, "%q is a path but haproxy.routing is host: use a Host header like web.example.com, or set haproxy.routing: path", r)
		} else if msg := routeHostProblem(r); msg != "" {
			ps.add(p, "%s", msg)
		}
	}
}

func (h *HealthCheck) validate(ps *problems, p Path) {
	switch h.Type {
	case CheckHTTP:
		if !strings.HasPrefix(h.Path, "/") {
			ps.add(p.Key("path"), "%q must start with '/', like /healthz", h.Path)
		} else if !checkPathPattern.MatchString(h.Path) {
			ps.add(p.Key("path"), "%q may contain only letters, digits and . _ ~ / %% + = & ? : @ , - after its leading '/'", h.Path)
		} else if msg := percentProblem(h.Path); msg != "" {
			ps.add(p.Key("path"), "%q: %s", h.Path, msg)
		}
		if !methodPattern.MatchString(h.Method) {
			ps.add(p.Key("method"), "%q must be an upper-case HTTP method (at most 16 letters), like GET or HEAD", h.Method)
		} else if h.Method == "HEAD" && h.Body != "" {
			ps.add(p.Key("body"), "a HEAD response has no body: remove body or use method GET")
		}
		if h.Host != "" {
			if msg := checkHostProblem(h.Host); msg != "" {
				ps.add(p.Key("host"), "%s", msg)
			}
		}
		for _, r := range h.ExpectStatus {
			if !r.Valid() {
				ps.add(p.Key("expect_status"), "%q must be status codes from 100 to 599 and ranges, like 200, 200-399 or 200,204", h.ExpectStatus.String())
				break
			}
		}
		if h.Body != "" && !checkBodyPattern.MatchString(h.Body) {
			ps.add(p.Key("body"), "%q must be at most 256 letters, digits, spaces and punctuation other than quotes, '#', '$' and '\\'", h.Body)
		}
	case CheckTCP:
		for _, f := range []struct{ key, v string }{
			{"path", h.Path}, {"method", h.Method}, {"host", h.Host}, {"expect_status", h.ExpectStatus.String()}, {"body", h.Body},
		} {
			if f.v != "" {
				ps.add(p.Key(f.key), "applies to type http only: remove it, or set type: http")
			}
		}
	default:
		ps.add(p.Key("type"), "%q must be http or tcp", h.Type)
	}
	positive(ps, p.Key("interval"), h.Interval, "1s")
	positive(ps, p.Key("timeout"), h.Timeout, "1s")
	if h.Interval > 0 && h.Timeout > h.Interval {
		ps.add(p.Key("timeout"), "%v is longer than interval %v: a probe must end before the next one starts; lower timeout or raise interval", h.Timeout, h.Interval)
	}
	if h.Rise < 1 {
		ps.add(p.Key("rise"), "must be at least 1 (passing probes in a row to become healthy), got %d", h.Rise)
	}
	if h.Fall < 1 {
		ps.add(p.Key("fall"), "must be at least 1 (failing probes in a row to become unhealthy), got %d", h.Fall)
	}
	switch d := h.DeregisterCriticalAfter; {
	case d < 0:
		ps.add(p.Key("deregister_critical_after"), "must not be negative, got %v", d)
	case d > 0 && d < time.Minute:
		ps.add(p.Key("deregister_critical_after"), "%v is below Consul's minimum of 1m: use 1m or more", d)
	}
}
