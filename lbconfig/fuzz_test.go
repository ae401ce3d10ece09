package lbconfig

import (
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The fuzzers are seeded from HAProxy 2.6.12's real answers in testdata/. Run one for a
// minute with, for example:
//
//	go test ./lbconfig -run '^$' -fuzz '^FuzzParseStat$' -fuzztime 60s
//
// (docs/haproxy.md lists them all.)

func seedFrom(f *testing.F, files ...string) {
	for _, name := range files {
		s := readTestdata(f, name)
		f.Add(s)
		// A cut answer, as a dropped connection leaves it.
		f.Add(s[:len(s)/2])
		f.Add(strings.ReplaceAll(s, "\n", "\r\n"))
	}
	f.Add("")
	f.Add("\n\n")
}

func FuzzParseStat(f *testing.F) {
	seedFrom(f, "show-stat.txt", "show-stat-backend.txt")
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := ParseStat(s)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Proxy == "" || r.Name == "" {
				t.Fatalf("row without a name: %+v", r)
			}
		}
	})
}

func FuzzParseServersState(f *testing.F) {
	seedFrom(f, "show-servers-state.txt")
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := ParseServersState(s)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Backend == "" || r.Name == "" || strings.ContainsAny(r.Name, " \n") {
				t.Fatalf("bad row: %+v", r)
			}
		}
	})
}

func FuzzParseServersConn(f *testing.F) {
	seedFrom(f, "show-servers-conn.txt")
	f.Fuzz(func(t *testing.T, s string) {
		rows, err := parseServersConn(s)
		if err != nil {
			return
		}
		for _, r := range rows {
			if r.Backend == "" || r.Name == "" {
				t.Fatalf("bad row: %+v", r)
			}
		}
	})
}

func FuzzParseInfo(f *testing.F) {
	seedFrom(f, "show-info.txt")
	f.Fuzz(func(t *testing.T, s string) {
		info, err := parseInfo(s)
		if err != nil {
			return
		}
		if info.Version == "" {
			t.Fatal("parsed without a version")
		}
		parseVersion(info.Version)
	})
}

func FuzzParseMap(f *testing.F) {
	seedFrom(f, "show-map.txt")
	f.Add("app.test app_blue\n# c\n/api  app_green:10\n")
	f.Fuzz(func(t *testing.T, s string) {
		if entries, err := parseShowMap(s); err == nil {
			for _, e := range entries {
				if e.Key == "" || strings.ContainsAny(e.Key, " \n") {
					t.Fatalf("bad key %q", e.Key)
				}
			}
		}
		entries, err := parseMapFile(s)
		if err != nil {
			return
		}
		// What swap writes from these entries reads back the same.
		var valid []MapEntry
		for _, e := range entries {
			if checkMapEntry(e.Key, e.Value) == nil {
				valid = append(valid, e)
			}
		}
		back, err := parseMapFile(string(renderMap(valid)))
		if err != nil {
			t.Fatalf("rendered map does not parse: %v", err)
		}
		sortEntries(valid)
		sortEntries(back)
		if len(valid) != len(back) || (len(valid) > 0 && !reflect.DeepEqual(valid, back)) {
			t.Fatalf("round trip: %q became %q", valid, back)
		}
	})
}

func sortEntries(e []MapEntry) {
	sort.Slice(e, func(i, j int) bool {
		if e[i].Key != e[j].Key {
			return e[i].Key < e[j].Key
		}
		return e[i].Value < e[j].Value
	})
}

func FuzzParseShowProc(f *testing.F) {
	seedFrom(f, "show-proc.txt")
	f.Fuzz(func(t *testing.T, s string) {
		procs, err := parseShowProc(s)
		if err != nil {
			return
		}
		for _, p := range procs {
			if p.Pid <= 0 || p.Type == "" {
				t.Fatalf("bad proc %+v", p)
			}
		}
	})
}

func FuzzParseSmallAnswers(f *testing.F) {
	seedFrom(f, "get-weight.txt", "show-backend.txt")
	for _, c := range loadErrorCases(f) {
		f.Add(c.Answer)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseWeight(s)
		if names, err := parseBackends(s); err == nil {
			for _, n := range names {
				if n == "" || strings.ContainsAny(n, " \t\n") {
					t.Fatalf("bad backend name %q", n)
				}
			}
		}
		classify(s)
		parseCanaryValue(s)
	})
}

