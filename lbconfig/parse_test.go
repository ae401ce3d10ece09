package lbconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseStatReadsRealRowsByColumnName(t *testing.T) {
	rows, err := ParseStat(readTestdata(t, "show-stat.txt"))
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]Stat{}
	for _, r := range rows {
		by[r.Proxy+"/"+r.Name] = r
	}
	tests := []struct {
		key, status, check string
		typ                StatType
		weight             int
	}{
		{"fe_main/FRONTEND", "OPEN", "", StatFrontend, 0},
		{"app_blue/app-blue-0", "UP", "L7OK", StatServer, 100},
		{"app_blue/app-blue-1", "DRAIN", "L7OK", StatServer, 50},
		{"app_green/app-green-0", "MAINT", "", StatServer, 100},
		{"app_green/app-green-1", "DOWN", "L7STS", StatServer, 100},
		{"app_green/app-green-2", "no check", "", StatServer, 100},
		{"app_blue/BACKEND", "UP", "", StatBackend, 100},
	}
	for _, tt := range tests {
		r, ok := by[tt.key]
		if !ok {
			t.Errorf("no row %s", tt.key)
			continue
		}
		if r.Status != tt.status || r.CheckStatus != tt.check || r.Type != tt.typ || r.Weight != tt.weight {
			t.Errorf("%s: status %q check %q type %v weight %d, want %q %q %v %d",
				tt.key, r.Status, r.CheckStatus, r.Type, r.Weight, tt.status, tt.check, tt.typ, tt.weight)
		}
	}
	if g := by["app_green/app-green-1"]; g.CheckCode != 503 || g.Fields["check_desc"] != "Layer7 wrong status" {
		t.Errorf("app-green-1: check code %d desc %q", g.CheckCode, g.Fields["check_desc"])
	}
	if _, ok := by["app_blue/app-blue-0"].Fields["used_conn_cur"]; !ok {
		t.Error("no used_conn_cur column in 2.6's show stat")
	}
}

func TestParseStatRefusesWhatIsNotStat(t *testing.T) {
	for _, in := range []string{"No such proxy.\n", "pxname,svname\nx,y\n", "# a,b\nx,y\n", "# pxname,svname,scur\na,b,many\n"} {
		if _, err := ParseStat(in); !errors.Is(err, ErrParse) {
			t.Errorf("ParseStat(%q) = %v, want ErrParse", in, err)
		}
	}
	if rows, err := ParseStat(""); err != nil || rows != nil {
		t.Errorf("empty: %v %v", rows, err)
	}
}

