package deployments

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"go.yaml.in/yaml/v3"
)

// Loading the config: the YAML file, with the values of the environment and flags (a
// Lookup) over it, decoded into Config by its mapstructure tags (the schema keys.go
// walks), defaulted, validated and its files checked. docs/config.md is the reference.
//
// The file is parsed with yaml.v3 rather than by viper, because viper lower-cases every
// map key, and env variable names, label names and app names are case-sensitive.

// EnvKeyReplacer turns a config key into its SWAP_* variable's spelling (then upper-cased).
var EnvKeyReplacer = strings.NewReplacer(".", "_", "-", "_")

// EnvName is the SWAP_* variable that overrides the key segs: SWAP_CONSUL_ADDRESS,
// SWAP_APPS_WEB_IMAGE.
func EnvName(segs []string) string {
	return "SWAP_" + strings.ToUpper(EnvKeyReplacer.Replace(strings.Join(segs, ".")))
}

// Lookup returns the value the environment or a flag gives the config key ("consul.address",
// "apps.web.image"), and whether one is given. A nil Lookup gives none.
type Lookup func(key string) (string, bool)

// Load reads the config file at path, applies over's values over the file's, and
// returns the config decoded, defaulted, validated and with its files checked; relative
// paths in it are relative to the file's directory. Every problem is reported with its
// path, in one *ValidationError; a missing file says how to pass one.
func Load(path string, over Lookup) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("config file %s not found: pass --config FILE or set SWAP_CONFIG (examples/swap.yaml is a commented example)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("read config file: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	cfg, err := Parse(data, over, filepath.Dir(abs))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Parse is Load on the YAML in data, with relative paths relative to dir.
func Parse(data []byte, over Lookup, dir string) (*Config, error) {
	tree, problems, err := parseYAML(data)
	if err != nil {
		return nil, err
	}
	if over != nil {
		problems = append(problems, applyOverrides(over, tree)...)
	}
	cfg, decodeProblems := decodeConfig(tree)
	if err := NewValidationError(append(problems, decodeProblems...)); err != nil {
		return nil, err
	}
	cfg.SetDefaults()
	cfg.ResolvePaths(dir)
	var all []FieldError
	for _, err := range []error{cfg.Validate(), cfg.CheckFiles()} {
		var ve *ValidationError
		if errors.As(err, &ve) {
			all = append(all, ve.Errors...)
		} else if err != nil {
			return nil, err
		}
	}
	if err := NewValidationError(all); err != nil {
		return nil, err
	}
	return cfg, nil
}

// parseYAML decodes one YAML document into maps with string keys, lists, strings (every
// scalar keeps its exact spelling; the decoder types it by its destination) and nils.
// Duplicate keys are problems; merge keys (<<: *anchor) are applied.
func parseYAML(data []byte) (map[string]any, []FieldError, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return map[string]any{}, nil, nil
	} else if err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		return nil, nil, errors.New("holds more than one YAML document (a second --- line): keep one")
	}
	var ps []FieldError
	v := nodeValue(&doc, "", &ps)
	if v == nil {
		return map[string]any{}, ps, nil
	}
	top, ok := v.(map[string]any)
	if !ok {
		return nil, nil, errors.New("the top level must be a mapping of docker:, consul:, haproxy: and apps:")
	}
	return top, ps, nil
}

