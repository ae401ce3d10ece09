package deployments

import (
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// ErrInvalidConfig is matched (errors.Is) by every *ValidationError: the CLI maps it to
// exit code 2.
var ErrInvalidConfig = errors.New("invalid config")

// ErrUnknownApp is wrapped by Config.App when no app has the name asked for.
var ErrUnknownApp = errors.New("unknown app")

// Path is a config key's location as users write it: "apps.web.healthcheck.interval",
// "haproxy.instances[1].socket". Keys that are not plain words are quoted:
// `apps."web app".image`.
type Path string

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// Key is the path of key k under p.
func (p Path) Key(k string) Path {
	seg := k
	if !plainKey.MatchString(k) {
		seg = strconv.Quote(k)
	}
	if p == "" {
		return Path(seg)
	}
	return p + "." + Path(seg)
}

// Index is the path of element i of the list at p.
func (p Path) Index(i int) Path { return p + Path("["+strconv.Itoa(i)+"]") }

// FieldError is one problem in a config: where it is and what to do about it.
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// ValidationError lists every problem found in a config, sorted by path. It matches
// ErrInvalidConfig.
type ValidationError struct {
	Errors []FieldError
}

// NewValidationError returns a *ValidationError holding errs sorted by path (list
// indexes in numeric order), or nil when errs is empty.
func NewValidationError(errs []FieldError) error {
	if len(errs) == 0 {
		return nil
	}
	sorted := slices.Clone(errs)
	slices.SortStableFunc(sorted, func(a, b FieldError) int {
		if c := naturalCompare(a.Path, b.Path); c != 0 {
			return c
		}
		return cmp.Compare(a.Msg, b.Msg)
	})
	sorted = slices.Compact(sorted)
	return &ValidationError{Errors: sorted}
}

// Lines is one "path: message" line per problem.
func (e *ValidationError) Lines() []string {
	out := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		out[i] = fe.Error()
	}
	return out
}

func (e *ValidationError) Error() string {
	if len(e.Errors) == 1 {
		return "invalid config: " + e.Errors[0].Error()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "invalid config (%d problems):", len(e.Errors))
	for _, fe := range e.Errors {
		b.WriteString("\n  ")
		b.WriteString(fe.Error())
	}
	return b.String()
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalidConfig }

// problems collects FieldErrors while a config is checked.
type problems []FieldError

func (ps *problems) add(p Path, format string, args ...any) {
	*ps = append(*ps, FieldError{Path: string(p), Msg: fmt.Sprintf(format, args...)})
}

func (ps problems) err() error { return NewValidationError(ps) }

// naturalCompare orders strings with runs of digits compared as numbers, so that
// canary[2] sorts before canary[10].
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digitPrefix(a), digitPrefix(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Compare(len(na), len(nb)); c != 0 {
				return c
			}
			if c := cmp.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digitPrefix(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// suggest returns the candidate closest to s (case-insensitively equal, at most two
// edits away, or a word-prefix of it like bake for bake_time), or "".
func suggest(s string, candidates []string) string {
	best, bestDist := "", 3
	for _, c := range candidates {
		if strings.EqualFold(c, s) {
			return c
		}
	}
	for _, c := range candidates {
		if strings.HasPrefix(s, c+"_") || (len(s) >= 3 && strings.HasPrefix(c, s+"_")) {
			return c
		}
	}
	for _, c := range candidates {
		limit := min(2, max(1, len(c)/3))
		if d := editDistance(strings.ToLower(s), strings.ToLower(c)); d <= limit && d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal-string-alignment distance between a and b: insertions,
// deletions, substitutions and swaps of neighbours ("wbe" → "web") cost 1 each.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
