package lbconfig

import (
	"bytes"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swap-dev/swap/statuscode"
)

// One file renders haproxy.cfg and checks what goes into it: the checks and the lines
// they guard stay side by side, so no value reaches the file unchecked.

// Layout is everything swap renders for HAProxy: the frontends, one backend per app and
// color with its servers, and the contents of the map files. switcher builds the static
// part from the config; Snapshot fills the servers and maps from a running HAProxy.
type Layout struct {
	// Dir holds haproxy.cfg, the maps, the server-state file and the admin socket.
	Dir      string
	Frontend Listener
	Preview  Listener // Bind == "": no preview frontend
	Routing  Routing
	Timeouts Timeouts
	// SocketGID, when not 0, makes the admin socket mode 660 with this group, for a
	// client running as another user of that group; 0 keeps it mode 600.
	SocketGID int
	// HardStopAfter bounds how long an old worker keeps serving after a reload
	// (default 30s).
	HardStopAfter time.Duration
	Backends      []Backend
	// Routes is routes.map: route key → backend. PreviewRoutes is preview.map.
	// Canary is canary.map: route key → canaryValue(backend, weight).
	Routes        []MapEntry
	PreviewRoutes []MapEntry
	Canary        []MapEntry
}

// Listener is a frontend's name and bind address ("127.0.0.1:8080").
type Listener struct {
	Name string
	Bind string
}

// Routing says what the route maps are keyed by.
type Routing string

// The routing modes.
const (
	RouteByHost Routing = "host" // the Host header, lower-cased, without a port
	RouteByPath Routing = "path" // the longest matching path prefix
)

// Timeouts are the defaults section's timeouts; zero takes the default.
type Timeouts struct {
	Connect time.Duration // default 5s
	Client  time.Duration // default 30s
	Server  time.Duration // default 30s
}

// Backend is one app color: `<app>_<color>`.
type Backend struct {
	Name  string
	Check HealthCheck
	// Server holds the check timing, weight and limits of every server of the backend;
	// its Name, Addr and Port are ignored.
	Server  Server
	Servers []Server // the current servers: Name, Addr, Port (Weight: initial weight)
}

// HealthCheck is how HAProxy checks a backend's servers.
type HealthCheck struct {
	Type         string        // "http" (default) or "tcp"
	Method       string        // default GET
	Path         string        // default "/"
	Host         string        // Host header, optional
	ExpectStatus string        // "200", "200-399", "200,204"; empty: HAProxy's 2xx/3xx
	Body         string        // a string the body must contain, optional
	Timeout      time.Duration // "timeout check"; zero: the connect timeout
}

// The file names in Layout.Dir.
const (
	ConfigFile     = "haproxy.cfg"
	RoutesMapFile  = "routes.map"
	PreviewMapFile = "preview.map"
	CanaryMapFile  = "canary.map"
	StateFile      = "server-state"
	AdminSockFile  = "admin.sock"
	// FallbackBackend answers 503 when no route matches.
	FallbackBackend = "swap_fallback"
)

// Path returns the path of file name in the layout's directory.
func (l *Layout) Path(name string) string { return filepath.Join(l.Dir, name) }

// RoutesMap is the routes map's path: its id in the Runtime API.
func (l *Layout) RoutesMap() string { return l.Path(RoutesMapFile) }

// PreviewMap is the preview map's path.
func (l *Layout) PreviewMap() string { return l.Path(PreviewMapFile) }

// CanaryMap is the canary map's path.
func (l *Layout) CanaryMap() string { return l.Path(CanaryMapFile) }

// AdminSocket is the admin socket's path.
func (l *Layout) AdminSocket() string { return l.Path(AdminSockFile) }

// Backend returns the backend named name, or nil.
func (l *Layout) Backend(name string) *Backend {
	for i := range l.Backends {
		if l.Backends[i].Name == name {
			return &l.Backends[i]
		}
	}
	return nil
}

// NewServer returns a server for backend with the backend's check timing, weight and
// limits (Backend.Server), named name at addr:port.
func (l *Layout) NewServer(backend, name, addr string, port int) (Server, error) {
	be := l.Backend(backend)
	if be == nil {
		return Server{}, fmt.Errorf("backend %q is not in the layout: %w", backend, ErrNoSuchBackend)
	}
	s := be.Server
	s.Name, s.Addr, s.Port = name, addr, port
	return s.withDefaults(), s.Validate()
}

