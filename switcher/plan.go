package switcher

import (
	"fmt"
	"strings"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// Operations a Plan can be for.
const (
	OpSwitch   = "switch"
	OpDeploy   = "deploy"
	OpRollback = "rollback"
)

// Plan is what a swap will do, decided in the plan step from the state and the spec.
type Plan struct {
	App    string `json:"app"`
	Deploy string `json:"deploy"`
	Op     string `json:"op"`
	// From is the live color before the swap ("" on the first deploy).
	From      deployments.Color `json:"from,omitempty"`
	FromImage string            `json:"from_image,omitempty"`
	// FromImageID and FromImageDigest pin FromImage (see Image).
	FromImageID     string            `json:"from_image_id,omitempty"`
	FromImageDigest string            `json:"from_image_digest,omitempty"`
	To              deployments.Color `json:"to"`
	Image           string            `json:"image"`
	// ImageID is the image the start step runs (created from the ID, so a tag that moves
	// meanwhile changes nothing), set by the plan for a rollback or a switch and by the
	// start step for a deploy, and journaled; ImageDigest is its repo digest, if any.
	ImageID     string `json:"image_id,omitempty"`
	ImageDigest string `json:"image_digest,omitempty"`
	// Reuse: To's instances already run Image and are kept (e.g. a rollback while the
	// old color is still up).
	Reuse       bool                     `json:"reuse,omitempty"`
	Replicas    int                      `json:"replicas"`
	Route       string                   `json:"route"`
	Canary      []deployments.CanaryStep `json:"canary,omitempty"`
	Preview     bool                     `json:"preview,omitempty"`
	AutoPromote bool                     `json:"auto_promote"`
	Verify      deployments.Verify       `json:"verify"`
	// ScaleDownDelay keeps From up, drained, that long after the commit.
	ScaleDownDelay time.Duration `json:"scale_down_delay,omitempty"`
	Created        time.Time     `json:"created"`
	// Spec is the app's settings as planned (without its environment, which may hold
	// secrets): every step reads them from here, so a swap resumed after the config
	// changed still does what its plan said.
	Spec *deployments.App `json:"spec,omitempty"`
}

// specFor returns the app's settings the plan's steps read: the planned ones, with the
// environment (env, env_file) of current, which the journal does not hold. A plan
// journaled before plans held their settings uses current.
func (p Plan) specFor(current *deployments.App) *deployments.App {
	if p.Spec == nil {
		return current
	}
	a := *p.Spec
	a.Name, a.Env, a.EnvFile, a.Hooks.Env = current.Name, current.Env, current.EnvFile, current.Hooks.Env
	return &a
}

// planSpec is spec as a plan keeps it: a copy without the environments (env, env_file,
// hooks.env), which may hold secrets and stay in the config.
func planSpec(spec *deployments.App) *deployments.App {
	a := *spec
	a.Env, a.EnvFile, a.Hooks.Env = nil, "", nil
	return &a
}

// FromBackend and ToBackend are the HAProxy backends of the two colors.
func (p Plan) FromBackend() string { return deployments.BackendName(p.App, p.From) }
func (p Plan) ToBackend() string   { return deployments.BackendName(p.App, p.To) }

// String renders the plan for --dry-run and logs.
func (p Plan) String() string {
	var b strings.Builder
	from := "nothing (first deploy)"
	if p.From != "" {
		from = fmt.Sprintf("%s (%s)", p.From, p.FromImage)
	}
	fmt.Fprintf(&b, "plan %s %s (deploy %s)\n", p.Op, p.App, p.Deploy)
	fmt.Fprintf(&b, "  live now:  %s\n", from)
	fmt.Fprintf(&b, "  target:    %s running %s, %d replica(s)\n", p.To, p.image(), p.Replicas)
	n := 1
	step := func(format string, args ...any) {
		fmt.Fprintf(&b, "  %2d. %s\n", n, fmt.Sprintf(format, args...))
		n++
	}
	if p.Reuse {
		step("start: keep %s's running instances (they already run %s)", p.To, p.Image)
	} else {
		step("start: %d container(s) %s-%s-<i> from %s, ports published on the Docker host address", p.Replicas, p.App, p.To, p.Image)
	}
	step("register: Consul service %s, tags [%s, version]", p.App, p.To)
	step("stage: add them to HAProxy backend %s, DOWN until checks pass", p.ToBackend())
	step("gate: swap's probe, Consul and HAProxy all healthy")
	if p.Preview {
		promote := "then promote automatically"
		if !p.AutoPromote {
			promote = "then wait for `swap promote " + p.App + "`"
		}
		step("preview: the preview frontend routes %q to %s, %s", p.Route, p.ToBackend(), promote)
	}
	for _, c := range p.Canary {
		step("canary: %d%% of %q to %s for %s", c.Weight, p.Route, p.ToBackend(), c.Bake)
	}
	step("shift: route %q to %s (one atomic map change on every HAProxy)", p.Route, p.ToBackend())
	if p.Verify.Window > 0 {
		step("verify: for %s, roll back if the 5xx rate exceeds %.2f%%", p.Verify.Window, p.Verify.Max5xxRate*100)
	}
	if p.From != "" {
		step("drain: wait for %s's sessions to end", p.FromBackend())
		if p.ScaleDownDelay == 0 {
			step("retire: remove %s's servers, Consul entries and containers", p.From)
		}
	}
	step("cleanup: remove the images of earlier deploys beyond retain, and of deploys rolled back, that no container uses")
	step("commit: record %s live with %s", p.To, p.Image)
	if p.From != "" && p.ScaleDownDelay > 0 {
		step("retire: keep %s up for scale_down_delay %s, the lock free for `swap rollback %s` to flip back; then remove its servers, Consul entries and containers",
			p.From, p.ScaleDownDelay, p.App)
	}
	return b.String()
}