func nodeValue(n *yaml.Node, p Path, ps *[]FieldError) any {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return nodeValue(n.Content[0], p, ps)
	case yaml.AliasNode:
		return nodeValue(n.Alias, p, ps)
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return nil
		}
		return n.Value
	case yaml.SequenceNode:
		out := make([]any, len(n.Content))
		for i, c := range n.Content {
			out[i] = nodeValue(c, p.Index(i), ps)
		}
		return out
	case yaml.MappingNode:
		out := map[string]any{}
		lines := map[string]int{}
		var merges []*yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind == yaml.ScalarNode && k.Value == "<<" && k.ShortTag() == "!!merge" {
				merges = append(merges, val)
				continue
			}
			if k.Kind != yaml.ScalarNode {
				*ps = append(*ps, FieldError{Path: string(p), Msg: fmt.Sprintf("line %d: a key must be a plain word, not a list or mapping", k.Line)})
				continue
			}
			if line, dup := lines[k.Value]; dup {
				*ps = append(*ps, FieldError{Path: string(p.Key(k.Value)), Msg: fmt.Sprintf("is set twice (lines %d and %d): keep one", line, k.Line)})
				continue
			}
			lines[k.Value] = k.Line
			out[k.Value] = nodeValue(val, p.Key(k.Value), ps)
		}
		// Merged mappings fill only keys the mapping does not set; earlier merges win.
		for _, m := range merges {
			srcs := []*yaml.Node{m}
			if m.Kind == yaml.SequenceNode {
				srcs = m.Content
			}
			for _, src := range srcs {
				mv, ok := nodeValue(src, p, ps).(map[string]any)
				if !ok {
					*ps = append(*ps, FieldError{Path: string(p), Msg: fmt.Sprintf("line %d: << must merge a mapping (<<: *anchor)", src.Line)})
					continue
				}
				for k, v := range mv {
					if _, set := out[k]; !set {
						out[k] = v
					}
				}
			}
		}
		return out
	}
	return nil
}

// applyOverrides sets every single-value key that over gives a value (the SWAP_*
// environment or the flags) into tree, over the file's value. A variable that names several keys
// (SWAP_APPS_WEB_API_IMAGE names the image of apps web-api, web_api and web.api) is a
// problem of each of those keys, and sets none of them.
func applyOverrides(over Lookup, tree map[string]any) []FieldError {
	var apps []string
	if m, ok := tree["apps"].(map[string]any); ok {
		for name := range m {
			apps = append(apps, name)
		}
		slices.Sort(apps)
	}
	keys := ScalarKeys(apps)
	byEnv := map[string][]string{} // variable -> the keys it names, as paths
	for _, segs := range keys {
		byEnv[EnvName(segs)] = append(byEnv[EnvName(segs)], string(keyPath(segs)))
	}
	var problems []FieldError
	for _, segs := range keys {
		value, set := over(strings.Join(segs, "."))
		if !set {
			continue
		}
		if same := byEnv[EnvName(segs)]; len(same) > 1 {
			problems = append(problems, FieldError{Path: string(keyPath(segs)), Msg: fmt.Sprintf(
				"%s is set, and it names %s alike: set the value in the config file instead, or rename the apps so their names differ in more than '-', '_' and '.'",
				EnvName(segs), strings.Join(same, ", "))})
			continue
		}
		setIn(tree, segs, value)
	}
	return problems
}

// keyPath is the config path of the key segs.
func keyPath(segs []string) Path {
	var p Path
	for _, s := range segs {
		p = p.Key(s)
	}
	return p
}

// setIn sets tree[segs[0]][segs[1]]... to value, making the mappings on the way. A
// value on the way that is not a mapping is left alone for the decoder to report.
func setIn(tree map[string]any, segs []string, value string) {
	m := tree
	for _, s := range segs[:len(segs)-1] {
		next, ok := m[s].(map[string]any)
		if !ok {
			if m[s] != nil {
				return
			}
			next = map[string]any{}
			m[s] = next
		}
		m = next
	}
	m[segs[len(segs)-1]] = value
}

// decodeConfig decodes tree into a Config, reporting unknown keys and values of the
// wrong type with their paths.
func decodeConfig(tree map[string]any) (*Config, []FieldError) {
	problems := CheckKeys(tree)
	cfg := &Config{}
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		Result:      cfg,
		TagName:     "mapstructure",
		DecodeHook:  convertScalar,
		ErrorUnused: true,
		MatchName:   func(mapKey, fieldName string) bool { return mapKey == fieldName },
	})
	if err != nil {
		panic(err) // only for a bad DecoderConfig
	}
	if err := dec.Decode(tree); err != nil {
		problems = append(problems, decodeProblems(err, len(problems) > 0)...)
	}
	return cfg, problems
}

