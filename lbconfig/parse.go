package lbconfig

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// One file holds every parser of HAProxy's answers (show stat, show servers state, show
// map, show info, show proc, ...): they share the CSV and field helpers and ErrParse, and
// the fuzz tests (fuzz_test.go) cover them together.

// ErrParse is wrapped by every parser's error: HAProxy answered something the parser does
// not understand.
var ErrParse = errors.New("cannot parse HAProxy's answer")

func parseErr(what, format string, a ...any) error {
	return fmt.Errorf("%s: %s: %w", what, fmt.Sprintf(format, a...), ErrParse)
}

// StatType is the kind of a `show stat` row.
type StatType int

// The row types of `show stat` (its "type" column).
const (
	StatFrontend StatType = 0
	StatBackend  StatType = 1
	StatServer   StatType = 2
	StatListener StatType = 3
)

func (t StatType) String() string {
	switch t {
	case StatFrontend:
		return "frontend"
	case StatBackend:
		return "backend"
	case StatServer:
		return "server"
	case StatListener:
		return "listener"
	}
	return "type" + strconv.Itoa(int(t))
}

// Stat is one row of `show stat`, read by column name (the columns differ between 2.6,
// 2.8 and 3.0). A number HAProxy leaves empty is 0; Fields keeps every column as text.
type Stat struct {
	Proxy       string   // pxname: frontend or backend
	Name        string   // svname: FRONTEND, BACKEND or the server's name
	Type        StatType // type
	Status      string   // UP, DOWN, "UP 1/3", "DOWN 1/2", DRAIN, MAINT, "no check", OPEN
	Weight      int      // weight (effective)
	UWeight     int      // uweight (user weight, 2.4+)
	Scur        int64    // current sessions
	Smax        int64
	Stot        int64  // total sessions
	Qcur        int64  // queued requests
	CheckStatus string // L7OK, L4CON, ...; "* " prefix while a check runs is kept
	CheckCode   int    // HTTP status of the last check (0 if none)
	CheckDesc   string
	LastChk     string
	CheckHealth int   // check_health
	CheckRise   int   // check_rise
	CheckFall   int   // check_fall
	Act         int   // act: 1 for an active server
	ChkFail     int64 // chkfail
	ChkDown     int64 // chkdown
	LastChg     int64 // seconds since the last status change
	Hrsp1xx     int64 // responses by class
	Hrsp2xx     int64
	Hrsp3xx     int64
	Hrsp4xx     int64
	Hrsp5xx     int64
	HrspOther   int64
	ReqTot      int64
	UsedConnCur int64 // used_conn_cur: connections in use to the server (2.4+)
	IdleConnCur int64 // idle_conn_cur
	// Connect counts the connections HAProxy opened to the server, Reuse the requests
	// sent over a connection it already had (2.0+). Reuse/(Connect+Reuse) is how well
	// the server's connections are pooled.
	Connect int64
	Reuse   int64
	Addr    string
	Fields  map[string]string
}

// ParseStat reads the CSV of `show stat`: a "# " header line naming the columns, one row
// per line, blank lines ignored.
func ParseStat(out string) ([]Stat, error) {
	out = strings.TrimLeft(out, "\n")
	if out == "" {
		return nil, nil
	}
	if !strings.HasPrefix(out, "# ") {
		return nil, parseErr("show stat", "no \"# \" header: %.60q", out)
	}
	r := csv.NewReader(strings.NewReader(out[2:]))
	r.FieldsPerRecord = -1
	r.ReuseRecord = false
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		return nil, parseErr("show stat", "header: %v", err)
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		if h != "" {
			col[h] = i
		}
	}
	for _, need := range []string{"pxname", "svname"} {
		if _, ok := col[need]; !ok {
			return nil, parseErr("show stat", "no %q column", need)
		}
	}
	var rows []Stat
	for {
		rec, err := r.Read()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, parseErr("show stat", "row %d: %v", len(rows)+1, err)
		}
		if len(rec) == 1 && rec[0] == "" {
			continue
		}
		f := make(map[string]string, len(header))
		for name, i := range col {
			if i < len(rec) {
				f[name] = rec[i]
			}
		}
		var perr error
		num := func(name string) int64 {
			s := f[name]
			if s == "" {
				return 0
			}
			n, err := strconv.ParseInt(s, 10, 64)
			if err != nil && perr == nil {
				perr = parseErr("show stat", "row %d: %s=%q is not a number", len(rows)+1, name, s)
			}
			return n
		}
		st := Stat{
			Proxy: f["pxname"], Name: f["svname"], Type: StatType(num("type")),
			Status: f["status"], Weight: int(num("weight")), UWeight: int(num("uweight")),
			Scur: num("scur"), Smax: num("smax"), Stot: num("stot"), Qcur: num("qcur"),
			CheckStatus: f["check_status"], CheckCode: int(num("check_code")), CheckDesc: f["check_desc"],
			LastChk: f["last_chk"], CheckHealth: int(num("check_health")),
			CheckRise: int(num("check_rise")), CheckFall: int(num("check_fall")),
			Act: int(num("act")), ChkFail: num("chkfail"), ChkDown: num("chkdown"), LastChg: num("lastchg"),
			Hrsp1xx: num("hrsp_1xx"), Hrsp2xx: num("hrsp_2xx"), Hrsp3xx: num("hrsp_3xx"),
			Hrsp4xx: num("hrsp_4xx"), Hrsp5xx: num("hrsp_5xx"), HrspOther: num("hrsp_other"), ReqTot: num("req_tot"),
			UsedConnCur: num("used_conn_cur"), IdleConnCur: num("idle_conn_cur"),
			Connect: num("connect"), Reuse: num("reuse"),
			Addr: f["addr"], Fields: f,
		}
		if perr != nil {
			return nil, perr
		}
		if st.Proxy == "" || st.Name == "" {
			return nil, parseErr("show stat", "row %d: empty pxname or svname", len(rows)+1)
		}
		rows = append(rows, st)
	}
	return rows, nil
}

