package lbconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// Limits of HAProxy's CLI parser (src/cli.c). A command line longer than the CLI buffer
// (tune.bufsize, 16384 by default) is dropped without an answer by 2.6, and words past the
// 64th of one command are silently ignored; the client refuses both instead.
const (
	MaxWords     = 64        // words in one command (checked on 2.6.12: the limit is per command, not per line)
	MaxLineBytes = 16384 - 1 // bytes in one line sent to the socket, its "\n" included
)

// namePattern is what a backend, server or map-file-free name must match before it
// reaches the Runtime API. HAProxy itself also allows ':', which swap never uses.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// validName reports whether s can name a backend or a server.
func validName(s string) bool { return namePattern.MatchString(s) }

// CheckName returns an error wrapping ErrInvalidName unless s is a valid name. what says
// what the name is for ("backend", "server").
func CheckName(what, s string) error {
	if !validName(s) {
		return fmt.Errorf("%s name %q: %w", what, s, ErrInvalidName)
	}
	return nil
}

// checkArg returns an error wrapping ErrUnsafeArgument when s contains a byte the Runtime
// API cannot carry in any escaping: CR, LF or NUL. An empty argument is refused too: it
// would vanish from the command line and shift the words after it.
func checkArg(s string) error {
	if s == "" {
		return fmt.Errorf("empty argument: %w", ErrUnsafeArgument)
	}
	if i := strings.IndexAny(s, "\r\n\x00"); i >= 0 {
		return fmt.Errorf("argument %q: byte %q at %d: %w", s, s[i], i, ErrUnsafeArgument)
	}
	return nil
}

// escape returns s escaped for one word of a Runtime API command: a backslash before
// every '\', ';', space, tab and '<'. HAProxy unescapes "\x" to "x", so the word arrives
// intact: a ';' cannot start a second command, a space cannot split the word, and a
// trailing "<<" cannot switch the connection to payload mode. escape does not check s;
// Command does (checkArg), and so must any other caller.
func escape(s string) string {
	if !strings.ContainsAny(s, "\\; \t<") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\', ';', ' ', '\t', '<':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescape undoes escape the way HAProxy's CLI does: "\x" becomes "x". It is the
// reference the fuzzer checks escape against.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// splitWords splits one escaped command the way HAProxy's CLI does: on unescaped spaces
// and tabs, with "\x" unescaped to "x". It is the reference the fuzzer and the tests use
// to prove that a Command's line carries exactly its words.
func splitWords(line string) []string {
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// splitCommands splits a line at unescaped ';' the way HAProxy's CLI does.
func splitCommands(line string) []string {
	var cmds []string
	start := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case '\\':
			i++
		case ';':
			cmds = append(cmds, line[start:i])
			start = i + 1
		}
	}
	return append(cmds, line[start:])
}

// endsInPayloadPattern reports whether a command would switch HAProxy to payload mode:
// its raw text ends in "<<".
func endsInPayloadPattern(cmd string) bool { return strings.HasSuffix(cmd, "<<") }

var errEmptyCommand = errors.New("empty command")
