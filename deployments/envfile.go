package deployments

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxEnvLine is the longest env-file line ParseEnvFile reads.
const maxEnvLine = 1 << 20

// ParseEnvFile reads a file in `docker run --env-file` syntax and returns its
// "KEY=VALUE" entries in file order; bare names come from the process environment.
// See ParseEnvFileWith.
func ParseEnvFile(r io.Reader) ([]string, error) { return ParseEnvFileWith(r, os.LookupEnv) }

// ParseEnvFileWith reads a file in `docker run --env-file` syntax and returns its
// "KEY=VALUE" entries in file order:
//
//   - blank lines and lines whose first non-blank character is '#' are skipped;
//   - leading whitespace is trimmed; everything after the first '=' is the value,
//     verbatim: no quote removal, no escapes, trailing whitespace kept;
//   - a line without '=' names a variable taken from lookup (usually os.LookupEnv),
//     and is dropped when lookup does not have it (or lookup is nil);
//   - a variable name containing whitespace, or an empty one ("=x"), is an error that
//     names the line; so are invalid UTF-8 and NUL bytes.
//
// A UTF-8 byte-order mark at the start and CRLF line ends are accepted.
func ParseEnvFileWith(r io.Reader, lookup func(string) (string, bool)) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), maxEnvLine)
	var out []string
	for n := 1; sc.Scan(); n++ {
		raw := sc.Bytes()
		if n == 1 {
			raw = trimBOM(raw)
		}
		if !utf8.Valid(raw) {
			return nil, fmt.Errorf("line %d: invalid UTF-8: save the file as UTF-8", n)
		}
		line := strings.TrimLeftFunc(string(raw), unicode.IsSpace)
		if line == "" || line[0] == '#' {
			continue
		}
		if strings.ContainsRune(line, 0) {
			return nil, fmt.Errorf("line %d: contains a NUL byte", n)
		}
		name, value, hasValue := strings.Cut(line, "=")
		switch {
		case name == "":
			return nil, fmt.Errorf("line %d: no variable name before '=': write NAME=value", n)
		case strings.IndexFunc(name, unicode.IsSpace) >= 0:
			return nil, fmt.Errorf("line %d: variable name %q contains whitespace: write NAME=value with nothing around the '='", n, name)
		case hasValue:
			out = append(out, name+"="+value)
		case lookup != nil:
			if v, ok := lookup(name); ok {
				out = append(out, name+"="+v)
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("a line is longer than %d bytes", maxEnvLine)
		}
		return nil, err
	}
	return out, nil
}

func trimBOM(b []byte) []byte {
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		return b[3:]
	}
	return b
}

// Environment is the app's container environment as sorted "KEY=VALUE" entries: the
// env_file's entries, then env's, a later entry replacing an earlier one with the same
// key (env wins over env_file), sorted by key. lookup resolves bare names in the env file; nil means
// os.LookupEnv. EnvFile must be absolute or relative to the working directory
// (Config.ResolvePaths makes it absolute).
func (a *App) Environment(lookup func(string) (string, bool)) ([]string, error) {
	if lookup == nil {
		lookup = os.LookupEnv
	}
	vars := map[string]string{}
	if a.EnvFile != "" {
		f, err := os.Open(a.EnvFile)
		if err != nil {
			return nil, fmt.Errorf("app %s: env_file: %w", a.Name, err)
		}
		defer f.Close()
		entries, err := ParseEnvFileWith(f, lookup)
		if err != nil {
			return nil, fmt.Errorf("app %s: env_file %s: %w", a.Name, a.EnvFile, err)
		}
		for _, e := range entries {
			k, v, _ := strings.Cut(e, "=")
			vars[k] = v
		}
	}
	for k, v := range a.Env {
		vars[k] = v
	}
	keys := slices.Sorted(maps.Keys(vars))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k + "=" + vars[k]
	}
	return out, nil
}