// OpState is a server's operational state in `show servers state` (srv_op_state).
type OpState int

// The operational states.
const (
	OpStopped  OpState = 0 // down
	OpStarting OpState = 1
	OpRunning  OpState = 2 // up
	OpStopping OpState = 3
)

func (s OpState) String() string {
	switch s {
	case OpStopped:
		return "stopped"
	case OpStarting:
		return "starting"
	case OpRunning:
		return "running"
	case OpStopping:
		return "stopping"
	}
	return "op" + strconv.Itoa(int(s))
}

// AdminState is the srv_admin_state bit set of `show servers state`.
type AdminState int

// The admin state bits (src/server.h, SRV_ADMF_*).
const (
	AdminForcedMaint    AdminState = 0x01 // set server ... state maint
	AdminInheritedMaint AdminState = 0x02 // from a tracked server
	AdminConfigMaint    AdminState = 0x04 // "disabled" in the config
	AdminForcedDrain    AdminState = 0x08 // set server ... state drain
	AdminInheritedDrain AdminState = 0x10
	AdminResolvMaint    AdminState = 0x20 // DNS resolution failed
	AdminHostnameMaint  AdminState = 0x40
)

// Maint reports whether any maintenance bit is set.
func (a AdminState) Maint() bool {
	return a&(AdminForcedMaint|AdminInheritedMaint|AdminConfigMaint|AdminResolvMaint|AdminHostnameMaint) != 0
}

// Drain reports whether a drain bit is set.
func (a AdminState) Drain() bool { return a&(AdminForcedDrain|AdminInheritedDrain) != 0 }

// ServerState is one server of `show servers state`, read by column name.
type ServerState struct {
	BackendID   int
	Backend     string
	ID          int
	Name        string
	Addr        string
	Port        int
	OpState     OpState
	AdminState  AdminState
	UWeight     int // current (user) weight
	IWeight     int // initial weight
	CheckStatus int
	CheckResult int
	CheckHealth int
	CheckState  int
	Fields      map[string]string
}

