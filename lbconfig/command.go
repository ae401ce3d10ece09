package lbconfig

import (
	"fmt"
	"strings"
)

// Command is one Runtime API command: its words, checked and escaped, and what a
// successful answer looks like. Build one with the constructors (setStateCmd,
// AddServerCmds, setMapCmd, ...) or NewCommand; run one or many with Client.Do.
type Command struct {
	words  []string
	line   string // escaped words joined by spaces
	expect expectation
}

// expectation is how a command's success is recognised in its answer.
type expectation struct {
	kind   expectKind
	prefix []string // expectPrefix: the answer starts with one of these
}

type expectKind int

const (
	expectEmpty  expectKind = iota // a successful set/enable/add map answers nothing
	expectPrefix                   // e.g. "New server registered."
	expectAny                      // show commands: any answer that is not a known error
	expectLines                    // the non-blank lines of the answer are exactly prefix
)

// NewCommand checks and escapes words into a Command whose success is any answer that
// is not a recognised error. Every word is checked with checkArg.
func NewCommand(words ...string) (Command, error) {
	return newCommand(expectation{kind: expectAny}, words...)
}

func newCommand(exp expectation, words ...string) (Command, error) {
	if len(words) == 0 {
		return Command{}, errEmptyCommand
	}
	if len(words) > MaxWords {
		return Command{}, fmt.Errorf("%q...: %d words: %w", strings.Join(words[:3], " "), len(words), ErrTooManyWords)
	}
	esc := make([]string, len(words))
	for i, w := range words {
		if err := checkArg(w); err != nil {
			return Command{}, err
		}
		esc[i] = escape(w)
	}
	line := strings.Join(esc, " ")
	// Room for the line's "\n" and the marker Do puts after every command.
	if len(line)+2+len(markerCmd) > MaxLineBytes {
		return Command{}, fmt.Errorf("%q...: %d bytes: %w", line[:32], len(line), ErrLineTooLong)
	}
	return Command{words: words, line: line, expect: exp}, nil
}

// mustCommand builds a Command from words that are already known to be valid: fixed
// keywords and names that passed CheckName.
func mustCommand(exp expectation, words ...string) Command {
	c, err := newCommand(exp, words...)
	if err != nil {
		panic("lbconfig: internal command is invalid: " + err.Error())
	}
	return c
}

// joinCommands makes one Command of several that must run back to back on one line,
// with nothing between them (the safe activation of a new server). exp checks their
// answers taken together.
func joinCommands(exp expectation, cmds ...Command) Command {
	var words []string
	lines := make([]string, len(cmds))
	for i, c := range cmds {
		words = append(words, c.words...)
		if i < len(cmds)-1 {
			words = append(words, ";")
		}
		lines[i] = c.line
	}
	return Command{words: words, line: strings.Join(lines, ";"), expect: exp}
}

// Words returns the command's words as HAProxy will see them (unescaped); the commands
// of a joined Command are separated by a ";" word.
func (c Command) Words() []string { return append([]string(nil), c.words...) }

// Verb is what the command does, for counting commands: its first two words ("set
// server", "add map", "show servers"), or its one word. Of a joined Command, the first
// command's.
func (c Command) Verb() string {
	n := min(len(c.words), 2)
	if n == 2 && c.words[1] == ";" {
		n = 1
	}
	return strings.Join(c.words[:n], " ")
}

// String is the escaped command line, without the trailing newline.
func (c Command) String() string { return c.line }

// check reports whether answer (trimmed of surrounding blank lines) is a success.
func (c Command) check(answer string) error {
	ok := false
	switch c.expect.kind {
	case expectEmpty:
		ok = answer == ""
	case expectPrefix:
		for _, p := range c.expect.prefix {
			if strings.HasPrefix(answer, p) {
				ok = true
				break
			}
		}
	case expectAny:
		ok = classify(answer) == nil
	case expectLines:
		var got []string
		for _, l := range strings.Split(answer, "\n") {
			if strings.TrimSpace(l) != "" {
				got = append(got, l)
			}
		}
		ok = len(got) == len(c.expect.prefix)
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == c.expect.prefix[i]
		}
	}
	if ok {
		return nil
	}
	if err := classify(answer); err != nil {
		return err
	}
	return ErrUnexpectedAnswer
}
