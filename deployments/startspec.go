package deployments

import (
	"errors"
	"fmt"
	"time"
)

// StartSpec is what a runtime starts: Replicas containers of one app's color. The
// switcher fills it from the plan; the Docker driver runs it.
type StartSpec struct {
	App    string
	Color  Color
	Deploy string // deploy ID, recorded in the swap.deploy label
	// Image is the reference (for humans: the swap.image label); ImageID, when known,
	// is the exact image to run (sha256:...), whatever the reference names by now.
	Image    string
	ImageID  string
	Replicas int
	// Indexes are the replica indexes to start, when not 0..Replicas-1: one Docker
	// host of several runs only its share of an app's replicas (len(Indexes) ==
	// Replicas).
	Indexes []int
	Port    int // the app's port inside the container (TCP)
	// HostIP is where Port is published (default: the driver's, 127.0.0.1).
	HostIP string
	// HostPort fixes the published port (only with Replicas 1); 0 means an ephemeral
	// port chosen by the engine.
	HostPort int
	Env      []string          // KEY=value; never logged
	Labels   map[string]string // extra labels; swap's own labels win over these
	Command  []string          // replaces the image's CMD when set
	// StopTimeout is recorded on the container, so `docker stop` honours it too
	// (rounded up to whole seconds; 0 leaves the engine default, 10s).
	StopTimeout time.Duration
	// Replace stops and removes swap's existing containers of this app and color that
	// carry the names Start needs. Without it they make Start fail with ErrExists.
	Replace bool
}

// Run is the image to run: ImageID when known, else Image.
func (s StartSpec) Run() string {
	if s.ImageID != "" {
		return s.ImageID
	}
	return s.Image
}

// Validate checks the spec before anything is created.
func (s StartSpec) Validate() error {
	var errs []error
	if !NamePattern.MatchString(s.App) {
		errs = append(errs, fmt.Errorf("app %q: must match %s", s.App, NamePattern))
	}
	if _, err := ParseColor(string(s.Color)); err != nil {
		errs = append(errs, err)
	}
	if s.Deploy == "" {
		errs = append(errs, errors.New("deploy ID is empty"))
	}
	if s.Image == "" {
		errs = append(errs, errors.New("image is empty"))
	}
	if s.Replicas < 1 {
		errs = append(errs, fmt.Errorf("replicas %d: must be at least 1", s.Replicas))
	}
	if s.Indexes != nil && len(s.Indexes) != s.Replicas {
		errs = append(errs, fmt.Errorf("%d indexes for %d replicas: give one index per replica", len(s.Indexes), s.Replicas))
	}
	for _, i := range s.Indexes {
		if i < 0 || i >= MaxReplicas {
			errs = append(errs, fmt.Errorf("index %d: must be 0..%d", i, MaxReplicas-1))
		}
	}
	if s.Port < 1 || s.Port > 65535 {
		errs = append(errs, fmt.Errorf("port %d: must be 1..65535", s.Port))
	}
	if s.HostPort < 0 || s.HostPort > 65535 {
		errs = append(errs, fmt.Errorf("host port %d: must be 1..65535, or 0 for an ephemeral port", s.HostPort))
	}
	if s.HostPort != 0 && s.Replicas > 1 {
		errs = append(errs, fmt.Errorf("host port %d is fixed but replicas is %d: replicas cannot share a host port; leave the host port 0", s.HostPort, s.Replicas))
	}
	if s.StopTimeout < 0 {
		errs = append(errs, fmt.Errorf("stop timeout %s: must not be negative", s.StopTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("start spec of %s/%s: %w", s.App, s.Color, err)
	}
	return nil
}

// Index is the replica index of the spec's i-th container.
func (s StartSpec) Index(i int) int {
	if s.Indexes != nil {
		return s.Indexes[i]
	}
	return i
}