// ParseServersState reads `show servers state`: a version line ("1"), a "# " header
// naming the columns, and space-separated rows.
func ParseServersState(out string) ([]ServerState, error) {
	lines := strings.Split(strings.Trim(out, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	if strings.TrimSpace(lines[0]) != "1" {
		return nil, parseErr("show servers state", "version line %.40q: want \"1\"", lines[0])
	}
	if len(lines) < 2 || !strings.HasPrefix(lines[1], "# ") {
		return nil, parseErr("show servers state", "no \"# \" header")
	}
	header := strings.Fields(lines[1][2:])
	col := make(map[string]int, len(header))
	for i, h := range header {
		col[h] = i
	}
	for _, need := range []string{"be_name", "srv_name", "srv_addr", "srv_op_state", "srv_admin_state"} {
		if _, ok := col[need]; !ok {
			return nil, parseErr("show servers state", "no %q column", need)
		}
	}
	var rows []ServerState
	for n, line := range lines[2:] {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		rec := strings.Fields(line)
		if len(rec) < len(header) {
			return nil, parseErr("show servers state", "row %d: %d fields, header has %d", n+1, len(rec), len(header))
		}
		f := make(map[string]string, len(header))
		for name, i := range col {
			f[name] = rec[i]
		}
		var perr error
		num := func(name string) int {
			s, ok := f[name]
			if !ok || s == "-" {
				return 0
			}
			v, err := strconv.Atoi(s)
			if err != nil && perr == nil {
				perr = parseErr("show servers state", "row %d: %s=%q is not a number", n+1, name, s)
			}
			return v
		}
		s := ServerState{
			BackendID: num("be_id"), Backend: f["be_name"], ID: num("srv_id"), Name: f["srv_name"],
			Addr: f["srv_addr"], Port: num("srv_port"),
			OpState: OpState(num("srv_op_state")), AdminState: AdminState(num("srv_admin_state")),
			UWeight: num("srv_uweight"), IWeight: num("srv_iweight"),
			CheckStatus: num("srv_check_status"), CheckResult: num("srv_check_result"),
			CheckHealth: num("srv_check_health"), CheckState: num("srv_check_state"),
			Fields: f,
		}
		if perr != nil {
			return nil, perr
		}
		rows = append(rows, s)
	}
	return rows, nil
}

// ServerConn is one server of `show servers conn`.
type ServerConn struct {
	Backend    string
	Name       string
	Addr       string
	Port       int
	PurgeDelay int   // ms
	UsedCur    int64 // connections in use
	UsedMax    int64
	NeedEst    int64
	IdleCur    int64 // idle connections kept for reuse
	IdleLim    int64 // idle_lim: pool-max-conn (-1: no limit, 0: no pool)
	// IdlePerThread is the idle_per_thr[N] column: idle connections per thread. HAProxy
	// prints none for a server without an idle pool.
	IdlePerThread []int64
	Fields        map[string]string
}

// parseServersConn reads `show servers conn`: a "# " header, then one row per server
// whose first field is "backend/server".
func parseServersConn(out string) ([]ServerConn, error) {
	lines := strings.Split(strings.Trim(out, "\n"), "\n")
	if len(lines) == 1 && lines[0] == "" {
		return nil, nil
	}
	if !strings.HasPrefix(lines[0], "# ") {
		return nil, parseErr("show servers conn", "no \"# \" header: %.60q", lines[0])
	}
	header := strings.Fields(lines[0][2:])
	col := make(map[string]int, len(header))
	perThread := -1 // "idle_per_thr[<nbthread>]": one value per thread, to the end of the row
	for i, h := range header {
		if _, dup := col[h]; !dup {
			col[h] = i
		}
		if strings.HasPrefix(h, "idle_per_thr[") {
			perThread = i
		}
	}
	if _, ok := col["bkname/svname"]; !ok {
		return nil, parseErr("show servers conn", "no \"bkname/svname\" column")
	}
	var rows []ServerConn
	for n, line := range lines[1:] {
		if strings.TrimSpace(line) == "" {
			continue
		}
		rec := strings.Fields(line)
		f := make(map[string]string, len(header))
		for name, i := range col {
			if i < len(rec) {
				f[name] = rec[i]
			}
		}
		be, srv, ok := strings.Cut(f["bkname/svname"], "/")
		if !ok || be == "" || srv == "" {
			return nil, parseErr("show servers conn", "row %d: %q is not backend/server", n+1, f["bkname/svname"])
		}
		var perr error
		num := func(name string) int64 {
			s, ok := f[name]
			if !ok || s == "-" || s == "" {
				return 0
			}
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil && perr == nil {
				perr = parseErr("show servers conn", "row %d: %s=%q is not a number", n+1, name, s)
			}
			return v
		}
		c := ServerConn{Backend: be, Name: srv, Addr: f["addr"], Port: int(num("port")),
			PurgeDelay: int(num("purge_delay")), UsedCur: num("used_cur"), UsedMax: num("used_max"),
			NeedEst: num("need_est"), IdleCur: num("idle_cur"), IdleLim: num("idle_lim"), Fields: f}
		if perThread >= 0 && perThread < len(rec) {
			for _, s := range rec[perThread:] {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil && perr == nil {
					perr = parseErr("show servers conn", "row %d: %s=%q is not a number", n+1, header[perThread], s)
				}
				c.IdlePerThread = append(c.IdlePerThread, v)
			}
		}
		if perr != nil {
			return nil, perr
		}
		rows = append(rows, c)
	}
	return rows, nil
}

// Info is `show info`: Fields holds every "Name: value" line.
type Info struct {
	Version   string
	Pid       int
	UptimeSec int64
	CurrConns int64
	Nbthread  int
	Stopping  bool
	Fields    map[string]string
}

// parseInfo reads `show info`.
func parseInfo(out string) (Info, error) {
	info := Info{Fields: map[string]string{}}
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			return Info{}, parseErr("show info", "line %.60q has no ':'", line)
		}
		info.Fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	info.Version = info.Fields["Version"]
	if info.Version == "" {
		return Info{}, parseErr("show info", "no Version line")
	}
	num := func(name string) int64 {
		n, _ := strconv.ParseInt(info.Fields[name], 10, 64)
		return n
	}
	info.Pid = int(num("Pid"))
	info.UptimeSec = num("Uptime_sec")
	info.CurrConns = num("CurrConns")
	info.Nbthread = int(num("Nbthread"))
	info.Stopping = num("Stopping") != 0
	return info, nil
}

// MapEntry is one map entry.
type MapEntry struct {
	Key   string
	Value string
}

// parseShowMap reads `show map <file>`: "<ref> <key> <value>" per line. Keys never hold
// whitespace in swap's maps (checkMapEntry), so the key is the second field and the value
// the rest of the line.
func parseShowMap(out string) ([]MapEntry, error) {
	var entries []MapEntry
	for n, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		ref, rest, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(ref, "0x") {
			return nil, parseErr("show map", "line %d: %.60q is not \"<ref> <key> <value>\"", n+1, line)
		}
		key, value, ok := strings.Cut(rest, " ")
		if !ok || key == "" {
			return nil, parseErr("show map", "line %d: %.60q has no value", n+1, line)
		}
		entries = append(entries, MapEntry{Key: key, Value: value})
	}
	return entries, nil
}

