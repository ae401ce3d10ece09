package deployments

import (
	"fmt"
	"reflect"
	"strings"
)

// The config's keys are its structs' mapstructure tags. The functions here walk that
// schema so the loader (load.go) can catch typos and apply SWAP_* environment overrides
// without a hand-kept list of keys.

var (
	configType = reflect.TypeFor[Config]()
	appType    = reflect.TypeFor[App]()
)

// structKeys lists a struct type's keys in declaration order, with their field types.
func structKeys(t reflect.Type) (keys []string, types []reflect.Type) {
	for f := range t.Fields() {
		tag, _, _ := strings.Cut(f.Tag.Get("mapstructure"), ",")
		if tag == "" || tag == "-" || !f.IsExported() {
			continue
		}
		keys = append(keys, tag)
		types = append(types, f.Type)
	}
	return keys, types
}

// isScalar reports whether values of t are written as one YAML scalar.
func isScalar(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array, reflect.Interface:
		return false
	}
	return true
}

// CheckKeys reports every key in tree (a decoded YAML document: maps with string keys,
// lists, scalars) that Config does not have, as "apps.web.helthcheck: unknown key: did you
// mean healthcheck?". Keys are case-sensitive. Values of the wrong shape are left for
// the decoder to report.
func CheckKeys(tree map[string]any) []FieldError {
	var ps problems
	checkKeys(&ps, "", configType, tree)
	return ps
}

func checkKeys(ps *problems, p Path, t reflect.Type, v any) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		keys, types := structKeys(t)
		for k, sub := range m {
			i := indexOf(keys, k)
			if i < 0 {
				ps.add(p.Key(k), "%s", unknownKeyMsg(k, keys))
				continue
			}
			checkKeys(ps, p.Key(k), types[i], sub)
		}
	case reflect.Map:
		if m, ok := v.(map[string]any); ok && !isScalar(t.Elem()) {
			for k, sub := range m {
				checkKeys(ps, p.Key(k), t.Elem(), sub)
			}
		}
	case reflect.Slice:
		if l, ok := v.([]any); ok && !isScalar(t.Elem()) {
			for i, sub := range l {
				checkKeys(ps, p.Index(i), t.Elem(), sub)
			}
		}
	}
}

func unknownKeyMsg(k string, known []string) string {
	if s := suggest(k, known); s != "" {
		if strings.EqualFold(s, k) {
			return fmt.Sprintf("unknown key: keys are case-sensitive, did you mean %s?", s)
		}
		return fmt.Sprintf("unknown key: did you mean %s?", s)
	}
	return "unknown key: expected one of " + strings.Join(known, ", ")
}

func indexOf(keys []string, k string) int {
	for i, key := range keys {
		if key == k {
			return i
		}
	}
	return -1
}

// ScalarKeys lists the keys that hold a single value (string, number, bool, duration)
// outside lists and maps, as path segments: ["consul", "address"], and for each app
// named in apps ["apps", "<app>", "healthcheck", "interval"]. The loader looks each up
// in the SWAP_* environment.
func ScalarKeys(apps []string) [][]string {
	var out [][]string
	scalarKeys(configType, nil, func(segs []string) { out = append(out, segs) })
	for _, app := range apps {
		scalarKeys(appType, []string{"apps", app}, func(segs []string) { out = append(out, segs) })
	}
	return out
}

func scalarKeys(t reflect.Type, prefix []string, emit func([]string)) {
	keys, types := structKeys(t)
	for i, k := range keys {
		segs := append(append([]string(nil), prefix...), k)
		switch ft := types[i]; {
		case isScalar(ft):
			emit(segs)
		case ft.Kind() == reflect.Struct:
			scalarKeys(ft, segs, emit)
		}
	}
}

// AllKeys lists every key of the config as documentation writes it, in declaration
// order: "consul.tls.ca_file", "haproxy.instances[].socket", "apps.<app>.env",
// "apps.<app>.canary[].weight".
func AllKeys() []string {
	var out []string
	allKeys(configType, "", &out)
	return out
}

func allKeys(t reflect.Type, prefix string, out *[]string) {
	keys, types := structKeys(t)
	for i, k := range keys {
		key := prefix + k
		ft := types[i]
		switch {
		case ft.Kind() == reflect.Struct:
			allKeys(ft, key+".", out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			*out = append(*out, key)
			allKeys(ft.Elem(), key+"[].", out)
		case ft.Kind() == reflect.Map && ft.Elem().Kind() == reflect.Pointer && ft.Elem().Elem().Kind() == reflect.Struct:
			*out = append(*out, key)
			allKeys(ft.Elem().Elem(), key+".<app>.", out)
		default:
			*out = append(*out, key)
		}
	}
}
