package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// The targets run in a child process so that the prober's CPU, read from
// /proc/self/stat, does not include serving the probes.

// serverInfo is what the child prints on stdout once it listens.
type serverInfo struct {
	Ports []int `json:"ports"`
	Stats int   `json:"stats"`
}

// serverStats counts requests per prober, told apart by User-Agent, and holds the
// gaps between one target's consecutive probes by each prober since the last reset.
type serverStats struct {
	Swap      int64    `json:"swap"`
	Consul    int64    `json:"consul"`
	Other     int64    `json:"other"`
	GapSwap   gapStats `json:"gap_swap"`
	GapConsul gapStats `json:"gap_consul"`
}

// gapStats is a gap histogram on the wire: count per gapWidth bucket (non-empty ones),
// the gaps past the last bucket, and the longest gap.
type gapStats struct {
	Buckets map[int]int64 `json:"buckets"`
	Over    int64         `json:"over"`
	Max     time.Duration `json:"max"`
}

// Gaps between probes are counted to the millisecond up to 10 s.
const (
	gapWidth   = time.Millisecond
	gapBuckets = 10000
)

func (h *histogram) gapStats() gapStats {
	g := gapStats{Buckets: map[int]int64{}, Over: h.over.Load(), Max: time.Duration(h.max.Load())}
	for i := range h.buckets {
		if n := h.buckets[i].Load(); n > 0 {
			g.Buckets[i] = n
		}
	}
	return g
}

// merge adds g's counts into h (of the same width).
func (h *histogram) merge(g gapStats) {
	for i, n := range g.Buckets {
		if i >= 0 && i < len(h.buckets) {
			h.buckets[i].Add(n)
			h.n.Add(n)
		}
	}
	h.over.Add(g.Over)
	h.n.Add(g.Over)
	if int64(g.Max) > h.max.Load() {
		h.max.Store(int64(g.Max))
	}
}

// maxPerChild is how many targets one child serves: each target is a listener and a
// keep-alive connection from swap's prober (and Consul's connections come and go), and
// a process may hold 20,000 file descriptors here.
const maxPerChild = 4000

// serveTargets is the child: n listeners on 127.0.0.1, one per target, each
// answering GET /health with 200 "ok"; plus one stats listener (GET / the stats,
// GET /reset empties the gap histograms).
func serveTargets(n int) error {
	var swapN, consulN, otherN atomic.Int64
	index := map[int]int{} // local port -> target
	// last[c][i] is when target i was last probed by prober c (0 swap, 1 consul).
	last := [2][]atomic.Int64{make([]atomic.Int64, n), make([]atomic.Int64, n)}
	var gaps [2]atomic.Pointer[histogram]
	reset := func() {
		for c := range gaps {
			gaps[c].Store(newHistogram(gapWidth, gapBuckets))
		}
	}
	reset()
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := -1
		switch ua := r.UserAgent(); {
		case strings.HasPrefix(ua, "swap-health"):
			swapN.Add(1)
			c = 0
		case strings.HasPrefix(ua, "Consul"):
			consulN.Add(1)
			c = 1
		default:
			otherN.Add(1)
		}
		if a, ok := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr); ok && c >= 0 {
			if i, ok := index[a.Port]; ok {
				now := time.Now().UnixNano()
				if prev := last[c][i].Swap(now); prev != 0 {
					gaps[c].Load().add(time.Duration(now - prev))
				}
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	srv := &http.Server{Handler: health, ReadHeaderTimeout: 10 * time.Second}
	info := serverInfo{Ports: make([]int, n)}
	var ls []net.Listener
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		info.Ports[i] = l.Addr().(*net.TCPAddr).Port
		index[info.Ports[i]] = i
		ls = append(ls, l)
	}
	for _, l := range ls { // index is complete: only read from here on
		go func() { _ = srv.Serve(l) }()
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	info.Stats = sl.Addr().(*net.TCPAddr).Port
	go func() {
		_ = http.Serve(sl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/reset" {
				reset()
				return
			}
			_ = json.NewEncoder(w).Encode(serverStats{swapN.Load(), consulN.Load(), otherN.Load(),
				gaps[0].Load().gapStats(), gaps[1].Load().gapStats()})
		}))
	}()
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	// Serve until the parent closes our stdin (or dies: Pdeathsig).
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// targetServer is the parent's handle on its children, maxPerChild targets each.
type targetServer struct {
	children []*targetChild
	ports    []int
}

type targetChild struct {
	cmd   *exec.Cmd
	stdin io.Closer
	info  serverInfo
}

func startTargets(n int) (*targetServer, error) {
	ts := &targetServer{}
	for left := n; left > 0; left -= maxPerChild {
		c, err := startChild(min(left, maxPerChild))
		if err != nil {
			ts.stop()
			return nil, err
		}
		ts.children = append(ts.children, c)
		ts.ports = append(ts.ports, c.info.Ports...)
	}
	return ts, nil
}

func startChild(n int) (*targetChild, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-targets", fmt.Sprint(n))
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &targetChild{cmd: cmd, stdin: stdin}
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&c.info); err != nil {
		c.stop()
		return nil, fmt.Errorf("target server did not start: %w", err)
	}
	return c, nil
}

// pids are the children's.
func (ts *targetServer) pids() []string {
	var out []string
	for _, c := range ts.children {
		out = append(out, fmt.Sprint(c.cmd.Process.Pid))
	}
	return out
}

// stats sums the children's counts; the gap histograms are merged into swap and consul.
func (ts *targetServer) stats() (s serverStats, swap, consul *histogram, err error) {
	swap, consul = newHistogram(gapWidth, gapBuckets), newHistogram(gapWidth, gapBuckets)
	for _, c := range ts.children {
		var cs serverStats
		if err := c.get("/", &cs); err != nil {
			return s, nil, nil, err
		}
		s.Swap, s.Consul, s.Other = s.Swap+cs.Swap, s.Consul+cs.Consul, s.Other+cs.Other
		swap.merge(cs.GapSwap)
		consul.merge(cs.GapConsul)
	}
	return s, swap, consul, nil
}

// resetGaps empties the children's gap histograms (the start of a window).
func (ts *targetServer) resetGaps() error {
	for _, c := range ts.children {
		if err := c.get("/reset", nil); err != nil {
			return err
		}
	}
	return nil
}

func (c *targetChild) get(path string, v any) error {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", c.info.Stats, path))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if v == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// stop ends the children we started.
func (ts *targetServer) stop() {
	for _, c := range ts.children {
		c.stop()
	}
}

// stop ends the child: close its stdin, then kill it by pid if it has not exited.
func (c *targetChild) stop() {
	_ = c.stdin.Close()
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}
