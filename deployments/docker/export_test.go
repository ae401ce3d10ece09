package docker

import "context"

// UseTestLock points the driver's pull/prune lock at path and calls onWait when an
// acquisition starts waiting, so tests can see a prune or pull block.
func (d *Driver) UseTestLock(path string, onWait func(exclusive bool)) {
	d.lock = newHostLock(path)
	d.lock.onWait = onWait
}

// HoldLock takes the driver's pull/prune lock as a pull (shared) or a prune (exclusive)
// would.
func (d *Driver) HoldLock(ctx context.Context, exclusive bool) (release func(), err error) {
	return d.lock.acquire(ctx, exclusive)
}
