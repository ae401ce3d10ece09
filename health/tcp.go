package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// TCPConfig describes a TCP connect probe.
type TCPConfig struct {
	// Addr is host:port.
	Addr string
	// Timeout bounds the connect; default DefaultTimeout.
	Timeout time.Duration
}

// TCPChecker is a Checker that opens and closes one TCP connection per probe.
type TCPChecker struct {
	addr    string
	timeout time.Duration
}

// NewTCPChecker validates cfg and returns its checker.
func NewTCPChecker(cfg TCPConfig) (*TCPChecker, error) {
	if err := checkHostPort(cfg.Addr); err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("health: negative timeout %s for %s", cfg.Timeout, cfg.Addr)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	return &TCPChecker{addr: cfg.Addr, timeout: cfg.Timeout}, nil
}

// String is "tcp host:port".
func (c *TCPChecker) String() string { return "tcp " + c.addr }

// Check connects and closes.
func (c *TCPChecker) Check(ctx context.Context) Result {
	start := time.Now()
	d := net.Dialer{Deadline: start.Add(c.timeout), KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		reason := classify(ctx, err)
		if reason == ReasonTimeout {
			err = fmt.Errorf("tcp %s: no connection within %s: %w", c.addr, c.timeout, err)
		} else {
			err = fmt.Errorf("tcp %s: %w", c.addr, err)
		}
		return Result{Reason: reason, Err: err, Start: start, Duration: time.Since(start)}
	}
	_ = conn.Close()
	return Result{OK: true, Start: start, Duration: time.Since(start)}
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("health: bad address %q: want host:port: %w", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
		return fmt.Errorf("health: bad address %q: want host:port with a port in 1-65535", addr)
	}
	return nil
}

// ErrBadTarget: a target string is neither an http(s) URL nor host:port.
var ErrBadTarget = errors.New("health: bad target")

// CheckerFor turns a command-line target into a Checker: an http:// or
// https:// URL gives an HTTP probe configured by cfg (cfg.URL is replaced),
// host:port a TCP probe with cfg.Timeout. HTTP-only settings (Expect, Body,
// Host, Method) with a host:port target are an error. Errors wrap ErrBadTarget.
func CheckerFor(target string, cfg HTTPConfig) (Checker, error) {
	if strings.Contains(target, "://") {
		u, err := url.Parse(target)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("%w %q: want http://host:port/path, https://... or host:port", ErrBadTarget, target)
		}
		cfg.URL = target
		c, err := NewHTTPChecker(cfg)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadTarget, err)
		}
		return c, nil
	}
	if len(cfg.Expect) > 0 || cfg.Body != "" || cfg.Host != "" || cfg.Method != "" {
		return nil, fmt.Errorf("%w %q: expected status, body, host and method need an http:// URL, not host:port", ErrBadTarget, target)
	}
	c, err := NewTCPChecker(TCPConfig{Addr: target, Timeout: cfg.Timeout})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadTarget, err)
	}
	return c, nil
}

// CheckRise probes c up to rise times, interval apart, and reports whether
// it succeeded rise times in a row (rise < 1 counts as 1). It stops at the
// first failure or when ctx ends (then healthy is false). results holds every
// probe made, in order, for the caller to print.
func CheckRise(ctx context.Context, c Checker, rise int, interval time.Duration) (results []Result, healthy bool) {
	rise = max(rise, 1)
	var timer *time.Timer
	for i := range rise {
		if i > 0 {
			if timer == nil {
				timer = time.NewTimer(interval)
				defer timer.Stop()
			} else {
				timer.Reset(interval)
			}
			select {
			case <-ctx.Done():
				return results, false
			case <-timer.C:
			}
		}
		r := c.Check(ctx)
		results = append(results, r)
		if !r.OK {
			return results, false
		}
	}
	return results, true
}
