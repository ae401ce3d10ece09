package lbconfig

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestEscapeKeepsEveryWordWhole(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a plain name is unchanged", "app-blue-0", "app-blue-0"},
		{"a semicolon cannot start a second command", "a;b", `a\;b`},
		{"a space cannot split the word", "a b", `a\ b`},
		{"a tab cannot split the word", "a\tb", "a\\\tb"},
		{"a trailing << cannot enter payload mode", "x<<", `x\<\<`},
		{"a backslash stays a backslash", `a\b`, `a\\b`},
		{"everything at once", `; <\`, `\;\ \<\\`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := escape(tt.in)
			if got != tt.want {
				t.Fatalf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if words := splitWords(got); len(words) != 1 || words[0] != tt.in {
				t.Fatalf("HAProxy would read %q as %q", got, words)
			}
			if cmds := splitCommands(got); len(cmds) != 1 {
				t.Fatalf("HAProxy would run %d commands from %q", len(cmds), got)
			}
			if endsInPayloadPattern(got) {
				t.Fatalf("%q ends in <<", got)
			}
		})
	}
}

func TestCheckArgRefusesWhatNoEscapingCanCarry(t *testing.T) {
	for _, in := range []string{"", "a\nb", "a\rb", "a\x00b", "trailing\n"} {
		if err := checkArg(in); !errors.Is(err, ErrUnsafeArgument) {
			t.Errorf("CheckArg(%q) = %v, want ErrUnsafeArgument", in, err)
		}
	}
	for _, in := range []string{"a", "a;b", "x<<", "a b", "é"} {
		if err := checkArg(in); err != nil {
			t.Errorf("CheckArg(%q) = %v, want nil", in, err)
		}
	}
}

func TestValidNameMatchesTheNamePattern(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"app_blue", true}, {"app-blue-0", true}, {"a.b", true}, {strings.Repeat("a", 64), true},
		{"", false}, {strings.Repeat("a", 65), false}, {"a/b", false}, {"a b", false},
		{"a;b", false}, {"a:b", false}, {"é", false}, {"a\n", false},
	}
	for _, tt := range tests {
		if got := validName(tt.in); got != tt.want {
			t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestNewCommandChecksAndEscapesEveryWord(t *testing.T) {
	c, err := NewCommand("set", "map", "/etc/haproxy/routes.map", "k", "v;show info")
	if err != nil {
		t.Fatal(err)
	}
	if want := `set map /etc/haproxy/routes.map k v\;show\ info`; c.String() != want {
		t.Fatalf("line %q, want %q", c.String(), want)
	}
	if !reflect.DeepEqual(splitWords(c.String()), c.Words()) {
		t.Fatalf("HAProxy would read %q, want %q", splitWords(c.String()), c.Words())
	}
	if _, err := NewCommand("set", "map", "m", "k", "v\nshow info"); !errors.Is(err, ErrUnsafeArgument) {
		t.Fatalf("a newline got through: %v", err)
	}
	words := make([]string, 65)
	for i := range words {
		words[i] = "w"
	}
	if _, err := NewCommand(words...); !errors.Is(err, ErrTooManyWords) {
		t.Fatalf("65 words: %v, want ErrTooManyWords", err)
	}
	if _, err := NewCommand("set", "map", "m", "k", strings.Repeat("v", MaxLineBytes)); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("a 16 KiB word: %v, want ErrLineTooLong", err)
	}
}

func TestTypedCommandsRefuseBadNames(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"state", func() error { _, err := setStateCmd("app_blue", "x;shutdown", StateReady); return err }()},
		{"weight", func() error { _, err := setWeightCmd("app blue", "s", 1); return err }()},
		{"addr", func() error { _, err := setAddrCmd("b", "s\n", "127.0.0.1", 80); return err }()},
		{"health", func() error { _, err := setHealthCmd("b/x", "s", HealthUp); return err }()},
		{"del", func() error { _, err := delServerCmd("", "s"); return err }()},
		{"enable", func() error { _, err := enableHealthCmd("b", "s<<"); return err }()},
		{"shutdown", func() error { _, err := shutdownSessionsCmd("b", "s s"); return err }()},
		{"add", func() error {
			_, err := addServerCmd("b", Server{Name: "s;del server b/x", Addr: "127.0.0.1", Port: 1})
			return err
		}()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrInvalidName) {
			t.Errorf("%s: %v, want ErrInvalidName", tt.name, tt.err)
		}
	}
}

func TestTypedCommandsRefuseBadValues(t *testing.T) {
	tests := []struct {
		name string
		err  error
	}{
		{"a state that is not one", func() error { _, err := setStateCmd("b", "s", "up"); return err }()},
		{"a weight over 256", func() error { _, err := setWeightCmd("b", "s", 257); return err }()},
		{"a host name for an address", func() error { _, err := setAddrCmd("b", "s", "localhost", 80); return err }()},
		{"port 0", func() error { _, err := setAddrCmd("b", "s", "127.0.0.1", 0); return err }()},
		{"a health that is not one", func() error { _, err := setHealthCmd("b", "s", "sick"); return err }()},
		{"a server without an IP", func() error { _, err := addServerCmd("b", Server{Name: "s", Addr: "web", Port: 1}); return err }()},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", tt.name, tt.err)
		}
	}
}

func TestAddServerCmdIsTheSafeActivationOnOneLine(t *testing.T) {
	c, err := addServerCmd("web_green", Server{Name: "web-green-0", Addr: "127.0.0.1", Port: 32768})
	if err != nil {
		t.Fatal(err)
	}
	want := "add server web_green/web-green-0 127.0.0.1:32768 check observe layer7 inter 2s fastinter 100ms rise 2 fall 3 weight 100 pool-max-conn -1 pool-purge-delay 5s error-limit 1 on-error fastinter" +
		";enable health web_green/web-green-0;set server web_green/web-green-0 state ready;set server web_green/web-green-0 health down"
	if c.String() != want {
		t.Fatalf("got  %s\nwant %s", c.String(), want)
	}
	if strings.Contains(c.String(), "enabled") {
		t.Fatal("add server must never say enabled (HAProxy issue 2497)")
	}
}

func TestHaDurationUsesSecondsOrMilliseconds(t *testing.T) {
	for d, want := range map[string]string{"1s": "1s", "1500ms": "1500ms", "100ms": "100ms", "2m": "120s", "1us": "1ms", "0s": "1ms"} {
		dur, _ := time.ParseDuration(d)
		if got := haDuration(dur); got != want {
			t.Errorf("haDuration(%s) = %s, want %s", d, got, want)
		}
	}
}