// Clone returns a deep copy.
func (l *Layout) Clone() *Layout {
	c := *l
	c.Backends = make([]Backend, len(l.Backends))
	for i, b := range l.Backends {
		b.Servers = append([]Server(nil), b.Servers...)
		c.Backends[i] = b
	}
	c.Routes = append([]MapEntry(nil), l.Routes...)
	c.PreviewRoutes = append([]MapEntry(nil), l.PreviewRoutes...)
	c.Canary = append([]MapEntry(nil), l.Canary...)
	return &c
}

var (
	methodPattern = regexp.MustCompile(`^[A-Z]{1,16}$`)
	// A check path, like a route path, is kept to characters that need no quoting in
	// haproxy.cfg: no '#', quotes, '$', '\' or whitespace.
	pathPattern = regexp.MustCompile(`^/[A-Za-z0-9._~/%+=&?:@,-]*$`)
	hostPattern = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})?(:[0-9]{1,5})?$`)
	bodyPattern = regexp.MustCompile(`^[A-Za-z0-9 ._~/%+=&?:@,;!*()\[\]{}<>|^-]{1,256}$`)
	// RouteHostPattern and RoutePathPattern are what a route key may be.
	RouteHostPattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9.-]{0,252})?$`)
	RoutePathPattern = regexp.MustCompile(`^/[A-Za-z0-9._~/%+=&:@,-]*$`)
)

// Validate checks every value that reaches haproxy.cfg or a map file, so a config value
// can never add a line or a keyword to either.
func (l *Layout) Validate() error {
	if !filepath.IsAbs(l.Dir) || strings.ContainsAny(l.Dir, " \t\r\n\"'#$\\") {
		return fmt.Errorf("haproxy dir %q: must be an absolute path without spaces, quotes, '#', '$' or '\\'", l.Dir)
	}
	if err := checkListener("frontend", l.Frontend, true); err != nil {
		return err
	}
	if err := checkListener("preview frontend", l.Preview, false); err != nil {
		return err
	}
	if l.Preview.Bind != "" && l.Preview.Name == l.Frontend.Name {
		return fmt.Errorf("preview frontend %q: same name as the frontend", l.Preview.Name)
	}
	if l.SocketGID < 0 {
		return fmt.Errorf("admin socket gid %d: want a group id, or 0 for none", l.SocketGID)
	}
	switch l.Routing {
	case RouteByHost, RouteByPath:
	default:
		return fmt.Errorf("routing %q: want host or path", l.Routing)
	}
	seen := map[string]bool{FallbackBackend: true, l.Frontend.Name: true, l.Preview.Name: true}
	for _, b := range l.Backends {
		if err := CheckName("backend", b.Name); err != nil {
			return err
		}
		if seen[b.Name] {
			return fmt.Errorf("backend %q: name used twice (or reserved)", b.Name)
		}
		seen[b.Name] = true
		if err := b.Check.validate(); err != nil {
			return fmt.Errorf("backend %s: %w", b.Name, err)
		}
		names := map[string]bool{}
		for _, s := range b.Servers {
			if err := s.Validate(); err != nil {
				return fmt.Errorf("backend %s: %w", b.Name, err)
			}
			if names[s.Name] {
				return fmt.Errorf("backend %s: server %q twice", b.Name, s.Name)
			}
			names[s.Name] = true
		}
	}
	for _, m := range []struct {
		name    string
		entries []MapEntry
		canary  bool
	}{{RoutesMapFile, l.Routes, false}, {PreviewMapFile, l.PreviewRoutes, false}, {CanaryMapFile, l.Canary, true}} {
		keys := map[string]bool{}
		for _, e := range m.entries {
			if err := checkMapEntry(e.Key, e.Value); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if err := l.checkRouteKey(e.Key); err != nil {
				return fmt.Errorf("%s: %w", m.name, err)
			}
			if keys[e.Key] {
				return fmt.Errorf("%s: key %q twice", m.name, e.Key)
			}
			keys[e.Key] = true
			be := e.Value
			if m.canary {
				var err error
				if be, _, err = parseCanaryValue(e.Value); err != nil {
					return fmt.Errorf("%s: %w", m.name, err)
				}
			}
			if !seen[be] || be == l.Frontend.Name || be == l.Preview.Name {
				return fmt.Errorf("%s: %s → %q: no such backend (a route to a missing backend answers 503)", m.name, e.Key, be)
			}
		}
	}
	return nil
}

