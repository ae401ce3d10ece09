package lbconfig

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrConfigRejected is returned when `haproxy -c` refuses a rendered config; the file in
// place is left as it was.
var ErrConfigRejected = errors.New("haproxy -c rejected the rendered config")

// ErrPersist marks a failure to write the files after a runtime change succeeded: the
// change is live, the files lag behind it until the next successful Persist.
var ErrPersist = errors.New("runtime change applied, but writing it to disk failed (run `swap lb render` to retry)")

// WriteOptions says how WriteFiles writes.
type WriteOptions struct {
	// Binary is the haproxy executable that checks a config before it replaces the
	// old one (default "haproxy").
	Binary string
	// Checker runs that check (nil: a local process). The sidecar image has no haproxy:
	// it runs the check inside HAProxy's own container (haproxy.check_container).
	Checker CheckRunner
	// DryRun writes nothing: the result holds the diffs.
	DryRun bool
}

// WriteResult says what WriteFiles did.
type WriteResult struct {
	Changed   []string // files written (or, in a dry run, that would be)
	Unchanged []string // files whose bytes were already equal
	Diff      string   // unified diffs of the changed files
}

// WriteFiles writes files into dir atomically, in order: each goes to a temp file in the
// same directory, is fsynced, checked (haproxy.cfg: `haproxy -c`), then renamed over the
// old one, and the directory is fsynced. A file whose bytes are equal is not touched. A
// config that `haproxy -c` rejects is not installed (ErrConfigRejected).
func WriteFiles(ctx context.Context, dir string, files []File, opts WriteOptions) (WriteResult, error) {
	var res WriteResult
	for _, f := range files {
		path := filepath.Join(dir, f.Name)
		old, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return res, fmt.Errorf("read %s: %w", path, err)
		}
		if err == nil && bytes.Equal(old, f.Data) {
			res.Unchanged = append(res.Unchanged, f.Name)
			continue
		}
		res.Changed = append(res.Changed, f.Name)
		res.Diff += unifiedDiff(path, path+" (new)", old, f.Data)
		if opts.DryRun {
			continue
		}
		var check func(tmp string) error
		if f.Name == ConfigFile {
			data := f.Data
			check = func(tmp string) error { return checkConfigOnce(ctx, opts.checker(), opts.Binary, dir, data, tmp) }
		}
		if err := writeAtomic(path, f.Data, 0o644, check); err != nil {
			return res, err
		}
	}
	return res, nil
}

// writeAtomic writes data to path through a temp file in the same directory.
func writeAtomic(path string, data []byte, mode os.FileMode, check func(tmp string) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("fsync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return fmt.Errorf("chmod %s: %w", tmp.Name(), err)
	}
	if check != nil {
		if err := check(tmp.Name()); err != nil {
			return fmt.Errorf("%s not replaced: %w", path, err)
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// A CheckRunner runs HAProxy's config check, `<binary> -c -f <path>`: a local process
// (localChecker), or another HAProxy's own binary where it lives (a container).
type CheckRunner interface {
	// Identity names the haproxy that checks, as it is now: a new build or an upgrade
	// gets every config checked again. An error means it cannot be found.
	Identity(ctx context.Context, binary string) (string, error)
	// Run runs `binary -c -f path` and returns HAProxy's combined output and exit code;
	// err says it could not run at all (and what to set).
	Run(ctx context.Context, binary, path string) (output string, exitCode int, err error)
}

// localChecker runs `haproxy -c` as a process of this one.
type localChecker struct{}

var _ CheckRunner = localChecker{}

// Identity is the binary's path, size and modification time.
func (localChecker) Identity(_ context.Context, binary string) (string, error) {
	id, err := binaryID(binary)
	if err != nil {
		return "", fmt.Errorf("%w (set haproxy.binary to HAProxy's path)", err)
	}
	return id, nil
}

// Run runs binary as a child process.
func (localChecker) Run(ctx context.Context, binary, path string) (string, int, error) {
	out, err := exec.CommandContext(ctx, binary, "-c", "-f", path).CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0, nil
	case errors.As(err, &ee):
		return string(out), ee.ExitCode(), nil
	default:
		return string(out), -1, fmt.Errorf("run %s -c: %w (set haproxy.binary to HAProxy's path)", binary, err)
	}
}

func (o WriteOptions) checker() CheckRunner {
	if o.Checker == nil {
		return localChecker{}
	}
	return o.Checker
}

// checkConfig runs `haproxy -c -f path` through r.
func checkConfig(ctx context.Context, r CheckRunner, binary, path string) error {
	if binary == "" {
		binary = "haproxy"
	}
	out, code, err := r.Run(ctx, binary, path)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("%w: %s", ErrConfigRejected, alerts(out))
	}
	return nil
}

// alerts keeps the [ALERT] lines of HAProxy's output (all of it when there are none).
func alerts(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "[ALERT]") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(out)
	}
	return strings.Join(keep, "\n")
}

