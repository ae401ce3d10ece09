// Package procs starts and stops the processes the tests (internal/testenv), the demo
// and the benchmarks (internal/stack, bench/) run swap against: any program (Start),
// a Consul agent (StartConsul), an HAProxy in master-worker mode (StartHAProxy), on
// free loopback ports (FreePort). A pid file with a marker lets another program stop a
// process later (KillFromPidFile), after the one that started it was killed.
//
// It imports nothing of swap's: testenv, which the tests of swap's packages import,
// builds on it.
package procs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say how Start runs a program.
type Options struct {
	// Name names the process in messages (default: the binary's base name).
	Name string
	// Bin and Args are the program and its arguments.
	Bin  string
	Args []string
	// Env is added to this process's environment.
	Env []string
	// Dir is its working directory ("": this process's).
	Dir string
	// Wrap is a command prefix the program runs under (nil: none), e.g. `nsenter
	// --net=/var/run/netns/x` to run it in a network namespace; the prefix must exec the
	// program, so that the process Stop signals is the program.
	Wrap []string
	// Output hears the program's stdout and stderr; when nil, LogFile is created for
	// them (nil and "": only their end is kept). Tail is their end either way, for
	// errors.
	Output  io.Writer
	LogFile string
	// PidFile, when set, gets "<pid> <Marker>": KillFromPidFile stops the
	// process later, from another program, while its command line still holds Marker.
	// Stop removes the file.
	PidFile, Marker string
	// StopSignal is what Stop sends first (0: SIGTERM); StopTimeout how long it waits
	// before it kills the process group (0: 10s).
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// DieWithParent has the kernel send SIGTERM to the process when this one dies, so
	// that a killed test or benchmark leaves nothing running.
	DieWithParent bool
}

// Proc is a running program Start started, in its own process group: a Ctrl-C in
// the terminal reaches this process, which stops its children in order, and not them.
type Proc struct {
	Name string

	opts    Options
	cmd     *exec.Cmd
	exit    chan struct{} // closed when the process has exited and was reaped
	logFile *os.File
	tail    *Buffer
	killed  bool
}

// tailSize is how much of a process's latest output Tail keeps.
const tailSize = 4 << 10

// Start starts a program as opts say.
func Start(opts Options) (*Proc, error) {
	if opts.Name == "" {
		opts.Name = filepath.Base(opts.Bin)
	}
	if opts.StopSignal == 0 {
		opts.StopSignal = syscall.SIGTERM
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = stopTimeout
	}
	p := &Proc{Name: opts.Name, opts: opts, exit: make(chan struct{}), tail: &Buffer{Max: tailSize}}
	argv := append(append([]string(nil), opts.Wrap...), opts.Bin)
	p.cmd = exec.Command(argv[0], append(argv[1:], opts.Args...)...)
	p.cmd.Dir = opts.Dir
	if opts.Env != nil {
		p.cmd.Env = append(os.Environ(), opts.Env...)
	}
	switch {
	case opts.Output != nil:
		p.cmd.Stdout = io.MultiWriter(opts.Output, p.tail)
	case opts.LogFile != "":
		// The file itself, not a pipe: the process (and a leftover of a killed run)
		// writes on without this one reading.
		f, err := os.Create(opts.LogFile)
		if err != nil {
			return nil, err
		}
		p.logFile, p.cmd.Stdout = f, f
	default:
		p.cmd.Stdout = p.tail
	}
	p.cmd.Stderr = p.cmd.Stdout
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if opts.DieWithParent {
		p.cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	}
	if err := p.cmd.Start(); err != nil {
		if p.logFile != nil {
			p.logFile.Close()
		}
		return nil, fmt.Errorf("start %s: %w", opts.Name, err)
	}
	go func() {
		_ = p.cmd.Wait()
		if p.logFile != nil {
			p.logFile.Close()
		}
		close(p.exit)
	}()
	if opts.PidFile != "" {
		if err := os.WriteFile(opts.PidFile, fmt.Appendf(nil, "%d %s\n", p.Pid(), opts.Marker), 0o600); err != nil {
			_ = p.Stop()
			return nil, err
		}
	}
	return p, nil
}

// Pid is the process's pid.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.exit }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.exit:
		return true
	default:
		return false
	}
}

// LogFile is the file its output goes to ("": none).
func (p *Proc) LogFile() string {
	if p.logFile == nil {
		return ""
	}
	return p.opts.LogFile
}

