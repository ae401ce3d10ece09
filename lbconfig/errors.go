package lbconfig

import (
	"errors"
	"fmt"
	"strings"
)

// Errors recognised in HAProxy's answers. HAProxy's Runtime API has no status codes, so
// a CommandError carries one of these, found by the text of the answer (the texts are
// those of 2.6 through 3.0; see classify).
var (
	ErrNoSuchBackend      = errors.New("no such backend")
	ErrNoSuchServer       = errors.New("no such server")
	ErrUnknownCommand     = errors.New("unknown command")
	ErrPermission         = errors.New("permission denied (the admin socket needs level admin)")
	ErrNotRemovable       = errors.New("server not removable yet (it must be in maintenance, without sessions, queue or idle connections)")
	ErrAlreadyExists      = errors.New("a server with that name already exists in the backend")
	ErrNotDynamic         = errors.New("backend does not support dynamic servers (use balance roundrobin, leastconn, first or random)")
	ErrNoSuchMap          = errors.New("no such map (the map id is its file path exactly as written in haproxy.cfg)")
	ErrMapKeyNotFound     = errors.New("map key not found")
	ErrMapVersion         = errors.New("map version out of range")
	ErrInvalidArgument    = errors.New("HAProxy refused an argument")
	ErrUnexpectedAnswer   = errors.New("unexpected answer from HAProxy")
	ErrTruncated          = errors.New("HAProxy closed the connection before answering every command")
	ErrInvalidName        = errors.New("invalid name (must match ^[A-Za-z0-9._-]{1,64}$)")
	ErrUnsafeArgument     = errors.New("unsafe argument (CR, LF and NUL cannot be sent to the Runtime API)")
	ErrTooManyWords       = errors.New("command has more than 64 words")
	ErrLineTooLong        = errors.New("command does not fit HAProxy's 16 KiB CLI buffer")
	ErrUnsupported        = errors.New("not supported by this HAProxy version")
	ErrUnreachable        = errors.New("HAProxy admin socket unreachable")
	ErrMapEntryInvalid    = errors.New("invalid map key or value (no whitespace, control characters or leading '#')")
	ErrFlipRolledBack     = errors.New("the flip was rolled back on the instances that had it")
	ErrRollbackIncomplete = errors.New("rollback failed: instances disagree; fix by hand or re-run the swap")
)

// CommandError is a command HAProxy refused or answered unexpectedly. It unwraps to one
// of the sentinel errors above (ErrNoSuchServer, ErrPermission, ...).
type CommandError struct {
	Instance string // the client's name (its socket address unless named)
	Command  string // the command as sent (escaped)
	Answer   string // HAProxy's answer, trimmed
	Err      error  // the recognised sentinel
}

func (e *CommandError) Error() string {
	ans := e.Answer
	if ans == "" {
		ans = "(no answer)"
	}
	if i := strings.IndexByte(ans, '\n'); i >= 0 {
		ans = ans[:i] + " ..."
	}
	return fmt.Sprintf("haproxy %s: %q: %v: %s", e.Instance, e.Command, e.Err, ans)
}

func (e *CommandError) Unwrap() error { return e.Err }

// errorTexts maps HAProxy's error messages to sentinels. Checked in order against the
// start of each answer line; the first match wins.
var errorTexts = []struct {
	prefix string
	err    error
}{
	{"No such backend", ErrNoSuchBackend},
	{"Can't find backend", ErrNoSuchBackend},
	{"No such proxy", ErrNoSuchBackend},
	{"No such server", ErrNoSuchServer},
	{"Unknown command", ErrUnknownCommand},
	{"Permission denied", ErrPermission},
	{"This command is restricted to", ErrPermission},
	{"Only servers in maintenance mode can be deleted", ErrNotRemovable},
	{"Server still has connections attached to it", ErrNotRemovable},
	{"Server still has pending connections", ErrNotRemovable},
	{"Server still has idle attached connections", ErrNotRemovable},
	{"Cannot remove server", ErrNotRemovable},
	{"Already exists a server with the same name", ErrAlreadyExists},
	{"Backend must use a dynamic load balancing", ErrNotDynamic},
	{"Unknown map identifier", ErrNoSuchMap},
	{"Unknown ACL identifier", ErrNoSuchMap},
	{"entry not found", ErrMapKeyNotFound},
	{"Key not found", ErrMapKeyNotFound},
	{"Version number out of range", ErrMapVersion},
	{"Require 'backend/server'", ErrInvalidArgument},
	{"Invalid addr", ErrInvalidArgument},
	{"Absolute weight can only be", ErrInvalidArgument},
	{"Relative weight can only be", ErrInvalidArgument},
	{"'set server <srv>", ErrInvalidArgument},
	{"unknown keyword", ErrInvalidArgument},
	{"Unknown keyword", ErrInvalidArgument},
	{"'set map' expects", ErrInvalidArgument},
	{"'add map' expects", ErrInvalidArgument},
	{"'del map' expects", ErrInvalidArgument},
	{"Missing map identifier", ErrInvalidArgument},
	{"Missing key", ErrInvalidArgument},
	{"Missing value", ErrInvalidArgument},
	{"Failed to update an entry", ErrInvalidArgument},
	{"Failed to add a map entry", ErrInvalidArgument},
	{"Failed to add an entry", ErrInvalidArgument},
	{"Malformed identifier", ErrInvalidArgument},
	{"Unknown map version", ErrMapVersion},
	{"Integer value", ErrInvalidArgument},
	{"invalid address", ErrInvalidArgument},
	{"Invalid", ErrInvalidArgument},
	{"[ALERT]", ErrInvalidArgument},
}

// severityPrefix strips the "[N]: " that `set severity-output number` adds.
func severityPrefix(line string) string {
	if len(line) >= 5 && line[0] == '[' && line[2] == ']' && line[3] == ':' && line[4] == ' ' {
		return line[5:]
	}
	return line
}

// classify returns the sentinel for a recognised error text on the first non-blank line
// of answer, or nil. Only the first line is looked at: an error is always a one-line
// message first, and the rows of a show command (backend names, map keys) must never be
// mistaken for one.
func classify(answer string) error {
	for _, line := range strings.Split(answer, "\n") {
		line = strings.TrimSpace(severityPrefix(line))
		if line == "" {
			continue
		}
		for _, t := range errorTexts {
			if strings.HasPrefix(line, t.prefix) {
				return t.err
			}
		}
		return nil
	}
	return nil
}
