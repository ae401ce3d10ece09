package health

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync"
	"syscall"
	"time"
)

// Transport carries HTTP checks: HTTP/1.1 over keep-alive connections pooled
// per address and shared by every checker that uses the Transport. It is made
// for probing many targets cheaply: a probe runs entirely on the caller's
// goroutine (no per-connection goroutines), its timeout is a connection
// deadline (no timer per probe), and an idle connection costs a socket and
// a few hundred bytes. Responses are parsed by net/http (http.ReadResponse).
//
// A connection is reused only after a complete response that does not ask to
// close it; one found closed by the server when reused is replaced and the
// request sent again once, as net/http does for idempotent requests.
//
// The zero value is ready to use. Set fields before first use.
type Transport struct {
	// MaxIdlePerAddr caps the idle connections kept per scheme and host:port
	// (default 8): targets sharing a listener share that many.
	MaxIdlePerAddr int
	// IdleTimeout: a connection idle longer than this is closed instead of
	// reused (default 30s), so servers' own idle timeouts are rarely hit.
	IdleTimeout time.Duration
	// TLSConfig for https targets; nil: system roots, server name from the URL.
	TLSConfig *tls.Config

	mu     sync.Mutex
	idle   map[string][]*pconn
	reaper *time.Timer // closes connections idle too long; nil when none are idle
}

// SharedTransport is the Transport HTTP checkers use unless given one.
var SharedTransport = &Transport{}

const (
	defaultMaxIdlePerAddr = 8
	defaultIdleTimeout    = 30 * time.Second
	readBufSize           = 1 << 10
)

// pconn is a connection and the buffered reader over it, kept together so
// bytes read ahead are never lost between requests.
type pconn struct {
	key       string
	conn      net.Conn
	br        *bufio.Reader
	idleSince time.Time

	// watched is the context whose end cuts pc's I/O short (by moving its
	// deadline to the past); stopWatch stops that. A target probed again and
	// again with the same context registers once, not once per probe.
	watched   context.Context
	stopWatch func() bool
}

// watch makes the end of ctx cut pc's I/O short. It reports false when pc
// was watching another context that has ended: its cut may still come, so
// pc must not be used.
func (pc *pconn) watch(ctx context.Context) bool {
	if pc.watched == ctx {
		return true
	}
	if pc.stopWatch != nil && !pc.stopWatch() {
		return false
	}
	pc.watched = ctx
	pc.stopWatch = context.AfterFunc(ctx, func() { _ = pc.conn.SetDeadline(aLongTimeAgo) })
	return true
}

// close closes pc and stops watching its context.
func (pc *pconn) close() {
	if pc.stopWatch != nil {
		pc.stopWatch()
	}
	_ = pc.conn.Close()
}

// aLongTimeAgo is a deadline in the past: it makes blocked I/O return at once.
var aLongTimeAgo = time.Unix(1, 0)

func (t *Transport) idleTimeout() time.Duration {
	if t.IdleTimeout <= 0 {
		return defaultIdleTimeout
	}
	return t.IdleTimeout
}

// CloseIdle closes every idle connection.
func (t *Transport) CloseIdle() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	if t.reaper != nil {
		t.reaper.Stop()
		t.reaper = nil
	}
	t.mu.Unlock()
	for _, list := range idle {
		for _, pc := range list {
			pc.close()
		}
	}
}

// get returns an idle connection for key, or nil.
func (t *Transport) get(key string, now time.Time) *pconn {
	timeout := t.idleTimeout()
	var stale []*pconn
	t.mu.Lock()
	list := t.idle[key]
	var pc *pconn
	for len(list) > 0 {
		c := list[len(list)-1]
		list[len(list)-1] = nil
		list = list[:len(list)-1]
		if now.Sub(c.idleSince) < timeout {
			pc = c
			break
		}
		stale = append(stale, c)
	}
	if len(list) == 0 {
		delete(t.idle, key)
	} else {
		t.idle[key] = list
	}
	t.mu.Unlock()
	for _, c := range stale {
		c.close()
	}
	return pc
}

// put keeps pc for reuse, or closes it if the pool for its key is full.
func (t *Transport) put(pc *pconn, now time.Time) {
	limit := t.MaxIdlePerAddr
	if limit <= 0 {
		limit = defaultMaxIdlePerAddr
	}
	pc.idleSince = now
	t.mu.Lock()
	if t.idle == nil {
		t.idle = make(map[string][]*pconn)
	}
	if list := t.idle[pc.key]; len(list) < limit {
		t.idle[pc.key] = append(list, pc)
		pc = nil
		if t.reaper == nil {
			t.reaper = time.AfterFunc(t.idleTimeout(), t.reap)
		}
	}
	t.mu.Unlock()
	if pc != nil {
		pc.close()
	}
}

// reap closes the connections idle for longer than the idle timeout, so a
// target that is no longer probed does not keep its connection open.
func (t *Transport) reap() {
	timeout := t.idleTimeout()
	now := time.Now()
	var stale []*pconn
	t.mu.Lock()
	for key, list := range t.idle {
		keep := list[:0]
		for _, pc := range list {
			if now.Sub(pc.idleSince) >= timeout {
				stale = append(stale, pc)
			} else {
				keep = append(keep, pc)
			}
		}
		clear(list[len(keep):])
		if len(keep) == 0 {
			delete(t.idle, key)
		} else {
			t.idle[key] = keep
		}
	}
	if t.reaper != nil { // not stopped by CloseIdle meanwhile
		if len(t.idle) > 0 {
			t.reaper.Reset(timeout)
		} else {
			t.reaper = nil
		}
	}
	t.mu.Unlock()
	for _, pc := range stale {
		pc.close()
	}
}

// dial opens a connection for key (scheme + "://" + host:port); serverName
// is used for TLS.
func (t *Transport) dial(ctx context.Context, key, addr string, useTLS bool, serverName string, deadline time.Time) (*pconn, error) {
	d := net.Dialer{Deadline: deadline, KeepAlive: -1}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if useTLS {
		cfg := t.TLSConfig
		if cfg == nil {
			cfg = &tls.Config{}
		}
		if cfg.ServerName == "" {
			cfg = cfg.Clone()
			cfg.ServerName = serverName
		}
		tc := tls.Client(conn, cfg)
		_ = conn.SetDeadline(deadline)
		if err := tc.HandshakeContext(ctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		conn = tc
	}
	return &pconn{key: key, conn: conn, br: bufio.NewReaderSize(conn, readBufSize)}, nil
}

// staleConn reports whether err, on a reused connection before any response
// byte, means the server had closed it: worth one retry on a new connection.
func staleConn(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}
