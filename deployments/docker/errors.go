package docker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/client"
)

// Errors callers can recognise with errors.Is. The messages they arrive in say what
// failed, for what, and what to do next.
var (
	// ErrUnreachable: the Docker engine did not answer at its address.
	ErrUnreachable = errors.New("docker engine unreachable")
	// ErrPermissionDenied: this user may not use the Docker socket.
	ErrPermissionDenied = errors.New("permission denied on the docker socket")
	// ErrExists: swap's containers of this app and color already exist.
	ErrExists = errors.New("containers of this app and color already exist")
	// ErrNameTaken: a container that swap does not manage for this installation (no
	// swap.managed=true, or another installation's) has one of the names swap needs.
	// swap never touches it.
	ErrNameTaken = errors.New("container name taken by a container swap does not manage")
	// ErrNotManaged: the container lacks swap.managed=true or belongs to another swap
	// installation, so swap refuses to stop or remove it.
	ErrNotManaged = errors.New("container not managed by swap")
	// ErrExited: a container stopped while swap waited for it to run.
	ErrExited = errors.New("container exited during start")
	// ErrPortInUse: the host port asked for or picked is taken.
	ErrPortInUse = errors.New("host port in use")
	// ErrImageNotFound: the image is not on the Docker host and could not be pulled.
	ErrImageNotFound = errors.New("image not found")
	// ErrImageInUse: a container (of any kind, in any state) uses the image.
	ErrImageInUse = errors.New("image in use")
	// ErrImageTagged: tags swap did not set name the image, so swap leaves it.
	ErrImageTagged = errors.New("image also tagged")
)

// unreachableHint is what to check when the engine does not answer.
const unreachableHint = "is the Docker daemon running? Check docker.host in swap's config or DOCKER_HOST"

// engineError turns an SDK error into one that names the Docker host and says what to
// do, for the two failures that are about reaching the engine at all. Other errors are
// wrapped as they are. op says what swap was doing ("list containers of web").
func (d *Driver) engineError(op string, err error) error {
	if d.hostName != "" {
		// One of docker.hosts: its own entry is what to check, not docker.host.
		return classifyWith(op, d.host, fmt.Sprintf("is docker host %s up and its Docker daemon running? Check its engine in docker.hosts", d.hostName), err)
	}
	return classify(op, d.host, err)
}

func classify(op, host string, err error) error { return classifyWith(op, host, unreachableHint, err) }

// classifyWith is classify with hint saying what to check when the engine does not
// answer.
func classifyWith(op, host, hint string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case isPermission(err):
		return fmt.Errorf("%s: %w at %s: this user may not use the Docker socket; "+
			"run swap as a user in the docker group (or root; in a container: --group-add the socket's group id), or point docker.host at an engine it may use: %v",
			op, ErrPermissionDenied, host, err)
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%s: %w at %s: %s (and that this user may use the socket): %v",
			op, ErrUnreachable, host, hint, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// isPermission reports a permission error from connecting to the socket (EACCES in the
// chain) or from the engine (403).
func isPermission(err error) bool {
	if errors.Is(err, os.ErrPermission) {
		return true
	}
	if cerrdefs.IsPermissionDenied(err) {
		return true
	}
	return client.IsErrConnectionFailed(err) && strings.Contains(err.Error(), "permission denied")
}

// isPortInUse reports the engine's answer to a start whose host port is taken.
func isPortInUse(err error) bool {
	s := err.Error()
	return strings.Contains(s, "address already in use") || strings.Contains(s, "port is already allocated")
}