// checkRouteKey checks a route key for the layout's routing: a lower-case host name, or
// a path prefix starting with '/'.
func (l *Layout) checkRouteKey(key string) error {
	if l.Routing == RouteByPath {
		if !RoutePathPattern.MatchString(key) {
			return fmt.Errorf("route %q: a path route starts with '/' and holds no spaces, quotes, '#', '$' or '\\'", key)
		}
		return nil
	}
	if !RouteHostPattern.MatchString(key) {
		return fmt.Errorf("route %q: a host route is a lower-case host name without a port", key)
	}
	return nil
}

func checkListener(what string, ln Listener, required bool) error {
	if ln.Bind == "" && !required {
		return nil
	}
	if err := CheckName(what, ln.Name); err != nil {
		return err
	}
	host, port, err := net.SplitHostPort(ln.Bind)
	if err != nil {
		return fmt.Errorf("%s %s: bind %q: want host:port", what, ln.Name, ln.Bind)
	}
	if host != "" && host != "*" && net.ParseIP(host) == nil {
		return fmt.Errorf("%s %s: bind %q: the host must be an IP address", what, ln.Name, ln.Bind)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("%s %s: bind %q: bad port", what, ln.Name, ln.Bind)
	}
	return nil
}

func (h HealthCheck) validate() error {
	switch h.Type {
	case "", "http":
	case "tcp":
		return nil
	default:
		return fmt.Errorf("health check type %q: want http or tcp", h.Type)
	}
	if h.Method != "" && !methodPattern.MatchString(h.Method) {
		return fmt.Errorf("health check method %q: want an upper-case HTTP method", h.Method)
	}
	if h.Path != "" && !pathPattern.MatchString(h.Path) {
		return fmt.Errorf("health check path %q: must start with '/' and hold no spaces, quotes, '#', '$' or '\\'", h.Path)
	}
	if h.Host != "" && !hostPattern.MatchString(h.Host) {
		return fmt.Errorf("health check host %q: want a host name", h.Host)
	}
	if h.ExpectStatus != "" {
		if _, err := statuscode.Parse(h.ExpectStatus); err != nil {
			return fmt.Errorf("health check expect_status: %w", err)
		}
	}
	if h.Body != "" && !bodyPattern.MatchString(h.Body) {
		return fmt.Errorf("health check body %q: letters, digits, spaces and punctuation other than quotes, '#', '$' and '\\'", h.Body)
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// File is one rendered file: its name in Layout.Dir and its bytes.
type File struct {
	Name string
	Data []byte
}

// Render renders haproxy.cfg and the map files of l. The output depends only on l: map
// entries and servers are sorted, so equal layouts give equal bytes.
func Render(l *Layout) ([]File, error) {
	if err := l.Validate(); err != nil {
		return nil, fmt.Errorf("render haproxy config: %w", err)
	}
	files := []File{
		{RoutesMapFile, renderMap(l.Routes)},
		{CanaryMapFile, renderMap(l.Canary)},
	}
	if l.Preview.Bind != "" {
		files = append(files, File{PreviewMapFile, renderMap(l.PreviewRoutes)})
	}
	// The config comes last: its check needs the map files it names.
	return append(files, File{ConfigFile, renderConfig(l)}), nil
}

func renderMap(entries []MapEntry) []byte {
	sorted := append([]MapEntry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Key < sorted[j].Key })
	var b bytes.Buffer
	b.WriteString("# Written by swap. Runtime first, disk second: swap changes this map through the\n")
	b.WriteString("# admin socket, then rewrites this file so a reload serves the same.\n")
	for _, e := range sorted {
		b.WriteString(e.Key)
		b.WriteByte(' ')
		b.WriteString(e.Value)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func renderConfig(l *Layout) []byte {
	var b bytes.Buffer
	w := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	w("# Written by swap (`swap lb render`); swap rewrites it after every runtime change.")
	w("# Edits by hand are lost: change swap's config instead.")
	w("global")
	perm := "mode 600"
	if l.SocketGID != 0 {
		perm = fmt.Sprintf("mode 660 gid %d", l.SocketGID)
	}
	w("    stats socket %s %s level admin expose-fd listeners", l.AdminSocket(), perm)
	w("    stats timeout 1m")
	w("    server-state-file %s", l.Path(StateFile))
	w("    hard-stop-after %s", haDuration(orDefault(l.HardStopAfter, 30*time.Second)))
	w("")
	w("defaults")
	w("    mode http")
	w("    load-server-state-from-file global")
	w("    option redispatch 1")
	w("    retries 3")
	w("    retry-on conn-failure empty-response junk-response")
	w("    timeout connect %s", haDuration(orDefault(l.Timeouts.Connect, 5*time.Second)))
	w("    timeout client %s", haDuration(orDefault(l.Timeouts.Client, 30*time.Second)))
	w("    timeout server %s", haDuration(orDefault(l.Timeouts.Server, 30*time.Second)))
	w("    timeout http-keep-alive 10s")
	w("")
	renderFrontend(&b, l, l.Frontend, l.RoutesMap(), true)
	if l.Preview.Bind != "" {
		renderFrontend(&b, l, l.Preview, l.PreviewMap(), false)
	}
	w("backend %s", FallbackBackend)
	w("    http-request return status 503 content-type text/plain string \"swap: no app is routed here (no route for this host or path)\"")
	w("")
	backends := append([]Backend(nil), l.Backends...)
	sort.Slice(backends, func(i, j int) bool { return backends[i].Name < backends[j].Name })
	for _, be := range backends {
		renderBackend(&b, be)
	}
	return b.Bytes()
}

// renderFrontend writes a frontend that routes by its map. With canary, a weighted split
// comes first: canary.map holds "<key> <backend>:<weight>", and a request goes to that
// backend when rand(100) < weight. Both maps change at runtime, without a reload.
func renderFrontend(b *bytes.Buffer, l *Layout, ln Listener, mapPath string, canary bool) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	key, conv := "req.hdr(host),lower,word(1,:)", "map"
	if l.Routing == RouteByPath {
		key, conv = "path", "map_beg"
	}
	w("frontend %s", ln.Name)
	w("    bind %s", ln.Bind)
	w("    http-request set-var(txn.swap_key) %s", key)
	if canary {
		w("    http-request set-var(txn.swap_canary) var(txn.swap_key),%s(%s)", conv, l.CanaryMap())
		w("    http-request set-var(txn.swap_cw) var(txn.swap_canary),field(2,:)")
		w("    use_backend %%[var(txn.swap_canary),field(1,:)] if { var(txn.swap_cw) -m found } { rand(100),sub(txn.swap_cw) lt 0 }")
	}
	w("    use_backend %%[var(txn.swap_key),%s(%s,%s)]", conv, mapPath, FallbackBackend)
	w("    default_backend %s", FallbackBackend)
	w("")
}

func renderBackend(b *bytes.Buffer, be Backend) {
	w := func(format string, a ...any) { fmt.Fprintf(b, format+"\n", a...) }
	w("backend %s", be.Name)
	w("    balance roundrobin")
	// A request that reached a dying server (an empty or broken answer) is sent again to
	// another server only when repeating it is safe.
	w("    http-request disable-l7-retry unless { method GET HEAD OPTIONS }")
	h := be.Check
	if h.Type != "tcp" {
		method, path := h.Method, h.Path
		if method == "" {
			method = "GET"
		}
		if path == "" {
			path = "/"
		}
		w("    option httpchk %s %s", method, path)
		if h.Host != "" {
			w("    http-check send hdr Host %s", h.Host)
		}
		if h.ExpectStatus != "" {
			w("    http-check expect status %s", h.ExpectStatus)
		}
		if h.Body != "" {
			w("    http-check expect string \"%s\"", h.Body)
		}
	}
	if h.Timeout > 0 {
		w("    timeout check %s", haDuration(h.Timeout))
	}
	servers := append([]Server(nil), be.Servers...)
	sort.Slice(servers, func(i, j int) bool { return serverLess(servers[i].Name, servers[j].Name) })
	for _, s := range servers {
		tmpl := be.Server
		tmpl.Name, tmpl.Addr, tmpl.Port, tmpl.Backup = s.Name, s.Addr, s.Port, s.Backup
		if s.Weight != 0 {
			tmpl.Weight = s.Weight
		}
		w("    server %s %s", s.Name, strings.Join(tmpl.params(), " "))
	}
	w("")
}

// serverLess orders "web-blue-2" before "web-blue-10".
func serverLess(a, b string) bool {
	pa, na := splitIndex(a)
	pb, nb := splitIndex(b)
	if pa != pb || na < 0 || nb < 0 {
		return a < b
	}
	return na < nb
}

func splitIndex(s string) (string, int) {
	i := strings.LastIndexByte(s, '-')
	if i < 0 {
		return s, -1
	}
	n, err := strconv.Atoi(s[i+1:])
	if err != nil {
		return s, -1
	}
	return s[:i], n
}
