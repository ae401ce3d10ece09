package deployments

import (
	"strings"
	"time"
)

// CleanupConfig is docker.cleanup: what the cleanup step may remove besides the images
// of swap's own earlier deploys beyond retain. By default nothing else: a host-wide
// prune of dangling images is opt-in, and even then never touches an image younger
// than PruneUntil (a build or pull another tool may be in the middle of).
type CleanupConfig struct {
	// PruneDangling also prunes the host's dangling images that no container uses, as
	// `docker image prune --filter until=<PruneUntil>` would (default false).
	PruneDangling bool `yaml:"prune_dangling" mapstructure:"prune_dangling"`
	// PruneUntil spares dangling images created less than this long ago (default 24h,
	// at least 1m).
	PruneUntil time.Duration `yaml:"prune_until" mapstructure:"prune_until"`
	// PruneLabels narrow the prune to images carrying every one of these labels,
	// "key" or "key=value" (default: none, every dangling image old enough).
	PruneLabels []string `yaml:"prune_labels" mapstructure:"prune_labels"`
}

// DefaultPruneUntil is docker.cleanup.prune_until's default; MinPruneUntil its floor.
const (
	DefaultPruneUntil = 24 * time.Hour
	MinPruneUntil     = time.Minute
)

func (c *CleanupConfig) setDefaults() {
	setDefault(&c.PruneUntil, DefaultPruneUntil)
}

func (c *CleanupConfig) validate(ps *problems, p Path) {
	if c.PruneUntil < MinPruneUntil {
		ps.add(p.Key("prune_until"), "must be at least %s (a younger dangling image may belong to a build or pull in progress), got %s", MinPruneUntil, c.PruneUntil)
	}
	for i, l := range c.PruneLabels {
		k, _, _ := strings.Cut(l, "=")
		if k == "" || strings.ContainsAny(l, " \t\r\n\"") {
			ps.add(p.Key("prune_labels").Index(i), "%q is not a label filter: write key or key=value, without spaces or quotes", l)
		}
	}
	if len(c.PruneLabels) > 0 && !c.PruneDangling {
		ps.add(p.Key("prune_labels"), "has no effect while prune_dangling is false: set prune_dangling: true, or remove prune_labels")
	}
}
