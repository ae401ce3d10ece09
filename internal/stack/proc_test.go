package stack

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/swap-dev/swap/internal/testenv"
)

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
			testenv.WaitFor(t, 5*time.Second, "sleep started", func() error {
				if !runs(pid, "sleep") {
					return fmt.Errorf("pid %d does not run sleep yet", pid)
				}
				return nil
			})
			path := filepath.Join(t.TempDir(), "x.pid")
			if err := os.WriteFile(path, fmt.Appendf(nil, "%d %s\n", pid, tc.marker), 0o600); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			if err := killFromPidFile(path, &log); err != nil {
				t.Fatalf("killFromPidFile: %v", err)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("the pid file is still there (%v)", err)
			}
			if tc.wantDead {
				testenv.WaitFor(t, 5*time.Second, "sleep gone", func() error {
					if runs(pid, "sleep") {
						return fmt.Errorf("pid %d still runs", pid)
					}
					return nil
				})
				if !strings.Contains(log.String(), fmt.Sprint(pid)) {
					t.Errorf("log %q does not name pid %d", log.String(), pid)
				}
			} else if !runs(pid, "sleep") {
				t.Errorf("pid %d was killed though it runs another command", pid)
			}
		})
	}
}

func TestKillFromPidFile_RefusesAFileItCannotRead(t *testing.T) {
	for _, body := range []string{"", "abc marker", "1 marker", "1234"} {
		path := filepath.Join(t.TempDir(), "x.pid")
		os.WriteFile(path, []byte(body), 0o600)
		if err := killFromPidFile(path, nil); err == nil {
			t.Errorf("pid file %q: no error", body)
		}
	}
	if err := killFromPidFile(filepath.Join(t.TempDir(), "none.pid"), nil); err != nil {
		t.Errorf("a missing pid file: %v, want nil (nothing to stop)", err)
	}
}