// Tail is the end of what the process printed.
func (p *Proc) Tail() string {
	if p.logFile == nil {
		return p.tail.String()
	}
	f, err := os.Open(p.opts.LogFile)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > tailSize {
		_, _ = f.Seek(st.Size()-tailSize, io.SeekStart)
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// Killed reports whether Stop had to kill the process group: the process ignored its
// stop signal for the stop timeout.
func (p *Proc) Killed() bool { return p.killed }

// Stop ends the process: its stop signal, then SIGKILL to its group after the stop
// timeout; it waits until the process is reaped and removes its pid file. It is safe to
// call again; the error is only the pid file's.
func (p *Proc) Stop() error {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(p.opts.StopSignal)
		select {
		case <-p.exit:
		case <-time.After(p.opts.StopTimeout):
			p.killed = true
			_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
			<-p.exit
		}
	}
	if p.opts.PidFile == "" {
		return nil
	}
	if err := os.Remove(p.opts.PidFile); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// stopWith stops a process that failed to become ready and returns err, naming its
// log file.
func (p *Proc) stopWith(err error) error {
	_ = p.Stop()
	if f := p.LogFile(); f != "" {
		err = fmt.Errorf("%w (see %s)", err, f)
	}
	return err
}

// Poll is Poll that gives up at once when the process exits, quoting the end of its
// output.
func (p *Proc) Poll(ctx context.Context, timeout time.Duration, fn func() error) error {
	var exited error
	err := Poll(ctx, timeout, func() error {
		if p.Exited() {
			exited = fmt.Errorf("%s exited (%s): %s", p.Name, p.cmd.ProcessState, strings.TrimSpace(p.Tail()))
			return nil
		}
		return fn()
	})
	if exited != nil {
		return exited
	}
	return err
}

// pollInterval is how often Poll tries.
const pollInterval = 10 * time.Millisecond

// Poll calls fn every 10 ms until it returns nil, ctx ends or timeout passes (then it
// returns fn's last error).
func Poll(ctx context.Context, timeout time.Duration, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(pollInterval):
		}
	}
}

// Buffer is a bytes.Buffer that a process's output goroutine and its readers share.
// With Max set, it keeps only the last Max bytes.
type Buffer struct {
	Max int
	mu  sync.Mutex
	b   []byte
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b = append(s.b, p...)
	if s.Max > 0 && len(s.b) > s.Max {
		s.b = append(s.b[:0], s.b[len(s.b)-s.Max:]...)
	}
	return len(p), nil
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.b)
}

var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort's ports come from [portLow, portHigh): below Linux's ephemeral range (32768+),
// where the kernel picks outgoing connections' ports and Docker its published ports, so
// neither can take one between FreePort and the bind.
const (
	portLow  = 20000
	portHigh = 32000
)

// FreePort returns a TCP port on 127.0.0.1, chosen at random in [20000, 32000), that was
// free a moment ago and that this process has not handed out before (another process
// may still take it: what binds it should retry on "address already in use").
func FreePort() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[int]bool{}
	}
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow)
		if handedOut.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue // taken
		}
		ln.Close()
		handedOut.ports[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("no free port in [%d, %d) after 1000 tries", portLow, portHigh)
}

// freePorts is n FreePorts.
func freePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	return ports, nil
}

// KillFromPidFile stops the process a pid file names, when it still runs the command it
// was started with (its command line holds the file's marker; a pid reused by another
// program is left alone): SIGTERM to its group, SIGKILL after stopTimeout. It removes
// the file and says what it stopped on log (nil: nowhere).
func KillFromPidFile(path string, log io.Writer) error {
	if log == nil {
		log = io.Discard
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	pidText, marker, _ := strings.Cut(strings.TrimSpace(string(b)), " ")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 1 || marker == "" {
		return fmt.Errorf("%s: %q is not \"<pid> <marker>\"; remove it by hand", path, b)
	}
	if !Runs(pid, marker) {
		return os.Remove(path)
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(stopTimeout)
	for Runs(pid, marker) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // not our child: nothing to wait on but /proc
	}
	if Runs(pid, marker) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	fmt.Fprintf(log, "stopped            pid %d (%s)\n", pid, strings.TrimSuffix(filepath.Base(path), ".pid"))
	return os.Remove(path)
}

// Runs reports whether pid is alive and its command line contains marker.
func Runs(pid int, marker string) bool {
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		// A zombie has exited; only its parent's wait is missing.
		if i := bytes.LastIndexByte(stat, ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
			return false
		}
	}
	return bytes.Contains(cmdline, []byte(marker))
}

// stopTimeout is how long a process has to exit on its stop signal before it is killed.
const stopTimeout = 10 * time.Second

// newID is a random name for one run.
func newID() string { return strconv.FormatUint(rand.Uint64()&0xffffffff, 16) }
