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

// serverStats counts requests per prober, told apart by User-Agent.
type serverStats struct {
	Swap   int64 `json:"swap"`
	Consul int64 `json:"consul"`
	Other  int64 `json:"other"`
}

// serveTargets is the child: n listeners on 127.0.0.1, one per target, each
// answering GET /health with 200 "ok"; plus one stats listener.
func serveTargets(n int) error {
	var swapN, consulN, otherN atomic.Int64
	health := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch ua := r.UserAgent(); {
		case strings.HasPrefix(ua, "swap-health"):
			swapN.Add(1)
		case strings.HasPrefix(ua, "Consul"):
			consulN.Add(1)
		default:
			otherN.Add(1)
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok")
	})
	srv := &http.Server{Handler: health, ReadHeaderTimeout: 10 * time.Second}
	info := serverInfo{Ports: make([]int, n)}
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("listener %d of %d: %w", i+1, n, err)
		}
		info.Ports[i] = l.Addr().(*net.TCPAddr).Port
		go func() { _ = srv.Serve(l) }()
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	info.Stats = sl.Addr().(*net.TCPAddr).Port
	go func() {
		_ = http.Serve(sl, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_ = json.NewEncoder(w).Encode(serverStats{swapN.Load(), consulN.Load(), otherN.Load()})
		}))
	}()
	if err := json.NewEncoder(os.Stdout).Encode(info); err != nil {
		return err
	}
	// Serve until the parent closes our stdin (or dies: Pdeathsig).
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// targetServer is the parent's handle on the child.
type targetServer struct {
	cmd   *exec.Cmd
	stdin io.Closer
	info  serverInfo
}

func startTargets(n int) (*targetServer, error) {
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
	ts := &targetServer{cmd: cmd, stdin: stdin}
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&ts.info); err != nil {
		ts.stop()
		return nil, fmt.Errorf("target server did not start: %w", err)
	}
	return ts, nil
}

func (ts *targetServer) pid() string { return fmt.Sprint(ts.cmd.Process.Pid) }

func (ts *targetServer) stats() (serverStats, error) {
	var s serverStats
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/", ts.info.Stats))
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// stop ends the child we started: close its stdin, then kill it by pid if it
// has not exited.
func (ts *targetServer) stop() {
	_ = ts.stdin.Close()
	done := make(chan struct{})
	go func() { _ = ts.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = ts.cmd.Process.Kill()
		<-done
	}
}
