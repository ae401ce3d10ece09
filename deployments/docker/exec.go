package docker

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/pkg/stdcopy"
)

// HAProxyCheck runs HAProxy's config check, `<binary> -c -f <path>`, inside a running
// container through the Engine API's exec: the container HAProxy itself runs in, for a
// swap that has no haproxy of its own (the sidecar image, haproxy.check_container). The
// file must be at the same path in that container as here: HAProxy's files directory is
// mounted at the same path in both. It satisfies lbconfig.CheckRunner.
type HAProxyCheck struct {
	d         *Driver
	container string
}

// HAProxyCheck returns the check that runs in container (a name or an ID).
func (d *Driver) HAProxyCheck(container string) HAProxyCheck {
	return HAProxyCheck{d: d, container: container}
}

// checkHint says what to look at when the check cannot run in the container.
const checkHint = "haproxy.check_container must name HAProxy's running container, with HAProxy's files directory mounted at the same path in it and in swap's"

// Identity is the container's image and the binary: a container recreated from a new
// HAProxy image gets every config checked again.
func (c HAProxyCheck) Identity(ctx context.Context, binary string) (string, error) {
	info, err := c.d.cli.ContainerInspect(ctx, c.container)
	if err != nil {
		return "", fmt.Errorf("%w (%s)", c.d.engineError("inspect haproxy container "+c.container, err), checkHint)
	}
	if info.State == nil || !info.State.Running {
		return "", fmt.Errorf("haproxy container %s is not running (%s)", c.container, checkHint)
	}
	return fmt.Sprintf("container image %s %s", info.Image, binary), nil
}

// Run runs binary -c -f path in the container and returns its output and exit code. A
// binary the container does not have (exit 126 or 127), or a file it does not see (the
// directory not mounted at the same path), is an error, not a rejected config.
func (c HAProxyCheck) Run(ctx context.Context, binary, path string) (string, int, error) {
	op := fmt.Sprintf("run %s -c in container %s", binary, c.container)
	created, err := c.d.cli.ContainerExecCreate(ctx, c.container, container.ExecOptions{
		Cmd: []string{binary, "-c", "-f", path}, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		return "", -1, fmt.Errorf("%w (%s)", c.d.engineError(op, err), checkHint)
	}
	att, err := c.d.cli.ContainerExecAttach(ctx, created.ID, container.ExecAttachOptions{})
	if err != nil {
		return "", -1, fmt.Errorf("%w (%s)", c.d.engineError(op, err), checkHint)
	}
	stop := context.AfterFunc(ctx, att.Close) // a cancelled swap does not wait on the stream
	defer stop()
	var out bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &out, att.Reader)
	att.Close()
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return out.String(), -1, fmt.Errorf("%s: read its output: %w", op, err)
	}
	// The stream ends when the process does; its exit code may lag behind by a moment.
	for {
		info, err := c.d.cli.ContainerExecInspect(ctx, created.ID)
		if err != nil {
			return out.String(), -1, c.d.engineError(op, err)
		}
		if !info.Running {
			if info.ExitCode == 126 || info.ExitCode == 127 {
				return out.String(), info.ExitCode, fmt.Errorf("%s: exit %d, %s (set haproxy.binary to HAProxy's path inside that container)",
					op, info.ExitCode, strings.TrimSpace(out.String()))
			}
			if info.ExitCode != 0 && strings.Contains(out.String(), "Cannot open configuration file") {
				return out.String(), info.ExitCode, fmt.Errorf("%s: it does not see %s: %s (%s)",
					op, path, strings.TrimSpace(out.String()), checkHint)
			}
			return out.String(), info.ExitCode, nil
		}
		select {
		case <-ctx.Done():
			return out.String(), -1, fmt.Errorf("%s: %w", op, context.Cause(ctx))
		case <-time.After(5 * time.Millisecond):
		}
	}
}
