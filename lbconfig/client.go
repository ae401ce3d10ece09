package lbconfig

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults of a Client.
const (
	DefaultMaxConns = 4                // HAProxy's stats socket takes 10 at once (stats maxconn)
	DefaultTimeout  = 10 * time.Second // per connection, when the context has no deadline
)

// Client talks to one HAProxy's admin socket (a "stats socket ... level admin"), unix or
// TCP. Every call opens one connection, writes one line (commands joined by ';') in a
// single write, and reads the answer to EOF: HAProxy's non-interactive mode. A Client is
// safe for concurrent use; at most MaxConns connections are open at once.
type Client struct {
	name    string
	network string
	address string
	timeout time.Duration
	sem     chan struct{}
	dialer  net.Dialer

	// observe, when set, hears every command Do sent (WithObserver).
	observe Observer

	mu      sync.Mutex
	version *Version
}

// Option configures a Client.
type Option func(*Client)

// WithName names the instance in errors (default: its address).
func WithName(name string) Option { return func(c *Client) { c.name = name } }

// withMaxConns limits the connections open at once to this instance (default 4).
func withMaxConns(n int) Option {
	return func(c *Client) {
		if n > 0 {
			c.sem = make(chan struct{}, n)
		}
	}
}

// WithTimeout bounds a call whose context has no deadline (default 10s).
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// Observer hears each command a Client sent: the instance's name, the command's verb
// (Command.Verb: "set server", "add map", "show stat") and its error (nil when HAProxy
// answered success; a connection failure is the error of every command of that line).
// It is called on the caller's goroutine once Do has the answers, so it must be quick
// and safe for concurrent use. Commands Do did not send (a line after a failed one) are
// not reported.
type Observer func(instance, verb string, err error)

// WithObserver reports every command the Client sends to o (default none, and then
// nothing is computed for it).
func WithObserver(o Observer) Option { return func(c *Client) { c.observe = o } }

// New returns a Client for the admin socket at address: a unix socket path (network
// "unix") or host:port (network "tcp"). It does not connect.
func New(network, address string, opts ...Option) (*Client, error) {
	switch network {
	case "unix", "tcp", "tcp4", "tcp6":
	default:
		return nil, fmt.Errorf("haproxy admin socket %q: network %q: use unix or tcp", address, network)
	}
	if address == "" {
		return nil, fmt.Errorf("haproxy admin socket: empty address")
	}
	c := &Client{name: address, network: network, address: address, timeout: DefaultTimeout,
		sem: make(chan struct{}, DefaultMaxConns)}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// Dial is New for an address written the way the config writes it: "unix:/path" or an
// absolute path is a unix socket, "tcp:host:port" or "host:port" is TCP.
func Dial(address string, opts ...Option) (*Client, error) {
	switch {
	case strings.HasPrefix(address, "unix:"):
		return New("unix", strings.TrimPrefix(address, "unix:"), opts...)
	case strings.HasPrefix(address, "tcp:"):
		return New("tcp", strings.TrimPrefix(address, "tcp:"), opts...)
	case strings.HasPrefix(address, "/"), strings.HasPrefix(address, "."):
		return New("unix", address, opts...)
	}
	return New("tcp", address, opts...)
}

// Name is the instance's name used in errors.
func (c *Client) Name() string { return c.name }

// Address is the admin socket's address.
func (c *Client) Address() string { return c.address }

// roundTrip sends line (without its "\n") and returns everything HAProxy answered.
func (c *Client) roundTrip(ctx context.Context, line string) (string, error) {
	if len(line)+1 > MaxLineBytes {
		return "", fmt.Errorf("haproxy %s: %d bytes: %w", c.name, len(line)+1, ErrLineTooLong)
	}
	select {
	case c.sem <- struct{}{}:
	case <-ctx.Done():
		return "", fmt.Errorf("haproxy %s: waiting for a free connection: %w", c.name, ctx.Err())
	}
	defer func() { <-c.sem }()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(c.timeout)
	}
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := c.dialer.DialContext(dctx, c.network, c.address)
	if err != nil {
		if dctx.Err() != nil {
			// The deadline or a cancellation ended the dial: say which.
			return "", fmt.Errorf("haproxy %s: %w: connect: %w", c.name, ErrUnreachable, dctx.Err())
		}
		return "", fmt.Errorf("haproxy %s: %w: %w (is HAProxy running, and is the socket a `stats socket ... level admin`?)", c.name, ErrUnreachable, err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)
	// A cancelled context interrupts the read or write at once.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	if _, err := conn.Write(buf); err != nil {
		return "", c.ioErr(ctx, "write", err)
	}
	out, err := io.ReadAll(conn)
	if err != nil {
		return string(out), c.ioErr(ctx, "read", err)
	}
	return string(out), nil
}