// Snapshot returns a copy of l whose servers and maps are what HAProxy serves now: the
// servers of every backend of l (`show servers state`: name, address, port, initial
// weight) and the routes, preview and canary maps (`show map`). Backends HAProxy does not
// know keep no servers.
func (c *Client) Snapshot(ctx context.Context, l *Layout) (*Layout, error) {
	live := l.Clone()
	states, err := c.ServersState(ctx, "")
	if err != nil {
		return nil, err
	}
	// `show servers state` does not say which servers are backups; `show stat` does.
	stats, err := c.Stat(ctx, "")
	if err != nil {
		return nil, err
	}
	backup := map[[2]string]bool{}
	for _, st := range stats {
		if st.Type == StatServer && st.Fields["bck"] == "1" {
			backup[[2]string{st.Proxy, st.Name}] = true
		}
	}
	byBackend := map[string][]Server{}
	for _, s := range states {
		byBackend[s.Backend] = append(byBackend[s.Backend], Server{Name: s.Name, Addr: s.Addr, Port: s.Port, Weight: s.IWeight,
			Backup: backup[[2]string{s.Backend, s.Name}]})
	}
	for i := range live.Backends {
		live.Backends[i].Servers = byBackend[live.Backends[i].Name]
	}
	maps := []struct {
		path string
		dst  *[]MapEntry
	}{{l.RoutesMap(), &live.Routes}, {l.CanaryMap(), &live.Canary}}
	if l.Preview.Bind != "" {
		maps = append(maps, struct {
			path string
			dst  *[]MapEntry
		}{l.PreviewMap(), &live.PreviewRoutes})
	}
	for _, m := range maps {
		entries, err := c.ShowMap(ctx, m.path)
		if err != nil {
			return nil, fmt.Errorf("read map %s: %w (was haproxy.cfg rendered by swap for dir %s?)", m.path, err, l.Dir)
		}
		*m.dst = dedupMap(entries)
	}
	return live, nil
}

// dedupMap keeps the first entry of each key, as HAProxy's lookups do.
func dedupMap(entries []MapEntry) []MapEntry {
	seen := make(map[string]bool, len(entries))
	out := entries[:0:0]
	for _, e := range entries {
		if !seen[e.Key] {
			seen[e.Key] = true
			out = append(out, e)
		}
	}
	return out
}

// ServerStateFile returns what HAProxy should load at its next start: `show servers
// state` as it is now, in the server-state-file format (it is that format).
func (c *Client) ServerStateFile(ctx context.Context) ([]byte, error) {
	out, err := c.serversState(ctx, "")
	if err != nil {
		return nil, err
	}
	if _, err := ParseServersState(out); err != nil {
		return nil, fmt.Errorf("haproxy %s: %w", c.name, err)
	}
	return []byte(strings.TrimRight(out, "\n") + "\n"), nil
}

