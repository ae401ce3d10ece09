package lbconfig

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Master talks to HAProxy's master CLI (`haproxy -W -S <socket>`), which reloads the
// workers. Its connections need ";quit" after the command in 2.6, or they stay open.
type Master struct {
	c *Client
}

// NewMaster returns a Master for the master CLI socket at address (see Dial).
func NewMaster(address string, opts ...Option) (*Master, error) {
	c, err := Dial(address, opts...)
	if err != nil {
		return nil, err
	}
	return &Master{c: c}, nil
}

func (m *Master) exec(ctx context.Context, line string) (string, error) {
	return m.c.roundTrip(ctx, line+";quit")
}

// version is the master's HAProxy version (`show version`).
func (m *Master) version(ctx context.Context) (Version, error) {
	out, err := m.exec(ctx, "show version")
	if err != nil {
		return Version{}, err
	}
	return parseVersion(strings.TrimSpace(out))
}

// showProc lists the master and its workers.
func (m *Master) showProc(ctx context.Context) ([]masterProc, error) {
	out, err := m.exec(ctx, "show proc")
	if err != nil {
		return nil, err
	}
	procs, err := parseShowProc(out)
	if err != nil {
		return nil, fmt.Errorf("haproxy master %s: %w", m.c.name, err)
	}
	return procs, nil
}

// worker is the current worker's pid and the master's reload count.
func (m *Master) worker(ctx context.Context) (pid, reloads int, err error) {
	procs, err := m.showProc(ctx)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range procs {
		switch p.Type {
		case "master":
			reloads = p.Reloads
		case "worker":
			if pid == 0 {
				pid = p.Pid // the current worker is listed first
			}
		}
	}
	if pid == 0 {
		return 0, 0, fmt.Errorf("haproxy master %s: no worker in show proc", m.c.name)
	}
	return pid, reloads, nil
}

// errReloadFailed is returned when HAProxy did not start a new worker (a config error
// keeps the old one serving).
var errReloadFailed = fmt.Errorf("haproxy reload failed: the old worker keeps serving (check the config with `haproxy -c`)")

// Reload reloads HAProxy and waits until a new worker runs. 2.6 answers `reload` with
// nothing: the new worker is confirmed with `show proc` (a new pid, the reload counter
// up and its failed counter unchanged); 2.7+ answers "Success=1" or "Success=0".
func (m *Master) Reload(ctx context.Context) error {
	before, reloads, err := m.worker(ctx)
	if err != nil {
		return err
	}
	out, err := m.exec(ctx, "reload")
	if err != nil {
		return fmt.Errorf("haproxy master %s: reload: %w", m.c.name, err)
	}
	if strings.Contains(out, "Success=0") {
		return fmt.Errorf("haproxy master %s: %w: %s", m.c.name, errReloadFailed, strings.TrimSpace(out))
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, m.c.timeout)
		defer cancel()
	}
	return pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		pid, n, err := m.worker(ctx)
		if err != nil {
			return false, err // the master re-executes itself: its socket comes back
		}
		if n > reloads && pid != before {
			return true, nil
		}
		if n > reloads && pid == before {
			return true, fmt.Errorf("haproxy master %s: %w", m.c.name, errReloadFailed)
		}
		return false, fmt.Errorf("worker still %d after reload", pid)
	})
}