// parseMapFile reads a map file as HAProxy loads it: "<key> <value>" per line, blank
// lines and lines starting with '#' ignored, the key ends at the first space or tab and
// the value is the rest of the line, trimmed.
func parseMapFile(data string) ([]MapEntry, error) {
	var entries []MapEntry
	for n, line := range strings.Split(data, "\n") {
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimLeft(line, " \t")
		if trimmed == "" || trimmed[0] == '#' {
			continue
		}
		i := strings.IndexAny(trimmed, " \t")
		if i < 0 {
			return nil, parseErr("map file", "line %d: %.60q has no value", n+1, line)
		}
		key, value := trimmed[:i], strings.Trim(trimmed[i:], " \t")
		if value == "" {
			return nil, parseErr("map file", "line %d: %.60q has no value", n+1, line)
		}
		entries = append(entries, MapEntry{Key: key, Value: value})
	}
	return entries, nil
}

// parseWeight reads `get weight be/srv`: "50 (initial 100)".
func parseWeight(out string) (current, initial int, err error) {
	out = strings.TrimSpace(out)
	a, b, ok := strings.Cut(out, " (initial ")
	if !ok || !strings.HasSuffix(b, ")") {
		return 0, 0, parseErr("get weight", "%.60q", out)
	}
	current, err1 := strconv.Atoi(a)
	initial, err2 := strconv.Atoi(strings.TrimSuffix(b, ")"))
	if err1 != nil || err2 != nil {
		return 0, 0, parseErr("get weight", "%.60q", out)
	}
	return current, initial, nil
}

// parseBackends reads `show backend`: a "# name" header and one name per line.
func parseBackends(out string) ([]string, error) {
	var names []string
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if n != 0 {
				return nil, parseErr("show backend", "line %d: unexpected header %.40q", n+1, line)
			}
			continue
		}
		if strings.ContainsAny(line, " \t") {
			return nil, parseErr("show backend", "line %d: %.60q is not a name", n+1, line)
		}
		names = append(names, line)
	}
	return names, nil
}

// masterProc is one process of the master CLI's `show proc`.
type masterProc struct {
	Pid     int
	Type    string // master, worker, program
	Reloads int
	Uptime  string
	Version string
}

// parseShowProc reads the master CLI's `show proc`. The current worker comes first among
// the workers; old workers (still finishing connections after a reload) follow, marked
// with a "# old workers" section in some versions.
func parseShowProc(out string) ([]masterProc, error) {
	var procs []masterProc
	for n, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			return nil, parseErr("show proc", "line %d: %.60q", n+1, line)
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || pid <= 0 {
			return nil, parseErr("show proc", "line %d: pid %q", n+1, f[0])
		}
		reloads, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, parseErr("show proc", "line %d: reloads %q", n+1, f[2])
		}
		p := masterProc{Pid: pid, Type: f[1], Reloads: reloads}
		// "[failed: 0]" follows the master's reload count.
		rest := f[3:]
		if len(rest) > 0 && strings.HasPrefix(rest[0], "[") {
			for len(rest) > 0 && !strings.HasSuffix(rest[0], "]") {
				rest = rest[1:]
			}
			if len(rest) > 0 {
				rest = rest[1:]
			}
		}
		if len(rest) > 0 {
			p.Uptime = rest[0]
		}
		if len(rest) > 1 {
			p.Version = rest[1]
		}
		procs = append(procs, p)
	}
	return procs, nil
}
