// Package lbconfig is swap's HAProxy side: a Runtime API client with typed operations
// and parsed answers, the rendering of haproxy.cfg and its map files with atomic
// persistence, and a Fleet that applies each change to several HAProxy instances.
// docs/haproxy.md describes the layout it renders and how swap uses HAProxy.
//
// # Client
//
// A Client talks to one admin socket (`stats socket ... level admin`), unix or TCP, in
// HAProxy's non-interactive mode: one connection per call, the whole line in one write,
// the answer read to EOF. It limits its concurrent connections (withMaxConns), honours
// context deadlines, and detects the HAProxy version once (Version).
//
//	c, _ := lbconfig.New("unix", "/etc/swap/haproxy/admin.sock", lbconfig.WithName("edge-1"))
//	err := c.AddServer(ctx, "web_green", lbconfig.Server{Name: "web-green-0", Addr: "127.0.0.1", Port: 32768})
//
// Operations (all take a context first; the lower-case ones serve the Fleet and the
// package's tests, nothing outside calls them):
//
//	AddServer, AddServers        safe activation: starts DOWN, climbs by real checks
//	delServer                    retries while the server is not removable, until the deadline
//	setState (ready/drain/maint), setWeight, SetAddr, setHealth, enableHealth,
//	disableHealth, ShutdownSessions, Weight
//	Stat, ServerStat, ServersState, ServersConn, Info, Backends
//	ShowMap, GetMap, setMap, addMap, delMap, PutMap (set or add, returns the old value),
//	restoreMap, replaceMap (prepare / add @N / commit: atomic)
//	Snapshot, ServerStateFile    what HAProxy serves now, for persistence
//	Do                           any Commands, batched with ';' in lines under 16 KiB
//
// Every command is built by a constructor (setStateCmd, addServerCmd, NewCommand, ...)
// that checks names against ^[A-Za-z0-9._-]{1,64}$, refuses CR, LF and NUL in any
// argument, and escapes '\', ';', space, tab and '<', so a value can neither start a
// second command nor switch the connection to payload mode. HAProxy's refusals come back
// as a *CommandError that unwraps to a sentinel: ErrNoSuchBackend, ErrNoSuchServer,
// ErrUnknownCommand, ErrPermission, ErrNotRemovable, ErrAlreadyExists, ErrNotDynamic,
// ErrNoSuchMap, ErrMapKeyNotFound, ErrInvalidArgument, ErrTruncated... A Do line puts
// `show version` after each command: its answer, the version alone on a line, splits
// the answers exactly and proves that every command ran.
//
// # Rendering and persistence
//
// A Layout (built from swap's config by switcher.LBLayout) renders to haproxy.cfg,
// routes.map, preview.map and canary.map (Render). WriteFiles installs them atomically:
// a temp file in the same directory, fsync, `haproxy -c` for the config, rename; equal
// bytes are not rewritten; a dry run only reports the diff. Persist writes what a Client
// serves now (servers, maps and the server-state file), so a reload or a restart serves
// exactly what was live: runtime first, disk second.
//
// # Fleet
//
// A Fleet offers the Client's operations on every instance at once and persists after
// each change when it has a Layout. Flip changes a map key on every instance, all or
// nothing: on a failure the instances already flipped are flipped back, and the error
// names the instance that failed. SetCanary moves a weight of a route's traffic through
// canary.map the same way. Reload persists, then reloads every instance through its
// master CLI.
package lbconfig
