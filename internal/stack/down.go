package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/internal/stack/procs"
)

// Taking a stack down: in the process that started it (Stack.Down, With) or in a later
// one, after a crash (Down(dir)).

// Down removes everything: the run's containers and images, HAProxy, Consul, the
// working directory. It is safe to call more than once.
func (s *Stack) Down(ctx context.Context) error {
	var errs []error
	if s.Docker != nil {
		errs = append(errs, removeLabelled(ctx, s.Docker, s.Label, s.opts.Log))
	}
	for i := len(s.procs) - 1; i >= 0; i-- {
		errs = append(errs, s.procs[i].Stop())
	}
	s.procs = nil
	if s.Docker != nil {
		s.Docker.Close()
		s.Docker = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w; %s kept for `make demo-down`", err, s.Dir)
	}
	return os.RemoveAll(s.Dir)
}

func removeLabelled(ctx context.Context, drv *docker.Driver, label string, log io.Writer) error {
	rm, err := drv.RemoveLabelled(ctx, label, stopTimeout)
	if len(rm.Containers) > 0 {
		fmt.Fprintf(log, "removed containers %s\n", strings.Join(rm.Containers, ", "))
	}
	if len(rm.Images) > 0 {
		fmt.Fprintf(log, "removed images     %s\n", strings.Join(rm.Images, ", "))
	}
	return err
}

// With runs fn on a world started in opts.Dir — after removing what a killed run left
// there — and then removes it all, whatever fn returned (the errors are joined). The
// benchmarks use it.
func With(ctx context.Context, opts Options, fn func(*Stack) error) (err error) {
	if _, err := os.Stat(opts.Dir); err == nil {
		if err := Down(ctx, opts.Dir, opts.Log); err != nil {
			return err
		}
	}
	st, err := Up(ctx, opts)
	if st != nil {
		defer func() {
			d := opts.DownTimeout
			if d <= 0 {
				d = 2 * time.Minute
			}
			cctx, cancel := context.WithTimeout(context.Background(), d)
			defer cancel()
			err = errors.Join(err, st.Down(cctx))
		}()
	}
	if err != nil {
		return err
	}
	return fn(st)
}

// Down removes what a demo or benchmark left in dir after it was killed: the containers
// and images labelled with the ID in dir (nothing in Docker when dir has no ID: another
// run's things carry the same label key), the processes named by its pid files — each only if it still runs the command
// that was started — and dir itself. It says what it did on log.
func Down(ctx context.Context, dir string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(log, "no %s: nothing to remove\n", dir)
		return nil
	}
	var errs []error
	b, err := os.ReadFile(filepath.Join(dir, idFile))
	switch id := strings.TrimSpace(string(b)); {
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(log, "no %s: no demo to remove from Docker\n", filepath.Join(dir, idFile))
	case err != nil || id == "":
		errs = append(errs, fmt.Errorf("read the demo's ID: %v %q", err, b))
	default:
		drv, err := docker.New(deployments.DockerConfig{}, nil)
		if err == nil {
			err = removeLabelled(ctx, drv, LabelKey+"="+id, log)
			drv.Close()
		}
		errs = append(errs, err)
	}
	pidFiles, err := filepath.Glob(filepath.Join(dir, "haproxy*.pid")) // one per instance
	if err != nil {
		return err
	}
	// swap serve first: it may still be changing HAProxy.
	paths := append([]string{filepath.Join(dir, servePid)}, pidFiles...)
	for _, path := range append(paths, filepath.Join(dir, consulPid)) {
		errs = append(errs, procs.KillFromPidFile(path, log))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if _, err := os.Stat(dir); err == nil {
		fmt.Fprintf(log, "removed            %s\n", dir)
	}
	return os.RemoveAll(dir)
}
