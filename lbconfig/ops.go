package lbconfig

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// One file holds the typed Runtime API operations, each a command constructor and its
// Client method side by side: a reader checks a command's escaping next to its use.

// Server is one server of a backend: what `add server` and a config `server` line say.
// Zero fields take the defaults below.
//
// A server added at runtime must behave exactly like the same server loaded from
// haproxy.cfg after a reload. HAProxy 2.6 does not give it the same defaults: a config
// server starts from the backend's default-server (pool-max-conn -1, pool-purge-delay 5s,
// error-limit 10, on-error fail-check, inter 2s, rise 2, fall 3, weight 1), a dynamic
// server from zeros (no idle connection pool at all, so every request opens a new
// connection to the server). So params writes every one of those settings out, in both
// places (docs/haproxy.md, "Dynamic servers"). The one it cannot write is max-reuse
// (dynamic 0, config -1): 2.6's `add server` refuses it, and it only limits multiplexed
// (HTTP/2, FastCGI) server connections, while swap's servers speak HTTP/1.1.
type Server struct {
	Name   string // "<app>-<color>-<i>"
	Addr   string // an IP address: HAProxy's dynamic servers take no host names
	Port   int
	Weight int // initial weight (default 100, so percentages keep their precision)
	Check  Check
	// PoolPurgeDelay and ErrorLimit are passed explicitly: 2.6's dynamic servers default
	// to 0 for both, unlike config servers. Defaults 5s and 1: with checks, a request
	// that fails on the server (refused, reset, an empty or broken answer, a 5xx)
	// triggers `observe layer7 on-error fastinter`: the server's checks run every
	// fastinter until its state is settled, so a dead server leaves rotation after fall
	// fast checks, not fall full intervals. The checks decide, never the failed
	// requests: a client requesting a URL that answers 5xx cannot take servers out
	// (sudden-death and mark-down would let it).
	PoolPurgeDelay time.Duration
	ErrorLimit     int
	MaxConn        int // 0: no limit
	// Backup servers take traffic only while no other server of the backend is up.
	Backup bool
}

// Check is a server's health-check timing.
type Check struct {
	Disabled bool          // no checks at all ("check" left out)
	Inter    time.Duration // default 2s
	Rise     int           // default 2
	Fall     int           // default 3
}

// Defaults of Server.
const (
	DefaultWeight         = 100
	DefaultInter          = 2 * time.Second
	DefaultRise           = 2
	DefaultFall           = 3
	DefaultPoolPurgeDelay = 5 * time.Second
	DefaultErrorLimit     = 1
)

// fastInter is how often a server is checked while its state is in question (after a
// failed check or a failed request), at most.
const fastInter = 100 * time.Millisecond

// withDefaults fills the zero fields.
func (s Server) withDefaults() Server {
	if s.Weight == 0 {
		s.Weight = DefaultWeight
	}
	if s.Check.Inter == 0 {
		s.Check.Inter = DefaultInter
	}
	if s.Check.Rise == 0 {
		s.Check.Rise = DefaultRise
	}
	if s.Check.Fall == 0 {
		s.Check.Fall = DefaultFall
	}
	if s.PoolPurgeDelay == 0 {
		s.PoolPurgeDelay = DefaultPoolPurgeDelay
	}
	if s.ErrorLimit == 0 {
		s.ErrorLimit = DefaultErrorLimit
	}
	return s
}

// Validate checks the server's name, address and numbers.
func (s Server) Validate() error {
	if err := CheckName("server", s.Name); err != nil {
		return err
	}
	if ip := net.ParseIP(s.Addr); ip == nil {
		return fmt.Errorf("server %s: address %q is not an IP address (HAProxy's dynamic servers take IPs only): %w", s.Name, s.Addr, ErrInvalidArgument)
	}
	if s.Port < 1 || s.Port > 65535 {
		return fmt.Errorf("server %s: port %d out of 1..65535: %w", s.Name, s.Port, ErrInvalidArgument)
	}
	if s.Weight < 0 || s.Weight > 256 {
		return fmt.Errorf("server %s: weight %d out of 0..256: %w", s.Name, s.Weight, ErrInvalidArgument)
	}
	if s.Check.Rise < 0 || s.Check.Fall < 0 || s.Check.Inter < 0 || s.MaxConn < 0 || s.ErrorLimit < 0 || s.PoolPurgeDelay < 0 {
		return fmt.Errorf("server %s: negative check or limit: %w", s.Name, ErrInvalidArgument)
	}
	return nil
}

