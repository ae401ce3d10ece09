package wire

import (
	"errors"

	"github.com/swap-dev/swap/deployments/consul"
	"github.com/swap-dev/swap/deployments/docker"
	"github.com/swap-dev/swap/lbconfig"
)

// The adapters' errors as the CLI's exit codes sort them (docs/cli.md), so that cmd
// knows the adapters only through wire.

// IsUnreachable reports whether err says Docker, Consul or HAProxy could not be reached
// (or Docker refused swap's user).
func IsUnreachable(err error) bool {
	return errors.Is(err, docker.ErrUnreachable) || errors.Is(err, docker.ErrPermissionDenied) ||
		errors.Is(err, consul.ErrUnreachable) || errors.Is(err, consul.ErrNoLeader) || errors.Is(err, lbconfig.ErrUnreachable)
}

// IsLockBusy reports whether err says another holder has the app's lock.
func IsLockBusy(err error) bool { return errors.Is(err, consul.ErrLocked) }