// decodeProblems flattens the decoder's joined errors into FieldErrors. Unknown keys
// are left out when CheckKeys has reported them already.
func decodeProblems(err error, keysReported bool) []FieldError {
	var out []FieldError
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		de, ok := err.(*mapstructure.DecodeError)
		if !ok {
			// The decoder wraps its joined errors ("decoding failed due to..."): follow
			// the wrapping to every one of them, not only the first.
			if inner := errors.Unwrap(err); inner != nil {
				walk(inner)
				return
			}
			out = append(out, FieldError{Msg: err.Error()})
			return
		}
		path := decoderPath(de.Name())
		msg := de.Unwrap().Error()
		if keys, ok := strings.CutPrefix(msg, "has invalid keys: "); ok {
			if keysReported {
				return
			}
			for k := range strings.SplitSeq(keys, ", ") {
				out = append(out, FieldError{Path: string(Path(path).Key(k)), Msg: "unknown key"})
			}
			return
		}
		out = append(out, FieldError{Path: path, Msg: msg})
	}
	walk(err)
	return out
}

// decoderPath turns the decoder's field names ("apps[web].canary[0].weight") into
// config paths ("apps.web.canary[0].weight"), telling list indexes from map keys by
// the Config type.
func decoderPath(name string) string {
	var p Path
	t := configType
	for name != "" {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		var seg string
		switch name[0] {
		case '.':
			name = name[1:]
			continue
		case '[':
			end := strings.IndexByte(name, ']')
			if end < 0 {
				end = len(name) - 1
			}
			seg, name = name[1:end], name[end+1:]
		default:
			end := strings.IndexAny(name, ".[")
			if end < 0 {
				end = len(name)
			}
			seg, name = name[:end], name[end:]
		}
		switch t.Kind() {
		case reflect.Slice:
			if i, err := strconv.Atoi(seg); err == nil {
				p, t = p.Index(i), t.Elem()
				continue
			}
		case reflect.Map:
			p, t = p.Key(seg), t.Elem()
			continue
		case reflect.Struct:
			if keys, types := structKeys(t); indexOf(keys, seg) >= 0 {
				p, t = p.Key(seg), types[indexOf(keys, seg)]
				continue
			}
		}
		p = p.Key(seg)
	}
	return string(p)
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// convertScalar is the decoder's hook: every scalar arrives as the string written in
// the file or the environment, and is typed here by its destination, with messages
// that say what to write. A bare number is not a duration ("5" would be 5ns).
func convertScalar(from, to reflect.Type, data any) (any, error) {
	if data == nil || from == to || to.Kind() == reflect.Pointer || to.Kind() == reflect.Interface {
		return data, nil
	}
	if reflect.PointerTo(to).Implements(textUnmarshaler) {
		s, ok := data.(string)
		if !ok {
			return nil, fmt.Errorf("must be a single value, not %s", describe(data))
		}
		v := reflect.New(to)
		if err := v.Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return nil, err
		}
		return v.Elem().Interface(), nil
	}
	switch to.Kind() {
	case reflect.Struct, reflect.Map:
		if _, ok := data.(map[string]any); !ok {
			return nil, fmt.Errorf("must be a mapping of keys to values, not %s", describe(data))
		}
		return data, nil
	case reflect.Slice:
		if _, ok := data.([]any); !ok {
			return nil, fmt.Errorf("must be a list, like [a, b], not %s", describe(data))
		}
		return data, nil
	}
	s, ok := data.(string)
	if !ok {
		return nil, fmt.Errorf("must be a single value, not %s", describe(data))
	}
	if to == durationType {
		d, err := time.ParseDuration(s)
		if err == nil {
			return d, nil
		}
		if _, numErr := strconv.ParseFloat(s, 64); numErr == nil {
			return nil, fmt.Errorf("%q has no unit: write a duration like %ss or %sms", s, s, s)
		}
		return nil, fmt.Errorf("%q is not a duration: write it like 500ms, 5s, 2m or 1h30m", s)
	}
	switch to.Kind() {
	case reflect.String:
		return s, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, to.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not a whole number", s)
		}
		return reflect.ValueOf(n).Convert(to).Interface(), nil
	case reflect.Bool:
		switch strings.ToLower(s) {
		case "true":
			return true, nil
		case "false":
			return false, nil
		}
		return nil, fmt.Errorf("%q must be true or false", s)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(s, to.Bits())
		if err != nil {
			return nil, fmt.Errorf("%q is not a number", s)
		}
		return reflect.ValueOf(f).Convert(to).Interface(), nil
	}
	return data, nil
}

func describe(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "a mapping"
	case []any:
		return "a list"
	case string:
		return strconv.Quote(v)
	}
	return fmt.Sprintf("%T", v)
}