func (c *Client) ioErr(ctx context.Context, op string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("haproxy %s: %s: %w", c.name, op, ctx.Err())
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("haproxy %s: %s: %w: %w", c.name, op, context.DeadlineExceeded, err)
	}
	return fmt.Errorf("haproxy %s: %s: %w", c.name, op, err)
}

// Version is HAProxy's version.
type Version struct {
	Major, Minor, Patch int
	Raw                 string // as HAProxy prints it: "2.6.12-1+deb12u4"
}

// atLeast reports whether v is major.minor or later.
func (v Version) atLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return v.Raw }

// parseVersion reads "2.6.12-1+deb12u4", "2.8.0", "3.0-dev5" and the like.
func parseVersion(s string) (Version, error) {
	v := Version{Raw: strings.TrimSpace(s)}
	num := v.Raw
	if i := strings.IndexAny(num, "-+ "); i >= 0 {
		num = num[:i]
	}
	parts := strings.Split(num, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return Version{}, fmt.Errorf("haproxy version %q: want major.minor[.patch]", s)
	}
	dst := []*int{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("haproxy version %q: %q is not a number", s, p)
		}
		*dst[i] = n
	}
	return v, nil
}

// Version returns the HAProxy version behind the socket, asked once (`show version`,
// which Do also uses as its marker, and `show info`) and remembered; a failed attempt is
// retried on the next call. When HAProxy is reloaded into another version, the first
// Do that gets the new version's answers learns it (see otherMarker).
func (c *Client) Version(ctx context.Context) (Version, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.version != nil {
		return *c.version, nil
	}
	out, err := c.roundTrip(ctx, markerCmd+";show info")
	if err != nil {
		return Version{}, err
	}
	marker, rest, _ := strings.Cut(strings.TrimLeft(out, "\n"), "\n")
	info, err := parseInfo(rest)
	if err != nil {
		return Version{}, fmt.Errorf("haproxy %s: show version;show info: %q: %w", c.name, firstLine(out), err)
	}
	v, err := parseVersion(marker)
	if err != nil || marker != info.Version {
		return Version{}, fmt.Errorf("haproxy %s: show version answered %q, show info %q: %w (swap needs HAProxy 2.6 or later)",
			c.name, marker, info.Version, ErrUnsupported)
	}
	if !v.atLeast(2, 6) {
		return Version{}, fmt.Errorf("haproxy %s is version %s: %w (swap needs 2.6 or later)", c.name, v.Raw, ErrUnsupported)
	}
	c.version = &v
	return v, nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimLeft(s, "\n"), "\n")
	return line
}

// markerCmd follows every command on a line. It answers the version alone on a line,
// which splits the answers of the commands exactly (2.6 leaves the blank line off some
// messages, so blank lines cannot) and proves the last command ran.
const markerCmd = "show version"

// Do runs cmds and returns their answers, one per command, trimmed. The commands go in
// as few lines as fit HAProxy's CLI buffer (one connection per line), in order; every
// command of a line runs even if one before it fails. Do stops after the first line
// that had a failure. The error joins a *CommandError for every command that failed
// (errors.Is finds ErrNoSuchServer and the rest through it); commands of later lines,
// not sent, have no answer.
func (c *Client) Do(ctx context.Context, cmds ...Command) ([]string, error) {
	answers, errs, err := c.doEach(ctx, cmds)
	if err != nil {
		return answers, err
	}
	return answers, errors.Join(errs...)
}

