package main

import (
	"errors"

	"github.com/swap-dev/swap/deployments"
	"github.com/swap-dev/swap/internal/wire"
	"github.com/swap-dev/swap/switcher"
)

// classify gives err its exit code (docs/cli.md):
//
//	0 done; 1 failed (and rolled back); 2 bad input or config (or the image a
//	rollback needs is gone); 3 lock busy (or a swap waits in preview); 4 Docker,
//	Consul or HAProxy unreachable.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var ee *exitError
	var se *switcher.Error
	switch {
	case errors.As(err, &ee):
		return err
	case errors.As(err, &se) && se.RolledBack:
		return withCode(exitFailed, err) // whatever the cause, the live color kept serving
	case errors.Is(err, switcher.ErrBadInput), errors.Is(err, switcher.ErrImageGone):
		return withCode(exitUsage, err)
	case errors.Is(err, deployments.ErrInvalidConfig), errors.Is(err, deployments.ErrUnknownApp):
		return withCode(exitUsage, err)
	case wire.IsLockBusy(err), errors.Is(err, switcher.ErrPreviewPending):
		return withCode(exitBusy, err)
	case wire.IsUnreachable(err):
		return withCode(exitUnreachable, err)
	}
	return withCode(exitFailed, err)
}