// HostPort is "addr:port", bracketed for IPv6.
func (s Server) HostPort() string { return net.JoinHostPort(s.Addr, strconv.Itoa(s.Port)) }

// params are the words after "server <name>" in the config and after
// "add server <be>/<name>" at runtime: the same in both places, so a reload rebuilds
// exactly what was added. Every setting whose default differs between a dynamic server
// and a config server in HAProxy 2.6 is written out (see Server), including the check
// timing when checks are off. Never "enabled" (HAProxy issue 2497) and never "disabled".
func (s Server) params() []string {
	s = s.withDefaults()
	p := []string{s.HostPort()}
	if !s.Check.Disabled {
		p = append(p, "check", "observe", "layer7")
	}
	p = append(p, "inter", haDuration(s.Check.Inter), "fastinter", haDuration(min(s.Check.Inter, fastInter)),
		"rise", strconv.Itoa(s.Check.Rise), "fall", strconv.Itoa(s.Check.Fall),
		"weight", strconv.Itoa(s.Weight),
		"pool-max-conn", strconv.Itoa(PoolMaxConn),
		"pool-purge-delay", haDuration(s.PoolPurgeDelay),
		"error-limit", strconv.Itoa(s.ErrorLimit),
		"on-error", OnError)
	if s.MaxConn > 0 {
		p = append(p, "maxconn", strconv.Itoa(s.MaxConn))
	}
	if s.Backup {
		p = append(p, "backup")
	}
	return p
}

// PoolMaxConn and OnError are what every server gets, written out because a dynamic
// server's defaults differ from a config server's in HAProxy 2.6: pool-max-conn -1 (no
// limit on idle connections kept for reuse; a dynamic server defaults to 0, no pool, and
// opens a connection per request) and an on-error mode (a dynamic server has none at
// all; a config server's default is fail-check). swap's is fastinter, with `observe
// layer7` on checked servers: see Server.ErrorLimit.
const (
	PoolMaxConn = -1
	OnError     = "fastinter"
)

// haDuration formats d the way HAProxy reads times: whole seconds as "Ns", else
// milliseconds (rounded up, at least 1ms).
func haDuration(d time.Duration) string {
	if d > 0 && d%time.Second == 0 {
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	}
	ms := (d + time.Millisecond - 1) / time.Millisecond
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(int64(ms), 10) + "ms"
}

func serverRef(backend, server string) (string, error) {
	if err := CheckName("backend", backend); err != nil {
		return "", err
	}
	if err := CheckName("server", server); err != nil {
		return "", err
	}
	return backend + "/" + server, nil
}

var (
	okEmpty      = expectation{kind: expectEmpty}
	okAny        = expectation{kind: expectAny}
	okRegistered = expectation{kind: expectLines, prefix: []string{"New server registered."}}
	okDeleted    = expectation{kind: expectPrefix, prefix: []string{"Server deleted."}}
	okAddr       = expectation{kind: expectPrefix, prefix: []string{"IP changed from", "no need to change the addr", "port changed from", "no need to change the port"}}
	okPrepared   = expectation{kind: expectPrefix, prefix: []string{"New version created:"}}
)