// doEach is Do with the error of each command apart (nil for a success); err is set
// when a connection failed.
func (c *Client) doEach(ctx context.Context, cmds []Command) (answers []string, errs []error, err error) {
	if len(cmds) == 0 {
		return nil, nil, nil
	}
	// The commands of lines sent so far are [0, sent); the last line's start at line.
	var line, sent int
	if c.observe != nil {
		defer func() { c.observed(cmds[:sent], errs, line, err) }()
	}
	v, err := c.Version(ctx)
	if err != nil {
		sent, _ = c.chunk(cmds, 0) // the first line would have gone out: it failed
		return nil, nil, err
	}
	marker := v.Raw
	answers = make([]string, len(cmds))
	errs = make([]error, len(cmds))
	for start := 0; start < len(cmds); {
		end, text := c.chunk(cmds, start)
		line, sent = start, end
		out, err := c.roundTrip(ctx, text)
		if err != nil {
			return answers, errs, err
		}
		parts, complete := splitAnswers(out, marker, end-start)
		if complete < end-start {
			// HAProxy may have been reloaded into another version since the marker was
			// learnt: its answers then end in that version's marker, not ours.
			if v2, ok := otherMarker(out, marker); ok {
				if p2, c2 := splitAnswers(out, v2.Raw, end-start); c2 > complete {
					parts, complete, marker = p2, c2, v2.Raw
					c.mu.Lock()
					c.version = &v2 // Version answers the new one from now on
					c.mu.Unlock()
				}
			}
		}
		failed := false
		for i := start; i < end; i++ {
			ans := parts[i-start]
			answers[i] = ans
			if i-start >= complete {
				errs[i] = &CommandError{Instance: c.name, Command: cmds[i].line, Answer: ans, Err: ErrTruncated}
			} else if err := cmds[i].check(ans); err != nil {
				errs[i] = &CommandError{Instance: c.name, Command: cmds[i].line, Answer: ans, Err: err}
			}
			failed = failed || errs[i] != nil
		}
		if failed {
			return answers, errs, nil
		}
		start = end
	}
	return answers, errs, nil
}

// observed reports sent commands to the observer: those of the lines before the last
// succeeded (Do stops after a failed line), those of the last line have their own error,
// or connErr when the line failed as a whole.
func (c *Client) observed(sent []Command, errs []error, line int, connErr error) {
	for i, cmd := range sent {
		var err error
		switch {
		case i >= line && connErr != nil:
			err = connErr
		case errs != nil:
			err = errs[i]
		}
		c.observe(c.name, cmd.Verb(), err)
	}
}

// otherMarker reads the marker from out itself: out's last line, when it is not the
// marker the client knows (old) but another HAProxy version (2.6 or later), is the
// answer of the line's last `show version` from an HAProxy that was upgraded and
// reloaded since the client asked for its version. doEach re-splits out with it and,
// when that proves more commands ran, keeps it. Answer handling thus never rests on a
// version learnt before a reload: the cached one is only the first guess.
func otherMarker(out, old string) (Version, bool) {
	trimmed := strings.TrimRight(out, "\n")
	last := trimmed[strings.LastIndexByte(trimmed, '\n')+1:]
	if last == old || last == "" {
		return Version{}, false
	}
	v, err := parseVersion(last)
	if err != nil || v.Raw != last || !v.atLeast(2, 6) {
		return Version{}, false
	}
	return v, true
}

// chunk packs cmds[start:] into one line that fits MaxLineBytes and returns the end
// index and the line.
func (c *Client) chunk(cmds []Command, start int) (int, string) {
	var b strings.Builder
	end := start
	for end < len(cmds) {
		n := len(cmds[end].line) + 1 + len(markerCmd) // "cmd;show version"
		if end > start {
			n++ // ";" before it
		}
		if end > start && b.Len()+n+1 > MaxLineBytes {
			break
		}
		if end > start {
			b.WriteByte(';')
		}
		b.WriteString(cmds[end].line)
		b.WriteByte(';')
		b.WriteString(markerCmd)
		end++
	}
	return end, b.String()
}

// splitAnswers cuts out into n answers at the marker lines. complete is how many
// commands are proven to have run (a marker followed them); an answer past it is
// whatever arrived before the connection closed.
func splitAnswers(out, marker string, n int) (answers []string, complete int) {
	answers = make([]string, n)
	var cur []string
	i := 0
	for _, line := range strings.Split(out, "\n") {
		if line == marker && i < n {
			answers[i] = trimAnswer(strings.Join(cur, "\n"))
			cur = cur[:0]
			i++
			continue
		}
		cur = append(cur, line)
	}
	if i < n {
		answers[i] = trimAnswer(strings.Join(cur, "\n"))
	}
	return answers, i
}

// trimAnswer drops the blank lines around an answer.
func trimAnswer(s string) string { return strings.Trim(s, "\n") }

// Exec runs one command and returns its answer.
func (c *Client) Exec(ctx context.Context, cmd Command) (string, error) {
	ans, err := c.Do(ctx, cmd)
	if len(ans) == 0 {
		return "", err
	}
	return ans[0], err
}