func TestParseServersStateReadsStatesAndWeights(t *testing.T) {
	rows, err := ParseServersState(readTestdata(t, "show-servers-state.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 {
		t.Fatalf("%d rows, want 5", len(rows))
	}
	tests := []struct {
		i            int
		name         string
		op           OpState
		maint, drain bool
		uweight      int
	}{
		{0, "app-blue-0", OpRunning, false, false, 100},
		{1, "app-blue-1", OpRunning, false, true, 50},
		{2, "app-green-0", OpStopped, true, false, 100},
		{3, "app-green-1", OpStopped, false, false, 100},
		{4, "app-green-2", OpRunning, false, false, 100},
	}
	for _, tt := range tests {
		r := rows[tt.i]
		if r.Name != tt.name || r.OpState != tt.op || r.AdminState.Maint() != tt.maint || r.AdminState.Drain() != tt.drain || r.UWeight != tt.uweight {
			t.Errorf("row %d: %+v", tt.i, r)
		}
		if r.Addr != "127.0.0.1" || r.Port == 0 || r.IWeight != 100 {
			t.Errorf("row %d: addr %s port %d iweight %d", tt.i, r.Addr, r.Port, r.IWeight)
		}
	}
}

func TestParseServersConnSplitsBackendAndServer(t *testing.T) {
	rows, err := parseServersConn(readTestdata(t, "show-servers-conn.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 5 || rows[0].Backend != "app_blue" || rows[0].Name != "app-blue-0" || rows[0].PurgeDelay != 5000 {
		t.Fatalf("%+v", rows)
	}
}

func TestParseInfoReadsVersionAndPid(t *testing.T) {
	info, err := parseInfo(readTestdata(t, "show-info.txt"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := parseVersion(info.Version)
	if err != nil || v.Major != 2 || v.Minor != 6 || v.Patch != 12 || info.Pid == 0 {
		t.Fatalf("info %+v version %+v %v", info, v, err)
	}
}

func TestParseVersionReadsReleaseAndDevVersions(t *testing.T) {
	tests := []struct {
		in           string
		maj, min, pt int
		ok           bool
	}{
		{"2.6.12-1+deb12u4", 2, 6, 12, true},
		{"2.8.0", 2, 8, 0, true},
		{"3.0-dev5", 3, 0, 0, true},
		{"3.1.2-1ppa1~jammy", 3, 1, 2, true},
		{"banana", 0, 0, 0, false},
		{"2", 0, 0, 0, false},
	}
	for _, tt := range tests {
		v, err := parseVersion(tt.in)
		if (err == nil) != tt.ok || (tt.ok && (v.Major != tt.maj || v.Minor != tt.min || v.Patch != tt.pt)) {
			t.Errorf("ParseVersion(%q) = %+v, %v", tt.in, v, err)
		}
	}
	if !(Version{Major: 2, Minor: 8}).atLeast(2, 6) || (Version{Major: 2, Minor: 6}).atLeast(2, 7) {
		t.Error("AtLeast is wrong")
	}
}

func TestParseShowMapAndMapFile(t *testing.T) {
	entries, err := parseShowMap(readTestdata(t, "show-map.txt"))
	if err != nil {
		t.Fatal(err)
	}
	want := []MapEntry{{"app.test", "app_blue"}, {"other.test", "app_green"}}
	if len(entries) != 2 || entries[0] != want[0] || entries[1] != want[1] {
		t.Fatalf("%v", entries)
	}
	file, err := parseMapFile("# comment\n\napp.test   app_blue\n\tother.test\tapp_green  \n")
	if err != nil || len(file) != 2 || file[0] != want[0] || file[1] != want[1] {
		t.Fatalf("%v %v", file, err)
	}
	if _, err := parseMapFile("lonely\n"); !errors.Is(err, ErrParse) {
		t.Fatalf("a key without value: %v", err)
	}
}

func TestParseWeightBackendsAndShowProc(t *testing.T) {
	cur, init, err := parseWeight(readTestdata(t, "get-weight.txt"))
	if err != nil || cur != 50 || init != 100 {
		t.Fatalf("weight %d %d %v", cur, init, err)
	}
	names, err := parseBackends(readTestdata(t, "show-backend.txt"))
	if err != nil || len(names) != 4 || names[0] != "swap_fallback" {
		t.Fatalf("%v %v", names, err)
	}
	procs, err := parseShowProc(readTestdata(t, "show-proc.txt"))
	if err != nil || len(procs) != 2 || procs[0].Type != "master" || procs[0].Reloads != 2 || procs[1].Type != "worker" || procs[1].Version != "2.6.12-1+deb12u4" {
		t.Fatalf("%+v %v", procs, err)
	}
}

func TestClassifyRecognisesEveryRealErrorText(t *testing.T) {
	for _, c := range loadErrorCases(t) {
		if got := classify(c.Answer); !errors.Is(got, sentinels[c.Want]) {
			t.Errorf("%s: %q classified %v, want %s", c.Name, c.Answer, got, c.Want)
		}
	}
	for _, ok := range []string{"", "New server registered.", "# pxname,svname\nError_backend,BACKEND", "0x1 Invalid.test app"} {
		if err := classify(ok); err != nil {
			t.Errorf("classify(%q) = %v, want nil", ok, err)
		}
	}
}

func TestSplitAnswersFindsEachCommandsAnswer(t *testing.T) {
	const v = "2.6.12-1+deb12u4"
	out := "\n" + v + "\n\nBackend must use a dynamic load balancing to support dynamic servers.\n" + v + "\n\nNo such server.\n\n" + v + "\n\n"
	answers, complete := splitAnswers(out, v, 3)
	if complete != 3 || answers[0] != "" || answers[1] != "Backend must use a dynamic load balancing to support dynamic servers." || answers[2] != "No such server." {
		t.Fatalf("%d %q", complete, answers)
	}
	answers, complete = splitAnswers("\n"+v+"\n\n", v, 3)
	if complete != 1 || answers[1] != "" {
		t.Fatalf("a cut connection: %d %q", complete, answers)
	}
}

func loadErrorCases(t testing.TB) []errorCase {
	t.Helper()
	var cases []errorCase
	if err := json.Unmarshal([]byte(readTestdata(t, "errors.json")), &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("testdata/errors.json is empty")
	}
	return cases
}

// The answer of HAProxy 2.6.12 for a config server (idle pool without limit, per-thread
// idle lists) and a server added without pool-max-conn (no pool, no lists).
const showServersConnPool = `# bkname/svname bkid/svid addr port - purge_delay used_cur used_max need_est unsafe_nb safe_nb idle_lim idle_cur idle_per_thr[2]
be/file1 2/1 127.0.0.1 9999 - 5000 0 1 1 0 0 -1 3 1 2
be/dyn1 2/3 127.0.0.1 9999 - 5000 0 0 0 0 0 0 0
`

func TestParseServersConnReadsTheIdlePoolLimitAndPerThreadCounts(t *testing.T) {
	rows, err := parseServersConn(showServersConnPool)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2: %+v", len(rows), rows)
	}
	tests := []struct {
		row       ServerConn
		lim, idle int64
		perThread string
	}{
		{rows[0], -1, 3, "[1 2]"},
		{rows[1], 0, 0, "[]"},
	}
	for _, tt := range tests {
		if tt.row.IdleLim != tt.lim || tt.row.IdleCur != tt.idle || fmt.Sprint(tt.row.IdlePerThread) != tt.perThread {
			t.Errorf("%s: idle_lim %d idle_cur %d per thread %v, want %d %d %s", tt.row.Name,
				tt.row.IdleLim, tt.row.IdleCur, tt.row.IdlePerThread, tt.lim, tt.idle, tt.perThread)
		}
	}
}

func TestParseStatReadsConnectAndReuse(t *testing.T) {
	rows, err := ParseStat("# pxname,svname,type,connect,reuse,\nbe,s1,2,4,196,\n")
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Connect != 4 || rows[0].Reuse != 196 {
		t.Fatalf("%+v", rows)
	}
}