// addServerCmd is the safe activation of a new server, as one command line:
//
//	add server be/s <addr> check inter .. rise .. fall .. weight ..;enable health be/s;
//	set server be/s state ready;set server be/s health down
//
// The server starts DOWN and climbs to UP by real checks (rise); `health down` comes
// after `ready` because leaving maintenance marks a checked server up. A server with
// checks disabled skips the last step and takes traffic at once.
func addServerCmd(backend string, s Server) (Command, error) {
	ref, err := serverRef(backend, s.Name)
	if err != nil {
		return Command{}, err
	}
	if err := s.Validate(); err != nil {
		return Command{}, err
	}
	add, err := newCommand(okAny, append([]string{"add", "server", ref}, s.params()...)...)
	if err != nil {
		return Command{}, err
	}
	cmds := []Command{add}
	if !s.Check.Disabled {
		cmds = append(cmds, mustCommand(okEmpty, "enable", "health", ref))
	}
	cmds = append(cmds, mustCommand(okEmpty, "set", "server", ref, "state", "ready"))
	if !s.Check.Disabled {
		cmds = append(cmds, mustCommand(okEmpty, "set", "server", ref, "health", "down"))
	}
	return joinCommands(okRegistered, cmds...), nil
}

// AddServer adds s to backend with the safe activation sequence (addServerCmd). A server
// of that name already in the backend is left untouched: the error wraps
// ErrAlreadyExists.
func (c *Client) AddServer(ctx context.Context, backend string, s Server) error {
	return c.AddServers(ctx, backend, []Server{s})
}

// AddServers adds several servers to backend, each with the safe activation sequence,
// in as few connections as fit. It first checks that none of them exists yet (so the
// follow-up commands of a refused `add server` never touch an existing server).
func (c *Client) AddServers(ctx context.Context, backend string, servers []Server) error {
	cmds := make([]Command, len(servers))
	for i, s := range servers {
		cmd, err := addServerCmd(backend, s)
		if err != nil {
			return err
		}
		cmds[i] = cmd
	}
	have, err := c.ServersState(ctx, backend)
	if err != nil {
		return err
	}
	existing := make(map[string]bool, len(have))
	for _, h := range have {
		existing[h.Name] = true
	}
	var errs []error
	for i, s := range servers {
		if existing[s.Name] {
			errs = append(errs, &CommandError{Instance: c.name, Command: cmds[i].line, Err: ErrAlreadyExists,
				Answer: "(not sent: " + backend + "/" + s.Name + " exists)"})
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	_, err = c.Do(ctx, cmds...)
	return err
}

// delServerCmd is `del server be/s`.
func delServerCmd(backend, server string) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	return mustCommand(okDeleted, "del", "server", ref), nil
}

// delServer deletes a server. HAProxy deletes only a server in maintenance without
// sessions, queue or idle connections; delServer retries while the answer is
// ErrNotRemovable, until the context's deadline (10s without one). Put the server in
// maint first (setState) and, to hurry it, ShutdownSessions.
func (c *Client) delServer(ctx context.Context, backend, server string) error {
	cmd, err := delServerCmd(backend, server)
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	return pollUntil(ctx, 20*time.Millisecond, func() (bool, error) {
		_, err := c.Exec(ctx, cmd)
		if errors.Is(err, ErrNotRemovable) {
			return false, err
		}
		return true, err
	})
}

// pollUntil calls f until it reports done or ctx ends, waiting every (growing to 10 times
// that, at most 500ms) between calls. When ctx ends first, the error wraps ctx's error and f's last one.
func pollUntil(ctx context.Context, every time.Duration, f func() (done bool, err error)) error {
	t := time.NewTimer(0)
	defer t.Stop()
	wait := every
	var last error
	for {
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("%w (gave up: %w)", last, ctx.Err())
			}
			return ctx.Err()
		case <-t.C:
		}
		done, err := f()
		if done {
			return err
		}
		last = err
		t.Reset(wait)
		if wait < 10*every && wait < 500*time.Millisecond {
			wait += wait / 2
		}
	}
}

// State is a server's administrative state.
type State string

// The states of `set server ... state`.
const (
	StateReady State = "ready" // takes traffic (when its checks say UP)
	StateDrain State = "drain" // keeps its sessions, gets no new ones (except persistent)
	StateMaint State = "maint" // gets nothing; checks stop
)

// setStateCmd is `set server be/s state <st>`.
func setStateCmd(backend, server string, st State) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	switch st {
	case StateReady, StateDrain, StateMaint:
	default:
		return Command{}, fmt.Errorf("server state %q: want ready, drain or maint: %w", st, ErrInvalidArgument)
	}
	return mustCommand(okEmpty, "set", "server", ref, "state", string(st)), nil
}

