// Package statuscode is swap's one reader of HTTP status lists — "200", "200-399",
// "200,204", "200-299,404" — as the config's healthcheck.expect_status, swap's own
// HTTP probe and HAProxy's `http-check expect status` all take them. It sits below the
// leaves (deployments, health, lbconfig), which may not import each other.
package statuscode

import (
	"fmt"
	"strconv"
	"strings"
)

// Range is an inclusive range of status codes.
type Range struct{ Min, Max int }

func (r Range) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return fmt.Sprintf("%d-%d", r.Min, r.Max)
}

// Valid reports whether r is a range of real codes: 100 <= Min <= Max <= 599.
func (r Range) Valid() bool { return r.Min >= 100 && r.Max <= 599 && r.Min <= r.Max }

// List is a list of ranges; a code matches when it is in any of them.
type List []Range

// Default accepts 2xx and 3xx, as HAProxy's `option httpchk` does.
var Default = List{{200, 399}}

// UnmarshalText is Parse: a List reads from YAML, JSON and the environment as a string.
func (l *List) UnmarshalText(b []byte) error {
	out, err := Parse(string(b))
	if err != nil {
		return err
	}
	*l = out
	return nil
}

// MarshalText writes l as Parse reads it.
func (l List) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// Parse reads a list: ranges and codes from 100 to 599 separated by commas, with no
// spaces (the spelling HAProxy's config takes).
func Parse(s string) (List, error) {
	var out List
	for part := range strings.SplitSeq(s, ",") {
		first, last, isRange := strings.Cut(part, "-")
		lo, err1 := code(first)
		hi, err2 := lo, error(nil)
		if isRange {
			hi, err2 = code(last)
		}
		r := Range{lo, hi}
		if err1 != nil || err2 != nil || !r.Valid() {
			return nil, fmt.Errorf("%q must be status codes from 100 to 599 and ranges, like 200, 200-399 or 200,204", s)
		}
		out = append(out, r)
	}
	return out, nil
}

// code reads three digits.
func code(s string) (int, error) {
	if len(s) != 3 || strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
		return 0, fmt.Errorf("%q is not a status code", s)
	}
	return strconv.Atoi(s)
}

// Match reports whether code is in l.
func (l List) Match(code int) bool {
	for _, r := range l {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}

// String is l as Parse reads it.
func (l List) String() string {
	parts := make([]string, len(l))
	for i, r := range l {
		parts[i] = r.String()
	}
	return strings.Join(parts, ",")
}
