package docker

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// hostLock keeps image removal and prunes away from pulls on one Docker host. A prune
// (or an image removal) running during a pull can delete layers the pull has just found
// present and is about to reference, and the pull then fails.
//
// It is a flock(2) on a file named from the engine's address, in os.TempDir() so that
// every user of the host shares it. Pulls take it shared (several pulls at once are
// fine); removals and prunes take it exclusive. flock locks belong to an open file
// description, and every acquisition opens the file anew, so the same lock also excludes
// goroutines of one process from each other: no separate in-process mutex is needed.
type hostLock struct {
	path string
	// onWait, when set (tests), is called once when an acquisition finds the lock busy
	// and starts waiting.
	onWait func(exclusive bool)
}

// lockPollInterval is how often a waiting acquisition retries. flock cannot be
// interrupted by a context, so a busy lock is polled with LOCK_NB instead.
const lockPollInterval = 25 * time.Millisecond

func newHostLock(path string) *hostLock { return &hostLock{path: path} }

// lockPathFor names the lock file of a Docker host: /tmp/swap-docker-<hash>.lock.
func lockPathFor(host string) string {
	sum := sha256.Sum256([]byte(host))
	return filepath.Join(os.TempDir(), fmt.Sprintf("swap-docker-%x.lock", sum[:8]))
}

// acquire takes the lock (shared or exclusive), waiting until ctx is done. The returned
// func releases it.
func (l *hostLock) acquire(ctx context.Context, exclusive bool) (release func(), err error) {
	f, err := openLockFile(l.path)
	if err != nil {
		return nil, fmt.Errorf("open the docker pull/prune lock %s: %w; check that %s is writable", l.path, err, filepath.Dir(l.path))
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	fd := int(f.Fd())
	var ticker *time.Ticker
	for {
		err := syscall.Flock(fd, how|syscall.LOCK_NB)
		if err == nil {
			if ticker != nil {
				ticker.Stop()
			}
			return func() {
				syscall.Flock(fd, syscall.LOCK_UN)
				f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", l.path, err)
		}
		if ticker == nil {
			ticker = time.NewTicker(lockPollInterval)
			defer ticker.Stop()
			if l.onWait != nil {
				l.onWait(exclusive)
			}
		}
		select {
		case <-ctx.Done():
			f.Close()
			what := "a pull"
			if !exclusive {
				what = "an image removal or prune"
			}
			return nil, fmt.Errorf("wait for the docker pull/prune lock %s (held by %s on this host): %w", l.path, what, ctx.Err())
		case <-ticker.C:
		}
	}
}

// openLockFile opens the lock file read-only, creating it when missing. An existing file
// is opened without O_CREAT: with fs.protected_regular, O_CREAT on another user's file in
// a sticky directory such as /tmp is refused even though it exists.
func openLockFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDONLY|os.O_CREATE, 0o644)
		if err == nil {
			// Other users of the host open it read-only; a umask of 077 would lock them out.
			f.Chmod(0o644)
		}
	}
	return f, err
}