// setState sets a server's administrative state.
func (c *Client) setState(ctx context.Context, backend, server string, st State) error {
	return c.run1(ctx, func() (Command, error) { return setStateCmd(backend, server, st) })
}

// setWeightCmd is `set server be/s weight <w>` (0..256).
func setWeightCmd(backend, server string, weight int) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	if weight < 0 || weight > 256 {
		return Command{}, fmt.Errorf("weight %d out of 0..256: %w", weight, ErrInvalidArgument)
	}
	return mustCommand(okEmpty, "set", "server", ref, "weight", strconv.Itoa(weight)), nil
}

// setWeight sets a server's weight.
func (c *Client) setWeight(ctx context.Context, backend, server string, weight int) error {
	return c.run1(ctx, func() (Command, error) { return setWeightCmd(backend, server, weight) })
}

// setAddrCmd is `set server be/s addr <ip> port <port>`.
func setAddrCmd(backend, server, ip string, port int) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	if net.ParseIP(ip) == nil {
		return Command{}, fmt.Errorf("address %q is not an IP address: %w", ip, ErrInvalidArgument)
	}
	if port < 1 || port > 65535 {
		return Command{}, fmt.Errorf("port %d out of 1..65535: %w", port, ErrInvalidArgument)
	}
	return mustCommand(okAddr, "set", "server", ref, "addr", ip, "port", strconv.Itoa(port)), nil
}

// SetAddr moves a server to another address and port.
func (c *Client) SetAddr(ctx context.Context, backend, server, ip string, port int) error {
	return c.run1(ctx, func() (Command, error) { return setAddrCmd(backend, server, ip, port) })
}

// Health is a server's forced check health.
type Health string

// The values of `set server ... health`.
const (
	HealthUp       Health = "up"
	HealthStopping Health = "stopping"
	HealthDown     Health = "down"
)

// setHealthCmd is `set server be/s health <h>`.
func setHealthCmd(backend, server string, h Health) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	switch h {
	case HealthUp, HealthStopping, HealthDown:
	default:
		return Command{}, fmt.Errorf("health %q: want up, stopping or down: %w", h, ErrInvalidArgument)
	}
	return mustCommand(okEmpty, "set", "server", ref, "health", string(h)), nil
}

// setHealth forces a server's health; its checks carry on from there.
func (c *Client) setHealth(ctx context.Context, backend, server string, h Health) error {
	return c.run1(ctx, func() (Command, error) { return setHealthCmd(backend, server, h) })
}

// enableHealthCmd is `enable health be/s`.
func enableHealthCmd(backend, server string) (Command, error) {
	return healthChecksCmd("enable", backend, server)
}

// disableHealthCmd is `disable health be/s`.
func disableHealthCmd(backend, server string) (Command, error) {
	return healthChecksCmd("disable", backend, server)
}

// healthChecksCmd is `<verb> health be/s`.
func healthChecksCmd(verb, backend, server string) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	return mustCommand(okEmpty, verb, "health", ref), nil
}

// enableHealth turns a server's health checks on.
func (c *Client) enableHealth(ctx context.Context, backend, server string) error {
	return c.run1(ctx, func() (Command, error) { return enableHealthCmd(backend, server) })
}

// disableHealth turns a server's health checks off.
func (c *Client) disableHealth(ctx context.Context, backend, server string) error {
	return c.run1(ctx, func() (Command, error) { return disableHealthCmd(backend, server) })
}

// shutdownSessionsCmd is `shutdown sessions server be/s`.
func shutdownSessionsCmd(backend, server string) (Command, error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return Command{}, err
	}
	return mustCommand(okEmpty, "shutdown", "sessions", "server", ref), nil
}

// ShutdownSessions closes every session on a server. HAProxy does it asynchronously:
// poll `show stat` (or retry delServer) afterwards.
func (c *Client) ShutdownSessions(ctx context.Context, backend, server string) error {
	return c.run1(ctx, func() (Command, error) { return shutdownSessionsCmd(backend, server) })
}

