package deployments

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Limits on an app.
const (
	// MaxReplicas is the most instances one color of an app may run.
	MaxReplicas = 64
	// MaxAppNameLen keeps every name derived from an app within NamePattern's 64
	// characters: "<app>-green-63" (container, Consul service ID, HAProxy server) and
	// "<app>_green" (HAProxy backend).
	MaxAppNameLen = 64 - len("-green-") - 2
)

// ReservedAppNames are swap's subcommands: `swap <app> <color>` could not tell an app
// with one of these names from the command.
var ReservedAppNames = []string{
	"abort", "cleanup", "completion", "deploy", "health", "help", "history", "hook", "lb",
	"promote", "resume", "rollback", "serve", "status", "switch", "version", "watch",
}

var appNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CheckAppName says what is wrong with an app name, or returns nil. Docker container
// names must start with a letter or digit, so app names must too.
func CheckAppName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("app name is empty: give the app a name of letters, digits, '.', '_' and '-'")
	case !appNamePattern.MatchString(name):
		return fmt.Errorf("app name %q may contain only letters, digits, '.', '_' and '-', and must start with a letter or digit: rename it", name)
	case len(name) > MaxAppNameLen:
		return fmt.Errorf("app name is %d characters; at most %d fit in the names swap derives from it (%s-green-63): use a shorter name", len(name), MaxAppNameLen, "<app>")
	case slices.Contains(ReservedAppNames, name):
		return fmt.Errorf("app name %q is a swap command, so `swap %s <color>` could not name the app: rename it", name, name)
	}
	return nil
}

// CheckName says what is wrong with a name that reaches HAProxy's Runtime API
// (frontend, instance), or returns nil.
func CheckName(name string) error {
	if !NamePattern.MatchString(name) {
		if name == "" {
			return fmt.Errorf("name is empty: use 1 to 64 letters, digits, '.', '_' or '-'")
		}
		return fmt.Errorf("name %q must be 1 to 64 letters, digits, '.', '_' or '-'", name)
	}
	return nil
}

