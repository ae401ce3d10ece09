package deployments

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseEnvFileFollowsDockerEnvFileRules(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"FROM_HOST": "host value", "EMPTY_ON_HOST": ""}[k]
		return v, ok
	}
	cases := []struct {
		name  string
		input string
		want  []string
	}{
		{"plain pairs in file order", "B=2\nA=1\n", []string{"B=2", "A=1"}},
		{"comments and blank lines are skipped", "# a comment\n\n   \n  # indented comment\nA=1\n", []string{"A=1"}},
		{"leading whitespace is trimmed", "  \tA=1", []string{"A=1"}},
		{"values are verbatim: quotes, spaces, '#' and '=' kept", "A=\"quoted\"\nB='single'\nC= x y  \nD=a#b\nE=x=y\n",
			[]string{`A="quoted"`, "B='single'", "C= x y  ", "D=a#b", "E=x=y"}},
		{"an empty value is kept", "A=\n", []string{"A="}},
		{"a bare name takes the host's value", "FROM_HOST\n", []string{"FROM_HOST=host value"}},
		{"a bare name set empty on the host is kept empty", "EMPTY_ON_HOST\n", []string{"EMPTY_ON_HOST="}},
		{"a bare name the host lacks is dropped", "NOT_ON_HOST\nA=1\n", []string{"A=1"}},
		{"CRLF line ends", "A=1\r\nB=2\r\n", []string{"A=1", "B=2"}},
		{"a byte-order mark at the start", "\ufeffA=1\n", []string{"A=1"}},
		{"a later duplicate is kept after the earlier", "A=1\nA=2\n", []string{"A=1", "A=2"}},
		{"no trailing newline", "A=1", []string{"A=1"}},
		{"an empty file", "", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFileWith(strings.NewReader(tc.input), lookup)
			if err != nil {
				t.Fatalf("ParseEnvFileWith: %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEnvFileRejectsBadLinesNamingTheLine(t *testing.T) {
	cases := []struct {
		name, input, want string
	}{
		{"a space before '='", "A=1\nB =2\n", `line 2: variable name "B " contains whitespace: write NAME=value with nothing around the '='`},
		{"a space inside a name", "# c\n\nMY VAR=1\n", `line 3: variable name "MY VAR" contains whitespace: write NAME=value with nothing around the '='`},
		{"a bare name with a trailing space", "A \n", `line 1: variable name "A " contains whitespace: write NAME=value with nothing around the '='`},
		{"no name before '='", "=1\n", "line 1: no variable name before '=': write NAME=value"},
		{"invalid UTF-8", "A=1\nB=\xff\n", "line 2: invalid UTF-8: save the file as UTF-8"},
		{"a NUL byte", "A=1\x00\n", "line 1: contains a NUL byte"},
		{"a line over 1 MiB", "A=" + strings.Repeat("x", 1<<20) + "\n", "a line is longer than 1048576 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseEnvFileWith(strings.NewReader(tc.input), nil)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("ParseEnvFileWith = %q, %v; want error %q", got, err, tc.want)
			}
		})
	}
}

func TestParseEnvFileTakesBareNamesFromTheProcessEnvironment(t *testing.T) {
	t.Setenv("SWAP_TEST_ENVFILE_VAR", "from process")
	got, err := ParseEnvFile(strings.NewReader("SWAP_TEST_ENVFILE_VAR\nSWAP_TEST_ENVFILE_UNSET_VAR\n"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"SWAP_TEST_ENVFILE_VAR=from process"}; !slices.Equal(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestEnvironmentMergesEnvFileThenEnvSortedByKey(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "web.env")
	if err := os.WriteFile(file, []byte("DB_URL=postgres://db\nLOG=info\nLOG=warn\nFROM_HOST\nA-B=dash\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &App{Name: "web", EnvFile: file, Env: map[string]string{"LOG": "debug", "PORT": "8080", "A": "1"}}
	lookup := func(k string) (string, bool) {
		if k == "FROM_HOST" {
			return "h", true
		}
		return "", false
	}
	got, err := a.Environment(lookup)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"A=1", "A-B=dash", "DB_URL=postgres://db", "FROM_HOST=h", "LOG=debug", "PORT=8080"}
	if !slices.Equal(got, want) {
		t.Fatalf("Environment() = %q, want %q", got, want)
	}
}

func TestEnvironmentWithoutEnvFileIsTheEnvMap(t *testing.T) {
	a := &App{Name: "web", Env: map[string]string{"B": "2", "A": "1"}}
	got, err := a.Environment(nil)
	if err != nil || !slices.Equal(got, []string{"A=1", "B=2"}) {
		t.Fatalf("Environment() = %q, %v", got, err)
	}
}

func TestEnvironmentNamesTheAppAndLineOfABadEnvFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.env")
	if err := os.WriteFile(file, []byte("OK=1\nNOT OK=2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := (&App{Name: "web", EnvFile: file}).Environment(nil)
	want := "app web: env_file " + file + `: line 2: variable name "NOT OK" contains whitespace: write NAME=value with nothing around the '='`
	if err == nil || err.Error() != want {
		t.Fatalf("Environment() error = %v, want %q", err, want)
	}
}