func (c *Client) run1(ctx context.Context, build func() (Command, error)) error {
	cmd, err := build()
	if err != nil {
		return err
	}
	_, err = c.Do(ctx, cmd)
	return err
}

// Weight returns a server's current and initial weight (`get weight`).
func (c *Client) Weight(ctx context.Context, backend, server string) (current, initial int, err error) {
	ref, err := serverRef(backend, server)
	if err != nil {
		return 0, 0, err
	}
	out, err := c.Exec(ctx, mustCommand(okAny, "get", "weight", ref))
	if err != nil {
		return 0, 0, err
	}
	return parseWeight(out)
}

// Stat returns `show stat` parsed: every row, or with backend set, the backend's own row
// and its servers' rows.
func (c *Client) Stat(ctx context.Context, backend string) ([]Stat, error) {
	// type mask 2 (backend) | 4 (server), every server id.
	cmd, err := showCmd("stat", backend, "6", "-1")
	if err != nil {
		return nil, err
	}
	out, err := c.Exec(ctx, cmd)
	return parsed(c, out, err, ParseStat)
}

// ServerStat returns the `show stat` row of one server; ErrNoSuchServer if the backend
// has none by that name.
func (c *Client) ServerStat(ctx context.Context, backend, server string) (Stat, error) {
	if _, err := serverRef(backend, server); err != nil {
		return Stat{}, err
	}
	rows, err := c.Stat(ctx, backend)
	if err != nil {
		return Stat{}, err
	}
	for _, r := range rows {
		if r.Type == StatServer && r.Name == server {
			return r, nil
		}
	}
	return Stat{}, fmt.Errorf("haproxy %s: %s/%s: %w", c.name, backend, server, ErrNoSuchServer)
}

// ServersState returns `show servers state` parsed, for one backend or ("") all.
func (c *Client) ServersState(ctx context.Context, backend string) ([]ServerState, error) {
	out, err := c.serversState(ctx, backend)
	return parsed(c, out, err, ParseServersState)
}

// serversState is the raw answer, which is also the server-state file's format.
func (c *Client) serversState(ctx context.Context, backend string) (string, error) {
	cmd, err := showCmd("servers state", backend)
	if err != nil {
		return "", err
	}
	return c.Exec(ctx, cmd)
}

// ServersConn returns `show servers conn` parsed, for one backend or ("") all.
func (c *Client) ServersConn(ctx context.Context, backend string) ([]ServerConn, error) {
	cmd, err := showCmd("servers conn", backend)
	if err != nil {
		return nil, err
	}
	out, err := c.Exec(ctx, cmd)
	return parsed(c, out, err, parseServersConn)
}

// Info returns `show info` parsed.
func (c *Client) Info(ctx context.Context) (Info, error) {
	out, err := c.Exec(ctx, mustCommand(okAny, "show", "info"))
	return parsed(c, out, err, parseInfo)
}

// Backends lists the backends of the running configuration (`show backend`).
func (c *Client) Backends(ctx context.Context) ([]string, error) {
	out, err := c.Exec(ctx, mustCommand(okAny, "show", "backend"))
	return parsed(c, out, err, parseBackends)
}

// showCmd is `show <what>` about every backend or, with backend set, `show <what>
// <backend> <narrow...>` about that one.
func showCmd(what, backend string, narrow ...string) (Command, error) {
	words := append([]string{"show"}, strings.Fields(what)...)
	if backend != "" {
		if err := CheckName("backend", backend); err != nil {
			return Command{}, err
		}
		words = append(append(words, backend), narrow...)
	}
	return mustCommand(okAny, words...), nil
}

// parsed is a show command's answer (out, or the error that came instead) read by
// parse; a parse error names the instance.
func parsed[T any](c *Client, out string, err error, parse func(string) (T, error)) (T, error) {
	var zero T
	if err != nil {
		return zero, err
	}
	v, err := parse(out)
	if err != nil {
		return zero, fmt.Errorf("haproxy %s: %w", c.name, err)
	}
	return v, nil
}