// Persist writes what c serves now to l.Dir so that a reload or a restart serves the
// same: haproxy.cfg with the live servers as server lines, the map files with the live
// entries, and the server-state file (admin state, weights, health) that
// `load-server-state-from-file global` applies at start. Runtime first, disk second:
// call it after every runtime change.
//
// Persist holds LockDir(l.Dir) from reading the runtime to the last rename, so swap
// processes that change different apps on the same HAProxy never leave an older
// snapshot on disk after a newer one: whichever writes last read the runtime last.
func Persist(ctx context.Context, c *Client, l *Layout, opts WriteOptions) (WriteResult, error) {
	unlock, err := LockDir(ctx, l.Dir)
	if err != nil {
		return WriteResult{}, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	defer unlock()
	live, err := c.Snapshot(ctx, l)
	if err != nil {
		return WriteResult{}, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	files, err := Render(live)
	if err != nil {
		return WriteResult{}, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	state, err := c.ServerStateFile(ctx)
	if err != nil {
		return WriteResult{}, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	// The state file goes last: it only matters at the next start, and a state for
	// servers the config does not have yet is ignored there.
	files = append(files, File{StateFile, state})
	res, err := WriteFiles(ctx, l.Dir, files, opts)
	if err != nil {
		return res, fmt.Errorf("%w: %w", ErrPersist, err)
	}
	return res, nil
}

// LockFile is the lock file in a files' directory (see LockDir).
const LockFile = ".swap.lock"

// LockDir takes an exclusive flock(2) on dir/.swap.lock (creating dir and the file),
// waiting until it is free or ctx ends, and returns its release. Every swap process that
// writes HAProxy's files into dir takes it around reading the runtime, rendering,
// checking and renaming, so their writes serialize across processes. The lock goes with
// the process: one that dies releases it.
func LockDir(ctx context.Context, dir string) (unlock func(), err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock %s: %w", path, err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Minute)
		defer cancel()
	}
	err = pollUntil(ctx, 5*time.Millisecond, func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return false, fmt.Errorf("another swap process holds %s", path)
		}
		return true, err
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ReadLayoutFiles fills l's servers and maps from the files in l.Dir, for rendering when
// no HAProxy answers: the server lines of haproxy.cfg (as swap writes them) and the map
// files. Missing files leave the layout's values as they are.
func ReadLayoutFiles(l *Layout) (*Layout, error) {
	out := l.Clone()
	if data, err := os.ReadFile(l.Path(ConfigFile)); err == nil {
		servers, err := parseConfigServers(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Path(ConfigFile), err)
		}
		for i := range out.Backends {
			if s, ok := servers[out.Backends[i].Name]; ok {
				out.Backends[i].Servers = s
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	for _, m := range []struct {
		name string
		dst  *[]MapEntry
	}{{RoutesMapFile, &out.Routes}, {PreviewMapFile, &out.PreviewRoutes}, {CanaryMapFile, &out.Canary}} {
		data, err := os.ReadFile(l.Path(m.name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		entries, err := parseMapFile(string(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", l.Path(m.name), err)
		}
		*m.dst = dedupMap(entries)
	}
	return out, nil
}

// parseConfigServers reads the `server <name> <ip>:<port> ... weight <w> ...` lines of
// each backend section of a haproxy.cfg.
func parseConfigServers(cfg string) (map[string][]Server, error) {
	out := map[string][]Server{}
	backend := ""
	for n, line := range strings.Split(cfg, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		indented := line[0] == ' ' || line[0] == '\t'
		if !indented {
			backend = ""
			if f[0] == "backend" && len(f) >= 2 {
				backend = f[1]
			}
			continue
		}
		if backend == "" || f[0] != "server" {
			continue
		}
		if len(f) < 3 {
			return nil, parseErr("haproxy.cfg", "line %d: server line without an address", n+1)
		}
		host, port, err := splitHostPort(f[2])
		if err != nil {
			return nil, parseErr("haproxy.cfg", "line %d: %v", n+1, err)
		}
		s := Server{Name: f[1], Addr: host, Port: port}
		for i := 3; i < len(f); i++ {
			switch {
			case f[i] == "backup":
				s.Backup = true
			case f[i] == "weight" && i+1 < len(f):
				if w, err := strconv.Atoi(f[i+1]); err == nil {
					s.Weight = w
				}
			}
		}
		out[backend] = append(out[backend], s)
	}
	return out, nil
}

func splitHostPort(hp string) (string, int, error) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 {
		return "", 0, fmt.Errorf("%q: want ip:port", hp)
	}
	host := strings.TrimSuffix(strings.TrimPrefix(hp[:i], "["), "]")
	port, err := strconv.Atoi(hp[i+1:])
	if err != nil || port < 1 || port > 65535 {
		return "", 0, fmt.Errorf("%q: bad port", hp)
	}
	return host, port, nil
}
