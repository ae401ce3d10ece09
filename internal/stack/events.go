package stack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/swap-dev/swap/switcher"
)

// Run is one `swap ... --output json`: its events, its result and what it logged.
type Run struct {
	Args   []string
	Events []switcher.Event
	Result *switcher.Result
	Error  string // the result line's error
	Stderr string // swap's logs (JSON lines, at the level asked for)
	Exit   int
	// CPU is the user and system time of the swap process and of the children it
	// waited for (haproxy -c).
	CPU time.Duration
	// PeakRSS is the swap process's own peak resident memory (VmHWM in
	// /proc/<pid>/status, sampled every 20 ms while it runs: the last sample, taken at
	// most 20 ms before its exit). MaxRSS is the kernel's at exit (wait4's ru_maxrss):
	// the largest of the process and the children it waited for (haproxy -c).
	PeakRSS, MaxRSS Bytes
}

// Bytes is a memory size.
type Bytes int64

// MiB is the size in mebibytes.
func (b Bytes) MiB() float64 { return float64(b) / (1 << 20) }

// SwapJSON runs `swap args... --output json`, calls onEvent (when not nil) for every
// event line as it arrives, and returns the run. logLevel is swap's --log-level ("" for
// warn). An exit code other than 0 is an error naming it, with swap's message.
func (s *Stack) SwapJSON(ctx context.Context, logLevel string, onEvent func(switcher.Event), args ...string) (*Run, error) {
	args = append(args, "--output", "json")
	if logLevel != "" {
		args = append(args, "--log-level", logLevel)
	}
	cmd := s.Command(ctx, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start swap: %w", err)
	}
	run := &Run{Args: args}
	hwm := sampleHWM(cmd.Process.Pid, 20*time.Millisecond)
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	var parseErr error
	for sc.Scan() {
		if err := run.parseLine(sc.Bytes(), onEvent); err != nil && parseErr == nil {
			parseErr = err
		}
	}
	waitErr := cmd.Wait()
	run.PeakRSS = hwm()
	run.Stderr = stderr.String()
	if ps := cmd.ProcessState; ps != nil {
		run.CPU = ps.UserTime() + ps.SystemTime()
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			run.MaxRSS = Bytes(ru.Maxrss) << 10 // KiB on Linux
		}
	}
	var ee *exec.ExitError
	switch {
	case errors.As(waitErr, &ee):
		run.Exit = ee.ExitCode()
		msg := run.Error
		if msg == "" {
			msg = strings.TrimSpace(run.Stderr)
		}
		return run, fmt.Errorf("swap %s: exit %d: %s", strings.Join(args, " "), run.Exit, msg)
	case waitErr != nil:
		return run, fmt.Errorf("swap %s: %w", strings.Join(args, " "), waitErr)
	case parseErr != nil:
		return run, parseErr
	case run.Result == nil:
		return run, fmt.Errorf("swap %s printed no result line", strings.Join(args, " "))
	}
	return run, nil
}

// sampleHWM reads pid's VmHWM every interval until the process is gone; the returned
// function stops the sampling and returns the last value read.
func sampleHWM(pid int, interval time.Duration) func() Bytes {
	var last atomic.Int64
	done := make(chan struct{})
	stopped := make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(stopped)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			b, err := os.ReadFile(path)
			if err != nil { // exited (and maybe reaped)
				return
			}
			if kb, ok := statusKB(b, "VmHWM"); ok && kb > 0 {
				last.Store(kb << 10)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() Bytes {
		close(done)
		<-stopped
		return Bytes(last.Load())
	}
}

// statusKB reads a "Key:   1234 kB" line of /proc/<pid>/status.
func statusKB(status []byte, key string) (int64, bool) {
	for line := range strings.SplitSeq(string(status), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k != key {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// parseLine reads one line of `--output json`: {"type":"event",...} or
// {"type":"result","result":{...},"error":"..."}.
func (r *Run) parseLine(line []byte, onEvent func(switcher.Event)) error {
	var head struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(line, &head); err != nil {
		return fmt.Errorf("swap printed a line that is not JSON: %q: %w", line, err)
	}
	switch head.Type {
	case "event":
		var e switcher.Event
		if err := json.Unmarshal(line, &e); err != nil {
			return fmt.Errorf("event line %q: %w", line, err)
		}
		r.Events = append(r.Events, e)
		if onEvent != nil {
			onEvent(e)
		}
	case "result":
		var res struct {
			Result *switcher.Result `json:"result"`
			Error  string           `json:"error"`
		}
		if err := json.Unmarshal(line, &res); err != nil {
			return fmt.Errorf("result line %q: %w", line, err)
		}
		r.Result, r.Error = res.Result, res.Error
	}
	return nil
}

// StepTime is one step of a run, from its done (or skip) event.
type StepTime struct {
	Step    switcher.Step
	Took    time.Duration
	Skipped string // the skip event's message
}

// Steps lists the run's steps in the order they ended, each with its done event's
// time and, for a step that had nothing to do, its skip message.
func (r *Run) Steps() []StepTime {
	var out []StepTime
	index := map[switcher.Step]int{}
	for _, e := range r.Events {
		if e.Kind != switcher.EventDone && e.Kind != switcher.EventSkip {
			continue
		}
		i, ok := index[e.Step]
		if !ok {
			i = len(out)
			index[e.Step] = i
			out = append(out, StepTime{Step: e.Step})
		}
		if e.Kind == switcher.EventDone {
			out[i].Took = e.Elapsed
		} else {
			out[i].Skipped = e.Message
		}
	}
	return out
}

// Took is the step's time (0 when it did not run).
func (r *Run) Took(step switcher.Step) time.Duration {
	for _, st := range r.Steps() {
		if st.Step == step {
			return st.Took
		}
	}
	return 0
}

// Span is the run's wall time from its first event to its last.
func (r *Run) Span() (start, end time.Time) {
	if len(r.Events) == 0 {
		return
	}
	return r.Events[0].Time, r.Events[len(r.Events)-1].Time
}

// Cutover is when the route moved: the shift step's "now routes to" event (HAProxy had
// applied the map change when swap heard back), else the shift's done event.
func (r *Run) Cutover() (time.Time, bool) {
	var done time.Time
	for _, e := range r.Events {
		if e.Step != switcher.StepShift {
			continue
		}
		if e.Kind == switcher.EventInfo && strings.Contains(e.Message, "now routes to") {
			return e.Time, true
		}
		if e.Kind == switcher.EventDone {
			done = e.Time
		}
	}
	return done, !done.IsZero()
}
