package procs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// waitFor fails the test unless cond holds within timeout. (testenv's WaitFor is out of
// reach: testenv imports procs.)
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	if err := Poll(context.Background(), timeout, cond); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sleeper starts `sleep 300` in its own process group and kills it in t.Cleanup.
func sleeper(t *testing.T) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	})
	return cmd
}

func TestKillFromPidFile_StopsOnlyAProcessThatStillRunsItsCommand(t *testing.T) {
	tests := []struct {
		name     string
		marker   string
		wantDead bool
	}{
		{"the command line holds the marker", "300", true},
		{"the pid now belongs to another program", "swap-demo-0badc0de", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := sleeper(t)
			pid := cmd.Process.Pid
			// exec has begun when Start returns, but on a loaded machine the new
			// command line shows in /proc a moment later.
			waitFor(t, 5*time.Second, "sleep started", func() error {
				if !Runs(pid, "sleep") {
					return fmt.Errorf("pid %d does not run sleep yet", pid)
				}
				return nil
			})
			path := filepath.Join(t.TempDir(), "x.pid")
			if err := os.WriteFile(path, fmt.Appendf(nil, "%d %s\n", pid, tc.marker), 0o600); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			if err := KillFromPidFile(path, &log); err != nil {
				t.Fatalf("killFromPidFile: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the pid file is still there (%v)", err)
			}
			if tc.wantDead {
				waitFor(t, 5*time.Second, "sleep gone", func() error {
					if Runs(pid, "sleep") {
						return fmt.Errorf("pid %d still runs", pid)
					}
					return nil
				})
				if !strings.Contains(log.String(), fmt.Sprint(pid)) {
					t.Errorf("log %q does not name pid %d", log.String(), pid)
				}
			} else if !Runs(pid, "sleep") {
				t.Errorf("pid %d was killed though it runs another command", pid)
			}
		})
	}
}

func TestKillFromPidFile_RefusesAFileItCannotRead(t *testing.T) {
	for _, body := range []string{"", "abc marker", "1 marker", "1234"} {
		path := filepath.Join(t.TempDir(), "x.pid")
		os.WriteFile(path, []byte(body), 0o600)
		if err := KillFromPidFile(path, nil); err == nil {
			t.Errorf("pid file %q: no error", body)
		}
	}
	if err := KillFromPidFile(filepath.Join(t.TempDir(), "none.pid"), nil); err != nil {
		t.Errorf("a missing pid file: %v, want nil (nothing to stop)", err)
	}
}

func TestProcPoll_GivesUpAtOnceWhenTheProcessExitsAndQuotesItsOutput(t *testing.T) {
	for _, logFile := range []string{"", filepath.Join(t.TempDir(), "x.log")} {
		p, err := Start(Options{Bin: "sh", Args: []string{"-c", "echo no config here; exit 3"}, LogFile: logFile})
		if err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		err = p.Poll(context.Background(), time.Minute, func() error { return fmt.Errorf("not ready") })
		if err == nil || !strings.Contains(err.Error(), "no config here") || !strings.Contains(err.Error(), "exit status 3") {
			t.Fatalf("log file %q: Poll = %v, want the exit and the output", logFile, err)
		}
		if took := time.Since(t0); took > 10*time.Second {
			t.Errorf("log file %q: Poll took %s: it waited for its timeout", logFile, took)
		}
	}
}

func TestProcStop_KillsTheGroupOfAProcessThatIgnoresItsSignalAndRemovesThePidFile(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "x.pid")
	var out Buffer
	p, err := Start(Options{Bin: "sh", Args: []string{"-c", `trap "" TERM; echo ready; sleep 300 & wait`},
		Output: &out, PidFile: pidFile, Marker: "sleep", StopTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "sh started", func() error {
		if !strings.Contains(out.String(), "ready") {
			return fmt.Errorf("output %q", out.String())
		}
		return nil
	})
	if b, err := os.ReadFile(pidFile); err != nil || string(b) != fmt.Sprintf("%d sleep\n", p.Pid()) {
		t.Fatalf("pid file = %q, %v", b, err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if !p.Exited() || !p.Killed() {
		t.Errorf("after Stop: exited %v, killed %v; want both", p.Exited(), p.Killed())
	}
	if _, err := os.Stat(pidFile); !os.IsNotExist(err) {
		t.Errorf("the pid file is still there (%v)", err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("a second Stop: %v", err)
	}
}

func TestFreePort_NeverHandsOutAPortTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 200 {
		p, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[p] || p < portLow || p >= portHigh {
			t.Fatalf("port %d: seen before %v, or outside [%d, %d)", p, seen[p], portLow, portHigh)
		}
		seen[p] = true
	}
}