// Image reference grammar (the distribution reference format): facts, not code.
var (
	refPathComponent = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	refDomainHost    = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$`)
	refTag           = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	refDigest        = regexp.MustCompile(`^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$`)
)

// CheckImageRef says what is wrong with an image reference
// ("[registry[:port]/]path[:tag][@digest]"), or returns nil. It checks the syntax only.
func CheckImageRef(ref string) error {
	bad := func(why string) error {
		return fmt.Errorf("%q is not a valid image reference: %s", ref, why)
	}
	if ref == "" {
		return fmt.Errorf("image reference is empty: name an image like registry.example.com/web:1.4.2")
	}
	if strings.IndexFunc(ref, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return bad("it contains whitespace")
	}
	name := ref
	if at := strings.IndexByte(name, '@'); at >= 0 {
		if !refDigest.MatchString(name[at+1:]) {
			return bad("the digest after '@' must look like sha256:<64 hex digits>")
		}
		name = name[:at]
	}
	if colon := strings.LastIndexByte(name, ':'); colon > strings.LastIndexByte(name, '/') {
		if !refTag.MatchString(name[colon+1:]) {
			return bad("the tag after ':' must be 1 to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
		}
		name = name[:colon]
	}
	if name == "" {
		return bad("the repository name is missing")
	}
	if len(name) > 255 {
		return bad("the repository name is longer than 255 characters")
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && (strings.ContainsAny(parts[0], ".:") || parts[0] == "localhost" || parts[0] != strings.ToLower(parts[0])) {
		host, port, hasPort := parts[0], "", false
		if i := strings.LastIndexByte(host, ':'); i > strings.LastIndexByte(host, ']') {
			host, port, hasPort = host[:i], host[i+1:], true
		}
		if hasPort {
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				return bad(fmt.Sprintf("registry port %q is not a port number", port))
			}
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && !refDomainHost.MatchString(host) {
			return bad(fmt.Sprintf("registry %q is not a host name", parts[0]))
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if p != strings.ToLower(p) {
			return bad("repository names must be lower case")
		}
		if !refPathComponent.MatchString(p) {
			return bad(fmt.Sprintf("path component %q must be lower-case letters and digits separated by '.', '_', '__' or '-'", p))
		}
	}
	return nil
}

// The characters below are the ones lbconfig writes into haproxy.cfg and map files
// without quoting; the config is held to them so a valid config always renders.
var (
	hostLabel        = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$`)
	routePathPattern = regexp.MustCompile(`^/[A-Za-z0-9._~/%+=&:@,-]*$`)
	checkPathPattern = regexp.MustCompile(`^/[A-Za-z0-9._~/%+=&?:@,-]*$`)
	checkHostPattern = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})?$`)
	checkBodyPattern = regexp.MustCompile(`^[A-Za-z0-9 ._~/%+=&?:@,;!*()\[\]{}<>|^-]{1,256}$`)
	methodPattern    = regexp.MustCompile(`^[A-Z]{1,16}$`)
)

// routeHostProblem says what is wrong with a host route ("web.example.com"), or
// returns "". The frontend matches the Host header lower-cased and without its port.
func routeHostProblem(s string) string {
	if host, _, ok := strings.Cut(s, ":"); ok && !strings.HasPrefix(s, "[") {
		return fmt.Sprintf("%q: drop the port (%s): routes match the Host header without its port", s, host)
	}
	if s != strings.ToLower(s) {
		return fmt.Sprintf("%q: write it in lower case (%s); Host headers are matched in lower case", s, strings.ToLower(s))
	}
	if _, err := netip.ParseAddr(s); err == nil && !strings.Contains(s, ":") {
		return ""
	}
	if len(s) > 253 {
		return fmt.Sprintf("%q: a host name has at most 253 characters", s)
	}
	for label := range strings.SplitSeq(s, ".") {
		if !hostLabel.MatchString(label) {
			return fmt.Sprintf("%q is not a host name: use lower-case letters, digits and '-' in dot-separated labels, like web.example.com", s)
		}
	}
	return ""
}

// checkHostProblem says what is wrong with a health check's Host header
// ("web.example.com", "web.example.com:8080"), or returns "".
func checkHostProblem(s string) string {
	host, port, hasPort := strings.Cut(s, ":")
	if hasPort {
		if msg := portProblem(port, true); msg != "" {
			return fmt.Sprintf("%q: %s", s, msg)
		}
	}
	if !checkHostPattern.MatchString(host) {
		return fmt.Sprintf("%q is not a host name, optionally with :port, like web.example.com", s)
	}
	return ""
}

func portProblem(port string, present bool) string {
	if !present {
		return "expected ':' and a port after the address"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != port {
		return fmt.Sprintf("port %q must be a number from 1 to 65535", port)
	}
	return ""
}

// hostPortProblem says what is wrong with a "host:port" address, or returns "".
// emptyHost allows ":8080" and "*:8080" (all addresses, for bind lines).
func hostPortProblem(s string, emptyHost bool) string {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Sprintf("%q is not host:port", s)
	}
	if msg := portProblem(port, true); msg != "" {
		return msg
	}
	if host == "" || host == "*" {
		if emptyHost {
			return ""
		}
		return fmt.Sprintf("%q has no host", s)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return ""
	}
	for label := range strings.SplitSeq(strings.ToLower(host), ".") { // case-insensitive
		if !hostLabel.MatchString(label) {
			return fmt.Sprintf("%q: %q is neither an IP address nor a host name", s, host)
		}
	}
	return ""
}

// hasControl reports whether s contains a control character (CR, LF, NUL, ...).
func hasControl(s string) bool { return strings.IndexFunc(s, unicode.IsControl) >= 0 }

// hasSpaceOrControl reports whether s contains whitespace or a control character.
func hasSpaceOrControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0
}

// ShortID is the 12 hex digits `docker images` shows of an image ID (sha256:...).
func ShortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}