func FuzzSplitAnswers(f *testing.F) {
	const v = "2.6.12-1+deb12u4"
	f.Add("\n"+v+"\n\nNo such server.\n\n"+v+"\n\n", 2)
	f.Add("Server deleted.\n"+v+"\n", 1)
	f.Fuzz(func(t *testing.T, out string, n int) {
		if n < 0 || n > 1000 {
			return
		}
		answers, complete := splitAnswers(out, v, n)
		if len(answers) != n || complete < 0 || complete > n {
			t.Fatalf("%d answers, %d complete, for n=%d", len(answers), complete, n)
		}
		if complete == n && n > 0 && strings.Count(out, v) < n {
			t.Fatalf("complete without %d markers", n)
		}
	})
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"app_blue", "a;b", "x<<", "a b", "\t", `\`, `\;`, "<", "<<<", "é;<", "a\\", " ;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if checkArg(s) != nil {
			if _, err := NewCommand("set", "map", "/m", "k", s); err == nil {
				t.Fatalf("NewCommand took unsafe %q", s)
			}
			return
		}
		e := escape(s)
		if words := splitWords(e); len(words) != 1 || words[0] != s {
			t.Fatalf("%q escaped to %q reads as %q", s, e, words)
		}
		if n := len(splitCommands(e)); n != 1 {
			t.Fatalf("%q escaped to %q is %d commands", s, e, n)
		}
		if endsInPayloadPattern(e) {
			t.Fatalf("%q escaped to %q ends in <<", s, e)
		}
		if unescape(e) != s {
			t.Fatalf("Unescape(Escape(%q)) = %q", s, unescape(e))
		}
		cmd, err := NewCommand("set", "map", "/m", "k", s)
		if err != nil {
			return // too long
		}
		if got := splitWords(cmd.String()); !reflect.DeepEqual(got, []string{"set", "map", "/m", "k", s}) {
			t.Fatalf("line %q reads as %q", cmd.String(), got)
		}
		line := cmd.String() + ";" + markerCmd
		if cmds := splitCommands(line); len(cmds) != 2 {
			t.Fatalf("line %q is %d commands, want 2", line, len(cmds))
		}
	})
}

func FuzzParseConfigServers(f *testing.F) {
	l := &Layout{Dir: "/d", Frontend: Listener{"fe", "127.0.0.1:80"}, Routing: RouteByHost,
		Backends: []Backend{{Name: "a_blue", Servers: []Server{{Name: "a-blue-0", Addr: "127.0.0.1", Port: 8080}}}}}
	f.Add(string(renderConfig(l)))
	f.Add("backend x\n    server s [::1]:80 weight 7\n")
	f.Fuzz(func(t *testing.T, s string) {
		servers, err := parseConfigServers(s)
		if err != nil {
			return
		}
		for be, ss := range servers {
			for _, sv := range ss {
				if be == "" || sv.Name == "" || sv.Port < 1 || sv.Port > 65535 {
					t.Fatalf("bad server %s/%+v", be, sv)
				}
			}
		}
	})
}

func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nc\nd\n")
	f.Add("", "x\n")
	f.Add(readTestdata(f, "show-stat.txt"), readTestdata(f, "show-stat-backend.txt"))
	f.Fuzz(func(t *testing.T, a, b string) {
		if len(a) > 4096 || len(b) > 4096 {
			return
		}
		x, y := splitLines(a), splitLines(b)
		var gotA, gotB []string
		for _, op := range diffLines(x, y) {
			if op.kind != '+' {
				gotA = append(gotA, op.text)
			}
			if op.kind != '-' {
				gotB = append(gotB, op.text)
			}
		}
		if !reflect.DeepEqual(gotA, x) && !(len(gotA) == 0 && len(x) == 0) {
			t.Fatalf("the diff does not hold a")
		}
		if !reflect.DeepEqual(gotB, y) && !(len(gotB) == 0 && len(y) == 0) {
			t.Fatalf("the diff does not hold b")
		}
		if d := unifiedDiff("a", "b", []byte(a), []byte(b)); (d == "") != (a == b) {
			t.Fatalf("diff %q for equal=%v", d, a == b)
		}
	})
}
