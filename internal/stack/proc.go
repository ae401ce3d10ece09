package stack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a process the stack started, in its own process group (so a Ctrl-C in the
// terminal reaches the demo, which stops it in order, and not the process itself).
type proc struct {
	name    string
	cmd     *exec.Cmd
	exit    chan struct{} // closed when the process has exited and was reaped
	stop    syscall.Signal
	pidFile string
	logFile *os.File
}

// start runs bin with args (and env beyond this process's own), its output in logName,
// and records "<pid> <marker>" in pidName: Down kills the pid only while its command
// line still holds marker.
func (s *Stack) start(bin, pidName, logName, marker string, env []string, args ...string) (*proc, error) {
	lf, err := os.Create(filepath.Join(s.Dir, logName))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = s.Dir
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, err
	}
	p := &proc{name: filepath.Base(bin), cmd: cmd, exit: make(chan struct{}), stop: syscall.SIGTERM,
		pidFile: filepath.Join(s.Dir, pidName), logFile: lf}
	go func() { _ = cmd.Wait(); close(p.exit) }()
	s.procs = append(s.procs, p)
	if err := os.WriteFile(p.pidFile, fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, marker), 0o600); err != nil {
		return p, err
	}
	return p, nil
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.exit:
		return true
	default:
		return false
	}
}

// terminate stops the process with its stop signal, then kills its group after
// stopTimeout.
func (p *proc) terminate() error {
	defer p.logFile.Close()
	if !p.exited() {
		_ = p.cmd.Process.Signal(p.stop)
		select {
		case <-p.exit:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exit
		}
	}
	return os.Remove(p.pidFile)
}

// poll calls fn until it succeeds, p exits, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, p *proc, fn func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("%s exited: %s", p.name, p.cmd.ProcessState)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w", timeout, err)
		case <-tick.C:
		}
	}
}

// killFromPidFile stops the process a pid file names, when it still runs the command it
// was started with (its command line holds the file's marker; a pid reused by another
// program is left alone): SIGTERM to its group, SIGKILL after stopTimeout.
func killFromPidFile(path string, log io.Writer) error {
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
	if !runs(pid, marker) {
		return os.Remove(path)
	}
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	deadline := time.Now().Add(stopTimeout)
	for runs(pid, marker) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond) // not our child: nothing to wait on but /proc
	}
	if runs(pid, marker) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	}
	fmt.Fprintf(log, "stopped            pid %d (%s)\n", pid, strings.TrimSuffix(filepath.Base(path), ".pid"))
	return os.Remove(path)
}

// runs reports whether pid is alive and its command line contains marker.
func runs(pid int, marker string) bool {
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

func since(t0 time.Time) string {
	return time.Since(t0).Round(time.Millisecond).String()
}
